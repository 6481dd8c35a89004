package app_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// clientReplicas starts two replicas of one Gatehouse on one database
// (PostgreSQL, or one SQLite file), polling stored clients every 50ms,
// with an administrator signed in on the first. Both log to logs.
func clientReplicas(t *testing.T, pg bool, logs *syncBuffer) (*world, *world) {
	t.Helper()
	env := map[string]string{"GATEHOUSE_CLIENTS_POLL_INTERVAL": "50ms"}
	s1 := apptest.Start(t, apptest.Options{YAML: rbacYAML, Postgres: pg, Env: env, Log: logs})
	s2 := apptest.Start(t, apptest.Options{YAML: rbacYAML, DatabaseURL: s1.Config.DatabaseURL, Env: env, Log: logs})
	w1, w2 := &world{t: t, s: s1}, &world{t: t, s: s2}
	if _, err := s1.Admin.GrantAdmin(context.Background(), "root@example.com"); err != nil {
		t.Fatal(err)
	}
	w1.root = w1.signIn("admin-console", "root@example.com", "", models.AdminOrgID).AccessToken
	return w1, w2
}

// eventually retries check until it passes (a replica follows a change
// at its next poll); it fails the test after a generous minute.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientCredentials asks w's token endpoint for a client_credentials
// token with id and secret (HTTP Basic) and returns the status.
func clientCredentials(t *testing.T, w *world, id, secret string) int {
	t.Helper()
	status, _ := tokenPost(t, w.s, url.Values{"grant_type": {"client_credentials"}}, url.QueryEscape(id), url.QueryEscape(secret))
	return status
}

