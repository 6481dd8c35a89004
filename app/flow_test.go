package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

const flowYAML = `
clients:
  - id: spa
    name: Example SPA
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
    scopes: [reports:read]
    permissions: [reports:read]
    introspect_any: true          # introspect() checks every client's tokens as a resource server
`

// browser follows nothing by itself, so each hop can be checked.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var stateField = regexp.MustCompile(`name="state" value="([^"]+)"`)

// signIn runs the browser part of the code flow through the dev provider
// and returns the client redirect it ends on.
func (b *browser) signIn(authURL, email string) *url.URL {
	b.t.Helper()
	resp, body := b.devSignIn(authURL, email, "eng")
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("dev form post = %d %s", resp.StatusCode, body)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	return target
}

// devSignIn follows authURL to a dev provider's form and posts it with
// email and groups (comma-separated), returning the answer to the post.
func (b *browser) devSignIn(authURL, email, groups string) (*http.Response, string) {
	b.t.Helper()
	resp, _ := b.get(authURL)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("authorize = %d", resp.StatusCode)
	}
	formURL := resp.Header.Get("Location")
	resp, body := b.get(formURL)
	m := stateField.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		b.t.Fatalf("dev form = %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(formURL)
	return b.post(u.Scheme+"://"+u.Host+u.Path, url.Values{"state": {m[1]}, "email": {email}, "name": {"Ada Lovelace"}, "groups": {groups}})
}

// formPost posts a form to one of Gatehouse's JSON endpoints.
func formPost(t *testing.T, endpoint string, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	t.Helper()
	return formPostFrom(t, endpoint, "", form, basicUser, basicPass)
}

