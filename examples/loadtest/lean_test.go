package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenFields: the plain shape Gatehouse writes is read by scanning;
// anything else (escapes, spaces, other members first, repeated members)
// by decoding in full, with the decoder's result; what is not JSON is an
// error.
func TestTokenFields(t *testing.T) {
	for _, tc := range []struct {
		name, body          string
		access, refresh, id string
		wantErr             bool
	}{
		{"gatehouse's shape", `{"access_token":"a.b.c","token_type":"Bearer","expires_in":900,"refresh_token":"ghr_x","id_token":"d.e.f"}`, "a.b.c", "ghr_x", "d.e.f", false},
		{"no id token", `{"access_token":"a.b.c","refresh_token":"ghr_x"}`, "a.b.c", "ghr_x", "", false},
		{"spaces after colons", `{"access_token": "a.b.c", "refresh_token": "ghr_x"}`, "a.b.c", "ghr_x", "", false},
		{"escaped value", `{"access_token":"a\/b","refresh_token":"ghr_x"}`, "a/b", "ghr_x", "", false},
		{"member named inside a value", `{"scope":"x \"access_token\":\"forged\"","access_token":"real"}`, "real", "", "", false},
		{"nested member first", `{"details":{"access_token":"inner"},"access_token":"outer","refresh_token":"r"}`, "outer", "r", "", false},
		{"escaped key before the real one", `{"x\"access_token":"forged","access_token":"real","refresh_token":"r"}`, "real", "r", "", false},
		{"repeated member: the decoder's last", `{"access_token":"a","refresh_token":"r1","refresh_token":"r2"}`, "a", "r2", "", false},
		{"refresh token not a string", `{"access_token":"a","refresh_token":null}`, "a", "", "", false},
		{"not JSON", `<html>oops</html>`, "", "", "", true},
		{"cut short", `{"access_token":"a.b.c","refresh_token":"ghr_`, "", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tokenFields([]byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("tokenFields = %+v, want an error", a)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.AccessToken != tc.access || a.RefreshToken != tc.refresh || a.IDToken != tc.id {
				t.Fatalf("tokenFields = %+v, want %q %q %q", a, tc.access, tc.refresh, tc.id)
			}
		})
	}
}

// TestLeanClient: requests carry the method, path, form and basic
// credentials net/http would send; a kept-alive connection carries the
// next request; chunked and closing answers are read; errors are the
// kinds gatehouse.send names.
func TestLeanClient(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/base/auth/token" || !ok || user != "load%2Fclient" || pass != "s%3Acret" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request shape", http.StatusTeapot)
			return
		}
		_ = r.ParseForm()
		switch r.PostForm.Get("grant_type") {
		case "chunked":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"`)
			w.(http.Flusher).Flush() // forces chunked encoding
			fmt.Fprint(w, strings.Repeat("A", 5000)+`","refresh_token":"ghr_chunked"}`)
		case "close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, `{"access_token":"a","refresh_token":"ghr_close"}`)
		case "refused":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"no"}`)
		default:
			fmt.Fprint(w, `{"access_token":"a","refresh_token":"ghr_`+r.PostForm.Get("n")+`"}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	g := &gatehouse{base: srv.URL + "/base", client: "load/client", secret: "s:cret", timeout: 5 * time.Second}
	c := newLeanClient(g, "/auth/token", 2)
	g.token = c
	ctx := context.Background()
	for i := range 5 {
		a, kind := g.tokenRequest(ctx, fmt.Sprintf("grant_type=refresh_token&n=%d", i), true)
		if kind != "" || a.RefreshToken != fmt.Sprintf("ghr_%d", i) {
			t.Fatalf("request %d: %q %+v", i, kind, a)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("five sequential requests used %d connections, want 1 kept alive", n)
	}
	if a, kind := g.tokenRequest(ctx, "grant_type=chunked", true); kind != "" || a.RefreshToken != "ghr_chunked" || len(a.AccessToken) != 5000 {
		t.Fatalf("chunked answer: %q refresh %q, access of %d bytes", kind, a.RefreshToken, len(a.AccessToken))
	}
	if a, kind := g.tokenRequest(ctx, "grant_type=close", true); kind != "" || a.RefreshToken != "ghr_close" {
		t.Fatalf("closing answer: %q %+v", kind, a)
	}
	if a, kind := g.tokenRequest(ctx, "grant_type=after-close", true); kind != "" || a.RefreshToken != "ghr_" {
		t.Fatalf("after a closing answer: %q %+v", kind, a)
	}
	if a, kind := g.tokenRequest(ctx, "grant_type=refused", true); kind != "http 400 invalid_grant" || a.Error != "invalid_grant" {
		t.Fatalf("refusal: kind %q, answer %+v", kind, a)
	}
	srv.Close()
	if _, kind := g.tokenRequest(ctx, "grant_type=refresh_token", true); !strings.HasPrefix(kind, "transport: ") {
		t.Fatalf("server gone: kind %q, want a transport error", kind)
	}
	if newLeanClient(&gatehouse{base: "https://127.0.0.1:1"}, "/auth/token", 1) != nil {
		t.Fatal("an HTTPS server got a lean client; it speaks plain HTTP only")
	}
}