type createdClient struct {
	ClientID                string     `json:"client_id"`
	Secret                  string     `json:"client_secret"`
	Source                  string     `json:"source"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// TestRuntimeClientOnSecondReplica: a client created through the admin
// API on one replica completes a code flow (and refreshes) on a second
// replica, neither restarted; a secret rotation keeps both secrets
// working during the overlap, and one with no overlap refuses the old
// secret at once; deleting the client ends its sessions (the refresh
// token is refused) on the other replica too. Secrets appear in no log
// and no audit event.
func TestRuntimeClientOnSecondReplica(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			logs := &syncBuffer{}
			w1, w2 := clientReplicas(t, pg, logs)
			var c createdClient
			w1.mustCall("POST", "/api/v1/admin/clients", w1.root, map[string]any{
				"client_id": "reports", "name": "Reports",
				"redirect_uris": []string{"http://127.0.0.1:9/reports/callback"},
				"grant_types":   []string{"authorization_code", "refresh_token", "client_credentials"},
				"audience":      []string{"reports-api"},
			}, 201, &c)
			if c.ClientID != "reports" || c.Source != "database" || len(c.Secret) < 40 {
				t.Fatalf("created = %+v", c)
			}
			secrets := []string{c.Secret}

			eventually(t, "second replica knows the client", func() bool { _, ok := w2.s.OAuth.Client("reports"); return ok })
			tok := codeFlow(t, w2.s, "reports", c.Secret, "http://127.0.0.1:9/reports/callback", "ann@example.com")
			if tok.RefreshToken == "" {
				t.Fatalf("code exchange on the second replica: no refresh token")
			}

			// Rotation with an overlap: both secrets work on both replicas.
			var r createdClient
			w1.mustCall("POST", "/api/v1/admin/clients/reports/rotate-secret", w1.root, map[string]any{"overlap": "1h"}, 200, &r)
			if r.Secret == "" || r.Secret == c.Secret || r.PreviousSecretExpiresAt == nil {
				t.Fatalf("rotated = %+v", r)
			}
			secrets = append(secrets, r.Secret)
			eventually(t, "second replica takes the new secret", func() bool { return clientCredentials(t, w2, "reports", r.Secret) == 200 })
			for _, w := range []*world{w1, w2} {
				if st := clientCredentials(t, w, "reports", c.Secret); st != 200 {
					t.Errorf("old secret during the overlap = %d, want 200", st)
				}
				if st := clientCredentials(t, w, "reports", r.Secret); st != 200 {
					t.Errorf("new secret = %d, want 200", st)
				}
			}
			// Rotation without overlap: the secrets before stop at once.
			var r2 createdClient
			w1.mustCall("POST", "/api/v1/admin/clients/reports/rotate-secret", w1.root, map[string]any{"overlap": "0s"}, 200, &r2)
			secrets = append(secrets, r2.Secret)
			eventually(t, "second replica takes the third secret", func() bool { return clientCredentials(t, w2, "reports", r2.Secret) == 200 })
			for _, w := range []*world{w1, w2} {
				for _, old := range []string{c.Secret, r.Secret} {
					if st := clientCredentials(t, w, "reports", old); st != 401 {
						t.Errorf("replaced secret after its overlap = %d, want 401", st)
					}
				}
			}

			// Deleting ends its sessions: the refresh token is refused.
			var del struct {
				SessionsEnded int64 `json:"sessions_ended"`
			}
			w1.mustCall("DELETE", "/api/v1/admin/clients/reports", w1.root, nil, 200, &del)
			if del.SessionsEnded != 1 {
				t.Errorf("sessions ended = %d, want 1", del.SessionsEnded)
			}
			eventually(t, "second replica forgets the client", func() bool { _, ok := w2.s.OAuth.Client("reports"); return !ok })
			conf := &oauth2.Config{ClientID: "reports", ClientSecret: r2.Secret,
				Endpoint: oauth2.Endpoint{TokenURL: w2.s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
			if _, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Error("refresh of a deleted client's session succeeded")
			}
			w1.mustCall("GET", "/api/v1/admin/clients/reports", w1.root, nil, 404, nil)

			// Audit: one event per change, no secret in any of them nor in the logs.
			var events []models.AuditEvent
			if err := w1.s.Store.Gorm().Where("type LIKE ?", "client.%").Order("id").Find(&events).Error; err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range events {
				types = append(types, e.Type)
				raw, _ := json.Marshal(e)
				for _, s := range secrets {
					if strings.Contains(string(raw), s) {
						t.Errorf("audit event %s holds a client secret", e.Type)
					}
				}
			}
			want := "client.created client.secret_rotated client.secret_rotated client.deleted"
			if got := strings.Join(types, " "); got != want {
				t.Errorf("audit events = %s, want %s", got, want)
			}
			for _, s := range secrets {
				if strings.Contains(logs.String(), s) {
					t.Error("a client secret is in the log")
				}
			}
		})
	}
}

// TestConfiguredClientReadOnly: the YAML file's clients are listed and
// shown, but every change answers 409 saying they are defined in the
// configuration file, and no stored client may take their id.
func TestConfiguredClientReadOnly(t *testing.T) {
	w := newWorld(t, false)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	w.mustCall("GET", "/api/v1/admin/clients", w.root, nil, 200, &list)
	found := false
	for _, it := range list.Items {
		if it["client_id"] == "kb-backend" {
			found = it["source"] == "config" && it["secret"] == nil && it["public"] == false
		}
	}
	if !found {
		t.Fatalf("list = %+v, want kb-backend from the configuration, without secret", list.Items)
	}
	checks := []struct {
		method, path string
		body         any
	}{
		{"PATCH", "/api/v1/admin/clients/kb-backend", map[string]any{"name": "x"}},
		{"DELETE", "/api/v1/admin/clients/kb-backend", nil},
		{"POST", "/api/v1/admin/clients/kb-backend/rotate-secret", map[string]any{}},
		{"POST", "/api/v1/admin/clients", map[string]any{"client_id": "kb-backend", "redirect_uris": []string{"https://x.example/cb"}}},
	}
	for _, c := range checks {
		status, body := w.call(c.method, c.path, w.root, c.body, nil)
		if status != 409 || !strings.Contains(body, "configuration file") {
			t.Errorf("%s %s = %d %s, want 409 naming the configuration file", c.method, c.path, status, body)
		}
	}
	if _, ok := w.s.OAuth.Client("kb-backend"); !ok {
		t.Fatal("the configured client is gone")
	}
}

// TestRuntimeClientInput: a stored client is checked by the YAML file's
// rules (with their messages), a secret cannot be chosen, unknown fields
// and oversized bodies are refused, and a public client gets no secret.
func TestRuntimeClientInput(t *testing.T) {
	w := newWorld(t, false)
	cases := []struct {
		name string
		body any
		want int
		text string
	}{
		{"no redirect uri", map[string]any{"client_id": "a1"}, 400, "at least one redirect URI"},
		{"chosen secret", map[string]any{"client_id": "a2", "secret": "0123456789abcdef0123", "redirect_uris": []string{"https://a.example/cb"}}, 400, "generated by Gatehouse"},
		{"unknown field", map[string]any{"client_id": "a3", "redirect_uri": "https://a.example/cb"}, 400, "unknown field redirect_uri"},
		{"unknown grant", map[string]any{"client_id": "a4", "grant_types": []string{"password"}, "redirect_uris": []string{"https://a.example/cb"}}, 400, "unknown grant type"},
		{"unknown provider", map[string]any{"client_id": "a5", "allowed_providers": []string{"nope"}, "redirect_uris": []string{"https://a.example/cb"}}, 400, "not a configured provider"},
		{"fragment", map[string]any{"client_id": "a6", "redirect_uris": []string{"https://a.example/cb#x"}}, 400, "fragment"},
		{"bad id", map[string]any{"client_id": "a b", "redirect_uris": []string{"https://a.example/cb"}}, 400, "client_id"},
		{"api key prefix", map[string]any{"client_id": "apikey:x", "redirect_uris": []string{"https://a.example/cb"}}, 400, "names API keys"},
		{"ttl too long", map[string]any{"client_id": "a7", "access_token_ttl": "9000h", "redirect_uris": []string{"https://a.example/cb"}}, 400, "must not exceed"},
		{"not an object", `["x"]`, 400, ""},
		{"oversized", `{"client_id":"big","name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
	}
	for _, c := range cases {
		status, body := w.call("POST", "/api/v1/admin/clients", w.root, c.body, nil)
		if status != c.want || !strings.Contains(body, c.text) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, status, body, c.want, c.text)
		}
	}
	var pub map[string]any
	w.mustCall("POST", "/api/v1/admin/clients", w.root, map[string]any{"client_id": "spa", "public": true,
		"redirect_uris": []string{"http://127.0.0.1:9/callback"}}, 201, &pub)
	if _, ok := pub["client_secret"]; ok || pub["public"] != true {
		t.Errorf("public client = %+v, want no secret", pub)
	}
	w.mustCall("POST", "/api/v1/admin/clients/spa/rotate-secret", w.root, nil, 409, nil)
	// The new client signs in at once on this replica.
	if tok := w.signIn("spa", "bob@example.com", "", ""); tok.AccessToken == "" {
		t.Fatal("no token for the new public client")
	}
	// An update keeps the other fields and is checked the same way.
	var upd map[string]any
	w.mustCall("PATCH", "/api/v1/admin/clients/spa", w.root, map[string]any{"name": "SPA"}, 200, &upd)
	if upd["name"] != "SPA" || upd["public"] != true {
		t.Errorf("updated = %+v", upd)
	}
	if status, body := w.call("PATCH", "/api/v1/admin/clients/spa", w.root, map[string]any{"redirect_uris": nil}, nil); status != 400 {
		t.Errorf("removing every redirect URI = %d %s, want 400", status, body)
	}
	w.mustCall("PATCH", "/api/v1/admin/clients/nope", w.root, map[string]any{"name": "x"}, 404, nil)
}