// formPostFrom is formPost as if from client IP ip (through a trusted
// proxy) when ip is set.
func formPostFrom(t *testing.T, endpoint, ip string, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func tokenPost(t *testing.T, s *apptest.Server, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	t.Helper()
	return formPost(t, s.URL+"/auth/token", form, basicUser, basicPass)
}

func introspect(t *testing.T, s *apptest.Server, token string) map[string]any {
	t.Helper()
	status, out := formPost(t, s.URL+"/auth/introspect", url.Values{"token": {token}}, "backend", "backend-secret-0123456789")
	if status != 200 {
		t.Fatalf("introspect = %d %v", status, out)
	}
	return out
}

func startFlowServer(t *testing.T, pg bool, env map[string]string) (*apptest.Server, *oauth2.Config, *oidc.Provider) {
	t.Helper()
	s := apptest.Start(t, apptest.Options{YAML: flowYAML, Postgres: pg, Env: env})
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatalf("discovery with go-oidc: %v", err)
	}
	conf := &oauth2.Config{ClientID: "spa", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:9/callback",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	return s, conf, provider
}

// TestCodeFlowWithStockClient drives Gatehouse with golang.org/x/oauth2 and
// go-oidc as a downstream app would: PKCE, ID token verification against
// discovery and JWKS, refresh rotation, reuse detection, revocation seen
// by introspection, and RP-initiated logout.
func TestCodeFlowWithStockClient(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, conf, provider := startFlowServer(t, pg, map[string]string{"GATEHOUSE_REFRESH_REUSE_GRACE": "50ms"})
			ctx := context.Background()
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("client-state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1"),
				oauth2.SetAuthURLParam("provider", "dev"))
			b := newBrowser(t)
			target := b.signIn(authURL, "ada@example.com")
			q := target.Query()
			if q.Get("state") != "client-state-1" || q.Get("iss") != s.URL || q.Get("code") == "" {
				t.Fatalf("client redirect = %s", target)
			}
			if strings.HasPrefix(target.String(), conf.RedirectURL+"?") == false {
				t.Fatalf("redirected to %s, not the registered URI", target)
			}

			tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			rawID, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, rawID)
			if err != nil {
				t.Fatalf("go-oidc rejects the ID token: %v", err)
			}
			if idt.Nonce != "nonce-1" {
				t.Fatalf("nonce = %q", idt.Nonce)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			var idClaims struct {
				Email    string   `json:"email"`
				Name     string   `json:"name"`
				AMR      []string `json:"amr"`
				AuthTime int64    `json:"auth_time"`
			}
			_ = idt.Claims(&idClaims)
			if idClaims.Email != "ada@example.com" || idClaims.Name != "Ada Lovelace" || len(idClaims.AMR) == 0 || idClaims.AuthTime == 0 {
				t.Fatalf("ID token claims = %+v", idClaims)
			}

			// The access token is an RFC 9068 JWT.
			header, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
			if !strings.Contains(string(header), `"typ":"at+jwt"`) || !strings.Contains(string(header), `"kid"`) {
				t.Fatalf("access token header = %s", header)
			}
			info := introspect(t, s, tok.AccessToken)
			if info["active"] != true || info["client_id"] != "spa" || info["sub"] != idt.Subject || info["iss"] != s.URL {
				t.Fatalf("introspection = %v", info)
			}

			// UserInfo and /auth/me with the access token.
			ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil || ui.Email != "ada@example.com" || ui.Subject != idt.Subject {
				t.Fatalf("userinfo = %+v, %v", ui, err)
			}
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, body := b.do(req)
			if resp.StatusCode != 200 || !strings.Contains(body, `"provider":"dev"`) {
				t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
			}

			// Refresh rotates the refresh token.
			first := tok.RefreshToken
			if !strings.HasPrefix(first, "ghr_") {
				t.Fatalf("refresh token = %q", first)
			}
			status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}, "client_id": {"spa"}}, "", "")
			if status != 200 || out["refresh_token"] == first || out["access_token"] == nil {
				t.Fatalf("refresh = %d %v", status, out)
			}
			second := out["refresh_token"].(string)

			// Another client cannot use it.
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}}, "backend", "backend-secret-0123456789")
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh by another client = %d %v", status, out)
			}

			// Reuse of the rotated token after the grace window revokes the family.
			time.Sleep(100 * time.Millisecond)
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}, "client_id": {"spa"}}, "", "")
			if status != 400 || out["error"] != "invalid_grant" || !strings.Contains(out["error_description"].(string), "reuse") {
				t.Fatalf("reuse = %d %v", status, out)
			}
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}, "client_id": {"spa"}}, "", "")
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("successor after reuse = %d %v", status, out)
			}
			if info := introspect(t, s, tok.AccessToken); info["active"] != false {
				t.Fatalf("access token of a revoked session is still active: %v", info)
			}
			var reuse int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", "refresh_token.reuse").Scan(&reuse)
			if reuse != 1 {
				t.Fatalf("reuse audit events = %d", reuse)
			}

			// A new sign-in; revocation of its access token is seen by introspection at once.
			verifier = oauth2.GenerateVerifier()
			target = b.signIn(conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev"), oauth2.SetAuthURLParam("prompt", "login")), "ada@example.com")
			tok, err = conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			resp, _ = b.post(s.URL+"/auth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {"spa"}})
			if resp.StatusCode != 200 {
				t.Fatalf("revoke = %d", resp.StatusCode)
			}
			if info := introspect(t, s, tok.AccessToken); info["active"] != false {
				t.Fatalf("revoked access token still active: %v", info)
			}
			if info := introspect(t, s, tok.RefreshToken); info["active"] != false {
				t.Fatalf("refresh token of a revoked session still active: %v", info)
			}

			// RP-initiated logout follows only a registered URI. A logout
			// it refuses ends nothing; the registered one ends the session.
			verifier = oauth2.GenerateVerifier()
			target = b.signIn(conf.AuthCodeURL("s3", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev"), oauth2.SetAuthURLParam("prompt", "login")), "ada@example.com")
			tok, err = conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			rawID, _ = tok.Extra("id_token").(string)
			countLogouts := func() int64 {
				var n int64
				s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", "logout").Scan(&n)
				return n
			}
			logouts := countLogouts()
			resp, _ = b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Fatalf("unregistered post-logout URI = %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			// The session is intact: its access token is active and its
			// refresh token still refreshes (the newest one is kept: a
			// rotated one would be refused as a reuse, logout or not).
			if info := introspect(t, s, tok.AccessToken); info["active"] != true {
				t.Fatalf("a refused logout ended the session: introspection = %v", info)
			}
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"spa"}}, "", "")
			if status != 200 {
				t.Fatalf("refresh after a refused logout = %d %v", status, out)
			}
			if n := countLogouts(); n != logouts {
				t.Fatalf("a refused logout wrote %d logout events", n-logouts)
			}
			refreshed, _ := out["refresh_token"].(string)
			access, _ := out["access_token"].(string)
			resp, _ = b.get(s.URL + "/auth/logout?" + url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {"http://127.0.0.1:9/"}, "state": {"bye"}}.Encode())
			if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://127.0.0.1:9/?state=bye" {
				t.Fatalf("logout = %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			// This logout ended the session: the newest refresh token and
			// access token are refused, and the end is audited once.
			status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed}, "client_id": {"spa"}}, "", "")
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh after logout = %d %v", status, out)
			}
			if info := introspect(t, s, access); info["active"] != false {
				t.Fatalf("access token still active after logout: %v", info)
			}
			if n := countLogouts(); n != logouts+1 {
				t.Fatalf("logout wrote %d logout events, want 1", n-logouts)
			}
		})
	}
}

