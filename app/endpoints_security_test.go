package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// securityYAML: a SPA whose access tokens are for orders-api, two
// ordinary confidential clients (app-a signs people in, app-b holds
// client_credentials and exchanges API keys, with hour-long access
// tokens), the orders-api resource server, and a gateway configured to
// introspect any token.
const securityYAML = `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
    audience: [orders-api]
  - id: app-a
    secret: app-a-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/a/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
  - id: app-b
    secret: app-b-secret-0123456789
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    access_token_ttl: 1h
  - id: orders-api
    secret: orders-api-secret-0123456789
    grant_types: [client_credentials]
  - id: gateway
    secret: gateway-secret-0123456789
    grant_types: [client_credentials]
    introspect_any: true
`

// secrets of securityYAML's confidential clients.
var securitySecrets = map[string]string{
	"app-a": "app-a-secret-0123456789", "app-b": "app-b-secret-0123456789",
	"orders-api": "orders-api-secret-0123456789", "gateway": "gateway-secret-0123456789",
}

// introspectAs introspects token as client (a confidential client of
// securityYAML).
func introspectAs(t *testing.T, s *apptest.Server, client, token string) map[string]any {
	t.Helper()
	status, out := formPost(t, s.URL+"/auth/introspect", url.Values{"token": {token}}, client, securitySecrets[client])
	if status != 200 {
		t.Fatalf("introspection by %s = %d %v", client, status, out)
	}
	return out
}

// clientToken gets a client_credentials access token for client.
func clientToken(t *testing.T, s *apptest.Server, client string) string {
	t.Helper()
	status, out := tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, client, securitySecrets[client])
	at, _ := out["access_token"].(string)
	if status != 200 || at == "" {
		t.Fatalf("client_credentials for %s = %d %v", client, status, out)
	}
	return at
}

// codeFlow signs email in through the dev form at client (confidential
// when secret is set, else public with PKCE) and returns its tokens.
func codeFlow(t *testing.T, s *apptest.Server, client, secret, redirect, email string) *oauth2.Token {
	t.Helper()
	conf := &oauth2.Config{ClientID: client, ClientSecret: secret, RedirectURL: redirect, Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	if secret == "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	verifier := oauth2.GenerateVerifier()
	target := newBrowser(t).signIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")), email)
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange for %s: %v", client, err)
	}
	return tok
}

// TestIntrospectionAnswersEntitledClientsOnly: a token is active to its
// own client, to a client its aud names, and to a client configured with
// introspect_any; every other client learns only {"active": false}, for
// access and refresh tokens alike.
func TestIntrospectionAnswersEntitledClientsOnly(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: securityYAML, Postgres: pg})
			a := codeFlow(t, s, "app-a", securitySecrets["app-a"], "http://127.0.0.1:9/a/callback", "ada@example.com")
			spa := codeFlow(t, s, "spa", "", "http://127.0.0.1:9/callback", "bob@example.com")
			bOwn := clientToken(t, s, "app-b")
			cases := []struct {
				name, as, token string
				active          bool
			}{
				{"own access token", "app-a", a.AccessToken, true},
				{"own refresh token", "app-a", a.RefreshToken, true},
				{"own client_credentials token", "app-b", bOwn, true},
				{"another client's access token", "app-b", a.AccessToken, false},
				{"another client's refresh token", "app-b", a.RefreshToken, false},
				{"introspect_any: access token", "gateway", a.AccessToken, true},
				{"introspect_any: refresh token", "gateway", a.RefreshToken, true},
				{"introspect_any: client_credentials token", "gateway", bOwn, true},
				{"named in aud", "orders-api", spa.AccessToken, true},
				{"named in aud, refresh token (has no aud)", "orders-api", spa.RefreshToken, false},
				{"not named in aud", "app-a", spa.AccessToken, false},
				{"resource server, another client's token", "orders-api", a.AccessToken, false},
			}
			for _, tc := range cases {
				out := introspectAs(t, s, tc.as, tc.token)
				if tc.active && (out["active"] != true || out["sub"] == nil) {
					t.Errorf("%s: %s got %v, want active with claims", tc.name, tc.as, out)
				}
				if !tc.active && (out["active"] != false || len(out) != 1) {
					t.Errorf("%s: %s got %v, want only active:false", tc.name, tc.as, out)
				}
			}
		})
	}
}