// TestStoredClientBackchannelLogout: a stored client's
// backchannel_logout_uri reaches the dispatcher (of the replica that
// created it at once, of the others at their next poll), so ending its
// session delivers a logout token to it; clearing the URI stops it.
func TestStoredClientBackchannelLogout(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			rp := newRPListener(t)
			w1, w2 := clientReplicas(t, pg, &syncBuffer{})
			// The second replica delivers, under its own issuer URL.
			rp.setIssuer(w2.s.URL)
			w1.mustCall("POST", "/api/v1/admin/clients", w1.root, map[string]any{
				"client_id": "told-app", "public": true, // the listener expects this audience
				"redirect_uris":                       []string{"http://127.0.0.1:9/callback"},
				"backchannel_logout_uri":              rp.URL + "/backchannel",
				"backchannel_logout_session_required": true,
			}, 201, nil)
			eventually(t, "second replica knows the client", func() bool { _, ok := w2.s.OAuth.Client("told-app"); return ok })
			// The second replica's dispatcher delivers: it learnt the URI
			// from its poll, not from the file.
			runDispatcher(t, w2.s.Backchannel)

			_, id := idTokenOf(t, w1.signIn("told-app", "ada@example.com", "", ""))
			ada := w1.userID("ada@example.com")
			w1.mustCall("DELETE", "/api/v1/admin/users/"+ada+"/sessions/"+id["sid"].(string), w1.root, nil, 204, nil)
			if lt := rp.told(id["sid"].(string)); lt["sub"] != id["sub"] {
				t.Fatalf("logout token sub %v, ID token sub %v", lt["sub"], id["sub"])
			}
		})
	}
}

