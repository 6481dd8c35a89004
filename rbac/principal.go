package rbac

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/claims"
)

// Kind says what kind of credential a request presented.
type Kind string

// Credential kinds.
const (
	// KindAccessToken: a Gatehouse access token (a JWT), verified locally.
	KindAccessToken Kind = claims.TokenTypeAccessToken
	// KindAPIKey: a Gatehouse API key, introspected at Gatehouse.
	KindAPIKey Kind = claims.TokenTypeAPIKey
	// KindWebhook: one of the secrets of a webhook sender the backend
	// configured (Middleware.Webhook); the subject is "webhook:<name>".
	KindWebhook Kind = "webhook"
	// KindInsecureDev: the principal of Options.InsecureDevPrincipal, which
	// every request acts as in development, with no credential at all.
	KindInsecureDev Kind = "insecure_dev"
)

// WebhookSubjectPrefix starts the subject of a webhook principal:
// "webhook:<name>".
const WebhookSubjectPrefix = "webhook:"

// APIKeySubjectPrefix starts the subject of an API key principal (and of
// an access token exchanged for an API key), so a backend never mistakes
// a key for a user: "apikey:<key id>".
const APIKeySubjectPrefix = claims.APIKeySubjectPrefix

// Principal is who a request acts as, with what it may do in its
// organization. Handlers read it with PrincipalFrom (net/http) or
// ginrbac.Principal (Gin). It is never modified after the middleware built it.
type Principal struct {
	Kind Kind `json:"kind"`
	// Subject is the Gatehouse user id for a user's token, the client id
	// for a client_credentials token, and "apikey:<id>" for an API key.
	Subject string `json:"sub"`
	// OrgID is the organization the credential acts in ("" for none).
	OrgID string `json:"org_id,omitempty"`
	// Roles and Permissions hold in OrgID; permissions are grants and may
	// use wildcards ("kb:*").
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
	// TokenID is the access token's jti, the API key's id, or for a
	// webhook the position in WebhookOptions.Secrets of the secret the
	// sender used ("0", "1"), to follow a rotation.
	TokenID string `json:"token_id"`
	// ClientID is the OAuth client the token was issued to.
	ClientID string `json:"client_id,omitempty"`
	// SessionID is the user's session ("" for client and API-key credentials).
	SessionID string `json:"sid,omitempty"`
	// Scope is the access token's scope claim: space-separated scopes the
	// client was granted ("" for API keys and webhooks).
	Scope     string    `json:"scope,omitempty"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`

	grants []Grant // Permissions parsed once; malformed ones dropped
}

// NewPrincipal returns a principal with its grants parsed, for code that
// resolves credentials itself (Options.ResolveAPIKey, tests).
func NewPrincipal(p Principal) *Principal {
	p.grants = parseGrants(p.Permissions)
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if p.Permissions == nil {
		p.Permissions = []string{}
	}
	return &p
}

// parseGrants keeps the well-formed grants: a malformed one grants nothing.
func parseGrants(perms []string) []Grant {
	out := make([]Grant, 0, len(perms))
	for _, s := range perms {
		if g, err := ParseGrant(s); err == nil {
			out = append(out, g)
		}
	}
	return out
}

// Can reports whether the principal's grants cover resource:action.
func (p *Principal) Can(resource, action string) bool {
	for _, g := range p.grants {
		if g.Allows(resource, action) {
			return true
		}
	}
	return false
}

// HasScopes reports whether the credential was granted every one of
// scopes (its Scope, space-separated). API keys and webhooks carry none.
func (p *Principal) HasScopes(scopes ...string) bool {
	if !p.scopable() {
		return false
	}
	for _, want := range scopes {
		found := false
		for s := range strings.FieldsSeq(p.Scope) {
			if s == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// scopable: the credential kind can carry scopes.
func (p *Principal) scopable() bool { return p.Kind != KindAPIKey && p.Kind != KindWebhook }

// HasRole reports whether the principal holds the role in its organization.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// IsUser reports whether a person stands behind the credential: an
// access token of a user's session (not a client or an API key).
func (p *Principal) IsUser() bool { return p.Kind == KindAccessToken && p.SessionID != "" }

type principalKey struct{}

// WithPrincipal returns a context carrying p (what the middleware does).
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the middleware authenticated for
// the request whose context this is.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