// TestIntrospectionAndRevocationAreRateLimited: guessing a client secret
// at /auth/introspect or /auth/revoke from one address meets 429 as at
// /auth/token; an authenticated client has its own bucket at each; and
// failed guesses from many addresses do not lock the real client out
// (as at /auth/token: naming a client must not cost its users).
func TestIntrospectionAndRevocationAreRateLimited(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: securityYAML,
		Env: map[string]string{"GATEHOUSE_RATE_LIMIT": "3", "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"}})
	for _, path := range []string{"/auth/introspect", "/auth/revoke"} {
		ip := map[string]string{"/auth/introspect": "203.0.113.20", "/auth/revoke": "203.0.113.21"}[path]
		var codes []int
		for i := range 5 {
			status, _ := formPostFrom(t, s.URL+path, ip, url.Values{"token": {"x"}}, "gateway", "guess-"+strconv.Itoa(i)+"-0123456789")
			codes = append(codes, status)
		}
		if codes[0] != 401 || codes[2] != 401 || codes[3] != http.StatusTooManyRequests || codes[4] != http.StatusTooManyRequests {
			t.Fatalf("%s: secret guesses from one address = %v, want 401 401 401 429 429", path, codes)
		}
	}
	// Guesses from many addresses: each is a 401, and the real gateway,
	// from yet another address, is not refused for them.
	for i := range 6 {
		status, _ := formPostFrom(t, s.URL+"/auth/introspect", "198.51.100."+strconv.Itoa(i+1), url.Values{"token": {"x"}}, "gateway", "wrong-secret-0123456789")
		if status != 401 {
			t.Fatalf("guess %d from a fresh address = %d", i+1, status)
		}
	}
	// The client's own bucket: 3 introspections from 3 addresses, the
	// fourth refused whatever its address.
	var codes []int
	for i := range 4 {
		status, _ := formPostFrom(t, s.URL+"/auth/introspect", "192.0.2."+strconv.Itoa(i+1), url.Values{"token": {"x"}}, "gateway", securitySecrets["gateway"])
		codes = append(codes, status)
	}
	if codes[0] != 200 || codes[2] != 200 || codes[3] != http.StatusTooManyRequests {
		t.Fatalf("authenticated introspections from several addresses = %v, want 200 200 200 429", codes)
	}
	// Introspection counts apart from the token endpoint.
	if got := tokenRequestFrom(t, s, "192.0.2.9", "grant_type=client_credentials", "gateway", securitySecrets["gateway"]); got != 200 {
		t.Fatalf("token request after the introspection bucket ran out = %d", got)
	}
}

// auditEvents lists the audit events of type, oldest first.
func auditEvents(t *testing.T, s *apptest.Server, typ string) []models.AuditEvent {
	t.Helper()
	events, err := s.Store.ListAuditEvents(context.Background(), models.AuditFilter{Type: typ}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	return events
}

// details decodes an audit event's details.
func details(t *testing.T, e models.AuditEvent) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(e.Details), &out); err != nil {
		t.Fatalf("details of %s: %v", e.Type, err)
	}
	return out
}

