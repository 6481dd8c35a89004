package providers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

func exchange(p Provider, token, typ string) (*Identity, error) {
	return p.(TokenExchanger).ExchangeToken(context.Background(), ExchangeRequest{SubjectToken: token, SubjectTokenType: typ})
}

// TestTokenExchange: upstream tokens presented directly are validated
// against the provider like a sign-in, with the audience rules of
// exchange; refusals carry a reason safe for the client.
func TestTokenExchange(t *testing.T) {
	auth0, a0 := startKind(t, "auth0", nil)
	google, g := startKind(t, "google", nil)
	generic, o := startKind(t, "oidc", nil)
	stranger := providertest.New(t, providertest.Options{IssuerPath: "/"})
	now := time.Now().Unix()
	const api = "https://api.example.com"
	for _, tc := range []struct {
		name  string
		p     Provider
		token string
		typ   string
		// want is a substring of the refusal ("" means accepted).
		want       string
		wantGroups []string
	}{
		{name: "Auth0 access token for the API", p: auth0, token: a0.AccessToken(api, nil), typ: TokenTypeAccessToken,
			wantGroups: []string{"auth0:org:org_acme"}},
		{name: "Auth0 ID token", p: auth0, token: a0.IDToken(nil), typ: TokenTypeIDToken,
			wantGroups: []string{"auth0:group:admin", "auth0:org:org_acme"}},
		{name: "Google ID token", p: google, token: g.IDToken(nil), typ: TokenTypeIDToken,
			wantGroups: []string{"google:domain:example.com"}},
		{name: "generic ID token", p: generic, token: o.IDToken(nil), typ: TokenTypeIDToken,
			wantGroups: []string{"oidc:group:eng", "oidc:group:ops"}},
		{name: "generic RFC 9068 access token", p: generic, typ: TokenTypeAccessToken,
			token: o.AccessToken(api, map[string]any{"azp": nil, "client_id": o.ClientID})},

		{name: "access token for another audience", p: auth0, token: a0.AccessToken("https://other-api.example.com", nil),
			typ: TokenTypeAccessToken, want: "another audience"},
		{name: "access token of another issuer", p: auth0, token: stranger.AccessToken(api, nil), typ: TokenTypeAccessToken,
			want: "another issuer"},
		{name: "expired access token", p: auth0, token: a0.AccessToken(api, map[string]any{"exp": now - 600}),
			typ: TokenTypeAccessToken, want: "expired"},
		{name: "ID token of another issuer", p: google, token: stranger.IDToken(map[string]any{"aud": g.ClientID}),
			typ: TokenTypeIDToken, want: "another issuer"},
		{name: "expired ID token", p: google, token: g.IDToken(map[string]any{"exp": now - 600}), typ: TokenTypeIDToken, want: "expired"},
		{name: "ID token for another client", p: google, token: g.IDToken(map[string]any{"aud": "another-app", "azp": nil}),
			typ: TokenTypeIDToken, want: "another audience"},
		{name: "ID token presented as an access token", p: auth0, token: a0.IDToken(nil), typ: TokenTypeAccessToken,
			want: "another audience"},
		{name: "access token presented as an ID token", p: auth0, token: a0.AccessToken(api, nil), typ: TokenTypeIDToken,
			want: `typ "at+jwt"`},
		{name: "access token of another application", p: auth0, token: a0.AccessToken(api, map[string]any{"azp": "another-app"}),
			typ: TokenTypeAccessToken, want: "(azp)"},
		{name: "access token naming no application", p: auth0, token: a0.AccessToken(api, map[string]any{"azp": nil}),
			typ: TokenTypeAccessToken, want: "(azp)"},
		{name: "machine-to-machine token", p: auth0, token: a0.AccessToken(api, map[string]any{"gty": "client-credentials"}),
			typ: TokenTypeAccessToken, want: "machine-to-machine"},
		{name: "access token of another organization", p: auth0, token: a0.AccessToken(api, map[string]any{"org_id": "org_evil"}),
			typ: TokenTypeAccessToken, want: "not allowed"},
		{name: "Google access tokens are not JWTs", p: google, token: g.AccessToken(api, nil), typ: TokenTypeAccessToken,
			want: "ID tokens only"},
		{name: "alg none", p: auth0, token: providertest.ForgeUnsigned(map[string]any{"iss": a0.Issuer, "sub": "x", "aud": api}),
			typ: TokenTypeAccessToken, want: `"none"`},
		{name: "HS256 with the public key", p: auth0, typ: TokenTypeAccessToken, want: `"HS256"`,
			token: providertest.ForgeHS256(pemOfKey(a0), a0.KeyID(), map[string]any{"iss": a0.Issuer, "sub": "x", "aud": api, "azp": a0.ClientID, "exp": now + 600})},
		{name: "garbage", p: auth0, token: "not-a-token", typ: TokenTypeAccessToken, want: "not a signed JWT"},
		{name: "unsupported token type", p: auth0, token: a0.IDToken(nil), typ: "urn:ietf:params:oauth:token-type:saml2",
			want: "unsupported subject_token_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := exchange(tc.p, tc.token, tc.typ)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.Subject != "upstream-user-1" || id.Provider != "up" || !slices.Equal(id.Groups, tc.wantGroups) {
					t.Fatalf("identity = %+v", id)
				}
				return
			}
			var ue *UserError
			if !errors.As(err, &ue) || !strings.Contains(ue.Message, tc.want) {
				t.Fatalf("want a refusal saying %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatal("the token leaks into the error")
			}
		})
	}
}

