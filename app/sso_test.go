package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

const ssoYAML = `
clients:
  - id: spa
    name: Example SPA
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
  - id: spa2
    name: Second SPA
    public: true
    redirect_uris: [http://127.0.0.1:9/two]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
    introspect_any: true
`

// ssoClient is one downstream app: its oauth2 config and the ID token
// verifier of its client id.
type ssoClient struct {
	conf     *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// ssoTokens are what one code exchange gave an app.
type ssoTokens struct {
	*oauth2.Token
	rawID  string
	claims struct {
		Sub      string   `json:"sub"`
		AuthTime int64    `json:"auth_time"`
		AMR      []string `json:"amr"`
		ACR      string   `json:"acr"`
		SID      string   `json:"sid"`
	}
}

// authorize is app c's authorization URL with extra parameters, and the
// PKCE verifier to redeem its code with.
func (c ssoClient) authorize(state string, extra ...string) (string, string) {
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-" + state)}
	for i := 0; i+1 < len(extra); i += 2 {
		opts = append(opts, oauth2.SetAuthURLParam(extra[i], extra[i+1]))
	}
	return c.conf.AuthCodeURL(state, opts...), verifier
}

// redeem exchanges the code of a client redirect and verifies the ID token.
func (c ssoClient) redeem(t *testing.T, target *url.URL, verifier string) *ssoTokens {
	t.Helper()
	tok, err := c.conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	out := &ssoTokens{Token: tok}
	out.rawID, _ = tok.Extra("id_token").(string)
	idt, err := c.verifier.Verify(context.Background(), out.rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	_ = idt.Claims(&out.claims)
	return out
}

// silent asks for a code with prompt=none in browser b: the client
// redirect, always (never a page).
func (c ssoClient) silent(t *testing.T, b *browser, extra ...string) (*url.URL, string) {
	t.Helper()
	u, verifier := c.authorize("silent", append([]string{"prompt", "none"}, extra...)...)
	resp, body := b.get(u)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), c.conf.RedirectURL+"?") || loc.Query().Get("state") != "silent" {
		t.Fatalf("prompt=none = %d %s %s", resp.StatusCode, loc, body)
	}
	return loc, verifier
}

func checkError(t *testing.T, s *apptest.Server, target *url.URL, code string) {
	t.Helper()
	if q := target.Query(); q.Get("error") != code || q.Get("iss") != s.URL || q.Has("code") {
		t.Fatalf("redirect = %s, want error=%s", target, code)
	}
}