// TestLogoutAuditsOnlyTheEndOfASession: 300 logouts with one ID token
// hint (GET and POST, with and without a post-logout URI) end one
// session and write one audit row; a logout naming a session another
// call already ended writes nothing.
func TestLogoutAuditsOnlyTheEndOfASession(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: securityYAML, Postgres: pg})
			tok := codeFlow(t, s, "spa", "", "http://127.0.0.1:9/callback", "ada@example.com")
			hint, _ := tok.Extra("id_token").(string)
			b := newBrowser(t)
			for i := range 300 {
				q := url.Values{"id_token_hint": {hint}}
				if i%3 == 0 {
					q.Set("post_logout_redirect_uri", "http://127.0.0.1:9/")
				}
				var resp *http.Response
				if i%2 == 0 {
					resp, _ = b.get(s.URL + "/auth/logout?" + q.Encode())
				} else {
					resp, _ = b.post(s.URL+"/auth/logout", q)
				}
				if resp.StatusCode != 200 && resp.StatusCode != http.StatusFound {
					t.Fatalf("logout %d = %d", i+1, resp.StatusCode)
				}
			}
			if rows := auditEvents(t, s, "logout"); len(rows) != 1 || details(t, rows[0])["session_id"] == nil {
				t.Fatalf("300 logouts wrote %d logout events, want 1: %+v", len(rows), rows)
			}
			// The session is over: its refresh token is refused.
			status, _ := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"spa"}}, "", "")
			if status != 400 {
				t.Fatalf("refresh after logout = %d", status)
			}
			// A second session's logout is recorded: one row per session ended.
			tok = codeFlow(t, s, "spa", "", "http://127.0.0.1:9/callback", "ada@example.com")
			hint, _ = tok.Extra("id_token").(string)
			for range 2 {
				b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {hint}}.Encode())
			}
			if rows := auditEvents(t, s, "logout"); len(rows) != 2 {
				t.Fatalf("two sessions ended, %d logout events", len(rows))
			}
			// A session pruned from the database has ended: its logout is
			// a signed-out page, not an internal error, and writes nothing.
			tok = codeFlow(t, s, "spa", "", "http://127.0.0.1:9/callback", "ada@example.com")
			hint, _ = tok.Extra("id_token").(string)
			if err := s.DB.Exec("DELETE FROM sessions WHERE id = ?", jwtClaims(t, hint)["sid"]).Error; err != nil {
				t.Fatal(err)
			}
			if resp, body := b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {hint}}.Encode()); resp.StatusCode != 200 {
				t.Fatalf("logout of a pruned session = %d %s", resp.StatusCode, body)
			}
			if rows := auditEvents(t, s, "logout"); len(rows) != 2 {
				t.Fatalf("logout of a pruned session wrote an event (%d)", len(rows))
			}
		})
	}
}

