package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
	idTokenType        = "urn:ietf:params:oauth:token-type:id_token"
	upstreamAPI        = "https://api.example.com"
)

// upstreamClients are the downstream applications of the upstream tests:
// a SPA allowed token exchange, a client that is not, and the backend
// introspect() authenticates as.
const upstreamClients = `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    grant_types: [authorization_code, refresh_token, "urn:ietf:params:oauth:grant-type:token-exchange"]
  - id: no-exchange
    public: true
    redirect_uris: [http://127.0.0.1:9/other]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
    introspect_any: true
`

// upstreamYAML is one provider entry of each OpenID Connect kind (two
// Auth0 tenants: several instances of a kind coexist) on fake upstreams.
func upstreamYAML(okta, google, tenantA, tenantB *providertest.Server) string {
	creds := func(f *providertest.Server) string {
		return fmt.Sprintf("client_id: %s, client_secret: %s, insecure_allow_http: true", f.ClientID, f.ClientSecret)
	}
	host := func(f *providertest.Server) string { return strings.TrimPrefix(f.URL, "http://") }
	return upstreamClients + fmt.Sprintf(`providers:
  - {name: okta, type: oidc, issuer: %s, %s, scopes: [openid, email, profile, groups], claims: {groups: groups}}
  - {name: google, type: google, insecure_issuer: %s, %s, hosted_domains: [example.com]}
  - {name: tenant-a, type: auth0, domain: %s, %s, audience: %s, claims: {groups: "https://acme.example/roles"}}
  - {name: tenant-b, type: auth0, domain: %s, %s, audience: %s, allowed_organizations: [org_b]}
`, okta.Issuer, creds(okta), google.Issuer, creds(google), host(tenantA), creds(tenantA), upstreamAPI, host(tenantB), creds(tenantB), upstreamAPI)
}

type upstreams struct {
	okta, google, tenantA, tenantB *providertest.Server
}

func (u upstreams) byName(name string) *providertest.Server {
	return map[string]*providertest.Server{"okta": u.okta, "google": u.google, "tenant-a": u.tenantA, "tenant-b": u.tenantB}[name]
}

func startUpstreams(t testing.TB) upstreams {
	user := func(extra map[string]any) map[string]any {
		u := providertest.DefaultUser()
		for k, v := range extra {
			u[k] = v
		}
		return u
	}
	return upstreams{
		okta:    providertest.New(t, providertest.Options{User: user(map[string]any{"groups": []any{"eng"}}), UserInfoOnly: []string{"email", "email_verified", "name", "groups"}}),
		google:  providertest.New(t, providertest.Options{User: user(map[string]any{"sub": "g-1", "hd": "example.com"})}),
		tenantA: providertest.New(t, providertest.Options{IssuerPath: "/", User: user(map[string]any{"sub": "auth0|a", "org_id": "org_a", "https://acme.example/roles": []any{"admin"}})}),
		tenantB: providertest.New(t, providertest.Options{IssuerPath: "/", User: user(map[string]any{"sub": "auth0|b", "org_id": "org_b"})}),
	}
}

// startUpstreamServer starts fake upstreams and a Gatehouse using them,
// with Gatehouse's callback URLs registered at each upstream. At the end
// of the test, its log must not hold a JWT.
func startUpstreamServer(t testing.TB, pg bool, env map[string]string) (*apptest.Server, upstreams) {
	t.Helper()
	up := startUpstreams(t)
	logs := &syncBuffer{}
	s := apptest.Start(t, apptest.Options{YAML: upstreamYAML(up.okta, up.google, up.tenantA, up.tenantB), Postgres: pg, Env: env, Log: logs})
	for _, name := range []string{"okta", "google", "tenant-a", "tenant-b"} {
		up.byName(name).SetRedirectURIs(s.URL + "/auth/callback/" + name)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "eyJ") {
			t.Errorf("a token reached the log:\n%s", grepLines(logs.String(), "eyJ"))
		}
	})
	return s, up
}

