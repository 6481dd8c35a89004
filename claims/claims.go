// Package claims declares, once, the claims of a Gatehouse access token
// and what Gatehouse's introspection endpoint states about a credential:
// the side that mints them (tokens, oauth) and the side that reads them
// (rbac, in every Go backend) share these types instead of keeping copies
// in step. It imports nothing of Gatehouse.
//
// The JSON names, their order and omitempty are the wire format relying
// parties and stock JWT libraries see: change them only with the clients
// in mind.
package claims

import "encoding/json"

// APIKeySubjectPrefix starts the subject of an API key's credentials:
// "apikey:<key id>" in an introspection answer about the key and in an
// access token exchanged for it, so no backend mistakes a key for a user
// or a client.
const APIKeySubjectPrefix = "apikey:"

// Access are the claims of a Gatehouse access token (RFC 9068 plus
// identity and the active organization's roles and permissions). Times
// are NumericDate seconds since the epoch. Encoded, iss, sub, aud, exp,
// iat, jti and client_id are always present, the others only when set.
type Access struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      Audience `json:"aud"`
	Expiry        int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	NotBefore     int64    `json:"nbf,omitempty"`
	ID            string   `json:"jti"`
	ClientID      string   `json:"client_id"`
	SessionID     string   `json:"sid,omitempty"`
	Scope         string   `json:"scope,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"` // set by SetEmail
	Name          string   `json:"name,omitempty"`
	IdP           string   `json:"idp,omitempty"`
	OrgID         string   `json:"org_id,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	Permissions   []string `json:"permissions,omitempty"`
	// Groups is the groups claim (scope groups): the upstream groups of
	// the identity the session came through, filtered by the client's
	// configuration, and optionally its organization roles as
	// "<org-slug>:<role>". Absent without the scope, without groups, or
	// when it would exceed Gatehouse's documented bound.
	Groups []string `json:"groups,omitempty"`
}

// SetEmail sets the email claims: email, and email_verified stated true
// or false whenever there is an email (neither when email is empty).
// Some relying parties (oauth2-proxy among them) take an email without
// email_verified as verified, so false is never left out. verified must
// follow Gatehouse's rule: a provider trusted for email verified it.
func (c *Access) SetEmail(email string, verified bool) {
	c.Email, c.EmailVerified = email, EmailVerified(email, verified)
}

// EmailVerified is the email_verified claim that goes with email, as
// SetEmail states it: nil (left out) without an email, else verified.
func EmailVerified(email string, verified bool) *bool {
	if email == "" {
		return nil
	}
	return &verified
}

// Audience is the aud claim. It encodes as an array (what Gatehouse
// mints) and decodes from an array or a single string (RFC 7519 §4.1.3).
type Audience []string

// UnmarshalJSON accepts both forms of aud.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Audience{s}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}
