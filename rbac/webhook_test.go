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

	"github.com/gatehouse-id/gatehouse/rbac"
)

const (
	oldSecret = "old-webhook-secret-0123456789abcdef"
	newSecret = "new-webhook-secret-fedcba9876543210"
)

// TestWebhook: one of the configured secrets, alone in the request,
// yields the sender's principal with the permissions the backend gave
// it; RequirePermission checks them; everything else is a 401 that holds
// no secret.
func TestWebhook(t *testing.T) {
	is := newIssuer(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	var refusals []rbac.Refusal
	m := newMiddleware(t, is, func(o *rbac.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.OnRefusal = func(_ *http.Request, f *rbac.Refusal) {
			mu.Lock()
			refusals = append(refusals, *f)
			mu.Unlock()
		}
	})
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "chainhook", Secrets: []string{oldSecret, newSecret},
		Permissions: []string{"chainhook:deliver", "dao_events:*"}, OrgID: "org-a"})
	if err != nil {
		t.Fatal(err)
	}
	custom, err := m.Webhook(rbac.WebhookOptions{Name: "ci", Secrets: []string{newSecret}, Permissions: []string{"ci:notify"}, Header: "x-webhook-token"})
	if err != nil {
		t.Fatal(err)
	}
	var seen *rbac.Principal
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = rbac.PrincipalFrom(r.Context()) })
	deliver := hook.Authenticate()(m.RequirePermission("chainhook", "deliver")(ok))
	daoEvents := hook.Authenticate()(m.RequirePermission("dao_events", "create")(ok))
	admin := hook.Authenticate()(m.RequirePermission("kb", "write")(ok))
	scoped := hook.Authenticate()(m.RequireScope("kb.read")(ok))
	ci := custom.Authenticate()(m.RequirePermission("ci", "notify")(ok))
	tok := is.token("*")
	cases := []struct {
		name    string
		h       http.Handler
		path    string
		headers [][2]string
		status  int
		desc    string
		tokenID string
	}{
		{"old secret", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret}}, 200, "", "0"},
		{"new secret", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + newSecret}}, 200, "", "1"},
		{"underscored grant", daoEvents, "/hook", [][2]string{{"Authorization", "Bearer " + newSecret}}, 200, "", "1"},
		{"own organization named", deliver, "/hook?org_id=org-a", [][2]string{{"Authorization", "Bearer " + newSecret}}, 200, "", "1"},
		{"custom header", ci, "/ci", [][2]string{{"X-Webhook-Token", newSecret}}, 200, "", "0"},
		{"no secret", deliver, "/hook", nil, 401, "a webhook secret is required", ""},
		{"wrong secret", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + strings.Repeat("x", 35)}}, 401, "the webhook secret is not accepted", ""},
		{"a secret's prefix", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret[:20]}}, 401, "the webhook secret is not accepted", ""},
		{"a secret with more after it", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret + "x"}}, 401, "the webhook secret is not accepted", ""},
		{"lowercase scheme", deliver, "/hook", [][2]string{{"Authorization", "bearer " + oldSecret}}, 401, "must be the Bearer scheme", ""},
		{"no scheme", deliver, "/hook", [][2]string{{"Authorization", oldSecret}}, 401, "must be the Bearer scheme", ""},
		{"two spaces", deliver, "/hook", [][2]string{{"Authorization", "Bearer  " + oldSecret}}, 401, "the webhook secret is not accepted", ""},
		{"huge", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + strings.Repeat("y", 20000)}}, 401, "the webhook secret is not accepted", ""},
		{"two Authorization headers", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret}, {"Authorization", "Bearer " + newSecret}}, 401, "send one credential", ""},
		{"secret and an API key", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret}, {"X-API-Key", "ghk_" + strings.Repeat("a", 43)}}, 401, "send one credential", ""},
		{"secret and a query token", deliver, "/hook?token=" + tok, [][2]string{{"Authorization", "Bearer " + oldSecret}}, 401, "send one credential", ""},
		{"secret in the query", deliver, "/hook?key=" + oldSecret, nil, 401, "a webhook secret is required", ""},
		{"a Gatehouse token", deliver, "/hook", [][2]string{{"Authorization", "Bearer " + tok}}, 401, "the webhook secret is not accepted", ""},
		{"custom header and Authorization", ci, "/ci", [][2]string{{"X-Webhook-Token", newSecret}, {"Authorization", "Bearer " + newSecret}}, 401, "send one credential", ""},
		{"custom header: Authorization only", ci, "/ci", [][2]string{{"Authorization", "Bearer " + newSecret}}, 401, "a webhook secret is required", ""},
		{"custom header with a scheme", ci, "/ci", [][2]string{{"X-Webhook-Token", "Bearer " + newSecret}}, 401, "the webhook secret is not accepted", ""},
		{"permission not assigned", admin, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret}}, 403, "do not grant kb:write", ""},
		{"another organization named", deliver, "/hook?org_id=org-b", [][2]string{{"Authorization", "Bearer " + oldSecret}}, 403, "another organization", ""},
		{"scopes", scoped, "/hook", [][2]string{{"Authorization", "Bearer " + oldSecret}}, 403, "API keys and webhooks carry no scopes", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodPost, tc.path, nil)
			for _, h := range tc.headers {
				r.Header.Add(h[0], h[1])
			}
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, r)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.desc) {
				t.Fatalf("= %d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.desc)
			}
			out := rec.Body.String() + rec.Header().Get("WWW-Authenticate") + r.URL.String()
			for _, s := range []string{oldSecret, newSecret, oldSecret[:20]} {
				if strings.Contains(out, s) {
					t.Fatal("a secret is in the answer or the URL")
				}
			}
			switch {
			case tc.status == 401 && tc.desc == "a webhook secret is required" && rec.Header().Get("WWW-Authenticate") != "Bearer":
				t.Fatalf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			case tc.status == 401 && tc.desc != "a webhook secret is required" && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`):
				t.Fatalf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			case tc.status == 200 && (seen == nil || seen.Kind != rbac.KindWebhook || seen.TokenID != tc.tokenID || seen.IsUser()):
				t.Fatalf("principal = %+v", seen)
			}
		})
	}
	if seen := func() *rbac.Principal {
		r := httptest.NewRequest(http.MethodPost, "/hook", nil)
		r.Header.Set("Authorization", "Bearer "+oldSecret)
		p, err := hook.AuthenticateRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}(); seen.Subject != "webhook:chainhook" || seen.OrgID != "org-a" || !seen.Can("chainhook", "deliver") || seen.Can("kb", "read") {
		t.Fatalf("principal = %+v", seen)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) == 0 {
		t.Fatal("OnRefusal saw no webhook refusal")
	}
	for _, f := range refusals {
		if f.Cause != nil && (strings.Contains(f.Cause.Error(), oldSecret[:20]) || strings.Contains(f.Cause.Error(), newSecret[:20])) {
			t.Fatal("a refusal's cause holds a secret")
		}
	}
	if strings.Contains(logs.String(), oldSecret[:20]) || strings.Contains(logs.String(), newSecret[:20]) {
		t.Fatal("a secret was logged")
	}
}

// TestWebhookOptions: what New refuses, naming a secret by its position,
// never by its value.
func TestWebhookOptions(t *testing.T) {
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: "https://auth.example.com", Audience: "kb-api", Keys: staticKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	good := strings.Repeat("s", 32)
	cases := []struct {
		name string
		o    rbac.WebhookOptions
		want string
	}{
		{"no name", rbac.WebhookOptions{Secrets: []string{good}}, "Name \"\" is required"},
		{"uppercase name", rbac.WebhookOptions{Name: "Chain", Secrets: []string{good}}, "uppercase"},
		{"name with a colon", rbac.WebhookOptions{Name: "a:b", Secrets: []string{good}}, `contains ":"`},
		{"no secret", rbac.WebhookOptions{Name: "hook"}, "at least one secret is required"},
		{"short secret", rbac.WebhookOptions{Name: "hook", Secrets: []string{good, "short-secret"}}, "Secrets[1] is shorter than 16 bytes"},
		{"empty secret", rbac.WebhookOptions{Name: "hook", Secrets: []string{""}}, "Secrets[0] is shorter"},
		{"secret with the scheme", rbac.WebhookOptions{Name: "hook", Secrets: []string{"Bearer " + good}}, `Secrets[0] starts with "Bearer "`},
		{"secret with a space", rbac.WebhookOptions{Name: "hook", Secrets: []string{good + " x"}}, "Secrets[0] holds a space"},
		{"secret with a newline", rbac.WebhookOptions{Name: "hook", Secrets: []string{good + "\n"}}, "Secrets[0] holds a space, a control character"},
		{"secret not ASCII", rbac.WebhookOptions{Name: "hook", Secrets: []string{good + "é"}}, "printable ASCII only"},
		{"repeated secret", rbac.WebhookOptions{Name: "hook", Secrets: []string{good, good}}, "Secrets[1] repeats Secrets[0]"},
		{"malformed permission", rbac.WebhookOptions{Name: "hook", Secrets: []string{good}, Permissions: []string{"Hook:deliver"}}, "uppercase"},
		{"API key header", rbac.WebhookOptions{Name: "hook", Secrets: []string{good}, Header: "x-api-key"}, "may not be X-API-Key"},
		{"header with a space", rbac.WebhookOptions{Name: "hook", Secrets: []string{good}, Header: "X Token"}, "is not a header name"},
	}
	for _, tc := range cases {
		_, err := m.Webhook(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
			continue
		}
		for _, s := range tc.o.Secrets {
			if len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Errorf("%s: the error holds the secret", tc.name)
			}
		}
	}
	if _, err := m.Webhook(rbac.WebhookOptions{Name: "hook", Secrets: []string{good}, Header: "Authorization"}); err != nil {
		t.Fatalf("Header Authorization (the default) = %v", err)
	}
}

// TestWebhookWithoutOrganization: a sender acting in no organization is
// refused a request naming one (other_organization: it cannot refresh
// into one), and Options.Check, which is about Gatehouse credentials,
// does not run for it.
func TestWebhookWithoutOrganization(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, func(o *rbac.Options) {
		o.Check = func(context.Context, *rbac.Principal) error { return rbac.Refuse("everything is refused") }
	})
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "hook", Secrets: []string{newSecret}, Permissions: []string{"hook:deliver"}})
	if err != nil {
		t.Fatal(err)
	}
	h := hook.Authenticate()(m.RequirePermission("hook", "deliver")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	for path, want := range map[string]string{"/hook": "", "/hook?org_id=org-a": `"reason":"other_organization"`} {
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.Header.Set("Authorization", "Bearer "+newSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if (want == "" && rec.Code != 200) || (want != "" && (rec.Code != 403 || !strings.Contains(rec.Body.String(), want))) {
			t.Fatalf("%s = %d %s", path, rec.Code, rec.Body)
		}
	}
}
