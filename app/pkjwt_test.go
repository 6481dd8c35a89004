package app_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/oauth"
)

// assertionKey is a private key a client signs its assertions with.
type assertionKey struct {
	key crypto.Signer
	kid string
	alg jose.SignatureAlgorithm
}

func newRSAKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) assertionKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return assertionKey{k, kid, alg}
}

func newECKey(t *testing.T, kid string) assertionKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return assertionKey{k, kid, jose.ES256}
}

func newEdKey(t *testing.T, kid string) assertionKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return assertionKey{k, kid, jose.EdDSA}
}

// jwksOf is the public JWKS document of keys, as a client registers it.
func jwksOf(t *testing.T, keys ...assertionKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign makes a compact JWS of claims with k (go-jose, as a Go client does).
func (k assertionKey) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertionClaims are valid claims of a client assertion for client.
func assertionClaims(client string, aud any) map[string]any {
	now := time.Now()
	return map[string]any{"iss": client, "sub": client, "aud": aud, "iat": now.Unix(),
		"exp": now.Add(2 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(randomBytes(16))}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// assertionForm is the client authentication part of a form.
func assertionForm(form url.Values, assertion string) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("client_assertion_type", oauth.ClientAssertionType)
	out.Set("client_assertion", assertion)
	return out
}

// keyWorld is a Gatehouse with private_key_jwt clients: svc-key
// registers its keys inline (RSA with RS256 and PS256, EC P-256 and
// Ed25519), svc-uri by a jwks_uri served by a test server, and
// app-secret is an ordinary secret client.
type keyWorld struct {
	s                   *apptest.Server
	rs, ps, ec, ed      assertionKey // svc-key's
	uriKey, uriNext     assertionKey // svc-uri's: published, then rotated to
	jwksHits            atomic.Int32
	jwksDoc             atomic.Value // string: what the jwks_uri serves
	tokenURL, issuerURL string
}

func startKeyWorld(t *testing.T, pg bool) *keyWorld {
	t.Helper()
	w := &keyWorld{}
	w.rs, w.ec, w.ed = newRSAKey(t, "rsa-1", jose.RS256), newECKey(t, "ec-1"), newEdKey(t, "ed-1")
	w.ps = assertionKey{w.rs.key, w.rs.kid, jose.PS256}
	w.uriKey, w.uriNext = newECKey(t, "uri-1"), newECKey(t, "uri-2")
	w.jwksDoc.Store(jwksOf(t, w.uriKey))
	keysSrv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.jwksHits.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(w.jwksDoc.Load().(string)))
	}))
	t.Cleanup(keysSrv.Close)
	yaml := `
clients:
  - id: svc-key
    token_endpoint_auth_method: private_key_jwt
    jwks: ` + jwksOf(t, w.rs, w.ec, w.ed) + `
    grant_types: [authorization_code, refresh_token, client_credentials]
    redirect_uris: [http://127.0.0.1:9/k/callback]
  - id: svc-uri
    token_endpoint_auth_method: private_key_jwt
    jwks_uri: ` + keysSrv.URL + `/jwks.json
    grant_types: [client_credentials]
  - id: app-secret
    secret: app-secret-0123456789
    grant_types: [client_credentials]
`
	w.s = apptest.Start(t, apptest.Options{YAML: yaml, Postgres: pg})
	w.tokenURL, w.issuerURL = w.s.URL+"/auth/token", w.s.URL
	return w
}

