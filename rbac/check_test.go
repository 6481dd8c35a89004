package rbac_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// TestCheckCannotDecide: an Options.Check that could not decide (its
// error wraps ErrUnavailable: Gatehouse's session check met a database
// fault) answers 503 with Retry-After and temporarily_unavailable, not a
// 401 that would make the client drop a good token; any other Check
// error is a 401, whose answer names the reason only when Refuse gave it
// (the text of any other error stays out of the answer).
func TestCheckCannotDecide(t *testing.T) {
	is := newIssuer(t)
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"check passes", nil, http.StatusOK, "", false},
		{"check refuses", rbac.Refuse("the session has ended"), http.StatusUnauthorized, "the session has ended", false},
		{"check fails with an internal error", errors.New("SQL logic error: no such column: users.secret_col"),
			http.StatusUnauthorized, "the credential was refused", false},
		{"check cannot decide", fmt.Errorf("%w: check session: connection reset", rbac.ErrUnavailable),
			http.StatusServiceUnavailable, "temporarily_unavailable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMiddleware(t, is, func(o *rbac.Options) {
				o.Check = func(context.Context, *rbac.Principal) error { return tc.err }
			})
			h := m.RequirePermission("kb", "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			r := httptest.NewRequest(http.MethodGet, "/kb", nil)
			withBearer(is.token("kb:read"))(r)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.code) {
				t.Fatalf("= %d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.code)
			}
			if got := rec.Header().Get("Retry-After") != ""; got != tc.retryAfter {
				t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
			}
			if strings.Contains(rec.Body.String()+rec.Header().Get("WWW-Authenticate"), "secret_col") ||
				strings.Contains(rec.Body.String(), "connection reset") {
				t.Fatalf("the check's own error text reached the client: %s", rec.Body)
			}
			if tc.status == http.StatusServiceUnavailable && rec.Header().Get("WWW-Authenticate") != "" {
				t.Fatal("a 503 must not challenge for a new token")
			}
		})
	}
}

// TestRefuseWordsInTheChallenge: a Check hook's words reach the
// WWW-Authenticate header safely: quotes single, line breaks spaces (no
// header injection), other characters as UTF-8, as the Node middleware
// sends them.
func TestRefuseWordsInTheChallenge(t *testing.T) {
	is := newIssuer(t)
	words := "you’re not a member \"here\"\r\nX-Injected: 1 ✓"
	m := newMiddleware(t, is, func(o *rbac.Options) {
		o.Check = func(context.Context, *rbac.Principal) error { return rbac.Refuse(words) }
	})
	h := m.Authenticate()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/kb", nil)
	withBearer(is.token("kb:read"))(r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	want := `Bearer error="invalid_token", error_description="you’re not a member 'here'  X-Injected: 1 ✓"`
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != want || rec.Header().Get("X-Injected") != "" {
		t.Fatalf("= %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