// TestAuthorizationNegativeCases covers what must be refused and how.
func TestAuthorizationNegativeCases(t *testing.T) {
	s, conf, _ := startFlowServer(t, false, map[string]string{"GATEHOUSE_AUTH_CODE_TTL": "1s"})
	ctx := context.Background()
	base := func(mod func(q url.Values)) string {
		q := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {conf.RedirectURL},
			"state": {"st"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
			"code_challenge_method": {"S256"}, "provider": {"dev"}, "scope": {"openid"}}
		mod(q)
		return s.URL + "/auth/login?" + q.Encode()
	}
	b := newBrowser(t)

	t.Run("unregistered redirect_uri is a page, never a redirect", func(t *testing.T) {
		for _, uri := range []string{"https://evil.example/callback", "http://127.0.0.1:9/callback/../evil", "http://127.0.0.1:9/callback?x=1", ""} {
			resp, body := b.get(base(func(q url.Values) { q.Set("redirect_uri", uri) }))
			if uri == "" {
				// The SPA has one registered URI; omitting it is allowed (RFC 6749 §3.1.2.3).
				if resp.StatusCode != 302 {
					t.Fatalf("omitted redirect_uri = %d", resp.StatusCode)
				}
				continue
			}
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "Invalid redirect address") {
				t.Fatalf("%q: %d %q", uri, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
	t.Run("unknown client is a page", func(t *testing.T) {
		resp, body := b.get(base(func(q url.Values) { q.Set("client_id", "nope") }))
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "Unknown application") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("repeated redirect_uri is a page", func(t *testing.T) {
		u := base(func(q url.Values) { q.Add("redirect_uri", "https://evil.example/") })
		resp, _ := b.get(u)
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	redirectErr := func(t *testing.T, u, wantCode string) {
		t.Helper()
		resp, _ := b.get(u)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || loc.Query().Get("error") != wantCode || loc.Query().Get("state") != "st" ||
			!strings.HasPrefix(loc.String(), conf.RedirectURL) {
			t.Fatalf("want redirect with %s, got %d %s", wantCode, resp.StatusCode, loc)
		}
	}
	t.Run("public client without PKCE", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "invalid_request")
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Set("code_challenge_method", "plain") }), "invalid_request")
	})
	t.Run("token response type refused", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Set("response_type", "token") }), "unsupported_response_type")
	})
	t.Run("prompt none", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Set("prompt", "none") }), "login_required")
	})
	t.Run("unknown provider", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Set("provider", "nope") }), "invalid_request")
	})
	t.Run("response_mode other than query", func(t *testing.T) {
		for _, mode := range []string{"fragment", "form_post"} {
			redirectErr(t, base(func(q url.Values) { q.Set("response_mode", mode) }), "invalid_request")
		}
	})
	t.Run("request objects refused, not ignored", func(t *testing.T) {
		redirectErr(t, base(func(q url.Values) { q.Set("request", "eyJhbGciOiJub25lIn0.e30.") }), "request_not_supported")
		redirectErr(t, base(func(q url.Values) { q.Set("request_uri", "https://evil.example/req") }), "request_uri_not_supported")
	})

	verifier := oauth2.GenerateVerifier()
	code := func() string {
		verifier = oauth2.GenerateVerifier()
		return b.signIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev"), oauth2.SetAuthURLParam("prompt", "login")), "grace@example.com").Query().Get("code")
	}
	exchange := func(form url.Values) (int, map[string]any) {
		form.Set("grant_type", "authorization_code")
		form.Set("client_id", "spa")
		form.Set("redirect_uri", conf.RedirectURL)
		return tokenPost(t, s, form, "", "")
	}
	t.Run("missing verifier", func(t *testing.T) {
		status, out := exchange(url.Values{"code": {code()}})
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		status, out := exchange(url.Values{"code": {code()}, "code_verifier": {oauth2.GenerateVerifier()}})
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("wrong redirect_uri at the token endpoint", func(t *testing.T) {
		c := code()
		status, out := tokenPost(t, s, url.Values{"grant_type": {"authorization_code"}, "client_id": {"spa"}, "code": {c},
			"code_verifier": {verifier}, "redirect_uri": {"http://127.0.0.1:9/other"}}, "", "")
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("replayed code revokes what the first redemption issued", func(t *testing.T) {
		c := code()
		status, first := exchange(url.Values{"code": {c}, "code_verifier": {verifier}})
		if status != 200 {
			t.Fatalf("first redemption = %d %v", status, first)
		}
		status, out := exchange(url.Values{"code": {c}, "code_verifier": {verifier}})
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("replay = %d %v", status, out)
		}
		if info := introspect(t, s, first["access_token"].(string)); info["active"] != false {
			t.Fatal("tokens of a replayed code stay active")
		}
	})
	t.Run("expired code", func(t *testing.T) {
		c := code()
		time.Sleep(1100 * time.Millisecond)
		status, out := exchange(url.Values{"code": {c}, "code_verifier": {verifier}})
		if status != 400 || out["error"] != "invalid_grant" {
			t.Fatalf("%d %v", status, out)
		}
	})
	t.Run("forged and replayed state", func(t *testing.T) {
		b := newBrowser(t) // one without a browser session, so the request goes upstream
		resp, _ := b.get(base(func(url.Values) {}))
		formURL := resp.Header.Get("Location")
		fu, _ := url.Parse(formURL)
		state := fu.Query().Get("state")
		post := func(state string, jar *browser) (*http.Response, string) {
			return jar.post(s.URL+"/auth/callback/dev", url.Values{"state": {state}, "email": {"mallory@example.com"}})
		}
		// A state Gatehouse never issued, and a real state from another browser.
		for _, tc := range []struct {
			state string
			br    *browser
		}{{"forged-state-value-000000000000000000000", b}, {state, newBrowser(t)}} {
			resp, body := post(tc.state, tc.br)
			if resp.StatusCode != 400 || !strings.Contains(body, "expired") || resp.Header.Get("Location") != "" {
				t.Fatalf("state %q: %d %s", tc.state, resp.StatusCode, body)
			}
		}
		resp, _ = post(state, b)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("genuine completion = %d", resp.StatusCode)
		}
		resp, body := post(state, b)
		if resp.StatusCode != 400 || !strings.Contains(body, "expired") {
			t.Fatalf("replayed state = %d %s", resp.StatusCode, body)
		}
		var rejected int64
		s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND outcome = ?", "login.state_rejected", "failure").Scan(&rejected)
		if rejected != 3 {
			t.Fatalf("state rejections audited = %d, want 3", rejected)
		}
	})
	t.Run("client authentication", func(t *testing.T) {
		status, out := tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, "backend", "wrong-secret-0123456789")
		if status != 401 || out["error"] != "invalid_client" {
			t.Fatalf("wrong secret = %d %v", status, out)
		}
		status, out = tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {"backend"}, "client_secret": {"backend-secret-0123456789"}}, "", "")
		if status != 200 || out["refresh_token"] != nil || out["scope"] != "reports:read" {
			t.Fatalf("client_credentials (post) = %d %v", status, out)
		}
		status, out = tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, "spa", "")
		if status != 400 || out["error"] != "unauthorized_client" {
			t.Fatalf("public client_credentials = %d %v", status, out)
		}
		status, out = tokenPost(t, s, url.Values{"grant_type": {"password"}, "client_id": {"spa"}}, "", "")
		if status != 400 || out["error"] != "unsupported_grant_type" {
			t.Fatalf("password grant = %d %v", status, out)
		}
	})
	_ = ctx
}