// followToClient follows redirects through Gatehouse and the upstream
// until the browser is sent to the client's redirect URI.
func (b *browser) followToClient(start string) *url.URL {
	b.t.Helper()
	next := start
	for range 10 {
		resp, body := b.get(next)
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			b.t.Fatalf("GET %s = %d %s", next, resp.StatusCode, body)
		}
		loc, err := resp.Location()
		if err != nil {
			b.t.Fatal(err)
		}
		if loc.Host == "127.0.0.1:9" {
			return loc
		}
		next = loc.String()
	}
	b.t.Fatal("too many redirects")
	return nil
}

// TestUpstreamSignInEachKind signs in through every OpenID Connect kind
// with a stock downstream client (x/oauth2 + go-oidc against Gatehouse)
// and a browser that follows the round trip through the fake upstream.
func TestUpstreamSignInEachKind(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startUpstreamServer(t, pg, nil)
			ctx := context.Background()
			op, conf := spaOIDC(t, s.URL)
			for _, tc := range []struct {
				provider, subject, org string
			}{
				{provider: "okta", subject: "upstream-user-1"},
				{provider: "google", subject: "g-1"},
				{provider: "tenant-a", subject: "auth0|a", org: "org_a"},
				{provider: "tenant-b", subject: "auth0|b"},
			} {
				t.Run(tc.provider, func(t *testing.T) {
					verifier := oauth2.GenerateVerifier()
					opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-" + tc.provider),
						oauth2.SetAuthURLParam("provider", tc.provider), oauth2.SetAuthURLParam("login_hint", "ada@example.com")}
					if tc.org != "" {
						opts = append(opts, oauth2.SetAuthURLParam("organization", tc.org))
					}
					target := newBrowser(t).followToClient(conf.AuthCodeURL("st", opts...))
					if target.Query().Get("state") != "st" || target.Query().Get("code") == "" {
						t.Fatalf("client redirect = %s", target)
					}
					upQ := up.byName(tc.provider).LastAuthorize()
					if upQ.Get("login_hint") != "ada@example.com" || upQ.Get("organization") != tc.org {
						t.Fatalf("upstream request = %v", upQ)
					}
					tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
					if err != nil {
						t.Fatal(err)
					}
					idt, err := op.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, tok.Extra("id_token").(string))
					if err != nil || idt.Nonce != "n-"+tc.provider {
						t.Fatalf("ID token: %v", err)
					}
					var claims struct {
						Email string   `json:"email"`
						Name  string   `json:"name"`
						AMR   []string `json:"amr"`
					}
					_ = idt.Claims(&claims)
					if claims.Email != "ada@example.com" || claims.Name != "Ada Lovelace" || len(claims.AMR) == 0 {
						t.Fatalf("ID token claims = %+v", claims)
					}
					req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
					req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
					resp, body := newBrowser(t).do(req)
					if resp.StatusCode != 200 || !strings.Contains(body, `"provider":"`+tc.provider+`"`) ||
						!strings.Contains(body, `"subject":"`+tc.subject+`"`) {
						t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
					}
				})
			}
			var logins int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND provider IN ?", "login.success",
				[]string{"okta", "google", "tenant-a", "tenant-b"}).Scan(&logins)
			if logins != 4 {
				t.Fatalf("login.success audit events = %d", logins)
			}
			_, metrics := get(t, s.URL+"/metrics")
			if !strings.Contains(metrics, `gatehouse_upstream_jwks_fetches_total{outcome="success",provider="okta"} 1`) {
				t.Fatalf("JWKS fetches not counted:\n%s", grepLines(metrics, "jwks"))
			}
			_, ready := get(t, s.URL+"/readyz")
			if !strings.Contains(ready, `"provider:tenant-b":"ok"`) || !strings.Contains(ready, `"status":"ready"`) {
				t.Fatalf("/readyz = %s", ready)
			}
		})
	}
}