// TestPrivateKeyJWTClient: a private_key_jwt client authenticates with
// go-jose-built assertions through golang.org/x/oauth2 (client
// credentials, the code flow's exchange, a refresh) and at revocation
// and introspection, with RS256, PS256, ES256 and EdDSA keys, aud the
// token endpoint, the issuer or an array holding one; discovery
// advertises the method and its algorithms.
func TestPrivateKeyJWTClient(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := startKeyWorld(t, pg)
			ctx := context.Background()

			var disc map[string]any
			resp, err := http.Get(w.s.URL + "/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			_ = json.NewDecoder(resp.Body).Decode(&disc)
			resp.Body.Close()
			for _, field := range []string{"token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported",
				"introspection_endpoint_auth_methods_supported"} {
				if !slices.Contains(toStrings(disc[field]), "private_key_jwt") {
					t.Errorf("discovery %s = %v, want private_key_jwt", field, disc[field])
				}
			}
			if algs := toStrings(disc["token_endpoint_auth_signing_alg_values_supported"]); !slices.Equal(algs, []string{"RS256", "PS256", "ES256", "EdDSA"}) {
				t.Errorf("token_endpoint_auth_signing_alg_values_supported = %v", algs)
			}

			// client_credentials with x/oauth2's clientcredentials, one
			// assertion per key and audience form.
			for _, tc := range []struct {
				key assertionKey
				aud any
			}{
				{w.rs, w.tokenURL}, {w.ps, w.issuerURL}, {w.ec, []string{"https://other.example", w.tokenURL}}, {w.ed, []string{w.issuerURL}},
			} {
				cc := clientcredentials.Config{ClientID: "svc-key", TokenURL: w.tokenURL, AuthStyle: oauth2.AuthStyleInParams,
					EndpointParams: url.Values{"client_assertion_type": {oauth.ClientAssertionType},
						"client_assertion": {tc.key.sign(t, assertionClaims("svc-key", tc.aud))}}}
				tok, err := cc.Token(ctx)
				if err != nil || tok.AccessToken == "" {
					t.Fatalf("client_credentials with %s (aud %v): %v", tc.key.alg, tc.aud, err)
				}
			}

			// The code flow's exchange, then a refresh, with x/oauth2.
			conf := &oauth2.Config{ClientID: "svc-key", RedirectURL: "http://127.0.0.1:9/k/callback", Scopes: []string{"openid", "email", "offline_access"},
				Endpoint: oauth2.Endpoint{AuthURL: w.s.URL + "/auth/login", TokenURL: w.tokenURL, AuthStyle: oauth2.AuthStyleInParams}}
			verifier := oauth2.GenerateVerifier()
			target := newBrowser(t).signIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")), "ada@example.com")
			tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier),
				oauth2.SetAuthURLParam("client_assertion_type", oauth.ClientAssertionType),
				oauth2.SetAuthURLParam("client_assertion", w.ec.sign(t, assertionClaims("svc-key", w.issuerURL))))
			if err != nil || tok.RefreshToken == "" {
				t.Fatalf("code exchange with an assertion: %v (%+v)", err, tok)
			}
			status, out := formPost(t, w.tokenURL, assertionForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}},
				w.ed.sign(t, assertionClaims("svc-key", w.tokenURL))), "", "")
			refreshed, _ := out["refresh_token"].(string)
			if status != 200 || refreshed == "" {
				t.Fatalf("refresh with an assertion = %d %v", status, out)
			}

			// Introspection and revocation authenticate the same way.
			introspectKey := func(token string) map[string]any {
				status, out := formPost(t, w.s.URL+"/auth/introspect", assertionForm(url.Values{"token": {token}},
					w.rs.sign(t, assertionClaims("svc-key", w.tokenURL))), "", "")
				if status != 200 {
					t.Fatalf("introspect with an assertion = %d %v", status, out)
				}
				return out
			}
			if got := introspectKey(refreshed); got["active"] != true || got["client_id"] != "svc-key" {
				t.Fatalf("introspection of the refresh token = %v", got)
			}
			status, out = formPost(t, w.s.URL+"/auth/revoke", assertionForm(url.Values{"token": {refreshed}},
				w.ps.sign(t, assertionClaims("svc-key", w.issuerURL))), "", "")
			if status != 200 {
				t.Fatalf("revoke with an assertion = %d %v", status, out)
			}
			if got := introspectKey(refreshed); got["active"] != false {
				t.Fatalf("a revoked refresh token is still active: %v", got)
			}

			// The jwks_uri client: its keys are fetched once.
			status, out = formPost(t, w.tokenURL, assertionForm(url.Values{"grant_type": {"client_credentials"}},
				w.uriKey.sign(t, assertionClaims("svc-uri", w.tokenURL))), "", "")
			if status != 200 {
				t.Fatalf("client_credentials of the jwks_uri client = %d %v", status, out)
			}
			if n := w.jwksHits.Load(); n != 1 {
				t.Fatalf("the jwks_uri was fetched %d times, want 1", n)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestPrivateKeyJWTRefusals: at the token, revocation and introspection
// endpoints, every forged, stale, misdirected or wrongly presented
// assertion is invalid_client (401), as is a secret from a
// private_key_jwt client and an assertion from a secret client; a jti
// is used once (of concurrent uses exactly one wins); a kid rotated in
// at the jwks_uri is not fetched again within the throttle; the audit
// records the failures without the assertion.
func TestPrivateKeyJWTRefusals(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := startKeyWorld(t, pg)
			valid := func(mut func(map[string]any)) map[string]any {
				c := assertionClaims("svc-key", w.tokenURL)
				if mut != nil {
					mut(c)
				}
				return c
			}
			now := time.Now()
			pubDER, _ := x509.MarshalPKIXPublicKey(w.rs.key.Public())
			pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
			hmacWithPublic := func(secret []byte) string {
				s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithHeader("kid", w.rs.kid))
				if err != nil {
					t.Fatal(err)
				}
				payload, _ := json.Marshal(valid(nil))
				obj, _ := s.Sign(payload)
				out, _ := obj.CompactSerialize()
				return out
			}
			b64 := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
			otherKey := newRSAKey(t, "rsa-1", jose.RS256) // svc-key's kid, another key

			cases := []struct {
				name       string
				form       func() url.Values // client authentication fields
				user, pass string
				status     int
			}{
				{"expired", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) {
						c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-6*time.Minute).Unix()
					})))
				}, "", "", 401},
				{"lifetime too long", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() })))
				}, "", "", 401},
				{"lifetime too long after iat", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["iat"] = now.Add(-10 * time.Minute).Unix() })))
				}, "", "", 401},
				{"no exp", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { delete(c, "exp") })))
				}, "", "", 401},
				{"not yet valid", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["nbf"] = now.Add(3 * time.Minute).Unix() })))
				}, "", "", 401},
				{"no jti", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { delete(c, "jti") })))
				}, "", "", 401},
				{"wrong audience", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["aud"] = "https://evil.example/token" })))
				}, "", "", 401},
				{"audience of the revocation endpoint", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["aud"] = []string{w.s.URL + "/auth/revoke"} })))
				}, "", "", 401},
				{"wrong iss", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["iss"] = "svc-uri" })))
				}, "", "", 401},
				{"wrong sub", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["sub"] = "svc-uri" })))
				}, "", "", 401},
				{"client_id differs from iss and sub", func() url.Values {
					f := assertionForm(nil, w.rs.sign(t, valid(nil)))
					f.Set("client_id", "svc-uri")
					return f
				}, "", "", 401},
				{"alg none", func() url.Values {
					return assertionForm(nil, b64(map[string]string{"alg": "none", "typ": "JWT"})+"."+b64(valid(nil))+".")
				}, "", "", 401},
				{"HS256 keyed with the public key (PEM)", func() url.Values { return assertionForm(nil, hmacWithPublic(pubPEM)) }, "", "", 401},
				{"HS256 keyed with the public key (DER)", func() url.Values { return assertionForm(nil, hmacWithPublic(pubDER)) }, "", "", 401},
				{"unknown kid", func() url.Values {
					return assertionForm(nil, assertionKey{w.rs.key, "rsa-9", jose.RS256}.sign(t, valid(nil)))
				}, "", "", 401},
				{"tampered signature", func() url.Values {
					a := w.rs.sign(t, valid(nil))
					parts := strings.Split(a, ".")
					sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
					sig[10] ^= 0x01
					return assertionForm(nil, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig))
				}, "", "", 401},
				{"tampered payload", func() url.Values {
					parts := strings.Split(w.rs.sign(t, valid(nil)), ".")
					return assertionForm(nil, parts[0]+"."+b64(valid(func(c map[string]any) { c["jti"] = "forged" }))+"."+parts[2])
				}, "", "", 401},
				{"another client's key", func() url.Values { return assertionForm(nil, w.uriKey.sign(t, valid(nil))) }, "", "", 401},
				{"another key under the client's kid", func() url.Values { return assertionForm(nil, otherKey.sign(t, valid(nil))) }, "", "", 401},
				{"ES256 header over an RSA key's kid", func() url.Values {
					return assertionForm(nil, assertionKey{w.ec.key, w.rs.kid, jose.ES256}.sign(t, valid(nil)))
				}, "", "", 401},
				{"oversized assertion", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, valid(func(c map[string]any) { c["pad"] = strings.Repeat("x", oauth.MaxClientAssertionBytes) })))
				}, "", "", 401},
				{"unsupported assertion type", func() url.Values {
					f := assertionForm(nil, w.rs.sign(t, valid(nil)))
					f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
					return f
				}, "", "", 401},
				{"secret from a private_key_jwt client (basic)", func() url.Values { return url.Values{} }, "svc-key", "app-secret-0123456789", 401},
				{"secret from a private_key_jwt client (post)", func() url.Values {
					return url.Values{"client_id": {"svc-key"}, "client_secret": {"app-secret-0123456789"}}
				}, "", "", 401},
				{"private_key_jwt client naming itself only", func() url.Values { return url.Values{"client_id": {"svc-key"}} }, "", "", 401},
				{"assertion from a secret client", func() url.Values {
					return assertionForm(nil, w.rs.sign(t, assertionClaims("app-secret", w.tokenURL)))
				}, "", "", 401},
				{"assertion and a secret together", func() url.Values { return assertionForm(nil, w.rs.sign(t, valid(nil))) },
					"svc-key", "app-secret-0123456789", 400},
				{"assertion without its type", func() url.Values {
					f := assertionForm(nil, w.rs.sign(t, valid(nil)))
					f.Del("client_assertion_type")
					return f
				}, "", "", 400},
			}
			endpoints := map[string]url.Values{
				"/auth/token":      {"grant_type": {"client_credentials"}},
				"/auth/revoke":     {"token": {"some-token"}},
				"/auth/introspect": {"token": {"some-token"}},
			}
			for _, tc := range cases {
				for path, params := range endpoints {
					t.Run(tc.name+" at "+path, func(t *testing.T) {
						form := tc.form()
						for k, v := range params {
							form[k] = v
						}
						status, out := formPost(t, w.s.URL+path, form, tc.user, tc.pass)
						want := map[int]string{401: "invalid_client", 400: "invalid_request"}[tc.status]
						if status != tc.status || out["error"] != want {
							t.Fatalf("= %d %v, want %d %s", status, out, tc.status, want)
						}
					})
				}
			}

			t.Run("replayed jti", func(t *testing.T) {
				form := assertionForm(url.Values{"grant_type": {"client_credentials"}}, w.ec.sign(t, valid(nil)))
				if status, out := formPost(t, w.tokenURL, form, "", ""); status != 200 {
					t.Fatalf("first use = %d %v", status, out)
				}
				for path := range endpoints {
					if status, out := formPost(t, w.s.URL+path, form, "", ""); status != 401 || out["error"] != "invalid_client" {
						t.Fatalf("replay at %s = %d %v", path, status, out)
					}
				}
			})

			t.Run("concurrent uses of one assertion: one wins", func(t *testing.T) {
				form := assertionForm(url.Values{"grant_type": {"client_credentials"}}, w.ed.sign(t, valid(nil)))
				var won, refused atomic.Int32
				var wg sync.WaitGroup
				for range 6 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						switch status, _ := formPost(t, w.tokenURL, form, "", ""); status {
						case 200:
							won.Add(1)
						case 401:
							refused.Add(1)
						}
					}()
				}
				wg.Wait()
				if won.Load() != 1 || refused.Load() != 5 {
					t.Fatalf("%d uses won, %d refused; want 1 and 5", won.Load(), refused.Load())
				}
			})

			t.Run("a kid rotated in at the jwks_uri waits for the throttle", func(t *testing.T) {
				uriForm := func(k assertionKey) url.Values {
					return assertionForm(url.Values{"grant_type": {"client_credentials"}}, k.sign(t, assertionClaims("svc-uri", w.tokenURL)))
				}
				if status, out := formPost(t, w.tokenURL, uriForm(w.uriKey), "", ""); status != 200 {
					t.Fatalf("published key = %d %v", status, out)
				}
				w.jwksDoc.Store(jwksOf(t, w.uriNext))
				for range 3 {
					if status, out := formPost(t, w.tokenURL, uriForm(w.uriNext), "", ""); status != 401 {
						t.Fatalf("a kid unknown within the throttle = %d %v", status, out)
					}
				}
				if n := w.jwksHits.Load(); n != 1 {
					t.Fatalf("the jwks_uri was fetched %d times within the throttle, want 1", n)
				}
			})

			t.Run("the audit records failures, never the assertion", func(t *testing.T) {
				w.s.OAuth.FlushClientAuthFailures(context.Background(), true)
				events := auditEvents(t, w.s, oauth.AuditClientAuthFailed)
				seen := false
				for _, e := range events {
					raw, _ := json.Marshal(e)
					if strings.Contains(string(raw), "eyJ") {
						t.Fatalf("an audit event holds a JWS: %s", raw)
					}
					seen = seen || e.ClientID == "svc-key"
				}
				if !seen {
					t.Fatalf("no failed authentication of svc-key audited: %+v", events)
				}
			})
		})
	}
}