// TestForgedTokensAreInactive presents tokens that must never verify.
func TestForgedTokensAreInactive(t *testing.T) {
	s, _, _ := startFlowServer(t, false, nil)
	status, out := tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, "backend", "backend-secret-0123456789")
	if status != 200 {
		t.Fatal(out)
	}
	good := out["access_token"].(string)
	parts := strings.Split(good, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	_ = json.Unmarshal(hdr, &h)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }

	noneHdr := map[string]any{"alg": "none", "typ": "at+jwt", "kid": h["kid"]}
	hsHdr := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": h["kid"]}
	unknownKid := map[string]any{"alg": h["alg"], "typ": "at+jwt", "kid": "not-a-key"}

	// HS256 with the published public key as the HMAC secret.
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	resp, _ := http.Get(s.URL + "/.well-known/jwks.json")
	_ = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	pub := s.Keys.JWKS().Keys[0].Public()
	der, _ := x509.MarshalPKIXPublicKey(pub.Key)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := func(secret []byte) string {
		signing := enc(hsHdr) + "." + parts[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	tampered := parts[0] + "." + enc(map[string]any{"sub": "admin", "iss": s.URL, "exp": time.Now().Add(time.Hour).Unix()}) + "." + parts[2]
	for name, tok := range map[string]string{
		"alg none":            enc(noneHdr) + "." + parts[1] + ".",
		"HS256 with PEM key":  hs(pemKey),
		"HS256 with DER key":  hs(der),
		"unknown kid":         enc(unknownKid) + "." + parts[1] + "." + parts[2],
		"tampered payload":    tampered,
		"tampered signature":  parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"garbage":             "not.a.jwt",
		"refresh-shaped junk": "ghr_0000",
	} {
		if info := introspect(t, s, tok); info["active"] != false || len(info) != 1 {
			t.Errorf("%s: introspection = %v", name, info)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: userinfo = %d %q", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if info := introspect(t, s, good); info["active"] != true {
		t.Fatalf("genuine token inactive: %v", info)
	}
	// Introspection needs a confidential client.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/introspect", strings.NewReader(url.Values{"token": {good}, "client_id": {"spa"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Fatal("a public client may introspect")
	}
}

// TestKeyRotationWhileTokensInFlight: a rotated-in key is published before
// it signs; tokens signed by the old key keep verifying; new tokens carry
// the new kid; a verifier with a cached JWKS picks the new key up.
func TestKeyRotationWhileTokensInFlight(t *testing.T) {
	s, _, _ := startFlowServer(t, false, map[string]string{"GATEHOUSE_KEY_PUBLISH_LEAD": "1s", "GATEHOUSE_JWKS_MAX_AGE": "1s"})
	ctx := context.Background()
	mint := func() string {
		status, out := tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, "backend", "backend-secret-0123456789")
		if status != 200 {
			t.Fatalf("client_credentials = %d %v", status, out)
		}
		return out["access_token"].(string)
	}
	kid := func(tok string) string {
		hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		var h struct{ Kid string }
		_ = json.Unmarshal(hdr, &h)
		return h.Kid
	}
	remote := oidc.NewRemoteKeySet(ctx, s.URL+"/.well-known/jwks.json")
	before := mint()
	if _, err := remote.VerifySignature(ctx, before); err != nil {
		t.Fatal(err)
	}
	info, err := s.Keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Keys.JWKS().Keys) != 2 {
		t.Fatalf("new key not published before it signs: %d keys", len(s.Keys.JWKS().Keys))
	}
	during := mint()
	if kid(during) != kid(before) {
		t.Fatal("a pending key signed before its publish lead passed")
	}
	time.Sleep(time.Until(info.ActivatesAt) + 50*time.Millisecond)
	after := mint()
	if kid(after) != info.KID || kid(after) == kid(before) {
		t.Fatalf("new tokens carry kid %s, want %s", kid(after), info.KID)
	}
	for name, tok := range map[string]string{"before": before, "during": during, "after": after} {
		if got := introspect(t, s, tok); got["active"] != true {
			t.Errorf("%s rotation: introspection = %v", name, got)
		}
		if _, err := remote.VerifySignature(ctx, tok); err != nil {
			t.Errorf("%s rotation: stock verifier: %v", name, err)
		}
	}
}

