package providers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

const oidcTestCallback = "https://gatehouse.test/auth/callback/up"

// kindFixture is a fake upstream and the YAML of a provider kind for it.
type kindFixture struct {
	typ  string
	opts providertest.Options
	yaml func(f *providertest.Server) string
}

func withClaims(extra map[string]any) map[string]any {
	u := providertest.DefaultUser()
	maps.Copy(u, extra)
	return u
}

var fixtures = map[string]kindFixture{
	"oidc": {typ: "oidc", opts: providertest.Options{User: withClaims(map[string]any{"groups": []any{"eng", "ops"}})},
		yaml: func(f *providertest.Server) string {
			return fmt.Sprintf("issuer: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\nclaims: {groups: groups}\naudience: https://api.example.com\n",
				f.Issuer, f.ClientID, f.ClientSecret)
		}},
	"google": {typ: "google", opts: providertest.Options{User: withClaims(map[string]any{"hd": "example.com"})},
		yaml: func(f *providertest.Server) string {
			return fmt.Sprintf("insecure_issuer: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\nhosted_domains: [example.com, example.org]\n",
				f.Issuer, f.ClientID, f.ClientSecret)
		}},
	"auth0": {typ: "auth0", opts: providertest.Options{IssuerPath: "/",
		User: withClaims(map[string]any{"org_id": "org_acme", "org_name": "acme", "https://acme.example/roles": []any{"admin"}})},
		yaml: func(f *providertest.Server) string {
			return fmt.Sprintf("domain: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\naudience: https://api.example.com\n"+
				"allowed_organizations: [org_acme, org_beta]\nclaims: {groups: \"https://acme.example/roles\"}\n",
				strings.TrimPrefix(f.URL, "http://"), f.ClientID, f.ClientSecret)
		}},
}

// startKind starts a fake upstream and a provider of the kind for it.
func startKind(t testing.TB, kind string, tweak func(*providertest.Options)) (Provider, *providertest.Server) {
	t.Helper()
	fx := fixtures[kind]
	opts := fx.opts
	opts.User = maps.Clone(opts.User)
	if tweak != nil {
		tweak(&opts)
	}
	fake := providertest.New(t, opts)
	return startProvider(t, fx.typ, fx.yaml(fake), Env{}), fake
}

func startProvider(t testing.TB, typ, settings string, env Env) Provider {
	t.Helper()
	p, err := New(typ, "up", yamlSettings(settings), env)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	t.Cleanup(func() { _ = p.(interface{ Close() error }).Close() })
	waitReady(t, p)
	return p
}

