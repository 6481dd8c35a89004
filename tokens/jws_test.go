package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/claims"
)

// TestCompactSignerMatchesJose: the hot path's compact signer makes the
// tokens go-jose's signer makes — the same protected header and payload
// bytes, byte for byte the same token where the algorithm is
// deterministic (RS256, EdDSA) — and go-jose verifies them with the
// public key; a token with its payload or signature changed does not
// verify.
func TestCompactSignerMatchesJose(t *testing.T) {
	rsaKey, ecKey, edKey := signingTestKeys(t)
	ok := true
	cl := claims.Access{Issuer: "https://id.example.com", Subject: "u-1", Audience: []string{"api"}, Expiry: 2000000000,
		IssuedAt: 1900000000, ID: "jti-<&>", ClientID: "spa", Scope: "openid email", Email: "ada@example.com",
		EmailVerified: &ok, OrgID: "org-1", Roles: []string{"admin"}, Permissions: []string{"a:read", "b:write"}}
	for _, tc := range []struct {
		alg           jose.SignatureAlgorithm
		key           crypto.Signer
		deterministic bool
	}{
		{jose.RS256, rsaKey, true},
		{jose.ES256, ecKey, false},
		{jose.EdDSA, edKey, true},
	} {
		for _, typ := range []string{TypAccessToken, TypIDToken, TypLogoutToken} {
			t.Run(string(tc.alg)+"/"+typ, func(t *testing.T) {
				const kid = "kid-0123_ABC"
				c, err := newCompactSigner(tc.key, tc.alg, kid, typ)
				if err != nil || c == nil {
					t.Fatalf("compact signer = %v, %v", c, err)
				}
				got, err := c.signClaims(cl)
				if err != nil {
					t.Fatal(err)
				}
				e := &keyEntry{kid: kid, mat: &keyMaterial{alg: tc.alg, private: tc.key}}
				e.mat.compact.Store(typ, (*compactSigner)(nil)) // force go-jose
				want, err := e.sign(cl, typ)
				if err != nil {
					t.Fatal(err)
				}
				g, w := strings.Split(got, "."), strings.Split(want, ".")
				if len(g) != 3 || g[0] != w[0] || g[1] != w[1] {
					t.Fatalf("compact signer's token\n%s\ngo-jose's\n%s", got, want)
				}
				if tc.deterministic && got != want {
					t.Fatalf("signatures differ:\n%s\n%s", g[2], w[2])
				}
				obj, err := jose.ParseSignedCompact(got, []jose.SignatureAlgorithm{tc.alg})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := obj.Verify(tc.key.Public()); err != nil {
					t.Fatalf("go-jose does not verify the compact signer's token: %v", err)
				}
				h := obj.Signatures[0].Header
				if h.KeyID != kid || h.Algorithm != string(tc.alg) || h.ExtraHeaders[jose.HeaderType] != typ {
					t.Fatalf("header %+v", h)
				}
				for _, bad := range []string{
					g[0] + "." + w[1][:len(w[1])-2] + "fQ." + g[2], // payload changed
					g[0] + "." + g[1] + "." + flipLast(g[2]),       // signature changed
				} {
					if obj, err := jose.ParseSignedCompact(bad, []jose.SignatureAlgorithm{tc.alg}); err == nil {
						if _, err := obj.Verify(tc.key.Public()); err == nil {
							t.Fatalf("a changed token verifies: %s", bad)
						}
					}
				}
			})
		}
	}
}

// signingTestKeys returns a fresh key of each kind the compact signer
// signs with.
func signingTestKeys(t *testing.T) (*rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rsaKey, ecKey, edKey
}

func flipLast(s string) string {
	last := s[len(s)-2]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return s[:len(s)-2] + string(repl) + s[len(s)-1:]
}

// TestCompactSignerConcurrentTokensStayApart: tokens signed at once from
// many goroutines, of sizes that make the pooled buffers grow, each
// verify and carry their own claims: no token holds bytes of another.
func TestCompactSignerConcurrentTokensStayApart(t *testing.T) {
	rsaKey, ecKey, edKey := signingTestKeys(t)
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
		n   int
	}{{jose.ES256, ecKey, 200}, {jose.EdDSA, edKey, 200}, {jose.RS256, rsaKey, 20}} {
		t.Run(string(tc.alg), func(t *testing.T) {
			c, err := newCompactSigner(tc.key, tc.alg, "kid", TypAccessToken)
			if err != nil || c == nil {
				t.Fatalf("compact signer = %v, %v", c, err)
			}
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range tc.n {
						sub := fmt.Sprintf("user-%d-%d", w, i)
						// 0 to 39 permissions: payloads from tiny to a few KB.
						perms := make([]string, (w*tc.n+i)%40)
						for j := range perms {
							perms[j] = fmt.Sprintf("resource%02d:read-%s", j, sub)
						}
						tok, err := c.signClaims(claims.Access{Subject: sub, Permissions: perms})
						if err != nil {
							t.Error(err)
							return
						}
						obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tc.alg})
						if err != nil {
							t.Errorf("token %s: %v", sub, err)
							return
						}
						payload, err := obj.Verify(tc.key.Public())
						if err != nil {
							t.Errorf("token %s does not verify: %v", sub, err)
							return
						}
						var got claims.Access
						if err := json.Unmarshal(payload, &got); err != nil || got.Subject != sub || len(got.Permissions) != len(perms) {
							t.Errorf("token signed for %s with %d permissions carries %q with %d (%v)", sub, len(perms), got.Subject, len(got.Permissions), err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
