package main

import (
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
// anything else (escapes, spaces, other members first) by decoding in
// full, with the same result; what is not JSON is an error.
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
