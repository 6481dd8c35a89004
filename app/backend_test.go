package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/examples/backend/kb"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// kbWebhookSecrets are the example backend's webhook secrets in these
// tests: an old and a new one, as during a rotation.
var kbWebhookSecrets = []string{"old-articles-webhook-secret-0123456789", "new-articles-webhook-secret-9876543210"}

// kbBackend runs the example backend against the live Gatehouse, with
// API keys checked by introspection and cached for cacheTTL, and the
// articles webhook delivering to acme.
func kbBackend(t *testing.T, w *world, cacheTTL time.Duration) *httptest.Server {
	t.Helper()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: w.s.URL, Audience: "kb-api",
		APIKeys: &rbac.APIKeyOptions{ClientID: "kb-backend", ClientSecret: "kb-backend-secret-0123456789", CacheTTL: cacheTTL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "articles", Secrets: kbWebhookSecrets, Permissions: []string{"kb:write"}, OrgID: w.acme})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(kb.Handler(m, &kb.Store{Webhook: hook}))
	t.Cleanup(srv.Close)
	return srv
}

// hit sends one request to the backend with the given header; a POST
// carries an article.
func hit(t *testing.T, method, u string, header ...string) (int, string, http.Header) {
	t.Helper()
	body := ""
	if method == http.MethodPost {
		body = `{"title":"Runbook"}`
	}
	resp, b := send(t, method, u, body, header...)
	return resp.StatusCode, b, resp.Header
}