// TestRefusedLogoutEndsNothing: a logout Gatehouse refuses (an
// unregistered or merely similar post-logout URI, by GET, POST or with a
// bearer token, or another client's client_id) redirects nowhere, leaves
// the session alive (its newest refresh token still refreshes, its access
// token stays active) and writes no logout event. Only then does a valid
// logout end it.
func TestRefusedLogoutEndsNothing(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: securityYAML, Postgres: pg})
			tok := codeFlow(t, s, "spa", "", "http://127.0.0.1:9/callback", "ada@example.com")
			hint, _ := tok.Extra("id_token").(string)
			refresh, access := tok.RefreshToken, tok.AccessToken
			b := newBrowser(t)
			for _, tc := range []struct {
				name   string
				method string
				q      url.Values
				bearer bool
			}{
				{"unregistered URI", http.MethodGet, url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, false},
				{"unregistered URI by POST", http.MethodPost, url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, false},
				{"registered URI with a path added", http.MethodGet, url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:9/x"}}, false},
				{"registered URI with a query added", http.MethodGet, url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:9/?next=https://evil.example/"}}, false},
				{"unregistered URI with the access token", http.MethodPost, url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, true},
				{"another client's client_id", http.MethodGet, url.Values{"client_id": {"app-a"}, "post_logout_redirect_uri": {"http://127.0.0.1:9/"}}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					q := url.Values{}
					for k, v := range tc.q {
						q[k] = v
					}
					if !tc.bearer {
						q.Set("id_token_hint", hint)
					}
					var req *http.Request
					if tc.method == http.MethodPost {
						req, _ = http.NewRequest(http.MethodPost, s.URL+"/auth/logout", strings.NewReader(q.Encode()))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					} else {
						req, _ = http.NewRequest(http.MethodGet, s.URL+"/auth/logout?"+q.Encode(), nil)
					}
					if tc.bearer {
						req.Header.Set("Authorization", "Bearer "+access)
					}
					resp, body := b.do(req)
					if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
						t.Fatalf("refused logout = %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
					}
					if tc.bearer {
						if !strings.Contains(body, `"error":"invalid_request"`) {
							t.Fatalf("refused bearer logout answered %s", body)
						}
					} else if strings.Contains(body, "You are signed out") {
						t.Fatalf("the page says the person is signed out: %s", body)
					}
				})
				// Whatever the refusal, the session is intact.
				if info := introspectAs(t, s, "gateway", access); info["active"] != true {
					t.Fatalf("%s: the access token is no longer active: %v", tc.name, info)
				}
				status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"spa"}}, "", "")
				if status != 200 {
					t.Fatalf("%s: refresh after the refused logout = %d %v", tc.name, status, out)
				}
				refresh, access = out["refresh_token"].(string), out["access_token"].(string)
				if rows := auditEvents(t, s, "logout"); len(rows) != 0 {
					t.Fatalf("%s: a refused logout wrote %d logout events", tc.name, len(rows))
				}
			}
			// A valid logout ends the session it names.
			resp, _ := b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/"}}.Encode())
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:9/" {
				t.Fatalf("valid logout = %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"spa"}}, "", ""); status != 400 {
				t.Fatalf("refresh after the valid logout = %d %v", status, out)
			}
			if info := introspectAs(t, s, "gateway", access); info["active"] != false {
				t.Fatalf("access token active after the valid logout: %v", info)
			}
			if rows := auditEvents(t, s, "logout"); len(rows) != 1 {
				t.Fatalf("valid logout wrote %d logout events, want 1", len(rows))
			}
		})
	}
}

// TestLogoutIsRateLimited: /auth/logout is limited per client IP like
// the other browser endpoints.
func TestLogoutIsRateLimited(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: securityYAML,
		Env: map[string]string{"GATEHOUSE_RATE_LIMIT": "3", "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"}})
	var codes []int
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodGet, http.MethodPost} {
		codes = append(codes, fromIP(t, method, s.URL+"/auth/logout", "203.0.113.30").StatusCode)
	}
	if codes[0] != 200 || codes[2] != 200 || codes[3] != http.StatusTooManyRequests {
		t.Fatalf("logouts from one address = %v, want 200 200 200 429", codes)
	}
	if got := fromIP(t, http.MethodGet, s.URL+"/auth/logout", "203.0.113.31").StatusCode; got != 200 {
		t.Fatalf("logout from another address = %d", got)
	}
}

// newAPIKey stores an API key of a new organization slug and returns its
// secret and row.
func newAPIKey(t *testing.T, s *apptest.Server, slug string) (string, *models.APIKey) {
	t.Helper()
	ctx := context.Background()
	org := &models.Organization{Slug: slug, Name: slug}
	if err := s.Store.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	secret, prefix, hash, err := tokens.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	k := &models.APIKey{OrganizationID: org.ID, Name: "ci", Prefix: prefix, KeyHash: hash, Permissions: `["kb:read"]`,
		CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	return secret, k
}

// exchangeAPIKey trades an API key for an access token as app-b.
func exchangeAPIKey(t *testing.T, s *apptest.Server, key string) (string, int64) {
	t.Helper()
	status, out := tokenPost(t, s, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {key}, "subject_token_type": {oauth.TokenTypeAPIKey}}, "app-b", securitySecrets["app-b"])
	at, _ := out["access_token"].(string)
	if status != 200 || at == "" {
		t.Fatalf("API key exchange = %d %v", status, out)
	}
	expiresIn, _ := out["expires_in"].(float64)
	return at, int64(expiresIn)
}