func waitReady(t testing.TB, p Provider) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.(ReadinessChecker).Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("provider not ready: %v", p.(ReadinessChecker).Ready(context.Background()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var noFollow = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// signIn runs one browser round trip through the fake upstream.
func signIn(t *testing.T, p Provider, req BeginRequest) (*Identity, error) {
	t.Helper()
	ctx := context.Background()
	req.State, req.CallbackURL = "state-"+randomString(8), oidcTestCallback
	ch, err := p.Begin(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := noFollow.Get(ch.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, oidcTestCallback+"?") {
		t.Fatalf("upstream authorize = %d %q %s", resp.StatusCode, loc, body)
	}
	if u, _ := url.Parse(loc); u.Query().Get("state") != req.State {
		t.Fatalf("state not echoed: %s", loc)
	}
	return p.Complete(ctx, CompleteRequest{HTTP: httptest.NewRequest(http.MethodGet, loc, nil), CallbackURL: oidcTestCallback, Saved: ch.Saved})
}

func TestOIDCKindsSignIn(t *testing.T) {
	for _, tc := range []struct {
		kind       string
		begin      BeginRequest
		wantGroups []string
		wantParams map[string]string
	}{
		{kind: "oidc", begin: BeginRequest{LoginHint: "ada@example.com", Prompt: "login"},
			wantGroups: []string{"oidc:group:eng", "oidc:group:ops"},
			wantParams: map[string]string{"login_hint": "ada@example.com", "prompt": "login"}},
		{kind: "google", begin: BeginRequest{Prompt: "select_account"},
			wantGroups: []string{"google:domain:example.com"},
			wantParams: map[string]string{"prompt": "select_account", "hd": ""}},
		{kind: "auth0", begin: BeginRequest{Organization: "org_acme"},
			wantGroups: []string{"auth0:group:admin", "auth0:org:org_acme"},
			wantParams: map[string]string{"organization": "org_acme"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			p, fake := startKind(t, tc.kind, nil)
			id, err := signIn(t, p, tc.begin)
			if err != nil {
				t.Fatalf("sign-in: %v", err)
			}
			if id.Provider != "up" || id.Subject != "upstream-user-1" || id.Email != "ada@example.com" || !id.EmailVerified ||
				id.Name != "Ada Lovelace" || id.AvatarURL != "https://example.com/ada.png" || id.Claims["iss"] != fake.Issuer {
				t.Fatalf("identity = %+v", id)
			}
			if !slices.Equal(id.Groups, tc.wantGroups) {
				t.Fatalf("groups = %v, want %v", id.Groups, tc.wantGroups)
			}
			q := fake.LastAuthorize()
			if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("client_id") != fake.ClientID ||
				q.Get("redirect_uri") != oidcTestCallback || q.Get("scope") != "openid email profile" {
				t.Fatalf("authorization request = %v", q)
			}
			for k, v := range tc.wantParams {
				if q.Get(k) != v {
					t.Errorf("upstream %s = %q, want %q", k, q.Get(k), v)
				}
			}
			if p.DisplayName() == "" || p.Type() != tc.kind {
				t.Fatalf("display name %q, type %q", p.DisplayName(), p.Type())
			}
		})
	}
}

func TestGoogleSingleDomainHint(t *testing.T) {
	fake := providertest.New(t, providertest.Options{User: withClaims(map[string]any{"hd": "example.com"})})
	p := startProvider(t, "google", fmt.Sprintf("insecure_issuer: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\nhosted_domains: [Example.com]\n",
		fake.Issuer, fake.ClientID, fake.ClientSecret), Env{})
	if _, err := signIn(t, p, BeginRequest{}); err != nil {
		t.Fatal(err)
	}
	if hd := fake.LastAuthorize().Get("hd"); hd != "example.com" {
		t.Fatalf("hd hint = %q", hd)
	}
}

// TestUserInfoCompletesClaims: a provider that puts email, profile and
// groups only in UserInfo still yields a full identity, and UserInfo about
// another subject is refused.
func TestUserInfoCompletesClaims(t *testing.T) {
	p, fake := startKind(t, "oidc", func(o *providertest.Options) {
		o.UserInfoOnly = []string{"email", "email_verified", "name", "groups"}
	})
	id, err := signIn(t, p, BeginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "ada@example.com" || !id.EmailVerified || id.Name != "Ada Lovelace" || len(id.Groups) != 2 {
		t.Fatalf("identity = %+v", id)
	}
	fake.SetUserInfoHook(func(c map[string]any) { c["sub"] = "someone-else" })
	_, err = signIn(t, p, BeginRequest{})
	if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "another subject") {
		t.Fatalf("UserInfo about another subject: %v", err)
	}
}

// TestSignInRejections covers every way an upstream answer must be
// refused, and the edges that must still pass.
func TestSignInRejections(t *testing.T) {
	now := time.Now().Unix()
	for _, tc := range []struct {
		name  string
		kind  string
		user  map[string]any // replaces the fixture's user
		hook  func(*providertest.Server, *providertest.TokenDraft)
		begin BeginRequest
		// want is a substring of the error ("" means success); kind the error kind.
		want      string
		wantKind  error
		refetches int
	}{
		{name: "wrong aud", kind: "oidc", hook: claim("aud", "another-client"), want: "another audience"},
		{name: "wrong iss", kind: "oidc", hook: claim("iss", "https://evil.example"), want: "another issuer"},
		{name: "expired", kind: "oidc", hook: claim("exp", now-120), want: "expired"},
		{name: "expired within the skew", kind: "oidc", hook: claim("exp", now-30)},
		{name: "no exp", kind: "oidc", hook: claim("exp", nil), want: "no expiry"},
		{name: "nbf beyond the skew", kind: "oidc", hook: claim("nbf", now+120), want: "not valid yet"},
		{name: "nbf within the skew", kind: "oidc", hook: claim("nbf", now+30)},
		{name: "iat in the future", kind: "oidc", hook: claim("iat", now+600), want: "issued in the future"},
		{name: "alg none", kind: "oidc", want: `signed with "none"`, hook: func(_ *providertest.Server, d *providertest.TokenDraft) {
			d.Raw = providertest.ForgeUnsigned(d.Claims)
		}},
		{name: "HS256 with the RSA public key as secret", kind: "oidc", want: `signed with "HS256"`,
			hook: func(f *providertest.Server, d *providertest.TokenDraft) {
				d.Raw = providertest.ForgeHS256(pemOfKey(f), f.KeyID(), d.Claims)
			}},
		{name: "unknown kid after refetch", kind: "oidc", hook: header("kid", "not-a-published-key"),
			want: "does not publish", refetches: 1},
		{name: "bad signature with a known kid", kind: "oidc", want: "signature is invalid",
			hook: func(f *providertest.Server, d *providertest.TokenDraft) {
				raw := f.Sign(d.Header, d.Claims)
				d.Raw = raw[:len(raw)-6] + "AAAAAA"
			}},
		{name: "missing nonce", kind: "oidc", hook: claim("nonce", nil), want: "no nonce"},
		{name: "nonce mismatch", kind: "oidc", hook: claim("nonce", "another-sign-in"), want: "nonce does not match"},
		{name: "access token typ as ID token", kind: "oidc", hook: header("typ", "at+jwt"), want: `typ "at+jwt"`},
		{name: "azp of another client", kind: "oidc", hook: claim("azp", "another-client"), want: "(azp)"},
		{name: "two audiences without azp", kind: "oidc", want: "(azp)", hook: func(f *providertest.Server, d *providertest.TokenDraft) {
			d.Claims["aud"] = []string{f.ClientID, "another-client"}
			delete(d.Claims, "azp")
		}},
		{name: "at_hash mismatch", kind: "oidc", hook: claim("at_hash", "AAAAAAAAAAAAAAAAAAAAAA"), want: "at_hash"},
		{name: "no subject", kind: "oidc", hook: claim("sub", nil), want: "no valid subject"},
		{name: "hd not allowed", kind: "google", user: withClaims(map[string]any{"hd": "evil.example"}),
			want: "not allowed", wantKind: ErrDenied},
		{name: "personal account with an hd allow-list", kind: "google", user: providertest.DefaultUser(),
			want: "not allowed", wantKind: ErrDenied},
		{name: "second allowed domain", kind: "google",
			user: withClaims(map[string]any{"hd": "example.org"})},
		{name: "unverified email", kind: "google", user: withClaims(map[string]any{"hd": "example.com", "email_verified": false}),
			want: "email_verified", wantKind: ErrDenied},
		{name: "email_verified as a string", kind: "google", user: withClaims(map[string]any{"hd": "example.com", "email_verified": "true"})},
		{name: "Auth0 org mismatch", kind: "auth0", begin: BeginRequest{Organization: "org_beta"},
			want: "requested organization", wantKind: ErrDenied},
		{name: "Auth0 org by name", kind: "auth0", begin: BeginRequest{Organization: "acme"}},
		{name: "Auth0 org not allowed", kind: "auth0", user: withClaims(map[string]any{"org_id": "org_evil"}),
			want: "allowed_organizations", wantKind: ErrDenied},
		{name: "Auth0 member of no org", kind: "auth0", user: providertest.DefaultUser(),
			want: "allowed_organizations", wantKind: ErrDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, fake := startKind(t, tc.kind, func(o *providertest.Options) {
				if tc.user != nil {
					o.User = tc.user
				}
			})
			if tc.hook != nil {
				fake.SetIDTokenHook(func(d *providertest.TokenDraft) { tc.hook(fake, d) })
			}
			waitKeys(t, p)
			if n := fake.JWKSFetches(); n != 1 {
				t.Fatalf("JWKS fetches before the sign-in = %d, want 1", n)
			}
			_, err := signIn(t, p, tc.begin)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			wantKind := tc.wantKind
			if wantKind == nil {
				wantKind = ErrInvalidResponse
			}
			var ue *UserError
			if err == nil || !errors.Is(err, wantKind) || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) || ue.Message == "" {
				t.Fatalf("want %v containing %q, got %v", wantKind, tc.want, err)
			}
			if got := fake.JWKSFetches() - 1; got != tc.refetches {
				t.Fatalf("JWKS refetches = %d, want %d", got, tc.refetches)
			}
		})
	}
}

func claim(name string, v any) func(*providertest.Server, *providertest.TokenDraft) {
	return func(_ *providertest.Server, d *providertest.TokenDraft) {
		if v == nil {
			delete(d.Claims, name)
		} else {
			d.Claims[name] = v
		}
	}
}

func header(name string, v any) func(*providertest.Server, *providertest.TokenDraft) {
	return func(_ *providertest.Server, d *providertest.TokenDraft) { d.Header[name] = v }
}

func pemOfKey(f *providertest.Server) []byte {
	der, _ := x509.MarshalPKIXPublicKey(f.PublicKey())
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// waitKeys waits until p holds its upstream's keys: discovery has
// succeeded and the key fetch it starts in the background has completed.
// The fake counts a fetch when the request arrives, so waiting for its
// count alone leaves that fetch in flight: a sign-in would then join it
// instead of refetching, and a JWKS endpoint taken down would fail it.
func waitKeys(t testing.TB, p Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := oidcOf(p).ready(ctx)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	waitKeySet(t, d.keys)
}

// oidcOf returns the OpenID Connect provider behind p, whether or not it
// is wrapped for upstream logout.
func oidcOf(p Provider) *oidcProvider {
	if lp, ok := p.(*oidcLogoutProvider); ok {
		return lp.oidcProvider
	}
	return p.(*oidcProvider)
}

// waitKeySet waits until no fetch of ks is in flight and ks holds keys.
func waitKeySet(t testing.TB, ks *keySet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ks.Wait(ctx); err != nil {
		t.Fatalf("the key set fetched no keys: %v", err)
	}
}

// TestCallbackRefusals: what the callback itself may carry.
func TestCallbackRefusals(t *testing.T) {
	p, fake := startKind(t, "oidc", nil)
	ctx := context.Background()
	ch, err := p.Begin(ctx, BeginRequest{State: "s", CallbackURL: oidcTestCallback})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		query, saved string
		want         error
	}{
		"upstream error":      {query: "error=access_denied&state=s", saved: ch.Saved, want: ErrCancelled},
		"another issuer":      {query: "code=x&state=s&iss=https%3A%2F%2Fevil.example", saved: ch.Saved, want: ErrInvalidResponse},
		"no code":             {query: "state=s", saved: ch.Saved, want: ErrInvalidResponse},
		"no login state":      {query: "code=x&state=s", saved: "", want: ErrInvalidResponse},
		"code never issued":   {query: "code=forged&state=s&iss=" + url.QueryEscape(fake.Issuer), saved: ch.Saved, want: ErrInvalidResponse},
		"garbage login state": {query: "code=x&state=s", saved: "{not json", want: ErrInvalidResponse},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, oidcTestCallback+"?"+tc.query, nil)
			_, err := p.Complete(ctx, CompleteRequest{HTTP: r, CallbackURL: oidcTestCallback, Saved: tc.saved})
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "forged") {
				t.Fatalf("the code leaks into the error: %v", err)
			}
		})
	}
}

