package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// TestCompactSignerStockVerifiers: the compact signer's tokens verify
// with the standard library's verifiers as well as go-jose's, and every
// ES256 signature is exactly 64 bytes, r and s each left-padded to 32
// bytes — including the signatures whose r or s has leading zero bytes
// (about one in 64), which a variable-length or DER encoding breaks.
func TestCompactSignerStockVerifiers(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCompactSigner(ecKey, jose.ES256, "k1", TypAccessToken)
	if err != nil || c == nil {
		t.Fatalf("compact signer = %v, %v", c, err)
	}
	short := 0
	for i := 0; short < 3 || i < 1000; i++ {
		if i > 20000 {
			t.Fatalf("only %d short r or s in %d signatures", short, i)
		}
		tok, err := c.signClaims(map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		input, sig := splitJWS(t, tok)
		if len(sig) != 64 {
			t.Fatalf("ES256 signature of %d bytes", len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if r.BitLen() <= 248 || s.BitLen() <= 248 {
			short++
		}
		digest := sha256.Sum256([]byte(input))
		if !ecdsa.Verify(&ecKey.PublicKey, digest[:], r, s) {
			t.Fatalf("crypto/ecdsa does not verify signature %d", i)
		}
		if i%50 == 0 || r.BitLen() <= 248 || s.BitLen() <= 248 {
			obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := obj.Verify(&ecKey.PublicKey); err != nil {
				t.Fatalf("go-jose does not verify signature %d: %v", i, err)
			}
		}
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg    jose.SignatureAlgorithm
		key    crypto.Signer
		verify func(input string, sig []byte) bool
	}{
		{jose.RS256, rsaKey, func(input string, sig []byte) bool {
			d := sha256.Sum256([]byte(input))
			return rsa.VerifyPKCS1v15(&rsaKey.PublicKey, crypto.SHA256, d[:], sig) == nil
		}},
		{jose.EdDSA, edKey, func(input string, sig []byte) bool {
			return ed25519.Verify(edKey.Public().(ed25519.PublicKey), []byte(input), sig)
		}},
	} {
		c, err := newCompactSigner(tc.key, tc.alg, "k1", TypIDToken)
		if err != nil || c == nil {
			t.Fatalf("%s: compact signer = %v, %v", tc.alg, c, err)
		}
		for i := 0; i < 20; i++ {
			tok, err := c.signClaims(map[string]int{"n": i})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tok, "=") {
				t.Fatalf("%s: padded base64url: %s", tc.alg, tok)
			}
			if input, sig := splitJWS(t, tok); !tc.verify(input, sig) {
				t.Fatalf("%s: the standard library does not verify %s", tc.alg, tok)
			}
		}
	}
}

func splitJWS(t *testing.T, tok string) (signingInput string, sig []byte) {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || strings.Count(tok, ".") != 2 {
		t.Fatalf("not a compact JWS: %s", tok)
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatalf("signature not base64url without padding: %v", err)
	}
	return tok[:i], sig
}