// TestAPIKeyTokensFollowTheKey: a token exchanged for an API key lives
// at most GATEHOUSE_API_KEY_TOKEN_TTL (default 5 minutes) whatever the
// client's access-token lifetime (1h here), and introspection answers it
// inactive as soon as its key is disabled, deleted or expired.
func TestAPIKeyTokensFollowTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		pg   bool
		env  map[string]string
		cap  time.Duration
	}{
		{"sqlite default cap", false, nil, 5 * time.Minute},
		{"postgres default cap", true, nil, 5 * time.Minute},
		{"configured cap", false, map[string]string{"GATEHOUSE_API_KEY_TOKEN_TTL": "90s"}, 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: securityYAML, Postgres: tc.pg, Env: tc.env})
			ctx := context.Background()
			key, k := newAPIKey(t, s, "acme")
			before := time.Now()
			at, expiresIn := exchangeAPIKey(t, s, key)
			exp := int64(jwtClaims(t, at)["exp"].(float64))
			if expiresIn <= 0 || expiresIn > int64(tc.cap/time.Second) || exp > before.Add(tc.cap).Unix()+1 {
				t.Fatalf("expires_in %d, exp %d: want at most now+%s (%d)", expiresIn, exp, tc.cap, before.Add(tc.cap).Unix())
			}
			if info := introspectAs(t, s, "app-b", at); info["active"] != true || info["sub"] != "apikey:"+k.ID {
				t.Fatalf("live key's token = %v", info)
			}

			// Disabled: inactive at once; enabled again: active again.
			if err := s.Store.SetAPIKeyDisabled(ctx, k.OrganizationID, k.ID, true, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			for _, as := range []string{"app-b", "gateway"} {
				if info := introspectAs(t, s, as, at); info["active"] != false || len(info) != 1 {
					t.Fatalf("disabled key's token, introspected by %s = %v", as, info)
				}
			}
			if err := s.Store.SetAPIKeyDisabled(ctx, k.OrganizationID, k.ID, false, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			if info := introspectAs(t, s, "app-b", at); info["active"] != true {
				t.Fatalf("re-enabled key's token = %v", info)
			}

			// Expired since the exchange.
			if err := s.DB.Model(&models.APIKey{}).Where("id = ?", k.ID).Update("expires_at", time.Now().UTC().Add(-time.Second)).Error; err != nil {
				t.Fatal(err)
			}
			if info := introspectAs(t, s, "app-b", at); info["active"] != false {
				t.Fatalf("expired key's token = %v", info)
			}

			// Deleted.
			key2, k2 := newAPIKey(t, s, "beta")
			at2, _ := exchangeAPIKey(t, s, key2)
			if err := s.Store.DeleteAPIKey(ctx, k2.OrganizationID, k2.ID); err != nil {
				t.Fatal(err)
			}
			if info := introspectAs(t, s, "app-b", at2); info["active"] != false {
				t.Fatalf("deleted key's token = %v", info)
			}
		})
	}
}

// spaCode signs email in at the spa client of flowYAML with groups and
// returns the authorization code and its PKCE verifier.
func spaCode(t *testing.T, s *apptest.Server, email, groups string) (code, verifier string) {
	t.Helper()
	conf := &oauth2.Config{ClientID: "spa", RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token"}}
	verifier = oauth2.GenerateVerifier()
	resp, body := newBrowser(t).devSignIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")), email, groups)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in = %d %s", resp.StatusCode, body)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	return target.Query().Get("code"), verifier
}

// redeem exchanges an authorization code at the spa client.
func redeem(t *testing.T, s *apptest.Server, code, verifier string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:9/callback"}}, "", "")
}

// oneEvent returns the only audit event of typ, failing unless there is
// exactly one, and checks it carries the request's IP and id.
func oneEvent(t *testing.T, s *apptest.Server, typ string) (models.AuditEvent, map[string]any) {
	t.Helper()
	rows := auditEvents(t, s, typ)
	if len(rows) != 1 {
		t.Fatalf("%d %s events, want 1: %+v", len(rows), typ, rows)
	}
	if rows[0].IP != "127.0.0.1" || rows[0].RequestID == "" {
		t.Fatalf("%s event without the request's IP and id: %+v", typ, rows[0])
	}
	return rows[0], details(t, rows[0])
}