func TestRateLimit(t *testing.T) {
	s, conf, _ := startFlowServer(t, false, map[string]string{"GATEHOUSE_RATE_LIMIT": "3"})
	b := newBrowser(t)
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "dev"))
	for i := 0; i < 3; i++ {
		if resp, _ := b.get(authURL); resp.StatusCode != http.StatusFound {
			t.Fatalf("request %d = %d", i, resp.StatusCode)
		}
	}
	resp, body := b.get(authURL)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too_many_requests") {
		t.Fatalf("fourth login = %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Other endpoints are not limited by the login bucket.
	if resp, _ := b.get(s.URL + "/.well-known/openid-configuration"); resp.StatusCode != 200 {
		t.Fatalf("discovery = %d", resp.StatusCode)
	}
}

// TestReplicasAgreeOnKeys runs two Gatehouse servers on one PostgreSQL
// database behind one issuer: they publish the same keys, accept each
// other's tokens, and switch to a rotated key together.
func TestReplicasAgreeOnKeys(t *testing.T) {
	env := map[string]string{"GATEHOUSE_ISSUER": "http://gatehouse.test", "GATEHOUSE_KEY_PUBLISH_LEAD": "1s", "GATEHOUSE_JWKS_MAX_AGE": "1s"}
	a := apptest.Start(t, apptest.Options{YAML: flowYAML, Postgres: true, Env: env})
	b := apptest.Start(t, apptest.Options{YAML: flowYAML, DatabaseURL: a.Config.DatabaseURL, Env: env})
	kids := func(s *apptest.Server) string {
		var out []string
		for _, k := range s.Keys.JWKS().Keys {
			out = append(out, k.KeyID)
		}
		return strings.Join(out, ",")
	}
	if kids(a) != kids(b) || kids(a) == "" {
		t.Fatalf("replicas publish %q and %q", kids(a), kids(b))
	}
	mint := func(s *apptest.Server) string {
		status, out := tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, "backend", "backend-secret-0123456789")
		if status != 200 {
			t.Fatalf("mint = %d %v", status, out)
		}
		return out["access_token"].(string)
	}
	for _, pair := range [][2]*apptest.Server{{a, b}, {b, a}} {
		if info := introspect(t, pair[1], mint(pair[0])); info["active"] != true {
			t.Fatalf("a token of one replica is inactive at the other: %v", info)
		}
	}
	ctx := context.Background()
	rotated, err := a.Keys.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(rotated.ActivatesAt) + 50*time.Millisecond)
	for _, s := range []*apptest.Server{a, b} {
		tok := mint(s)
		hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		if !strings.Contains(string(hdr), rotated.KID) {
			t.Fatalf("a replica still signs with the old key: %s", hdr)
		}
	}
}

