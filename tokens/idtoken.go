package tokens

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// VerifyIDTokenHint checks an id_token_hint for RP-initiated logout: a
// Gatehouse ID token whose signature, key, algorithm, typ and issuer are
// valid. Expiry is not checked (OIDC RP-Initiated Logout §2 allows an
// expired hint); a key already removed from the JWKS fails. Every error
// wraps ErrInvalidToken.
func (m *KeyManager) VerifyIDTokenHint(token, issuer string) (*IDClaims, error) {
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
	h := obj.Signatures[0].Header
	e := set.byKID[h.KeyID]
	if e == nil {
		return nil, errJWTUnknownKey
	}
	if h.Algorithm != string(e.mat.alg) {
		return nil, errJWTAlg
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, TypIDToken) {
		return nil, errJWTType
	}
	payload, err := obj.Verify(e.mat.public)
	if err != nil {
		return nil, errJWTSignature
	}
	c := new(IDClaims)
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, errJWTMalformed
	}
	if c.Issuer != issuer {
		return nil, errJWTIssuer
	}
	return c, nil
}