// TestSecurityEventsAreAudited: RFC 7009 revocations, the session ended
// by a PKCE failure or a replayed code, and switching the active
// organization at refresh each write one audit event with the request's
// IP and id; repeating a revocation writes nothing more.
func TestSecurityEventsAreAudited(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, signIn := provisioningServer(t, pg)
			ctx := context.Background()
			ada := signIn("dev", "ada@example.com", "eng", "")
			adaID := jwtClaims(t, ada.AccessToken)["sub"].(string)

			// Revocation of a refresh token, twice; then of another
			// session's access token; another client's attempt is silent.
			for range 2 {
				if status, out := formPost(t, s.URL+"/auth/revoke", url.Values{"token": {ada.RefreshToken}, "client_id": {"spa"}}, "", ""); status != 200 {
					t.Fatalf("revoke = %d %v", status, out)
				}
			}
			ev, d := oneEvent(t, s, "token.revoked")
			if ev.ClientID != "spa" || ev.SubjectUserID == nil || *ev.SubjectUserID != adaID || d["token_type"] != "refresh_token" ||
				d["session_id"] != jwtClaims(t, ada.AccessToken)["sid"] {
				t.Fatalf("revocation event = %+v %v", ev, d)
			}
			other := signIn("dev", "ada@example.com", "eng", "")
			formPost(t, s.URL+"/auth/revoke", url.Values{"token": {other.AccessToken}}, "backend", "backend-secret-0123456789")
			if n := len(auditEvents(t, s, "token.revoked")); n != 1 {
				t.Fatalf("another client's revocation request was recorded (%d events)", n)
			}
			formPost(t, s.URL+"/auth/revoke", url.Values{"token": {other.AccessToken}, "client_id": {"spa"}}, "", "")
			if rows := auditEvents(t, s, "token.revoked"); len(rows) != 2 || details(t, rows[1])["token_type"] != "access_token" {
				t.Fatalf("access token revocation events = %+v", rows)
			}

			// A wrong PKCE verifier ends the session the code opened.
			code, _ := spaCode(t, s, "ada@example.com", "eng")
			if status, out := redeem(t, s, code, oauth2.GenerateVerifier()); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("wrong verifier = %d %v", status, out)
			}
			ev, d = oneEvent(t, s, "authorization_code.pkce_failure")
			if ev.Outcome != models.OutcomeFailure || d["session_revoked"] != true || ev.ClientID != "spa" {
				t.Fatalf("PKCE failure event = %+v %v", ev, d)
			}
			if live, _ := s.Sessions.SessionActive(ctx, d["session_id"].(string)); live {
				t.Fatal("the session of a code redeemed with a wrong verifier is live")
			}

			// A replayed code ends the session its first redemption opened.
			code, verifier := spaCode(t, s, "ada@example.com", "eng")
			if status, out := redeem(t, s, code, verifier); status != 200 {
				t.Fatalf("redeem = %d %v", status, out)
			}
			if status, _ := redeem(t, s, code, verifier); status != 400 {
				t.Fatalf("replay = %d", status)
			}
			ev, d = oneEvent(t, s, "authorization_code.replay")
			if d["session_revoked"] != true || ev.Outcome != models.OutcomeFailure {
				t.Fatalf("replay event = %+v %v", ev, d)
			}

			// Switching the active organization at refresh; refreshing in
			// the same organization again is no switch.
			both := signIn("dev", "ada@example.com", "eng,team-red", "")
			from := jwtClaims(t, both.AccessToken)["org_id"].(string)
			acme, _ := s.Store.FindOrganizationBySlug(ctx, "acme")
			red, _ := s.Store.FindOrganizationBySlug(ctx, "team-red")
			to := acme.ID
			if from == acme.ID {
				to = red.ID
			}
			for range 2 {
				if status, out := refresh(t, s, both, to); status != 200 {
					t.Fatalf("switch = %d %v", status, out)
				}
			}
			ev, d = oneEvent(t, s, "session.org_switched")
			if ev.OrganizationID == nil || *ev.OrganizationID != to || d["from_org_id"] != from || d["to_org_id"] != to ||
				ev.ActorUserID == nil || *ev.ActorUserID != adaID {
				t.Fatalf("switch event = %+v %v", ev, d)
			}
		})
	}
}

