package tokens

import (
	"encoding/json"
	"strings"
)

// VerifyIDTokenHint checks an id_token_hint for RP-initiated logout: a
// Gatehouse ID token whose signature, key, algorithm, typ and issuer are
// valid. Expiry is not checked (OIDC RP-Initiated Logout §2 allows an
// expired hint); a key already removed from the JWKS fails. Every error
// wraps ErrInvalidToken.
func (m *KeyManager) VerifyIDTokenHint(token, issuer string) (*IDClaims, error) {
	isIDToken := func(typ string) bool { return strings.EqualFold(typ, TypIDToken) }
	payload, err := m.verifySignature(token, isIDToken, func(*keyEntry) bool { return true })
	if err != nil {
		return nil, err
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
