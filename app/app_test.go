package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	return send(t, http.MethodGet, url, "", header...)
}

// send makes one request with a body and header name/value pairs.
func send(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func TestHealthAndReadiness(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{Postgres: pg})
			if resp, body := get(t, s.URL+"/healthz"); resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
				t.Fatalf("healthz = %d %s", resp.StatusCode, body)
			}
			resp, body := get(t, s.URL+"/readyz")
			if resp.StatusCode != 200 || !strings.Contains(body, `"database":"ok"`) || !strings.Contains(body, `"migrations":"ok"`) {
				t.Fatalf("readyz = %d %s", resp.StatusCode, body)
			}
			// The database goes away: not ready, and the body says which check.
			_ = s.DB.Close()
			resp, body = get(t, s.URL+"/readyz")
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"database":"failing"`) {
				t.Fatalf("readyz without database = %d %s", resp.StatusCode, body)
			}
			if resp, _ := get(t, s.URL+"/healthz"); resp.StatusCode != 200 {
				t.Fatal("liveness must not depend on the database")
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	logs := &syncBuffer{}
	s := apptest.Start(t, apptest.Options{Log: logs, Env: map[string]string{"GATEHOUSE_MAX_BODY_BYTES": "2048"}})
	s.Engine.GET("/test/panic", func(c *gin.Context) { panic("database password is hunter2") })
	s.Engine.POST("/test/echo", func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			c.JSON(http.StatusRequestEntityTooLarge, gin.H{"error": "too large"})
			return
		}
		c.String(200, "%d", len(b))
	})
	s.Engine.GET("/auth/test/ip", func(c *gin.Context) { c.String(200, c.ClientIP()) })

	t.Run("request id", func(t *testing.T) {
		resp, _ := get(t, s.URL+"/healthz", "X-Request-ID", "abc-123")
		if resp.Header.Get("X-Request-ID") != "abc-123" {
			t.Fatalf("incoming id not kept: %q", resp.Header.Get("X-Request-ID"))
		}
		resp, _ = get(t, s.URL+"/healthz", "X-Request-ID", "bad id\twith spaces")
		if id := resp.Header.Get("X-Request-ID"); id == "" || strings.Contains(id, " ") {
			t.Fatalf("malformed id not replaced: %q", id)
		}
	})
	t.Run("panic becomes a JSON 500 without internals", func(t *testing.T) {
		resp, body := get(t, s.URL+"/test/panic")
		if resp.StatusCode != 500 || strings.Contains(body, "hunter2") || !strings.Contains(body, `"server_error"`) {
			t.Fatalf("panic = %d %s", resp.StatusCode, body)
		}
		var out map[string]string
		_ = json.Unmarshal([]byte(body), &out)
		if out["request_id"] != resp.Header.Get("X-Request-ID") {
			t.Fatalf("500 body lacks the request id: %s", body)
		}
	})
	t.Run("security headers", func(t *testing.T) {
		resp, _ := get(t, s.URL+"/auth/test/ip")
		for h, want := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Error("CSP lacks frame-ancestors")
		}
	})
	t.Run("body limit", func(t *testing.T) {
		resp, err := http.Post(s.URL+"/test/echo", "text/plain", strings.NewReader(strings.Repeat("x", 4096)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("declared oversized body = %d", resp.StatusCode)
		}
		// No Content-Length: the limit still applies while reading.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/test/echo", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))))
		req.ContentLength = -1
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked oversized body = %d", resp.StatusCode)
		}
		resp, err = http.Post(s.URL+"/test/echo", "text/plain", strings.NewReader("small"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("small body = %d", resp.StatusCode)
		}
	})
	t.Run("X-Forwarded-For is ignored without trusted proxies", func(t *testing.T) {
		_, body := get(t, s.URL+"/auth/test/ip", "X-Forwarded-For", "203.0.113.9")
		if body != "127.0.0.1" {
			t.Fatalf("client IP = %q, spoofed through X-Forwarded-For", body)
		}
	})
	t.Run("access log has no query strings", func(t *testing.T) {
		get(t, s.URL+"/auth/test/ip?code=ghc_supersecret&state=s3cr3t")
		time.Sleep(50 * time.Millisecond)
		out := logs.String()
		if !strings.Contains(out, `"path":"/auth/test/ip"`) {
			t.Fatalf("no access log line:\n%s", out)
		}
		for _, secret := range []string{"ghc_supersecret", "s3cr3t"} {
			if strings.Contains(out, secret) {
				t.Fatalf("log contains %q", secret)
			}
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		resp, body := get(t, s.URL+"/nope")
		if resp.StatusCode != 404 || !strings.Contains(body, "not_found") {
			t.Fatalf("404 = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("metrics by route", func(t *testing.T) {
		// Every request this subtest checks is made here, so it proves the
		// same alone (-run 'TestMiddleware/metrics_by_route') as in the
		// whole test.
		req, _ := http.NewRequest("FROBNICATE", s.URL+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		secrets := []string{"ghm_querysecret", "s3cr3tstate", "ghm_pathsecret", "ghm_paramsecret"}
		for _, path := range []string{
			"/healthz",
			"/auth/test/ip?code=" + secrets[0] + "&state=" + secrets[1], // a query string
			"/nope/" + secrets[2],          // an unmatched path
			"/auth/callback/" + secrets[3], // a path parameter
		} {
			get(t, s.URL+path)
		}
		_, body := get(t, s.URL+"/metrics")
		for _, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Fatalf("raw path or query (%s) leaked into metric labels", secret)
			}
		}
		if strings.Contains(body, "FROBNICATE") || !strings.Contains(body, `method="OTHER"`) {
			t.Fatal("an arbitrary method became a metric label")
		}
		for _, series := range []string{
			`gatehouse_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}`,
			`gatehouse_http_request_duration_seconds_count{method="GET",route="/auth/test/ip",status="200"}`,
			`gatehouse_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}`,
			`gatehouse_http_request_duration_seconds_count{method="GET",route="/auth/callback/:provider",`,
		} {
			if !strings.Contains(body, series) {
				t.Fatalf("metrics lack %s:\n%.2000s", series, body)
			}
		}
	})
}

func TestTrustedProxy(t *testing.T) {
	s := apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"}})
	s.Engine.GET("/test/ip", func(c *gin.Context) { c.String(200, c.ClientIP()) })
	if _, body := get(t, s.URL+"/test/ip", "X-Forwarded-For", "203.0.113.9"); body != "203.0.113.9" {
		t.Fatalf("client IP behind a trusted proxy = %q", body)
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	s := apptest.Start(t, apptest.Options{})
	started := make(chan struct{})
	s.Engine.GET("/test/slow", func(c *gin.Context) {
		close(started)
		time.Sleep(400 * time.Millisecond)
		c.String(200, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/test/slow")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	cancel()
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request = %q, want done", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), 200*time.Millisecond); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

func TestOneLine(t *testing.T) {
	if got := app.OneLine(io.ErrUnexpectedEOF); got != "unexpected EOF" {
		t.Fatal(got)
	}
}

func TestLandingAndDemoPages(t *testing.T) {
	s := apptest.Start(t, apptest.Options{})
	resp, body := get(t, s.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, s.URL) || !strings.Contains(body, "/.well-known/jwks.json") ||
		!strings.Contains(body, "Development sign-in") || !strings.Contains(body, `href="/demo/"`) {
		t.Fatalf("landing = %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]string{"/demo/": "Gatehouse demo", "/demo/demo.js": "code_challenge_method", "/demo": "Gatehouse demo"} {
		resp, body := get(t, s.URL+path)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s = %d %.200s", path, resp.StatusCode, body)
		}
	}
	prod := apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_DEV_LOGIN": "false"}})
	if resp, _ := get(t, prod.URL+"/demo/"); resp.StatusCode != 404 {
		t.Fatalf("/demo in production = %d", resp.StatusCode)
	}
}
