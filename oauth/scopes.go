package oauth

import (
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/config"
)

// oidcScopes are the OpenID Connect scopes Gatehouse understands and
// every client may ask for in a user flow: openid (an ID token), profile
// and email (their claims in the ID token and UserInfo), and
// offline_access, which stock clients send to get a refresh token (a
// client allowed refresh_token gets one anyway). Discovery lists them as
// scopes_supported.
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// AllowsScope reports whether a user flow (authorization code, refresh,
// token exchange) may grant the client scope: an OpenID Connect scope, or
// one of the client's configured `scopes`. Anything else must not reach an
// access token's `scope`, where backends would take it for a grant.
//
// The groups scope (config.GroupsScope) is granted only to a client with
// a `groups` block, which says what its groups claim may carry.
func (c *Client) AllowsScope(scope string) bool {
	if scope == config.GroupsScope {
		return c.Groups != nil
	}
	return slices.Contains(oidcScopes, scope) || slices.Contains(c.Scopes, scope)
}

// requestedScope normalizes a requested scope (RFC 6749 §3.3: space
// separated, repeats meaningless) and refuses it with invalid_scope when
// the client may not be granted one of its values.
func (c *Client) requestedScope(raw string) (string, *Error) {
	for _, sc := range strings.Fields(raw) {
		if !c.AllowsScope(sc) {
			return "", oauthErr("invalid_scope", "scope %q is not allowed for this client", truncate(sc, 60))
		}
	}
	return c.grantableScope(raw), nil
}

// grantableScope keeps the values of a stored scope the client may still
// be granted. Sessions opened before scopes were checked, or before an
// operator took a scope out of the client's list, would otherwise keep
// minting it at every refresh until their absolute expiry.
func (c *Client) grantableScope(scope string) string {
	var out []string
	for _, sc := range strings.Fields(scope) {
		if c.AllowsScope(sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// outsideScope returns the first value of requested that granted does not
// hold, or "" when requested narrows it (RFC 6749 §6).
func outsideScope(requested []string, granted string) string {
	have := strings.Fields(granted)
	for _, sc := range requested {
		if !slices.Contains(have, sc) {
			return sc
		}
	}
	return ""
}
