package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func testRouter(t *testing.T, opts RouterOptions) *gin.Engine {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 10
	}
	r, err := NewRouter(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.POST("/auth/echo", func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			writeJSONError(c, opts.Log, err)
			return
		}
		c.String(http.StatusOK, "%d", len(b))
	})
	r.GET("/panic", func(*gin.Context) { panic("secret panic value") })
	return r
}

func do(r http.Handler, method, target string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

// TestRouterRules: what every request gets from the middleware, whatever
// the route.
func TestRouterRules(t *testing.T) {
	r := testRouter(t, RouterOptions{HSTS: true, CORSOrigins: []string{"https://App.example/"}})
	big := strings.Repeat("x", 2<<10)
	cases := []struct {
		name    string
		method  string
		target  string
		body    string
		header  map[string]string
		status  int
		want    map[string]string // response headers
		absent  []string
		inBody  string
		notBody string
	}{
		{name: "unknown path is the table's 404", method: "GET", target: "/nope", status: 404, inBody: `"error":"not_found"`},
		{name: "wrong method is 405", method: "DELETE", target: "/healthz", status: 405, inBody: `"method_not_allowed"`},
		{name: "security headers", method: "GET", target: "/healthz", status: 200, want: map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"Strict-Transport-Security": "max-age=63072000; includeSubDomains"}},
		{name: "auth answers are not cached", method: "POST", target: "/auth/echo", body: "x", status: 200,
			want: map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache"}},
		{name: "a good request id is kept", method: "GET", target: "/healthz", header: map[string]string{RequestIDHeader: "abc-123"},
			status: 200, want: map[string]string{RequestIDHeader: "abc-123"}},
		{name: "a declared oversized body is refused before reading", method: "POST", target: "/auth/echo", body: big,
			status: 413, inBody: "request body too large"},
		{name: "an undeclared oversized body is refused while reading", method: "POST", target: "/auth/echo", body: big,
			header: map[string]string{"Transfer-Encoding": "chunked"}, status: 413, inBody: "request body too large"},
		{name: "a panic is a 500 that reveals nothing", method: "GET", target: "/panic", status: 500,
			inBody: `"server_error"`, notBody: "secret panic value"},
		{name: "a registered origin gets CORS", method: "GET", target: "/healthz", header: map[string]string{"Origin": "https://app.example"},
			status: 200, want: map[string]string{"Access-Control-Allow-Origin": "https://app.example"}},
		{name: "another origin's form POST passes without CORS headers", method: "POST", target: "/auth/echo", body: "x",
			header: map[string]string{"Origin": "https://idp.example"}, status: 200, absent: []string{"Access-Control-Allow-Origin"}},
		{name: "another origin's preflight is refused", method: "OPTIONS", target: "/auth/echo",
			header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, status: 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.target, body)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			if tc.header["Transfer-Encoding"] == "chunked" {
				req.ContentLength = -1
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body.String())
			}
			for k, v := range tc.want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.absent {
				if got := w.Header().Get(k); got != "" {
					t.Errorf("%s = %q, want none", k, got)
				}
			}
			if tc.inBody != "" && !strings.Contains(w.Body.String(), tc.inBody) {
				t.Errorf("body %q lacks %q", w.Body.String(), tc.inBody)
			}
			if tc.notBody != "" && strings.Contains(w.Body.String(), tc.notBody) {
				t.Errorf("body %q reveals %q", w.Body.String(), tc.notBody)
			}
		})
	}
}

// TestRequestIDReplacesMalformed: an incoming id that could forge log
// lines is replaced.
func TestRequestIDReplacesMalformed(t *testing.T) {
	r := testRouter(t, RouterOptions{})
	for _, id := range []string{"", "has space", "new\nline", strings.Repeat("a", 65), `"quoted"`} {
		w := do(r, "GET", "/healthz", nil, map[string]string{RequestIDHeader: id})
		got := w.Header().Get(RequestIDHeader)
		if got == id || !validRequestID.MatchString(got) {
			t.Errorf("incoming %q: answered id %q", id, got)
		}
	}
}

// TestReadyz: failing checks make the replica unready, informative ones
// only degraded; the answer names the check, not its error.
func TestReadyz(t *testing.T) {
	failing := func(context.Context) error { return errors.New("dial tcp 10.0.0.1: secret detail") }
	ok := func(context.Context) error { return nil }
	cases := []struct {
		name   string
		checks []ReadinessCheck
		status int
		want   string
	}{
		{"all ok", []ReadinessCheck{{Name: "database", Check: ok}}, 200, `"status":"ready"`},
		{"an upstream down", []ReadinessCheck{{Name: "database", Check: ok}, {Name: "provider:x", Check: failing, Informative: true}},
			200, `"status":"degraded"`},
		{"the database down", []ReadinessCheck{{Name: "database", Check: failing}}, 503, `"database":"failing"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRouter(t, RouterOptions{Ready: tc.checks})
			w := do(r, "GET", "/readyz", nil, nil)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("readyz = %d %s", w.Code, w.Body.String())
			}
		})
	}
}

// fixedLimiter allows the first n requests per key, then refuses with
// wait; err makes every decision fail.
type fixedLimiter struct {
	n    int
	seen map[string]int
	wait time.Duration
	err  error
}

func (l *fixedLimiter) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	if l.err != nil {
		return false, 0, l.err
	}
	l.seen[key]++
	return l.seen[key] <= l.n, l.wait, nil
}

// TestRateLimiter: over the limit is the table's 429 with the limiter's
// Retry-After; a store that cannot decide lets the request through and
// counts it.
func TestRateLimiter(t *testing.T) {
	metrics := NewMetrics()
	lim := &fixedLimiter{n: 2, seen: map[string]int{}, wait: 1500 * time.Millisecond}
	rl := NewRateLimiter(lim, slog.New(slog.DiscardHandler), metrics)
	r := testRouter(t, RouterOptions{Metrics: metrics})
	r.GET("/auth/limited", rl.PerIP("login"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	for i := range 3 {
		w := do(r, "GET", "/auth/limited", nil, nil)
		want := http.StatusNoContent
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i, w.Code, want)
		}
		if i == 2 && (w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), "too_many_requests")) {
			t.Errorf("429 answer: Retry-After %q, body %s", w.Header().Get("Retry-After"), w.Body.String())
		}
	}
	for key := range lim.seen {
		if !strings.HasPrefix(key, "login:ip:") {
			t.Errorf("limiter key %q is not scope:kind:id", key)
		}
	}

	lim.err = errors.New("redis down")
	if w := do(r, "GET", "/auth/limited", nil, nil); w.Code != http.StatusNoContent {
		t.Errorf("store down: %d, want the request let through", w.Code)
	}

	var none *RateLimiter
	if NewRateLimiter(nil, nil, nil) != nil {
		t.Error("no limiter must be a nil RateLimiter")
	}
	r.GET("/auth/unlimited", none.PerIP("login"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	if w := do(r, "GET", "/auth/unlimited", nil, nil); w.Code != http.StatusNoContent {
		t.Errorf("nil limiter: %d", w.Code)
	}
}

// TestBearerToken: RFC 6750 §2.1's header form only.
func TestBearerToken(t *testing.T) {
	cases := map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER abc": "abc",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "Bearerabc": "",
	}
	for header, want := range cases {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("GET", "/", nil)
		c.Request.Header.Set("Authorization", header)
		got, err := bearerToken(c)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: got %q, %v; want %q", header, got, err, want)
		}
	}
}