// TestOIDCPreferredUsername: the username is the preferred_username
// claim, or the claim `claims.username` names, in every OpenID Connect
// kind; a missing, oversized or control-character one is no username
// (never cut short).
func TestOIDCPreferredUsername(t *testing.T) {
	for _, tc := range []struct {
		name, kind, yaml string
		claims           map[string]any
		want             string
	}{
		{name: "oidc preferred_username", kind: "oidc", claims: map[string]any{"preferred_username": "ada@corp.example"}, want: "ada@corp.example"},
		{name: "google has none", kind: "google", want: ""},
		{name: "auth0 preferred_username", kind: "auth0", claims: map[string]any{"preferred_username": "ada"}, want: "ada"},
		{name: "configured claim", kind: "oidc", yaml: "claims: {groups: groups, username: login}\n",
			claims: map[string]any{"login": "alovelace", "preferred_username": "ignored"}, want: "alovelace"},
		{name: "configured claim absent falls back", kind: "oidc", yaml: "claims: {groups: groups, username: login}\n",
			claims: map[string]any{"preferred_username": "ada"}, want: "ada"},
		{name: "trimmed", kind: "oidc", claims: map[string]any{"preferred_username": "  ada  "}, want: "ada"},
		{name: "oversized dropped", kind: "oidc", claims: map[string]any{"preferred_username": strings.Repeat("a", MaxUsernameLen+1)}, want: ""},
		{name: "control character dropped", kind: "oidc", claims: map[string]any{"preferred_username": "ada\nadmin"}, want: ""},
		{name: "not a string", kind: "oidc", claims: map[string]any{"preferred_username": 42}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := fixtures[tc.kind]
			opts := fx.opts
			opts.User = maps.Clone(opts.User)
			maps.Copy(opts.User, tc.claims)
			fake := providertest.New(t, opts)
			settings := fx.yaml(fake)
			if tc.yaml != "" {
				settings = strings.Replace(settings, "claims: {groups: groups}\n", tc.yaml, 1)
			}
			id, err := signIn(t, startProvider(t, fx.typ, settings, Env{}), BeginRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if id.Username != tc.want {
				t.Fatalf("username = %q, want %q", id.Username, tc.want)
			}
		})
	}
}
