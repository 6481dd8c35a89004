package tokens

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-jose/go-jose/v4"
)

// Compact JWS signing on the hot path (issue 16). Every token Gatehouse
// mints is a compact JWS with one protected header {"alg","kid","typ"}:
// that header's base64url form is built once per key and typ, the claims
// are encoded into a pooled buffer and base64url-encoded straight into
// the token, and the signature is made with the key itself — the same
// bytes go-jose's signer produces (TestCompactSignerMatchesJose), without
// its per-token header map, JSON round trips and copies. Verification
// stays with go-jose (VerifyAccessToken).

// compactSigner signs compact JWS with one key, one typ.
type compactSigner struct {
	// header is the base64url protected header followed by '.'.
	header []byte
	sign   func(signingInput []byte) ([]byte, error)
	// sigLen is the signature's length in bytes (an upper bound).
	sigLen int
}

// jwsHeader is the protected header, its fields in go-jose's (sorted) order.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// newCompactSigner returns a signer for the key's algorithm, or nil when
// the key is not one this code signs with (go-jose signs then).
func newCompactSigner(priv crypto.Signer, alg jose.SignatureAlgorithm, kid, typ string) (*compactSigner, error) {
	var sign func([]byte) ([]byte, error)
	var sigLen int
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg != jose.RS256 {
			return nil, nil
		}
		sigLen = k.Size()
		sign = func(in []byte) ([]byte, error) {
			digest := sha256.Sum256(in)
			return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
		}
	case *ecdsa.PrivateKey:
		if alg != jose.ES256 || k.Curve != elliptic.P256() {
			return nil, nil
		}
		sigLen = 64
		sign = func(in []byte) ([]byte, error) {
			digest := sha256.Sum256(in)
			r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
			if err != nil {
				return nil, err
			}
			// RFC 7518 §3.4: R and S as 32-byte big-endian, concatenated.
			out := make([]byte, 64)
			r.FillBytes(out[:32])
			s.FillBytes(out[32:])
			return out, nil
		}
	case ed25519.PrivateKey:
		if alg != jose.EdDSA {
			return nil, nil
		}
		sigLen = ed25519.SignatureSize
		sign = func(in []byte) ([]byte, error) { return ed25519.Sign(k, in), nil }
	default:
		return nil, nil
	}
	h, err := json.Marshal(jwsHeader{Alg: string(alg), Kid: kid, Typ: typ})
	if err != nil {
		return nil, fmt.Errorf("build signer: %w", err)
	}
	header := base64.RawURLEncoding.AppendEncode(nil, h)
	return &compactSigner{header: append(header, '.'), sign: sign, sigLen: sigLen}, nil
}

// claimsBuffers hold encoded claims and the token being built between
// encoding and signing.
var claimsBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// signClaims encodes claims as JSON and returns the compact JWS. The
// token's one allocation is the returned string (besides the signature
// algorithm's own).
func (c *compactSigner) signClaims(claims any) (string, error) {
	buf := claimsBuffers.Get().(*bytes.Buffer)
	defer claimsBuffers.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	if err := enc.Encode(claims); err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	payload := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}) // Encode's
	enc64 := base64.RawURLEncoding
	tok := claimsBuffers.Get().(*bytes.Buffer)
	defer claimsBuffers.Put(tok)
	tok.Reset()
	tok.Grow(len(c.header) + enc64.EncodedLen(len(payload)) + 1 + enc64.EncodedLen(c.sigLen))
	out := append(tok.AvailableBuffer(), c.header...)
	out = enc64.AppendEncode(out, payload)
	sig, err := c.sign(out)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	if len(sig) > c.sigLen {
		return "", errors.New("sign token: signature longer than its key allows")
	}
	out = append(out, '.')
	out = enc64.AppendEncode(out, sig)
	return string(out), nil
}
