package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/web"
)

// TestEveryKindAnswered: the table has a row for every kind and nothing
// else, and each row can be shown both as JSON and as a page.
func TestEveryKindAnswered(t *testing.T) {
	for _, k := range fault.Kinds {
		a, ok := answers[k]
		switch {
		case !ok:
			t.Errorf("kind %q has no row in the table", k)
		case a.status < 400 || a.code == "" || a.description == "" || a.title == "" || a.message == "":
			t.Errorf("kind %q: incomplete row %+v", k, a)
		}
	}
	if len(answers) != len(fault.Kinds) {
		t.Errorf("the table has %d rows for %d kinds", len(answers), len(fault.Kinds))
	}
}

func serveError(t *testing.T, err error, asPage bool) *httptest.ResponseRecorder {
	t.Helper()
	pages, perr := web.Load()
	if perr != nil {
		t.Fatal(perr)
	}
	r := gin.New()
	r.GET("/", func(c *gin.Context) {
		if asPage {
			renderPage(c, slog.New(slog.DiscardHandler), pages, err)
			return
		}
		writeJSONError(c, slog.New(slog.DiscardHandler), err)
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	return w
}

// TestErrorTable pins the answers clients and people rely on.
func TestErrorTable(t *testing.T) {
	secret := errors.New("detail with a secret: s3cr3t")
	transient := fault.New(fault.Unavailable, secret)
	cases := []struct {
		name        string
		err         error
		status      int
		code        string
		description string
		header      [2]string
	}{
		{"unknown error is 500 without detail", secret, 500, "server_error", "internal error", [2]string{}},
		{"transient fault is 503 with Retry-After", fmt.Errorf("query: %w", transient), 503, "temporarily_unavailable",
			"the service is briefly unavailable; try again shortly", [2]string{"Retry-After", "1"}},
		{"invalid grant keeps its description", &oauth.Error{Code: "invalid_grant", Description: "the code was already used", Cause: secret},
			400, "invalid_grant", "the code was already used", [2]string{}},
		{"invalid client challenges Basic", &oauth.Error{Code: "invalid_client", Description: "client authentication failed"},
			401, "invalid_client", "client authentication failed", [2]string{"WWW-Authenticate", `Basic realm="gatehouse"`}},
		{"an OAuth error beats its transient cause", &oauth.Error{Code: "invalid_grant", Description: "no", Cause: transient},
			400, "invalid_grant", "no", [2]string{}},
		{"bearer refusal challenges", fmt.Errorf("%w: expired", oauth.ErrInvalidToken), 401, "invalid_token",
			"the access token is invalid, expired or revoked", [2]string{"WWW-Authenticate", bearerChallenge}},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "invalid_request", "request body too large", [2]string{}},
		{"admin: not found", admin.Classified(fmt.Errorf("load org: %w", admin.ErrNotFound)), 404, "not_found", "no such resource", [2]string{}},
		{"admin: permission names its reason", &admin.PermissionError{Required: "admin:orgs-write", Reason: "your role does not grant it"},
			403, "insufficient_permission", "your role does not grant it", [2]string{}},
		{"admin: administrators only", admin.ErrAdministratorsOnly, 403, "insufficient_permission",
			"this is for Gatehouse administrators only", [2]string{}},
		{"admin: input names the field", &admin.InputError{Field: "slug", Reason: "must be lowercase"}, 400, "invalid_request",
			"slug: must be lowercase", [2]string{}},
		{"explained kind", fault.Explain(fault.Conflict, "the slug is taken", secret), 409, "conflict", "the slug is taken", [2]string{}},
		{"an unconfirmed refresh keeps its words and says when to retry",
			fault.WithRetryAfter(fault.Explain(fault.UpstreamUnconfirmed, "the identity provider cannot be reached; retry later", secret), 17*time.Second),
			503, "temporarily_unavailable", "the identity provider cannot be reached; retry later", [2]string{"Retry-After", "17"}},
		{"an unconfirmed refresh without a delay waits out a re-check's lease", fault.New(fault.UpstreamUnconfirmed, secret),
			503, "temporarily_unavailable", "The identity provider cannot confirm", [2]string{"Retry-After", "30"}},
		{"a delay on a refusal adds no Retry-After", fault.WithRetryAfter(fault.New(fault.InvalidGrant, secret), time.Minute),
			400, "invalid_grant", "the grant is invalid", [2]string{"Retry-After", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serveError(t, tc.err, false)
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body.String(), err)
			}
			desc, _ := body["error_description"].(string)
			if w.Code != tc.status || body["error"] != tc.code || !strings.HasPrefix(desc, tc.description) {
				t.Errorf("got %d %v, want %d %s %q", w.Code, body, tc.status, tc.code, tc.description)
			}
			if tc.header[0] != "" && w.Header().Get(tc.header[0]) != tc.header[1] {
				t.Errorf("%s = %q, want %q", tc.header[0], w.Header().Get(tc.header[0]), tc.header[1])
			}
			if strings.Contains(w.Body.String(), "s3cr3t") {
				t.Errorf("the detail leaked: %s", w.Body.String())
			}
			if w.Code >= 500 && body["request_id"] == nil {
				t.Errorf("a %d without request_id: %v", w.Code, body)
			}
		})
	}
}

