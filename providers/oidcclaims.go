package providers

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// tokenCheck says what an upstream token must satisfy beyond signature
// and issuer.
type tokenCheck struct {
	// idToken selects the ID token typ rules (else access token).
	idToken bool
	// audiences: aud must contain one of them.
	audiences []string
	// parties: azp (or client_id), when present, must be one of them.
	parties []string
	// requireParty: azp or client_id must be present.
	requireParty bool
	// nonce, when set, must equal the token's nonce.
	nonce string
}

// rejection is why an upstream token was refused. reason is safe to show
// a client (never the token); err wraps ErrInvalidResponse or
// ErrUnavailable.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + " (" + r.err.Error() + ")" }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string) error { return &rejection{reason: reason, err: ErrInvalidResponse} }

type verifiedToken struct {
	claims claimSet
	idt    *oidc.IDToken
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
}

// verify validates an upstream token: algorithm allow-list and signature
// (go-oidc with the cached key set), then issuer, audience, times with the
// configured skew, azp, typ and nonce.
func (p *oidcProvider) verify(ctx context.Context, d *discovered, raw string, c tokenCheck) (*verifiedToken, error) {
	if len(raw) > maxUpstreamTokenBytes {
		return nil, reject("the token is too large")
	}
	var h jwtHeader
	head, _, ok := strings.Cut(raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if !ok || err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, reject("the token is not a signed JWT")
	}
	if !slices.Contains(p.cfg.algs, h.Alg) {
		return nil, reject(fmt.Sprintf("the token is signed with %q, which this provider does not accept", truncate(h.Alg, 16)))
	}
	if !typAllowed(h.Typ, c.idToken) {
		return nil, reject(fmt.Sprintf("the token's typ %q is not accepted here", truncate(h.Typ, 32)))
	}
	tr := &sigTrace{}
	idt, err := d.verifier.Verify(context.WithValue(ctx, sigTraceKey{}, tr), raw)
	switch {
	case err == nil:
	case errors.Is(tr.err, jwks.ErrKeysUnavailable):
		return nil, &rejection{reason: "the identity provider's signing keys are unavailable", err: fmt.Errorf("%w: %v", ErrUnavailable, tr.err)}
	case errors.Is(tr.err, jwks.ErrUnknownKey):
		return nil, reject("the token is signed with a key the identity provider does not publish")
	case errors.Is(tr.err, jwks.ErrBadSignature):
		return nil, reject("the token's signature is invalid")
	default:
		return nil, reject("the token is malformed")
	}
	var cl claimSet
	if err := idt.Claims(&cl); err != nil {
		return nil, reject("the token's claims are malformed")
	}
	if err := p.checkClaims(cl, c); err != nil {
		return nil, err
	}
	return &verifiedToken{claims: cl, idt: idt}, nil
}

func typAllowed(typ string, idToken bool) bool {
	switch strings.ToLower(typ) {
	case "", "jwt":
		return true
	case "at+jwt", "application/at+jwt":
		return !idToken // RFC 9068 §4: an access token is never an ID token
	}
	return false
}