// TestTenThousandExchangesOneJWKSFetch: with a warm key set, 10,000
// exchanges from 8 goroutines cost the upstream exactly one JWKS fetch
// (the first, at start).
func TestTenThousandExchangesOneJWKSFetch(t *testing.T) {
	p, fake := startKind(t, "auth0", nil)
	tok := fake.AccessToken("https://api.example.com", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 10000 / 8 {
				if _, err := exchange(p, tok, TokenTypeAccessToken); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := fake.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS fetches over 10,000 exchanges = %d, want 1", n)
	}
}

// TestKeyRotationUpstream: the upstream rotates its key mid-run; the
// first token with the new kid costs exactly one refetch, however many
// arrive at once, and the old key keeps working while it is published.
func TestKeyRotationUpstream(t *testing.T) {
	p, fake := startKind(t, "auth0", nil)
	const api = "https://api.example.com"
	before := fake.AccessToken(api, nil)
	if _, err := signIn(t, p, BeginRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(p, before, TokenTypeAccessToken); err != nil {
		t.Fatal(err)
	}
	if n := fake.JWKSFetches(); n != 1 {
		t.Fatalf("fetches before rotation = %d", n)
	}
	fake.RotateKey(true)
	after := fake.AccessToken(api, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := exchange(p, after, TokenTypeAccessToken); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := signIn(t, p, BeginRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := exchange(p, before, TokenTypeAccessToken); err != nil {
		t.Fatalf("a token of the previous, still published key: %v", err)
	}
	if n := fake.JWKSFetches(); n != 2 {
		t.Fatalf("fetches after rotation = %d, want exactly one refetch", n)
	}
}

// TestJWKSDownLoginsContinue: while the JWKS endpoint fails, cached keys
// keep verifying; a token with a key nobody can fetch is "unavailable",
// not "invalid"; once the endpoint is back, the new key is picked up.
func TestJWKSDownLoginsContinue(t *testing.T) {
	p, fake := startKind(t, "oidc", nil)
	waitKeys(t, p)
	fake.SetJWKSDown(true)
	for i := range 5 {
		if _, err := signIn(t, p, BeginRequest{}); err != nil {
			t.Fatalf("sign-in %d with the JWKS endpoint down: %v", i, err)
		}
		if _, err := exchange(p, fake.IDToken(nil), TokenTypeIDToken); err != nil {
			t.Fatalf("exchange %d with the JWKS endpoint down: %v", i, err)
		}
	}
	if n := fake.JWKSFetches(); n != 1 {
		t.Fatalf("fetches = %d: cached keys should have sufficed", n)
	}
	fake.RotateKey(false)
	_, err := signIn(t, p, BeginRequest{})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidResponse) {
		t.Fatalf("a new key while the endpoint is down: %v", err)
	}
	_, err = exchange(p, fake.IDToken(nil), TokenTypeIDToken)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("exchange with a new key while the endpoint is down: %v", err)
	}
	if n := fake.JWKSFetches(); n != 2 {
		t.Fatalf("fetches = %d: one refetch, then the refetch interval holds", n)
	}
}

// TestDiscoveryRetriedInBackground: an upstream down at start-up does
// not fail construction; the provider is unavailable (and not ready)
// until discovery succeeds.
func TestDiscoveryRetriedInBackground(t *testing.T) {
	first := discoveryFirstRetry
	discoveryFirstRetry = 20 * time.Millisecond
	t.Cleanup(func() { discoveryFirstRetry = first })
	fake := providertest.New(t, fixtures["oidc"].opts)
	fake.SetDiscoveryDown(true)
	p, err := New("oidc", "up", yamlSettings(fixtures["oidc"].yaml(fake)), Env{})
	if err != nil {
		t.Fatalf("construction must not depend on the upstream: %v", err)
	}
	t.Cleanup(func() { _ = p.(interface{ Close() error }).Close() })
	if _, err := p.Begin(context.Background(), BeginRequest{State: "s", CallbackURL: oidcTestCallback}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Begin before discovery = %v", err)
	}
	if err := p.(ReadinessChecker).Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Ready before discovery = %v", err)
	}
	if _, err := exchange(p, fake.IDToken(nil), TokenTypeIDToken); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("exchange before discovery = %v", err)
	}
	fake.SetDiscoveryDown(false)
	waitReady(t, p)
	if _, err := signIn(t, p, BeginRequest{}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkExchangeTokenValidation measures the provider's part of a
// token exchange with a warm key set: parsing, RS256 signature, claim
// checks and the identity.
//
//	go test -run '^$' -bench ExchangeTokenValidation ./providers/
func BenchmarkExchangeTokenValidation(b *testing.B) {
	p, fake := startKind(b, "auth0", nil)
	tok := fake.AccessToken("https://api.example.com", nil)
	if _, err := exchange(p, tok, TokenTypeAccessToken); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := exchange(p, tok, TokenTypeAccessToken); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(fake.JWKSFetches()), "jwks-fetches")
}

// TestNamespacedIdentityClaims: Auth0 access tokens carry no profile
// unless an Action adds namespaced claims; configured claim names read
// them, and sign-ins (standard claims in the ID token) still work.
func TestNamespacedIdentityClaims(t *testing.T) {
	fake := providertest.New(t, providertest.Options{IssuerPath: "/"})
	p := startProvider(t, "auth0", "domain: "+strings.TrimPrefix(fake.URL, "http://")+"\nclient_id: "+fake.ClientID+
		"\nclient_secret: "+fake.ClientSecret+"\ninsecure_allow_http: true\naudience: https://api.example.com\n"+
		"claims: {email: \"https://gh.example/email\", email_verified: \"https://gh.example/email_verified\", name: \"https://gh.example/name\"}\n", Env{})
	id, err := exchange(p, fake.AccessToken("https://api.example.com", map[string]any{"https://gh.example/email": "Grace@Example.com",
		"https://gh.example/email_verified": true, "https://gh.example/name": "Grace Hopper"}), TokenTypeAccessToken)
	if err != nil || id.Email != "grace@example.com" || !id.EmailVerified || id.Name != "Grace Hopper" {
		t.Fatalf("identity from namespaced claims = %+v, %v", id, err)
	}
	id, err = exchange(p, fake.AccessToken("https://api.example.com", nil), TokenTypeAccessToken)
	if err != nil || id.Email != "" || id.EmailVerified {
		t.Fatalf("identity of a bare access token = %+v, %v", id, err)
	}
	id, err = signIn(t, p, BeginRequest{})
	if err != nil || id.Email != "ada@example.com" || !id.EmailVerified || id.Name != "Ada Lovelace" {
		t.Fatalf("sign-in identity = %+v, %v", id, err)
	}
}
