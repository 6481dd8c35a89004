package rbac_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// lockedBuffer is a log sink safe for the warning goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func devOptions(logs *lockedBuffer) rbac.Options {
	return rbac.Options{Issuer: "http://localhost:1", Audience: "kb-api",
		Logger:               slog.New(slog.NewTextHandler(logs, nil)),
		InsecureDevPrincipal: &rbac.Principal{Subject: "dev-user", OrgID: "org-dev", Roles: []string{"owner"}, Permissions: []string{"kb:*"}}}
}

// TestInsecureDevPrincipalRefusesProduction: the development bypass
// cannot be constructed when the process looks like production.
func TestInsecureDevPrincipalRefusesProduction(t *testing.T) {
	for _, tc := range []struct {
		name, env  string
		production bool
		want       string
	}{
		{"GATEHOUSE_ENV=production", "production", false, `GATEHOUSE_ENV="production"`},
		{"GATEHOUSE_ENV=Production", "Production", false, "only in development"},
		{"GATEHOUSE_ENV=staging", "staging", false, `GATEHOUSE_ENV="staging"`},
		{"GATEHOUSE_ENV=prod", "prod", false, "only in development"},
		{"Options.Production", "", true, "cannot be used with Options.Production"},
		{"Options.Production in development", "development", true, "cannot be used with Options.Production"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GATEHOUSE_ENV", tc.env)
			var logs lockedBuffer
			opts := devOptions(&logs)
			opts.Production = tc.production
			m, err := rbac.New(context.Background(), opts)
			if err == nil || m != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error with %q", m, err, tc.want)
			}
		})
	}
	t.Run("malformed principal", func(t *testing.T) {
		t.Setenv("GATEHOUSE_ENV", "")
		for want, p := range map[string]*rbac.Principal{
			"Subject is required": {Permissions: []string{"*"}},
			"Permissions":         {Subject: "dev", Permissions: []string{"KB:read"}},
			"Roles":               {Subject: "dev", Roles: []string{"Owner"}},
		} {
			var logs lockedBuffer
			opts := devOptions(&logs)
			opts.InsecureDevPrincipal = p
			if _, err := rbac.New(context.Background(), opts); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("New = %v, want %q", err, want)
			}
		}
	})
}

// TestInsecureDevPrincipal: in development, every request acts as the
// configured principal with no credential, the rules still apply, and a
// warning is logged at start and on a timer until Close.
func TestInsecureDevPrincipal(t *testing.T) {
	t.Cleanup(rbac.SetTimingForTest(time.Second, time.Minute, 20*time.Millisecond))
	for _, env := range []string{"", "development"} {
		t.Run("GATEHOUSE_ENV="+env, func(t *testing.T) {
			t.Setenv("GATEHOUSE_ENV", env)
			var logs lockedBuffer
			m, err := rbac.New(context.Background(), devOptions(&logs))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "INSECURE") || !strings.Contains(logs.String(), "dev-user") {
				t.Fatalf("no warning at start: %q", logs.String())
			}
			var seen *rbac.Principal
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = rbac.PrincipalFrom(r.Context()) })
			for _, tc := range []struct {
				name   string
				h      http.Handler
				path   string
				edit   func(*http.Request)
				status int
			}{
				{"no credential", m.RequirePermission("kb", "write")(ok), "/kb", func(*http.Request) {}, 200},
				{"a garbage credential is not read", m.RequireRole("owner")(ok), "/kb", withBearer("garbage"), 200},
				{"missing permission", m.RequirePermission("billing", "read")(ok), "/kb", func(*http.Request) {}, 403},
				{"other organization", m.Authenticate()(ok), "/kb?org_id=org-prod", func(*http.Request) {}, 403},
				{"query credentials still leave the URL", m.Authenticate()(ok), "/kb?token=a.b.c&key=ghk_x", func(*http.Request) {}, 200},
			} {
				seen = nil
				r := httptest.NewRequest(http.MethodGet, tc.path, nil)
				tc.edit(r)
				rec := httptest.NewRecorder()
				tc.h.ServeHTTP(rec, r)
				if rec.Code != tc.status {
					t.Fatalf("%s = %d %s", tc.name, rec.Code, rec.Body)
				}
				if tc.status == 200 && (seen == nil || seen.Subject != "dev-user" || seen.Kind != rbac.KindInsecureDev || seen.OrgID != "org-dev") {
					t.Fatalf("%s: principal %+v", tc.name, seen)
				}
				if strings.Contains(r.URL.RawQuery, "token") || strings.Contains(r.URL.RawQuery, "key") {
					t.Fatalf("%s: URL %q", tc.name, r.URL)
				}
			}
			if err := m.Ready(canceled()); err != nil {
				t.Fatalf("Ready = %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for strings.Count(logs.String(), "INSECURE") < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("the warning does not repeat: %q", logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			m.Close()
			n := strings.Count(logs.String(), "INSECURE")
			time.Sleep(60 * time.Millisecond)
			if strings.Count(logs.String(), "INSECURE") != n {
				t.Fatal("the warning goes on after Close")
			}
		})
	}
	// Webhook routes still check their secrets.
	t.Setenv("GATEHOUSE_ENV", "")
	var logs lockedBuffer
	m, err := rbac.New(context.Background(), devOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "hook", Secrets: []string{strings.Repeat("h", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	hook.Authenticate()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hook", nil))
	if rec.Code != 401 {
		t.Fatalf("webhook without a secret in development = %d", rec.Code)
	}
}