// TestErrorPages: a person sees the table's page, or the error's own
// words for them, never the detail.
func TestErrorPages(t *testing.T) {
	secret := errors.New("detail: s3cr3t")
	cases := []struct {
		name       string
		err        error
		status     int
		contains   []string
		startOver  bool
		retryAfter string
	}{
		{"busy", fault.New(fault.Busy, secret), 503, []string{"Busy", "reload this page"}, false, "2"},
		{"a sign-in cut short keeps its own words", fault.New(fault.SignInInterrupted, fault.Explain(fault.UpstreamDenied, "inner words", secret)),
			503, []string{"cannot be resumed"}, true, "2"},
		{"another browser", fault.New(fault.OtherBrowser, secret), 400, []string{"another browser"}, true, ""},
		{"upstream unreachable", fault.New(fault.UpstreamUnavailable, secret), 503, []string{"Sign-in unavailable", "cannot be reached"}, false, "2"},
		{"an internal error never shows a message", fault.Explain(fault.Internal, "words for someone else", secret), 500,
			[]string{"Something went wrong"}, false, ""},
		{"internal", secret, 500, []string{"Something went wrong"}, false, ""},
		{"transient", fault.New(fault.Unavailable, secret), 503, []string{"Temporarily unavailable"}, false, "1"},
		{"expired sign-in offers to start over", fault.New(fault.LoginExpired, secret), 400, []string{"Sign-in expired"}, true, ""},
		{"provider's words", fault.Explain(fault.UpstreamDenied, "Your GitHub account is not in an allowed organization.", secret), 403,
			[]string{"Sign-in failed", "not in an allowed organization"}, false, ""},
		{"unknown provider", fault.New(fault.UnknownProvider, secret), 404, []string{"This sign-in method does not exist."}, false, ""},
		{"too large", &http.MaxBytesError{Limit: 1}, 413, []string{"Request too large"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serveError(t, tc.err, true)
			body := w.Body.String()
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			for _, s := range tc.contains {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			if strings.Contains(body, "s3cr3t") {
				t.Error("the detail leaked onto the page")
			}
			if got := strings.Contains(body, `href="/"`); got != tc.startOver {
				t.Errorf("start-over link shown = %v, want %v", got, tc.startOver)
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			for _, s := range []string{"words for someone else", "inner words"} {
				if strings.Contains(body, s) {
					t.Errorf("the page shows %q", s)
				}
			}
		})
	}
}

// TestEveryOAuthCodeAnswered: every OAuth error code oauth and signin
// write has a row, so none falls through to a 500.
func TestEveryOAuthCodeAnswered(t *testing.T) {
	code := regexp.MustCompile(`(?:Code: |oauthErr\()"([a-z_]+)"`)
	seen := 0
	for _, dir := range []string{"../oauth", "../signin"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range code.FindAllStringSubmatch(string(src), -1) {
				seen++
				if _, ok := answers[fault.Kind(m[1])]; !ok {
					t.Errorf("%s writes OAuth error %q, which the table does not answer", f, m[1])
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d OAuth error codes: the pattern no longer matches the code", seen)
	}
}