func TestProviderChooserAndDevFormErrors(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: flowYAML + "providers:\n  - {name: corp-dev, type: dev, display_name: Corporate test login}\n"})
	b := newBrowser(t)
	q := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:9/callback"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	resp, body := b.get(s.URL + "/auth/login?" + q.Encode())
	if resp.StatusCode != 200 || !strings.Contains(body, "Corporate test login") || !strings.Contains(body, "Development sign-in") ||
		!strings.Contains(body, "provider=corp-dev") || !strings.Contains(body, "Example SPA") {
		t.Fatalf("chooser = %d %s", resp.StatusCode, body)
	}
	q.Set("provider", "corp-dev")
	resp, _ = b.get(s.URL + "/auth/login?" + q.Encode())
	formURL, _ := url.Parse(resp.Header.Get("Location"))
	if formURL.Path != "/auth/callback/corp-dev" {
		t.Fatalf("went to %s", formURL)
	}
	resp, body = b.post(s.URL+formURL.Path, url.Values{"state": {formURL.Query().Get("state")}, "email": {"not-an-email"}})
	if resp.StatusCode != 400 || !strings.Contains(body, "Enter a valid email address") || !strings.Contains(body, `value="not-an-email"`) {
		t.Fatalf("invalid email = %d %s", resp.StatusCode, body)
	}
	// The form can be corrected and submitted again with the same state.
	resp, _ = b.post(s.URL+formURL.Path, url.Values{"state": {formURL.Query().Get("state")}, "email": {"ok@example.com"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("corrected form = %d", resp.StatusCode)
	}
	// A state begun at one provider cannot complete at another.
	resp, _ = b.get(s.URL + "/auth/login?" + q.Encode())
	formURL, _ = url.Parse(resp.Header.Get("Location"))
	resp, body = b.post(s.URL+"/auth/callback/dev", url.Values{"state": {formURL.Query().Get("state")}, "email": {"ok@example.com"}})
	if resp.StatusCode != 400 || !strings.Contains(body, "expired") {
		t.Fatalf("cross-provider state = %d %s", resp.StatusCode, body)
	}
}

func TestTokenRateLimitPerClient(t *testing.T) {
	// Each request comes from another client IP (through a trusted proxy),
	// so only the per-client bucket can refuse the third.
	s, _, _ := startFlowServer(t, false, map[string]string{"GATEHOUSE_RATE_LIMIT": "2", "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"})
	var codes []int
	for i := 0; i < 3; i++ {
		codes = append(codes, backendTokenFrom(t, s, "203.0.113."+string(rune('1'+i))))
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("statuses = %v", codes)
	}
}

// TestNamingAClientDoesNotSpendItsBucket: requests that fail client
// authentication, or name a public client (anyone can), do not count
// against the client, so they cannot lock its users out.
func TestNamingAClientDoesNotSpendItsBucket(t *testing.T) {
	s, _, _ := startFlowServer(t, false, map[string]string{"GATEHOUSE_RATE_LIMIT": "2", "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"})
	for i := 0; i < 4; i++ {
		ip := "198.51.100." + string(rune('1'+i))
		if got := tokenRequestFrom(t, s, ip, "grant_type=client_credentials", "backend", "wrong-secret-0123456789"); got != http.StatusUnauthorized {
			t.Fatalf("wrong secret = %d", got)
		}
		if got := tokenRequestFrom(t, s, ip, "grant_type=refresh_token&refresh_token=junk&client_id=spa", "", ""); got != http.StatusBadRequest {
			t.Fatalf("junk refresh for the public client = %d", got)
		}
	}
	if got := backendTokenFrom(t, s, "203.0.113.9"); got != 200 {
		t.Fatalf("the real backend after others named it = %d", got)
	}
	if got := tokenRequestFrom(t, s, "203.0.113.10", "grant_type=refresh_token&refresh_token=junk&client_id=spa", "", ""); got != http.StatusBadRequest {
		t.Fatalf("the public client from a fresh IP = %d, want its normal 400", got)
	}
}