// TestLeanClientKeepsAnswersInStep: nothing an answer does leaves a
// connection out of step with its requests — a 1xx before the answer, a
// body drained past the deadline, an idle connection the server closed —
// and a timeout is the kind gatehouse.send names.
func TestLeanClientKeepsAnswersInStep(t *testing.T) {
	lean := func(base string, timeout time.Duration) *gatehouse {
		g := newGatehouse(options{base: base, client: "c", secret: "s", requestTimeout: timeout, concurrency: 1})
		if g.token == nil {
			t.Fatal("no lean client for plain HTTP")
		}
		return g
	}
	ctx := context.Background()

	t.Run("1xx before the answer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			if r.PostForm.Get("n") == "0" {
				w.Header().Set("Link", "</x>; rel=preload")
				w.WriteHeader(http.StatusEarlyHints)
			}
			fmt.Fprint(w, `{"access_token":"a","refresh_token":"ghr_`+r.PostForm.Get("n")+`"}`)
		}))
		defer srv.Close()
		g := lean(srv.URL, 2*time.Second)
		for i := range 3 {
			if a, kind := g.tokenRequest(ctx, fmt.Sprintf("n=%d", i), true); kind != "" || a.RefreshToken != fmt.Sprintf("ghr_%d", i) {
				t.Fatalf("request %d: %q, refresh token %q", i, kind, a.RefreshToken)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(400 * time.Millisecond) }))
		defer srv.Close()
		if _, kind := lean(srv.URL, 100*time.Millisecond).tokenRequest(ctx, "n=1", true); kind != "transport: timeout" {
			t.Fatalf("kind %q, want transport: timeout", kind)
		}
	})

	t.Run("idle connection closed by the server", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"access_token":"a","refresh_token":"r"}`)
		}))
		srv.Config.IdleTimeout = 100 * time.Millisecond
		defer func(d time.Duration) { leanIdle = d }(leanIdle)
		leanIdle = 50 * time.Millisecond
		srv.Start()
		defer srv.Close()
		g := lean(srv.URL, 2*time.Second)
		for i := range 2 {
			if _, kind := g.tokenRequest(ctx, "n=1", true); kind != "" {
				t.Fatalf("request %d: %q", i, kind)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})

	t.Run("body drained past the deadline", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		forged := `{"access_token":"forged","refresh_token":"ghr_forged"}`
		tail := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(forged), forged)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			if _, err := http.ReadRequest(r); err != nil {
				return
			}
			// An answer over the 1 MiB the client reads, whose end (which
			// looks like an answer) comes after the client's deadline.
			head := strings.Repeat(" ", 3<<19)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(head)+len(tail), head)
			time.Sleep(500 * time.Millisecond)
			fmt.Fprint(c, tail)
			if _, err := http.ReadRequest(r); err != nil {
				return
			}
			real := `{"access_token":"a","refresh_token":"ghr_real"}`
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(real), real)
			time.Sleep(time.Second)
		}()
		g := lean("http://"+ln.Addr().String(), 200*time.Millisecond)
		_, _ = g.tokenRequest(ctx, "n=0", true)
		time.Sleep(500 * time.Millisecond)
		if a, kind := g.tokenRequest(ctx, "n=1", true); kind == "" && a.RefreshToken != "ghr_real" {
			t.Fatalf("the second request succeeded with %q, the rest of the first answer", a.RefreshToken)
		}
	})
}
