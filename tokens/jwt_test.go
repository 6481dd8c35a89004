package tokens

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// ktRaw assembles a compact JWS from a header and claims, signed by sign
// (nil for an empty signature): to forge what a real signer never makes.
func ktRaw(t testing.TB, header map[string]any, claims any, sign func(input []byte) []byte) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func ktHMAC(secret []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write(in)
		return mac.Sum(nil)
	}
}

// ktSignWith signs claims with any key through go-jose, with extra headers.
func ktSignWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, headers map[jose.HeaderKey]any, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: headers}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ktSegment replaces one of a token's three segments.
func ktSegment(tok string, i int, f func([]byte) []byte) string {
	parts := strings.Split(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[i])
	parts[i] = base64.RawURLEncoding.EncodeToString(f(raw))
	return strings.Join(parts, ".")
}

func TestVerifyAccessToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		store := models.NewStore(db)
		for _, alg := range ktAlgs {
			t.Run(alg, func(t *testing.T) {
				m, clock := ktFresh(t, store, alg)
				stranger := ktNew(t, models.NewStore(dbtest.SQLite(t)), alg, clock)
				now := clock.Now()
				e := m.set.Load().keys[0]
				kid := e.kid

				pubDER, err := x509.MarshalPKIXPublicKey(e.mat.public)
				if err != nil {
					t.Fatal(err)
				}
				pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
				attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

				claims := func(mod func(*AccessClaims)) AccessClaims {
					c := ktClaims(now)
					if mod != nil {
						mod(&c)
					}
					return c
				}
				sign := func(mod func(*AccessClaims)) string {
					return ktSign(t, m, claims(mod), TypAccessToken)
				}
				valid := sign(nil)
				atHeader := map[string]any{"alg": alg, "kid": kid, "typ": "at+jwt"}
				withHeader := func(k string, v any) map[string]any {
					h := map[string]any{}
					for hk, hv := range atHeader {
						h[hk] = hv
					}
					h[k] = v
					return h
				}
				typ := func(v string) map[jose.HeaderKey]any { return map[jose.HeaderKey]any{jose.HeaderType: v} }
				attackerJWK := jose.JSONWebKey{Key: attacker.Public()}
				// The attacker signs ES256: other managers refuse the alg,
				// an ES256 one the signature (the embedded jwk is ignored).
				attackerReason := "signing algorithm not accepted"
				if alg == "ES256" {
					attackerReason = "bad signature"
				}

				for _, tc := range []struct {
					name   string
					token  string
					reason string // "" = valid
				}{
					{"valid", valid, ""},
					{"exp within skew", sign(func(c *AccessClaims) { c.Expiry = now.Unix() - 29 }), ""},
					{"nbf within skew", sign(func(c *AccessClaims) { c.NotBefore = now.Unix() + 29 }), ""},
					{"typ with media type prefix", ktSignWith(t, e.mat.alg, e.mat.private, kid, typ("application/at+JWT"), claims(nil)), ""},

					{"alg none", ktRaw(t, withHeader("alg", "none"), claims(nil), nil), "signing algorithm not accepted"},
					{"alg none with signature", ktRaw(t, withHeader("alg", "none"), claims(nil), ktHMAC(pubDER)), "signing algorithm not accepted"},
					{"HS256 keyed with the public key PEM", ktRaw(t, withHeader("alg", "HS256"), claims(nil), ktHMAC(pubPEM)), "signing algorithm not accepted"},
					{"HS256 keyed with the public key DER", ktRaw(t, withHeader("alg", "HS256"), claims(nil), ktHMAC(pubDER)), "signing algorithm not accepted"},
					{"HS256 keyed with the public JWK", ktRaw(t, withHeader("alg", "HS256"), claims(nil), ktHMAC([]byte(e.mat.publicJWK))), "signing algorithm not accepted"},
					{"unknown kid", ktSign(t, stranger, claims(nil), TypAccessToken), "unknown key id"},
					{"no kid", ktSignWith(t, e.mat.alg, e.mat.private, "", typ("at+jwt"), claims(nil)), "unknown key id"},
					{"our kid, attacker's key and embedded jwk", ktSignWith(t, jose.ES256, attacker, kid, map[jose.HeaderKey]any{"typ": "at+jwt", "jwk": attackerJWK}, claims(nil)), attackerReason},
					{"tampered payload", ktSegment(valid, 1, func(b []byte) []byte {
						return []byte(strings.Replace(string(b), `"roles":["admin"`, `"roles":["owner"`, 1))
					}), "bad signature"},
					{"tampered signature", ktSegment(valid, 2, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }), "bad signature"},
					{"signature removed", ktSegment(valid, 2, func([]byte) []byte { return nil }), "bad signature"},
					{"tampered header", ktSegment(valid, 0, func(b []byte) []byte {
						return []byte(strings.Replace(string(b), `"typ":"at+jwt"`, `"typ":"at+jwt","x":1`, 1))
					}), "bad signature"},
					{"expired", sign(func(c *AccessClaims) { c.Expiry = now.Unix() - 30 }), "expired"},
					{"no exp", sign(func(c *AccessClaims) { c.Expiry = 0 }), "no expiry"},
					{"nbf in the future", sign(func(c *AccessClaims) { c.NotBefore = now.Unix() + 31 }), "not valid yet"},
					{"iat in the future", sign(func(c *AccessClaims) { c.IssuedAt = now.Unix() + 60 }), "issued in the future"},
					{"wrong issuer", sign(func(c *AccessClaims) { c.Issuer = "https://evil.test" }), "wrong issuer"},
					{"issuer with trailing slash", sign(func(c *AccessClaims) { c.Issuer = ktIssuer + "/" }), "wrong issuer"},
					{"ID token", ktSign(t, m, claims(nil), TypIDToken), "typ must be at+jwt"},
					{"no typ", ktSignWith(t, e.mat.alg, e.mat.private, kid, nil, claims(nil)), "typ must be at+jwt"},
					{"typ not a string", ktSignWith(t, e.mat.alg, e.mat.private, kid, map[jose.HeaderKey]any{"typ": 1}, claims(nil)), "typ must be at+jwt"},
					{"claims not an object", ktSign(t, m, []string{"a"}, TypAccessToken), "malformed"},
					{"JSON serialization", `{"payload":"e30","protected":"e30","signature":""}`, "malformed"},
					{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", "malformed"},
					{"four segments", valid + ".x", "malformed"},
					{"not base64", "!!!.@@@.###", "malformed"},
					{"empty", "", "malformed"},
					{"oversized", valid + strings.Repeat("A", jwtMaxLen), "malformed"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						got, err := m.VerifyAccessToken(tc.token, ktIssuer, now)
						if tc.reason == "" {
							if err != nil || got == nil || got.Subject == "" {
								t.Fatalf("rejected: %v", err)
							}
							return
						}
						if err == nil || got != nil {
							t.Fatalf("accepted (claims %+v)", got)
						}
						if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
							t.Fatalf("err = %q, want ErrInvalidToken: …%s", err, tc.reason)
						}
						for _, part := range strings.Split(tc.token, ".") {
							if len(part) > 8 && strings.Contains(err.Error(), part) {
								t.Fatal("error contains part of the token")
							}
						}
					})
				}
			})
		}
	})
}