// TestUpstreamRefusalsShowAPage: an upstream answer that fails
// validation ends on an error page, audited, never at the client.
func TestUpstreamRefusalsShowAPage(t *testing.T) {
	s, up := startUpstreamServer(t, false, nil)
	for _, tc := range []struct {
		name, provider, org, want string
		status                    int
		hook                      func(*providertest.TokenDraft)
	}{
		// An answer that fails validation is a 400; a rule refusing the person a 403.
		{name: "nonce mismatch", provider: "okta", want: "could not be verified", status: http.StatusBadRequest,
			hook: func(d *providertest.TokenDraft) { d.Claims["nonce"] = "replayed" }},
		{name: "Auth0 org mismatch", provider: "tenant-a", org: "org_other", want: "another Auth0 organization", status: http.StatusForbidden},
		{name: "hd not allowed", provider: "google", want: "not belong to an organization allowed", status: http.StatusForbidden,
			hook: func(d *providertest.TokenDraft) { d.Claims["hd"] = "evil.example" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up.byName(tc.provider).SetIDTokenHook(tc.hook)
			defer up.byName(tc.provider).SetIDTokenHook(nil)
			q := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:9/callback"},
				"state": {"st"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
				"code_challenge_method": {"S256"}, "provider": {tc.provider}, "scope": {"openid"}, "organization": {tc.org}}
			b := newBrowser(t)
			resp, _ := b.get(s.URL + "/auth/login?" + q.Encode())
			resp, _ = b.get(resp.Header.Get("Location"))
			resp, body := b.get(resp.Header.Get("Location"))
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) || resp.Header.Get("Location") != "" {
				t.Fatalf("callback = %d %s", resp.StatusCode, body)
			}
		})
	}
	var failed int64
	s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND outcome = ?", "login.failed", "failure").Scan(&failed)
	if failed != 3 {
		t.Fatalf("login.failed audit events = %d, want 3", failed)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func exchangeForm(provider, token, typ string) url.Values {
	return url.Values{"grant_type": {grantTokenExchange}, "client_id": {"spa"}, "provider": {provider},
		"subject_token": {token}, "subject_token_type": {typ}}
}

// TestTokenExchangeHTTP: an SPA holding an Auth0 access token for the API
// gets Gatehouse tokens for it at /auth/token; what must be refused is,
// with invalid_grant or invalid_request and a description.
func TestTokenExchangeHTTP(t *testing.T) {
	s, up := startUpstreamServer(t, false, nil)
	stranger := providertest.New(t, providertest.Options{IssuerPath: "/"})
	now := time.Now().Unix()
	_, disc := get(t, s.URL+"/.well-known/openid-configuration")
	if !strings.Contains(disc, grantTokenExchange) {
		t.Fatalf("discovery lacks the token-exchange grant: %s", disc)
	}

	status, out := tokenPost(t, s, exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType), "", "")
	if status != 200 || out["issued_token_type"] != accessTokenType || out["token_type"] != "Bearer" ||
		out["refresh_token"] == nil || out["id_token"] != nil || out["access_token"] == nil {
		t.Fatalf("exchange = %d %v", status, out)
	}
	info := introspect(t, s, out["access_token"].(string))
	if info["active"] != true || info["client_id"] != "spa" || info["sid"] == nil {
		t.Fatalf("introspection = %v", info)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+out["access_token"].(string))
	resp, body := newBrowser(t).do(req)
	if resp.StatusCode != 200 || !strings.Contains(body, `"provider":"tenant-a"`) || !strings.Contains(body, `"subject":"auth0|a"`) {
		t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
	}
	var sess struct {
		Provider string
		AMR      string
	}
	s.DB.Raw("SELECT provider, amr FROM sessions WHERE id = ?", info["sid"]).Scan(&sess)
	if sess.Provider != "tenant-a" || sess.AMR != "ext" {
		t.Fatalf("session = %+v", sess)
	}
	status, out = tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {"spa"}, "refresh_token": {out["refresh_token"].(string)}}, "", "")
	if status != 200 {
		t.Fatalf("refresh of an exchanged session = %d %v", status, out)
	}
	form := exchangeForm("google", up.google.IDToken(nil), idTokenType)
	form.Set("scope", "email openid")
	status, out = tokenPost(t, s, form, "", "")
	if status != 200 || out["scope"] != "email openid" {
		t.Fatalf("Google ID token exchange = %d %v", status, out)
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
		desc   string
	}{
		{name: "access token for another audience", status: 400, code: "invalid_grant", desc: "another audience",
			form: exchangeForm("tenant-a", up.tenantA.AccessToken("https://other-api.example.com", nil), accessTokenType)},
		{name: "access token of another issuer", status: 400, code: "invalid_grant", desc: "another issuer",
			form: exchangeForm("tenant-a", stranger.AccessToken(upstreamAPI, nil), accessTokenType)},
		{name: "token of the other tenant", status: 400, code: "invalid_grant", desc: "another issuer",
			form: exchangeForm("tenant-a", up.tenantB.AccessToken(upstreamAPI, nil), accessTokenType)},
		{name: "expired access token", status: 400, code: "invalid_grant", desc: "expired",
			form: exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, map[string]any{"exp": now - 300}), accessTokenType)},
		{name: "expired ID token", status: 400, code: "invalid_grant", desc: "expired",
			form: exchangeForm("okta", up.okta.IDToken(map[string]any{"exp": now - 300}), idTokenType)},
		{name: "org not allowed", status: 400, code: "invalid_grant", desc: "not allowed",
			form: exchangeForm("tenant-b", up.tenantB.AccessToken(upstreamAPI, map[string]any{"org_id": "org_x"}), accessTokenType)},
		{name: "no subject_token", status: 400, code: "invalid_request", desc: "subject_token is required",
			form: exchangeForm("tenant-a", "", accessTokenType)},
		{name: "unknown token type", status: 400, code: "invalid_request", desc: "subject_token_type must be",
			form: exchangeForm("tenant-a", "x", "urn:ietf:params:oauth:token-type:jwt")},
		{name: "no provider", status: 400, code: "invalid_request", desc: "provider is required",
			form: exchangeForm("", "x", accessTokenType)},
		{name: "unknown provider", status: 400, code: "invalid_request", desc: "unknown provider",
			form: exchangeForm("nope", "x", accessTokenType)},
		{name: "provider without exchange", status: 400, code: "invalid_request", desc: "does not accept token exchange",
			form: exchangeForm("dev", "x", accessTokenType)},
		{name: "client not allowed the grant", status: 400, code: "unauthorized_client",
			form: func() url.Values {
				f := exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType)
				f.Set("client_id", "no-exchange")
				return f
			}()},
		{name: "audience of another client", status: 400, code: "invalid_target",
			form: func() url.Values {
				f := exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType)
				f.Set("audience", "reports-api")
				return f
			}()},
		{name: "scope the client was not given", status: 400, code: "invalid_scope", desc: `scope "kb:admin" is not allowed`,
			form: func() url.Values {
				f := exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType)
				f.Set("scope", "openid kb:admin")
				return f
			}()},
		{name: "delegation", status: 400, code: "invalid_request", desc: "actor_token",
			form: func() url.Values {
				f := exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType)
				f.Set("actor_token", "x")
				return f
			}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := tokenPost(t, s, tc.form, "", "")
			desc, _ := out["error_description"].(string)
			if status != tc.status || out["error"] != tc.code || !strings.Contains(desc, tc.desc) {
				t.Fatalf("%d %v", status, out)
			}
			if tok := tc.form.Get("subject_token"); len(tok) > 20 && strings.Contains(desc, tok) {
				t.Fatal("the subject token is echoed")
			}
		})
	}
	var refused int64
	s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", "token_exchange.refused").Scan(&refused)
	if refused != 6 {
		t.Fatalf("token_exchange.refused audit events = %d, want 6", refused)
	}
	if n := up.tenantA.JWKSFetches(); n != 1 {
		t.Fatalf("tenant-a JWKS fetches = %d, want 1", n)
	}
}