// TestBackendWithLiveGatehouse drives the example backend (the rbac
// middleware) with tokens minted for real through sign-ins, on SQLite and
// PostgreSQL: every 401 and 403, wildcard grants, org mismatch, the
// WebSocket token, and API keys (introspected, exchanged, disabled
// mid-run).
func TestBackendWithLiveGatehouse(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			const cacheTTL = 500 * time.Millisecond
			be := kbBackend(t, w, cacheTTL)
			member := w.signIn("kb-web", "mia@example.com", "eng", "").AccessToken
			reader := w.signIn("kb-web", "rae@example.com", "readers", "").AccessToken
			viewer := w.signIn("kb-web", "vic@example.com", "viewers", "").AccessToken
			other := w.signIn("kb-web", "bob@example.com", "beta", "").AccessToken
			spaAudience := w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken
			tampered := member[:len(member)-4] + "AAAA"
			if tampered == member {
				tampered = member[:len(member)-4] + "BBBB"
			}

			cases := []struct {
				name, method, path string
				header             []string
				want               int
				body               string
			}{
				{"public", "GET", "/public", nil, 200, "anyone"},
				{"member reads", "GET", "/kb", []string{"Authorization", "Bearer " + member}, 200, `"org_id":"` + w.acme},
				{"member writes", "POST", "/kb", []string{"Authorization", "Bearer " + member}, 201, "Runbook"},
				{"kb:r* reads", "GET", "/kb", []string{"Authorization", "Bearer " + reader}, 200, ""},
				{"kb:r* does not write", "POST", "/kb", []string{"Authorization", "Bearer " + reader}, 403,
					`{"error":"insufficient_permission","reason":"missing_permission","error_description":"the credential's permissions do not grant kb:write","required":"kb:write"}`},
				{"*:read reads", "GET", "/kb", []string{"Authorization", "Bearer " + viewer}, 200, ""},
				{"*:read does not write", "POST", "/kb", []string{"Authorization", "Bearer " + viewer}, 403, `"required":"kb:write"`},
				{"own org named", "GET", "/kb?org_id=" + w.acme, []string{"Authorization", "Bearer " + member}, 200, ""},
				{"other org named", "GET", "/kb?org_id=" + w.beta, []string{"Authorization", "Bearer " + member}, 403, `"reason":"other_organization"`},
				{"beta member in acme", "GET", "/kb?org_id=" + w.acme, []string{"Authorization", "Bearer " + other}, 403, "another organization"},
				{"no credential", "GET", "/kb", nil, 401, "bearer access token is required"},
				{"lowercase scheme", "GET", "/kb", []string{"Authorization", "bearer " + member}, 401, "Bearer scheme"},
				{"tampered", "GET", "/kb", []string{"Authorization", "Bearer " + tampered}, 401, "signature"},
				{"another audience", "GET", "/kb", []string{"Authorization", "Bearer " + spaAudience}, 401, "another audience"},
				{"token in query, no upgrade", "GET", "/kb?token=" + member, nil, 401, ""},
				{"garbage API key", "GET", "/kb", []string{"X-API-Key", "not-a-key"}, 401, "malformed"},
				{"ready", "GET", "/readyz", nil, 200, `{"status":"ready"}`},
				{"webhook, old secret", "POST", "/webhooks/articles", []string{"Authorization", "Bearer " + kbWebhookSecrets[0]}, 201, `"author":"webhook:articles"`},
				{"webhook, new secret", "POST", "/webhooks/articles", []string{"Authorization", "Bearer " + kbWebhookSecrets[1]}, 201, `"org_id":"` + w.acme},
				{"webhook, no secret", "POST", "/webhooks/articles", nil, 401, "a webhook secret is required"},
				{"webhook, a user's token", "POST", "/webhooks/articles", []string{"Authorization", "Bearer " + member}, 401, "the webhook secret is not accepted"},
			}
			for _, tc := range cases {
				status, body, hdr := hit(t, tc.method, be.URL+tc.path, tc.header...)
				if status != tc.want || !strings.Contains(body, tc.body) {
					t.Errorf("%s: %s %s = %d %s, want %d with %s", tc.name, tc.method, tc.path, status, body, tc.want, tc.body)
				}
				wantChallenge := `Bearer error="invalid_token"`
				if tc.header == nil && status == 401 {
					wantChallenge = "Bearer" // no credential: no error code (RFC 6750 §3.1)
				}
				if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), wantChallenge) {
					t.Errorf("%s: WWW-Authenticate = %q", tc.name, hdr.Get("WWW-Authenticate"))
				}
			}

			// WebSocket: the token travels in the query of the upgrade.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			wsURL := "ws" + strings.TrimPrefix(be.URL, "http") + "/ws"
			conn, _, err := websocket.Dial(ctx, wsURL+"?token="+url.QueryEscape(reader)+"&org_id="+w.acme, nil)
			if err != nil {
				t.Fatalf("WebSocket with token: %v", err)
			}
			var hello map[string]string
			if err := wsjson.Read(ctx, conn, &hello); err != nil || hello["org_id"] != w.acme || hello["hello"] == "" {
				t.Fatalf("hello = %v, %v", hello, err)
			}
			_ = wsjson.Write(ctx, conn, "ping")
			var echo map[string]any
			if err := wsjson.Read(ctx, conn, &echo); err != nil || echo["echo"] != "ping" {
				t.Fatalf("echo = %v, %v", echo, err)
			}
			conn.Close(websocket.StatusNormalClosure, "")
			for name, q := range map[string]string{"without token": "", "token of another org": "?org_id=" + w.beta + "&token=" + url.QueryEscape(reader)} {
				_, resp, err := websocket.Dial(ctx, wsURL+q, nil)
				if err == nil || resp == nil || (resp.StatusCode != 401 && resp.StatusCode != 403) {
					t.Fatalf("WebSocket %s: err %v, resp %v", name, err, resp)
				}
			}

			// API keys: created through the admin API, a subset of the creator's grants.
			var key admin.NewAPIKey
			w.mustCall("POST", "/api/v1/admin/orgs/"+w.acme+"/api-keys", w.root,
				map[string]any{"name": "ci reader", "permissions": []string{"kb:read"}}, 201, &key)
			if !strings.HasPrefix(key.Key, rbac.APIKeyPrefix) || !strings.HasPrefix(key.Key, key.Prefix) {
				t.Fatalf("key %q prefix %q", key.Key, key.Prefix)
			}
			if status, body, _ := hit(t, "GET", be.URL+"/kb", "X-API-Key", key.Key); status != 200 || !strings.Contains(body, `"kind":"api_key"`) {
				t.Fatalf("API key read = %d %s", status, body)
			}
			if status, body, _ := hit(t, "POST", be.URL+"/kb", "X-API-Key", key.Key); status != 403 || !strings.Contains(body, "kb:write") {
				t.Fatalf("API key write = %d %s", status, body)
			}
			// On a WebSocket upgrade the key travels in ?key=, as the token in ?token=.
			conn, _, err = websocket.Dial(ctx, wsURL+"?key="+url.QueryEscape(key.Key), nil)
			if err != nil {
				t.Fatalf("WebSocket with key: %v", err)
			}
			hello = nil
			if err := wsjson.Read(ctx, conn, &hello); err != nil || hello["org_id"] != w.acme || hello["hello"] != "apikey:"+key.ID {
				t.Fatalf("hello with key = %v, %v", hello, err)
			}
			conn.Close(websocket.StatusNormalClosure, "")
			for name, q := range map[string]string{"key and token": "?key=" + url.QueryEscape(key.Key) + "&token=" + url.QueryEscape(reader),
				"key of another org": "?org_id=" + w.beta + "&key=" + url.QueryEscape(key.Key)} {
				_, resp, err := websocket.Dial(ctx, wsURL+q, nil)
				if err == nil || resp == nil || (resp.StatusCode != 401 && resp.StatusCode != 403) {
					t.Fatalf("WebSocket %s: err %v, resp %v", name, err, resp)
				}
			}
			// ?key= on a request that is not an upgrade is no credential.
			if status, _, _ := hit(t, "GET", be.URL+"/kb?key="+url.QueryEscape(key.Key)); status != 401 {
				t.Fatalf("?key= without an upgrade = %d", status)
			}
			// Exchanged for an access token, it serves JWT-only backends.
			status, out := formPost(t, w.s.URL+"/auth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {key.Key}, "subject_token_type": {oauth.TokenTypeAPIKey}}, "kb-backend", "kb-backend-secret-0123456789")
			at, _ := out["access_token"].(string)
			if status != 200 || at == "" {
				t.Fatalf("API key exchange = %d %v", status, out)
			}
			if status, body, _ := hit(t, "GET", be.URL+"/kb", "Authorization", "Bearer "+at); status != 200 || !strings.Contains(body, `"sub":"apikey:`+key.ID) {
				t.Fatalf("exchanged token = %d %s", status, body)
			}
			// Last use is recorded by the flush, not per request.
			if err := w.s.APIKeys.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			var list admin.List[admin.APIKey]
			w.mustCall("GET", "/api/v1/admin/orgs/"+w.acme+"/api-keys", w.root, nil, 200, &list)
			if len(list.Items) != 1 || list.Items[0].LastUsedAt == nil || strings.Contains(mustJSON(list), key.Key) {
				t.Fatalf("listed keys = %+v", list)
			}

			// Disabled mid-run: refused once the backend's cache time has passed.
			w.mustCall("PATCH", "/api/v1/admin/orgs/"+w.acme+"/api-keys/"+key.ID, w.root, map[string]any{"disabled": true}, 200, nil)
			disabledAt := time.Now()
			for {
				status, _, _ := hit(t, "GET", be.URL+"/kb", "X-API-Key", key.Key)
				if status == 401 {
					break
				}
				if time.Since(disabledAt) > cacheTTL+time.Second {
					t.Fatalf("disabled key still accepted after %s (cache %s)", time.Since(disabledAt), cacheTTL)
				}
				time.Sleep(50 * time.Millisecond)
			}
			status, out = formPost(t, w.s.URL+"/auth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {key.Key}, "subject_token_type": {oauth.TokenTypeAPIKey}}, "kb-backend", "kb-backend-secret-0123456789")
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("disabled key exchange = %d %v", status, out)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