// TestVerifyMixedAlgorithms: after an algorithm change both keys verify,
// and a token cannot borrow one key's kid with the other's algorithm.
func TestVerifyMixedAlgorithms(t *testing.T) {
	ctx := context.Background()
	store := models.NewStore(dbtest.SQLite(t))
	clock := newKTClock()
	rs := ktNew(t, store, "RS256", clock)
	rsKID := ktActive(t, rs).KID
	long := ktClaims(clock.Now())
	long.Expiry = clock.Now().Add(2 * ktLead).Unix()
	rsTok := ktSign(t, rs, long, TypAccessToken)

	es, err := NewKeyManager(store, ktSecret, ktOptions("ES256", clock))
	if err != nil {
		t.Fatal(err)
	}
	esInfo, err := es.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(ktLead)
	if err := rs.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	esTok := ktSign(t, rs, ktClaims(clock.Now()), TypAccessToken)
	if h := ktHeader(t, esTok); h["alg"] != "ES256" || h["kid"] != esInfo.KID {
		t.Fatalf("after the ES256 key activated: header %v", h)
	}
	for _, tok := range []string{rsTok, esTok} {
		if _, err := rs.VerifyAccessToken(tok, ktIssuer, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Signed with the ES256 key but naming the RS256 key.
	esMat := rs.set.Load().byKID[esInfo.KID].mat
	confused := ktSignWith(t, jose.ES256, esMat.private, rsKID, map[jose.HeaderKey]any{"typ": "at+jwt"}, ktClaims(clock.Now()))
	if _, err := rs.VerifyAccessToken(confused, ktIssuer, clock.Now()); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "algorithm") {
		t.Fatalf("alg/kid confusion: %v", err)
	}
}

func TestSignIDToken(t *testing.T) {
	store := models.NewStore(dbtest.SQLite(t))
	for _, alg := range ktAlgs {
		t.Run(alg, func(t *testing.T) {
			m, clock := ktFresh(t, store, alg)
			now := clock.Now()
			at := ktSign(t, m, ktClaims(now), TypAccessToken)
			idc := IDClaims{
				Issuer: ktIssuer, Subject: "u1", Audience: []string{"spa"}, Expiry: now.Add(time.Hour).Unix(),
				IssuedAt: now.Unix(), AuthTime: now.Unix(), Nonce: "n-0S6_WzA2Mj", AMR: []string{"pwd"}, AuthorizedBy: "spa",
			}
			tok, err := m.SignIDToken(idc, at)
			if err != nil {
				t.Fatal(err)
			}
			h := ktHeader(t, tok)
			if h["typ"] != "JWT" || h["alg"] != alg || h["kid"] != ktActive(t, m).KID {
				t.Fatalf("header %v", h)
			}
			obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			payload, err := obj.Verify(m.JWKS().Keys[0])
			if err != nil {
				t.Fatal(err)
			}
			var got IDClaims
			if err := json.Unmarshal(payload, &got); err != nil {
				t.Fatal(err)
			}
			if got.AtHash == "" || got.AtHash != AtHash(at, alg) || got.Nonce != idc.Nonce || got.AuthTime != idc.AuthTime {
				t.Fatalf("claims %+v", got)
			}
			// An ID token is never accepted as an access token.
			if _, err := m.VerifyAccessToken(tok, ktIssuer, now); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ID token verified as access token: %v", err)
			}
			if _, err := m.Sign(ktClaims(now), ""); err == nil {
				t.Fatal("signed without typ")
			}
		})
	}
}