// TestUpstreamDownAtStart: Gatehouse starts while an upstream's discovery
// fails; /readyz reports the provider failing (degraded, still serving),
// sign-ins through it show "unavailable", and everything works once the
// upstream is back.
func TestUpstreamDownAtStart(t *testing.T) {
	up := startUpstreams(t)
	up.okta.SetDiscoveryDown(true)
	s := apptest.Start(t, apptest.Options{YAML: upstreamYAML(up.okta, up.google, up.tenantA, up.tenantB)})
	// Discovery runs in the background: wait for the healthy upstreams.
	resp, body := waitReadyz(t, s, `"provider:tenant-b":"ok"`, `"provider:google":"ok"`, `"provider:tenant-a":"ok"`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"provider:okta":"failing"`) || !strings.Contains(body, `"status":"degraded"`) ||
		!strings.Contains(body, `"provider:google":"ok"`) {
		t.Fatalf("/readyz with okta down = %d %s", resp.StatusCode, body)
	}
	q := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "state": {"st"}, "provider": {"okta"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	b := newBrowser(t)
	resp, body = b.get(s.URL + "/auth/login?" + q.Encode())
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "cannot be reached") {
		t.Fatalf("sign-in with okta down = %d %s", resp.StatusCode, body)
	}
	up.okta.SetDiscoveryDown(false)
	waitReadyz(t, s, `"status":"ready"`)
	up.okta.SetRedirectURIs(s.URL + "/auth/callback/okta")
	if target := b.followToClient(s.URL + "/auth/login?" + q.Encode()); target.Query().Get("code") == "" {
		t.Fatalf("sign-in after recovery = %s", target)
	}
}

// TestProviderSettingsStopStartUp: every bad provider field is reported
// at once, named by position, provider and field.
func TestProviderSettingsStopStartUp(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := `providers:
  - {name: okta, type: oidc, issuer: "http://idp.example.com", client_id: app}
  - {name: corp, type: auth0, domain: "https://acme.auth0.com", client_id: app, client_secret: s, signing_algorithms: [HS256]}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEHOUSE_CONFIG": p, "GATEHOUSE_DATABASE_URL": filepath.Join(t.TempDir(), "g.db")}
	cfg, _, err := config.Load(config.Options{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		DotenvPath: filepath.Join(t.TempDir(), "absent.env")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.New(context.Background(), cfg, app.NewLogger(io.Discard, "error"))
	msg := fmt.Sprint(err)
	for _, want := range []string{
		"providers[0] (okta).client_secret: is required",
		"providers[0] (okta).issuer: must use https",
		`providers[1] (corp).domain: "https://acme.auth0.com" must be the tenant host only`,
		`providers[1] (corp).signing_algorithms: "HS256" is not allowed`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("start-up error lacks %q:\n%s", want, msg)
		}
	}
}

// waitReadyz polls /readyz until its body holds every want.
func waitReadyz(t *testing.T, s *apptest.Server, want ...string) (*http.Response, string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, body := get(t, s.URL+"/readyz")
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(body, w) }) {
			return resp, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said %q: %s", want, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spaOIDC discovers Gatehouse at issuer as a stock client does and returns
// the provider (for ID token verification) and the demo SPA's OAuth 2.0
// configuration (openid, email, profile; redirect to a dead loopback port).
func spaOIDC(t *testing.T, issuer string) (*oidc.Provider, *oauth2.Config) {
	t.Helper()
	op, err := oidc.NewProvider(t.Context(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	return op, &oauth2.Config{ClientID: "spa", Endpoint: op.Endpoint(), RedirectURL: "http://127.0.0.1:9/callback",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}