// TestRuntimeClientProvidersFollowReload: a stored client is checked
// against the providers of the file in force: after a reload that adds
// a provider it may name it, after one that removes a provider it may
// no longer.
func TestRuntimeClientProvidersFollowReload(t *testing.T) {
	w := newWorld(t, false)
	body := func(id, provider string) map[string]any {
		return map[string]any{"client_id": id, "public": true, "redirect_uris": []string{"http://127.0.0.1:9/callback"},
			"allowed_providers": []string{provider}}
	}
	if err := os.WriteFile(w.s.Config.ConfigFile, []byte(strings.Replace(rbacYAML,
		"  - {name: lax, type: dev, trusted_email: false}\n", "  - {name: later, type: dev}\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.mustCall("POST", "/api/v1/admin/clients", w.root, body("uses-later", "later"), 201, nil)
	if status, out := w.call("POST", "/api/v1/admin/clients", w.root, body("uses-lax", "lax"), nil); status != 400 ||
		!strings.Contains(out, "not a configured provider") {
		t.Fatalf("a provider the reload removed = %d %s, want 400", status, out)
	}
	if _, ok := w.s.OAuth.Client("uses-later"); !ok {
		t.Fatal("the stored client naming the new provider is not served")
	}
}

// TestClientOptionsKnowBuiltInClients: gatehouse clients (which builds
// its options from the file as loaded) treats the console and demo
// clients the server adds as the file's: no stored client may take
// their ids.
func TestClientOptionsKnowBuiltInClients(t *testing.T) {
	cfg := &config.Config{Issuer: "https://id.example", AdminAudience: "gatehouse-admin"}
	ids := map[string]bool{}
	for _, c := range app.ClientOptions(cfg, nil, nil).Configured() {
		ids[c.ID] = true
	}
	if !ids[app.ConsoleClientID] || !ids[app.DemoClientID] {
		t.Fatalf("configured clients = %v, want the console's and the demo's", ids)
	}
	if len(cfg.File.Clients) != 0 {
		t.Fatal("the configuration given was changed")
	}
}

// TestRuntimeKeyClient: a private_key_jwt client created through the
// admin API gets no secret, is served at once, authenticates with a
// signed assertion (client_credentials) and never with a secret; its
// secret cannot be rotated, and a device-grant-only key client created
// the same way may start the device flow with an assertion.
func TestRuntimeKeyClient(t *testing.T) {
	w := newWorld(t, false)
	k := newECKey(t, "k1")
	var created map[string]any
	w.mustCall("POST", "/api/v1/admin/clients", w.root, map[string]any{"client_id": "svc-stored",
		"grant_types": []string{"client_credentials", "urn:ietf:params:oauth:grant-type:device_code"}, "token_endpoint_auth_method": "private_key_jwt",
		"jwks": json.RawMessage(jwksOf(t, k))}, 201, &created)
	if _, ok := created["client_secret"]; ok {
		t.Fatalf("a private_key_jwt client was given a secret: %v", created)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if status, out := tokenPost(t, w.s, assertionForm(form, k.sign(t, assertionClaims("svc-stored", w.s.URL+"/auth/token"))), "", ""); status != 200 {
		t.Fatalf("client_credentials with an assertion = %d %v", status, out)
	}
	if status, _ := tokenPost(t, w.s, form, "svc-stored", "any-secret-0123456789"); status != 401 {
		t.Fatalf("client_credentials with a secret = %d, want 401", status)
	}
	if status, out := formPost(t, w.s.URL+"/auth/device", assertionForm(url.Values{}, k.sign(t, assertionClaims("svc-stored", w.s.URL+"/auth/token"))), "", ""); status != 200 || out["device_code"] == nil {
		t.Fatalf("device authorization with an assertion = %d %v", status, out)
	}
	if status, body := w.call("POST", "/api/v1/admin/clients/svc-stored/rotate-secret", w.root, nil, nil); status != 409 || !strings.Contains(body, "private_key_jwt") {
		t.Fatalf("rotate-secret of a key client = %d %s, want 409", status, body)
	}
}
