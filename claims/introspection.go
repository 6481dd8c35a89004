package claims

// Token types an introspection answer states (token_type).
const (
	TokenTypeAccessToken  = "access_token"
	TokenTypeRefreshToken = "refresh_token"
	TokenTypeAPIKey       = "api_key"
)

// Introspected is what Gatehouse's introspection endpoint (RFC 7662)
// states about an active credential besides "active": the credential's
// claims, its token_type, and username (an access token's email, an API
// key's name). Every member is left out when empty, so an inactive answer
// is {"active":false} alone. The answer puts "active" first, then these
// in this order.
type Introspected struct {
	Scope       string   `json:"scope,omitempty"`
	ClientID    string   `json:"client_id,omitempty"`
	Username    string   `json:"username,omitempty"`
	TokenType   string   `json:"token_type,omitempty"`
	Exp         int64    `json:"exp,omitempty"`
	Iat         int64    `json:"iat,omitempty"`
	Nbf         int64    `json:"nbf,omitempty"`
	Sub         string   `json:"sub,omitempty"`
	Aud         Audience `json:"aud,omitempty"`
	Iss         string   `json:"iss,omitempty"`
	Jti         string   `json:"jti,omitempty"`
	SessionID   string   `json:"sid,omitempty"`
	OrgID       string   `json:"org_id,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
}