func TestAtHash(t *testing.T) {
	// OpenID Connect Core 1.0, Appendix A.3 (RS256).
	if got := AtHash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256"); got != "77QmUPtjPfzWtF2AnpK9RQ" {
		t.Fatalf("RS256 at_hash = %s", got)
	}
	tok := "an-access-token"
	s256 := sha256.Sum256([]byte(tok))
	s384 := sha512.Sum384([]byte(tok))
	s512 := sha512.Sum512([]byte(tok))
	b := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct{ alg, want string }{
		{"RS256", b(s256[:16])},
		{"ES256", b(s256[:16])},
		{"ES384", b(s384[:24])},
		{"EdDSA", b(s512[:32])},
		{"Ed25519", b(s512[:32])},
		{"none", ""},
		{"", ""},
	} {
		if got := AtHash(tok, tc.alg); got != tc.want {
			t.Errorf("AtHash(%s) = %q, want %q", tc.alg, got, tc.want)
		}
	}
}

// ktFuzzSeedKey is the fixed Ed25519 key the fuzz corpus's valid token is
// signed with; ktFuzzNow is when the fuzz target verifies.
var (
	ktFuzzSeedKey = []byte("gatehouse fuzz corpus key seed!!") // 32 bytes
	ktFuzzNow     = time.Date(2031, 3, 1, 12, 5, 0, 0, time.UTC)
)

// ktFuzzManager loads only the fixed key, so the checked-in valid token
// verifies and mutations of it reach every check.
func ktFuzzManager(tb testing.TB) *KeyManager {
	tb.Helper()
	store := models.NewStore(dbtest.SQLite(tb))
	clock := newKTClock()
	m, err := NewKeyManager(store, ktSecret, ktOptions("EdDSA", clock))
	if err != nil {
		tb.Fatal(err)
	}
	row, err := m.keyRow(ed25519.NewKeyFromSeed(ktFuzzSeedKey), "EdDSA", clock.Now())
	if err != nil {
		tb.Fatal(err)
	}
	err = store.UpdateSigningKeys(context.Background(), func([]models.SigningKey) (models.SigningKeyChange, error) {
		return models.SigningKeyChange{Insert: row}, nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return m
}

func FuzzVerifyAccessToken(f *testing.F) {
	m := ktFuzzManager(f)
	c := ktClaims(ktFuzzNow)
	c.Expiry = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	f.Add(ktSign(f, m, c, TypAccessToken))
	f.Fuzz(func(t *testing.T, token string) {
		got, err := m.VerifyAccessToken(token, ktIssuer, ktFuzzNow)
		if err != nil {
			if got != nil || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, %v", got, err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatal("error contains the token")
			}
			return
		}
		if got == nil || got.Issuer != ktIssuer {
			t.Fatalf("accepted with claims %+v", got)
		}
	})
}

// TestFuzzSeedStillValid keeps the checked-in valid seed verifying, so the
// fuzzer's mutations start past the signature check.
func TestFuzzSeedStillValid(t *testing.T) {
	raw, err := os.ReadFile("testdata/fuzz/FuzzVerifyAccessToken/valid")
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "string(")
	tok, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ktFuzzManager(t).VerifyAccessToken(tok, ktIssuer, ktFuzzNow); err != nil {
		t.Fatalf("valid seed: %v", err)
	}
}

// TestSetEmailStatesVerification: email_verified is in the JSON whenever
// email is, false included, because relying parties such as oauth2-proxy
// read an email without email_verified as verified.
func TestSetEmailStatesVerification(t *testing.T) {
	for _, tc := range []struct {
		name     string
		email    string
		verified bool
		want     string // the email claims in the JSON
	}{
		{name: "verified", email: "ada@example.com", verified: true, want: `"email":"ada@example.com","email_verified":true`},
		{name: "not verified is said", email: "ada@example.com", verified: false, want: `"email":"ada@example.com","email_verified":false`},
		{name: "no email, no claims", email: "", verified: true, want: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var at AccessClaims
			var id IDClaims
			at.SetEmail(tc.email, tc.verified)
			id.SetEmail(tc.email, tc.verified)
			for kind, c := range map[string]any{"access": at, "id": id} {
				b, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				got := string(b)
				if tc.want == "" && strings.Contains(got, `"email`) || tc.want != "" && !strings.Contains(got, tc.want) {
					t.Fatalf("%s token claims = %s; want %s", kind, got, cmp.Or(tc.want, "no email claims"))
				}
			}
		})
	}
}