func (p *oidcProvider) checkClaims(cl claimSet, c tokenCheck) error {
	iss := cl.str("iss")
	// Google's ID tokens may name the issuer without the scheme (go-oidc
	// accepts the same exception).
	if iss != p.cfg.issuer && !(p.cfg.issuer == "https://accounts.google.com" && iss == "accounts.google.com") {
		return reject("the token was issued by another issuer")
	}
	if sub := cl.str("sub"); sub == "" || len(sub) > 255 {
		return reject("the token has no valid subject")
	}
	aud := cl.audience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.audiences, a) }) {
		return reject("the token was issued for another audience")
	}
	now := p.now()
	exp, ok := cl.number("exp")
	switch {
	case !ok:
		return reject("the token has no expiry")
	case !now.Before(time.Unix(exp, 0).Add(p.cfg.skew)):
		return reject("the token has expired")
	}
	if nbf, ok := cl.number("nbf"); ok && time.Unix(nbf, 0).After(now.Add(p.cfg.skew)) {
		return reject("the token is not valid yet (nbf)")
	}
	if iat, ok := cl.number("iat"); ok && time.Unix(iat, 0).After(now.Add(p.cfg.skew)) {
		return reject("the token was issued in the future (iat)")
	}
	if at, ok := cl.number("auth_time"); ok && time.Unix(at, 0).After(now.Add(p.cfg.skew)) {
		return reject("the person authenticated in the future (auth_time)")
	}
	party := cl.str("azp")
	if party == "" && !c.idToken {
		party = cl.str("client_id") // RFC 9068 access tokens
	}
	switch {
	case party == "" && (c.requireParty || (c.idToken && len(aud) > 1)):
		// OIDC Core §3.1.3.7: several audiences need an azp.
		return reject("the token does not name the client it was issued to (azp)")
	case party != "" && !slices.Contains(c.parties, party):
		return reject("the token was issued to a client that is not accepted (azp)")
	}
	if c.nonce != "" {
		n := cl.str("nonce")
		if n == "" {
			return reject("the ID token carries no nonce")
		}
		if subtle.ConstantTimeCompare([]byte(n), []byte(c.nonce)) != 1 {
			return reject("the ID token's nonce does not match this sign-in")
		}
	}
	return nil
}

// claimSet is a token's or UserInfo's claims as decoded JSON.
type claimSet map[string]any

func (c claimSet) str(name string) string {
	s, _ := c[name].(string)
	return s
}

// first returns the first non-empty string claim among names.
func (c claimSet) first(names ...string) string {
	for _, n := range names {
		if s := c.str(n); s != "" {
			return s
		}
	}
	return ""
}

// firstBool reads the first of names that is present as a boolean.
func (c claimSet) firstBool(names ...string) bool {
	for _, n := range names {
		if _, ok := c[n]; ok {
			return c.boolean(n)
		}
	}
	return false
}

// boolean reads a boolean claim; some providers send "true" as a string.
func (c claimSet) boolean(name string) bool {
	switch v := c[name].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// number reads a NumericDate.
func (c claimSet) number(name string) (int64, bool) {
	f, ok := c[name].(float64)
	if !ok || f != f || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(f), true
}

// strs reads a string or list-of-strings claim, keeping at most n values
// of at most maxLen bytes.
func (c claimSet) strs(name string, n, maxLen int) []string {
	var out []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && len(s) <= maxLen && len(out) < n {
			out = append(out, s)
		}
	}
	switch v := c[name].(type) {
	case string:
		add(v)
	case []any:
		for _, x := range v {
			add(x)
		}
	}
	return out
}

func (c claimSet) audience() []string { return c.strs("aud", 32, 2048) }

// identity builds the Identity from verified claims and applies the
// kind's rules. A configured claim name that is absent falls back to the
// standard one, so namespaced claims added to access tokens (Auth0
// Actions) and the standard claims of ID tokens both work.
func (p *oidcProvider) identity(c claimSet, requestedOrg string) (*Identity, error) {
	names := p.cfg.claims
	id := &Identity{
		Provider: p.name, Subject: c.str("sub"),
		Email:    strings.ToLower(strings.TrimSpace(c.first(names.Email, "email"))),
		Name:     truncate(strings.TrimSpace(c.first(names.Name, "name")), 200),
		Username: CleanUsername(c.first(names.Username, "preferred_username")),
		Claims:   c,
	}
	p.ssoClaims(c, id)
	if len(id.Email) > 254 || !strings.Contains(id.Email, "@") {
		id.Email = ""
	}
	id.EmailVerified = id.Email != "" && c.firstBool(names.EmailVerified, "email_verified")
	if pic := c.first(names.Picture, "picture"); len(pic) <= 2048 && strings.HasPrefix(pic, "https://") {
		id.AvatarURL = pic
	}
	for _, claim := range names.Groups {
		id.Groups = appendGroups(id.Groups, p.kind.typ+":group:", c.strs(claim, maxGroups, maxGroupLen))
	}
	if p.kind.accept != nil {
		if err := p.kind.accept(c, id, requestedOrg); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// appendGroups adds prefix+value for each value not already present.
func appendGroups(groups []string, prefix string, values []string) []string {
	for _, v := range values {
		if g := prefix + v; v != "" && len(groups) < maxGroups && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}
