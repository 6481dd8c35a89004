package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/claims"
)

// JWT "typ" header values Gatehouse mints.
const (
	TypAccessToken = "at+jwt" // RFC 9068 access tokens
	TypIDToken     = "JWT"    // OpenID Connect ID tokens
	// TypLogoutToken marks OpenID Connect Back-Channel Logout tokens
	// (package backchannel); neither VerifyAccessToken nor
	// VerifyIDTokenHint accepts it.
	TypLogoutToken = "logout+jwt"
)

// jwtClockSkew is the leeway for exp, nbf and iat between machines.
const jwtClockSkew = 30 * time.Second

// jwtMaxLen bounds the input verification parses: ours are a few KiB.
const jwtMaxLen = 16 << 10

// AccessClaims are the claims of a Gatehouse access token, declared once
// in package claims for Gatehouse, which mints them, and the rbac package
// in backends, which reads them.
type AccessClaims = claims.Access

// IDClaims are the claims of an OpenID Connect ID token. Times are
// NumericDate seconds since the epoch.
type IDClaims struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      []string `json:"aud"`
	Expiry        int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	AtHash        string   `json:"at_hash,omitempty"`
	AMR           []string `json:"amr,omitempty"`
	ACR           string   `json:"acr,omitempty"`
	AuthorizedBy  string   `json:"azp,omitempty"`
	SessionID     string   `json:"sid,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"` // set by SetEmail
	Name          string   `json:"name,omitempty"`
	// PreferredUsername is the username at the upstream the session came
	// through (scope profile).
	PreferredUsername string `json:"preferred_username,omitempty"`
	// Groups is the groups claim (scope groups), as in access tokens.
	Groups []string `json:"groups,omitempty"`
}

// SetEmail sets the email claims as AccessClaims.SetEmail does.
func (c *IDClaims) SetEmail(email string, verified bool) {
	c.Email, c.EmailVerified = email, claims.EmailVerified(email, verified)
}

// ErrInvalidToken is wrapped by every verification failure. The wrapping
// error's text says why, is safe to log or return to the client, and never
// contains the token.
var ErrInvalidToken = errors.New("invalid token")

// Verification failures, built once: forged tokens cost no allocation.
var (
	errJWTMalformed  = jwtInvalid("malformed")
	errJWTAlg        = jwtInvalid("signing algorithm not accepted")
	errJWTUnknownKey = jwtInvalid("unknown key id")
	errJWTType       = jwtInvalid("not an access token (typ must be at+jwt)")
	errJWTSignature  = jwtInvalid("bad signature")
	errJWTIssuer     = jwtInvalid("wrong issuer")
	errJWTNoExpiry   = jwtInvalid("no expiry")
	errJWTExpired    = jwtInvalid("expired")
	errJWTNotYet     = jwtInvalid("not valid yet")
	errJWTFuture     = jwtInvalid("issued in the future")
)

func jwtInvalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }

// Sign serializes claims to JSON and signs them with the active key,
// setting the kid header and the given typ (TypAccessToken, TypIDToken or
// TypLogoutToken; it must not be empty). It fails when no key is active.
func (m *KeyManager) Sign(claims any, typ string) (string, error) {
	e, err := m.activeKey()
	if err != nil {
		return "", err
	}
	return e.sign(claims, typ)
}

// SignIDToken signs an ID token; when accessToken is not empty it sets
// at_hash with the hash of the very key that signs, so the pair stays
// consistent even across a rotation to another algorithm.
func (m *KeyManager) SignIDToken(claims IDClaims, accessToken string) (string, error) {
	e, err := m.activeKey()
	if err != nil {
		return "", err
	}
	if accessToken != "" {
		claims.AtHash = AtHash(accessToken, e.alg)
	}
	return e.sign(claims, TypIDToken)
}

func (m *KeyManager) activeKey() (*keyEntry, error) {
	set := m.set.Load()
	if set == nil {
		return nil, errKeysNotLoaded
	}
	e := set.active(m.opts.Now())
	if e == nil {
		return nil, errNoActiveKey
	}
	return e, nil
}