// TestSingleSignOnWithStockClient: a stock OIDC client (x/oauth2 and
// go-oidc) signs in once through the dev provider; a second app gets a
// code without any form, prompt=none answers silently or with
// login_required, the ID tokens carry the upstream sign-in's auth_time,
// and logout ends every app's session (or with client_only one).
func TestSingleSignOnWithStockClient(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: ssoYAML, Postgres: pg})
			ctx := context.Background()
			provider, err := oidc.NewProvider(ctx, s.URL)
			if err != nil {
				t.Fatal(err)
			}
			var disc struct {
				Prompts []string `json:"prompt_values_supported"`
				Claims  []string `json:"claims_supported"`
			}
			_ = provider.Claims(&disc)
			if strings.Join(disc.Prompts, " ") != "none login select_account" || !strings.Contains(strings.Join(disc.Claims, " "), "acr") {
				t.Fatalf("discovery: prompts %v claims %v", disc.Prompts, disc.Claims)
			}
			app := func(id, redirect string) ssoClient {
				return ssoClient{conf: &oauth2.Config{ClientID: id, Endpoint: provider.Endpoint(), RedirectURL: redirect,
					Scopes: []string{oidc.ScopeOpenID, "email"}}, verifier: provider.Verifier(&oidc.Config{ClientID: id})}
			}
			one, two := app("spa", "http://127.0.0.1:9/callback"), app("spa2", "http://127.0.0.1:9/two")
			introspectActive := func(token string) bool { return introspect(t, s, token)["active"] == true }

			b := newBrowser(t)
			u, v := one.authorize("s1", "provider", "dev")
			first := one.redeem(t, b.signIn(u, "ada@example.com"), v)
			if first.claims.AuthTime == 0 || len(first.claims.AMR) == 0 || first.claims.SID == "" {
				t.Fatalf("first ID token = %+v", first.claims)
			}
			var cookie *http.Cookie
			for _, c := range b.client.Jar.Cookies(mustURL(t, s.URL+"/auth/login")) {
				if c.Name == "gatehouse_session" {
					cookie = c
				}
			}
			if cookie == nil {
				t.Fatal("no browser-session cookie after the sign-in")
			}

			time.Sleep(1100 * time.Millisecond) // auth_time must not move
			// The second app: a code without any form.
			u, v = two.authorize("s2")
			resp, body := b.get(u)
			target, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(target.String(), "http://127.0.0.1:9/two?") || target.Query().Get("state") != "s2" {
				t.Fatalf("second app = %d %s %s", resp.StatusCode, target, body)
			}
			second := two.redeem(t, target, v)
			if second.claims.Sub != first.claims.Sub || second.claims.AuthTime != first.claims.AuthTime ||
				strings.Join(second.claims.AMR, " ") != strings.Join(first.claims.AMR, " ") || second.claims.SID == first.claims.SID {
				t.Fatalf("second ID token %+v, first %+v", second.claims, first.claims)
			}
			// A refresh's ID token keeps the upstream sign-in's auth_time.
			status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}, "client_id": {"spa2"}}, "", "")
			if status != 200 {
				t.Fatalf("refresh = %d %v", status, out)
			}
			refreshed, err := two.verifier.Verify(ctx, out["id_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			var rc struct {
				AuthTime int64 `json:"auth_time"`
			}
			_ = refreshed.Claims(&rc)
			if rc.AuthTime != first.claims.AuthTime {
				t.Fatalf("refreshed auth_time %d, want %d", rc.AuthTime, first.claims.AuthTime)
			}
			second.RefreshToken = out["refresh_token"].(string)

			// prompt=none: silently, or login_required, never a page.
			target, v = one.silent(t, b)
			one.redeem(t, target, v)
			target, _ = one.silent(t, newBrowser(t))
			checkError(t, s, target, "login_required")
			target, _ = one.silent(t, b, "max_age", "0")
			checkError(t, s, target, "login_required")
			target, _ = one.silent(t, b, "id_token_hint", first.rawID)
			if target.Query().Get("code") == "" {
				t.Fatalf("own hint = %s", target)
			}
			// Another user's hint, a forged one.
			other := newBrowser(t)
			u, v = one.authorize("o1", "provider", "dev")
			bob := one.redeem(t, other.signIn(u, "bob@example.com"), v)
			target, _ = one.silent(t, b, "id_token_hint", bob.rawID)
			checkError(t, s, target, "login_required")
			parts := strings.Split(first.rawID, ".")
			target, _ = one.silent(t, b, "id_token_hint", parts[0]+"."+parts[1]+".AAAA"+parts[2][4:])
			checkError(t, s, target, "invalid_request")
			// A cookie of another Gatehouse (another issuer's database).
			stranger := newBrowser(t)
			stranger.client.Jar.SetCookies(mustURL(t, s.URL), []*http.Cookie{{Name: "gatehouse_session", Value: strings.Repeat("A", 43)}})
			target, _ = one.silent(t, stranger)
			checkError(t, s, target, "login_required")

			// client_only=true ends only the calling app's session.
			resp, _ = b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {first.rawID}, "client_only": {"true"},
				"post_logout_redirect_uri": {"http://127.0.0.1:9/"}}.Encode())
			if resp.StatusCode != http.StatusFound || introspectActive(first.AccessToken) || !introspectActive(second.AccessToken) {
				t.Fatalf("client_only logout = %d; spa active %v, spa2 active %v", resp.StatusCode,
					introspectActive(first.AccessToken), introspectActive(second.AccessToken))
			}
			target, _ = one.silent(t, b)
			if target.Query().Get("code") == "" {
				t.Fatalf("the browser session did not survive client_only: %s", target)
			}

			// A hintless GET only asks; a cross-site POST is refused.
			resp, body = b.get(s.URL + "/auth/logout")
			if resp.StatusCode != 200 || !strings.Contains(body, `method="post"`) || !strings.Contains(body, `action="/auth/logout"`) ||
				strings.Contains(body, "<script") || !introspectActive(second.AccessToken) {
				t.Fatalf("hintless GET logout = %d %s", resp.StatusCode, body)
			}
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/logout", strings.NewReader(""))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			if resp, _ = b.do(req); resp.StatusCode != http.StatusForbidden || !introspectActive(second.AccessToken) {
				t.Fatalf("cross-site POST logout = %d", resp.StatusCode)
			}

			// The second app's hint ends the browser session and every app
			// session under it; the cookie is cleared.
			resp, _ = b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {second.rawID},
				"post_logout_redirect_uri": {"http://127.0.0.1:9/"}, "state": {"bye"}}.Encode())
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:9/?state=bye" {
				t.Fatalf("logout = %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if introspectActive(second.AccessToken) {
				t.Fatal("spa2's session outlived the logout")
			}
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second.RefreshToken}, "client_id": {"spa2"}}, "", "")
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh after logout = %d %v", status, out)
			}
			for _, c := range b.client.Jar.Cookies(mustURL(t, s.URL+"/auth/login")) {
				if c.Name == "gatehouse_session" {
					t.Fatal("the browser-session cookie was not cleared")
				}
			}
			// Even with the old cookie put back, nothing signs in silently.
			b.client.Jar.SetCookies(mustURL(t, s.URL), []*http.Cookie{cookie})
			target, _ = one.silent(t, b)
			checkError(t, s, target, "login_required")

			// Bob's browser: a same-origin POST from the confirmation page ends it.
			req, _ = http.NewRequest(http.MethodPost, s.URL+"/auth/logout", strings.NewReader(""))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", s.URL)
			if resp, body = other.do(req); resp.StatusCode != 200 || !strings.Contains(body, "Signed out") || introspectActive(bob.AccessToken) {
				t.Fatalf("same-origin POST logout = %d %s", resp.StatusCode, body)
			}
			target, _ = one.silent(t, other)
			checkError(t, s, target, "login_required")

			// A disabled user's browser session signs no one in.
			c := newBrowser(t)
			u, _ = one.authorize("d1", "provider", "dev")
			c.signIn(u, "carol@example.com")
			target, _ = one.silent(t, c)
			if target.Query().Get("code") == "" {
				t.Fatalf("carol's silent sign-in = %s", target)
			}
			s.DB.Exec("UPDATE users SET disabled = ? WHERE email = ?", true, "carol@example.com")
			target, _ = one.silent(t, c)
			checkError(t, s, target, "login_required")
		})
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLogoutEndsThisBrowsersNewerSession: an app whose session was opened
// under an earlier browser session (which then went idle) logs out; the
// browser's current session of the same person ends too, so the next
// person at this browser gets no single sign-on. Another person's
// session in the browser is left alone.
func TestLogoutEndsThisBrowsersNewerSession(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: ssoYAML})
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	app := func(id, redirect string) ssoClient {
		return ssoClient{conf: &oauth2.Config{ClientID: id, Endpoint: provider.Endpoint(), RedirectURL: redirect,
			Scopes: []string{oidc.ScopeOpenID, "email"}}, verifier: provider.Verifier(&oidc.Config{ClientID: id})}
	}
	one, two := app("spa", "http://127.0.0.1:9/callback"), app("spa2", "http://127.0.0.1:9/two")
	b := newBrowser(t)
	u, v := one.authorize("s1", "provider", "dev")
	first := one.redeem(t, b.signIn(u, "ada@example.com"), v)
	// The first browser session goes idle: the next sign-in opens another.
	if err := s.DB.Exec("UPDATE browser_sessions SET last_used_at = ?", time.Now().UTC().Add(-13*time.Hour)).Error; err != nil {
		t.Fatal(err)
	}
	u, v = two.authorize("s2", "provider", "dev")
	two.redeem(t, b.signIn(u, "ada@example.com"), v)
	var live int64
	s.DB.Raw("SELECT COUNT(*) FROM browser_sessions WHERE revoked_at IS NULL").Scan(&live)
	if live != 2 {
		t.Fatalf("live browser sessions = %d, want 2", live)
	}
	resp, body := b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {first.rawID}}.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout = %d %s", resp.StatusCode, body)
	}
	s.DB.Raw("SELECT COUNT(*) FROM browser_sessions WHERE revoked_at IS NULL").Scan(&live)
	if live != 0 {
		t.Fatalf("live browser sessions after the logout = %d", live)
	}
	target, _ := two.silent(t, b)
	checkError(t, s, target, "login_required")

	// client_only without a hint names no app session: refused, nothing ends.
	u, v = two.authorize("s3", "provider", "dev")
	two.redeem(t, b.signIn(u, "bob@example.com"), v)
	resp, _ = b.get(s.URL + "/auth/logout?client_only=true")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("client_only without a hint = %d", resp.StatusCode)
	}
	// Ada's old hint does not end Bob's session in this browser.
	b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {first.rawID}}.Encode())
	if target, _ := two.silent(t, b); target.Query().Get("code") == "" {
		t.Fatalf("another person's hint ended this browser's session: %s", target)
	}
}