// TestClientAuthFailureFloodWritesFewRows: 300 wrong secrets for one
// client at the token, introspection and revocation endpoints, and 300
// invented client ids, write a handful of rows that account for every
// failure (the rest at the minute's end or shutdown), and add no state
// per invented id.
func TestClientAuthFailureFloodWritesFewRows(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: flowYAML, Postgres: pg})
			paths := []string{"/auth/token", "/auth/introspect", "/auth/revoke"}
			for i := range 300 {
				form := url.Values{"grant_type": {"client_credentials"}, "token": {"x"}}
				if status, _ := formPost(t, s.URL+paths[i%3], form, "backend", "guess-"+strconv.Itoa(i)+"-0123456789"); status != 401 {
					t.Fatalf("guess %d = %d", i, status)
				}
				form.Set("client_id", "invented-"+strconv.Itoa(i))
				if status, _ := formPost(t, s.URL+paths[i%3], form, "", ""); status != 401 {
					t.Fatalf("invented client %d = %d", i, status)
				}
			}
			count := func(client string) (rows, failures int) {
				for _, e := range auditEvents(t, s, "client_auth.failed") {
					if e.ClientID == client {
						rows++
						failures += int(details(t, e)["failures"].(float64))
					}
				}
				return rows, failures
			}
			// Within a minute one row each; a minute boundary during the
			// flood adds a summary and a new first row.
			for _, c := range []string{"backend", ""} {
				if rows, _ := count(c); rows < 1 || rows > 3 {
					t.Fatalf("client %q: %d rows during the flood", c, rows)
				}
			}
			first := auditEvents(t, s, "client_auth.failed")[0]
			if d := details(t, first); first.IP != "127.0.0.1" || first.RequestID == "" || d["reason"] == nil ||
				strings.Contains(first.Details, "guess-") || strings.Contains(first.Details, "invented-") {
				t.Fatalf("first row = %+v", first)
			}
			s.OAuth.FlushClientAuthFailures(context.Background(), true)
			for _, c := range []string{"backend", ""} {
				rows, failures := count(c)
				if rows > 4 || failures != 300 {
					t.Fatalf("client %q: %d rows accounting for %d failures, want at most 4 for 300", c, rows, failures)
				}
				t.Logf("client %q: 300 failed authentications, %d audit rows", c, rows)
			}
		})
	}
}

// TestPKCEDowngradeEndsTheSession: a code issued with a code_challenge
// and redeemed without any code_verifier (a downgrade attempt by whoever
// intercepted it) is treated as a wrong verifier: the code is spent, the
// session it opened ends, and the failure is audited with its reason.
func TestPKCEDowngradeEndsTheSession(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, _ := provisioningServer(t, pg)
			code, verifier := spaCode(t, s, "ada@example.com", "eng")
			if status, out := redeem(t, s, code, ""); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("no verifier = %d %v", status, out)
			}
			ev, d := oneEvent(t, s, "authorization_code.pkce_failure")
			if ev.Outcome != models.OutcomeFailure || d["session_revoked"] != true || d["reason"] != "code_verifier is required" {
				t.Fatalf("PKCE downgrade event = %+v %v", ev, d)
			}
			if live, _ := s.Sessions.SessionActive(context.Background(), d["session_id"].(string)); live {
				t.Fatal("the session of a code redeemed without its verifier is live")
			}
			if status, _ := redeem(t, s, code, verifier); status != 400 {
				t.Fatalf("the code redeemed after a downgrade attempt = %d", status)
			}
		})
	}
}