func (e *keyEntry) sign(claims any, typ string) (string, error) {
	if typ == "" {
		return "", errors.New("sign token: typ is required")
	}
	if c, err := e.mat.compactSigner(e.kid, typ); err != nil {
		return "", err
	} else if c != nil {
		return c.signClaims(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: encode claims: %w", err)
	}
	s, err := e.mat.signer(e.kid, typ)
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return obj.CompactSerialize()
}

// AtHash returns the OIDC Core at_hash of an access token: the left half
// of its hash under the ID token's algorithm, base64url. SHA-256 for *256
// algorithms, SHA-384 for *384, SHA-512 for *512 and EdDSA (Ed25519). It
// returns "" for an algorithm it does not know.
func AtHash(accessToken, alg string) string {
	var h hash.Hash
	switch alg {
	case "RS256", "ES256", "PS256", "HS256":
		sum := sha256.Sum256([]byte(accessToken)) // the common case, without a hash.Hash
		return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	case "RS384", "ES384", "PS384", "HS384":
		h = sha512.New384()
	case "RS512", "ES512", "PS512", "HS512", "EdDSA", "Ed25519":
		h = sha512.New()
	default:
		return ""
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// VerifyAccessToken checks a Gatehouse access token against the loaded
// keys, without any network or database access: compact JWS; alg one of
// our keys' algorithms and equal to the algorithm of the key named by kid
// (so none, HS256 and algorithm confusion fail); kid of a key still
// published at now; typ at+jwt; signature; iss equal to issuer; exp
// present and not passed, nbf and iat not in the future, each with 30 s of
// skew. It does not check aud: callers that serve one audience do. Every
// error wraps ErrInvalidToken, except "keys not loaded".
func (m *KeyManager) VerifyAccessToken(token, issuer string, now time.Time) (*AccessClaims, error) {
	payload, err := m.verifySignature(token, jwtIsAccessTyp, func(e *keyEntry) bool { return e.live(now) })
	if err != nil {
		return nil, err
	}
	c := new(AccessClaims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, errJWTMalformed
	}
	if c.Issuer != issuer {
		return nil, errJWTIssuer
	}
	skew, t := int64(jwtClockSkew/time.Second), now.Unix()
	switch {
	case c.Expiry == 0:
		return nil, errJWTNoExpiry
	case t-skew >= c.Expiry:
		return nil, errJWTExpired
	case c.NotBefore != 0 && t+skew < c.NotBefore:
		return nil, errJWTNotYet
	case t+skew < c.IssuedAt:
		return nil, errJWTFuture
	}
	return c, nil
}

// verifySignature parses a compact JWS and verifies it with the key its
// kid names: the algorithm must be that key's (so none, HS256 and
// algorithm confusion fail), the key must pass usable (still published),
// and the typ header must pass typOK. It returns the verified payload;
// every error wraps ErrInvalidToken, except "keys not loaded".
func (m *KeyManager) verifySignature(token string, typOK func(string) bool, usable func(*keyEntry) bool) ([]byte, error) {
	set := m.set.Load()
	if set == nil {
		return nil, errKeysNotLoaded
	}
	if len(token) > jwtMaxLen {
		return nil, errJWTMalformed
	}
	obj, err := jose.ParseSignedCompact(token, set.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, errJWTAlg
		}
		return nil, errJWTMalformed
	}
	h := obj.Signatures[0].Header // compact serialization has exactly one
	e := set.byKID[h.KeyID]
	if e == nil || !usable(e) {
		return nil, errJWTUnknownKey
	}
	if h.Algorithm != string(e.mat.alg) {
		return nil, errJWTAlg
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !typOK(typ) {
		return nil, errJWTType
	}
	payload, err := obj.Verify(e.mat.public)
	if err != nil {
		return nil, errJWTSignature
	}
	return payload, nil
}

// jwtIsAccessTyp accepts the RFC 9068 typ, whose media type prefix is
// optional and which compares case-insensitively.
func jwtIsAccessTyp(typ string) bool {
	return strings.EqualFold(typ, TypAccessToken) || strings.EqualFold(typ, "application/"+TypAccessToken)
}
