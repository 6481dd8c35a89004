// Package models holds Gatehouse's GORM models, which mirror the SQL schema
// in migrations/, and the queries the services need.
package models

import "time"

// Membership statuses: only active memberships grant anything.
const (
	MembershipActive    = "active"
	MembershipInvited   = "invited"
	MembershipSuspended = "suspended"
)

// SourceManual marks a membership made by hand; sync never touches it.
// Sync-made memberships carry "sync:<provider>".
const SourceManual = "manual"

// SyncSource is the membership source for memberships created by org sync
// from the given provider.
func SyncSource(provider string) string { return "sync:" + provider }

// User is a person known to Gatehouse; its ID is the `sub` of minted tokens.
type User struct {
	ID    string `gorm:"primaryKey"`
	Email string
	// EmailVerified: the provider that supplied Email said it is verified,
	// whether or not that provider is trusted for email. What Gatehouse
	// tells applications is provisioning.Service.EmailVerified.
	EmailVerified bool
	Name          string
	AvatarURL     string
	Disabled      bool
	DefaultOrgID  *string
	LastLoginAt   *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Identity links a user to one upstream account, unique on (Provider, Subject).
type Identity struct {
	ID            string `gorm:"primaryKey"`
	UserID        string
	Provider      string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	AvatarURL     string
	RawClaims     string
	// UpstreamGroups are the typed group strings (providers.Identity.
	// Groups, such as "github:team:acme/eng") the upstream reported at the
	// last sign-in, as a JSON array; see Groups.
	UpstreamGroups string
	// Username is the person's username at the upstream as of the last
	// sign-in (the GitHub login, the OIDC preferred_username, the mapped
	// SAML attribute); empty when the upstream names none.
	Username    string
	LastLoginAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Organization is a tenant; memberships tie users to it.
type Organization struct {
	ID        string `gorm:"primaryKey"`
	Slug      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// OrganizationExternalID maps an upstream organization (for example an
// Auth0 org_id) to a Gatehouse organization.
type OrganizationExternalID struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	Provider       string
	ExternalID     string
	CreatedAt      time.Time
}

// OrgSyncBinding records the organization a literal org-sync target (a
// rule's org slug) stands for, once sync created or found it: the target
// follows the organization's id from then on, not whichever organization
// has the slug.
type OrgSyncBinding struct {
	Target         string `gorm:"primaryKey"`
	OrganizationID string
	CreatedAt      time.Time
}

// Role carries permissions within an organization; a nil OrganizationID
// marks a seeded system role shared by every organization.
type Role struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID *string
	Name           string
	Description    string
	Level          int
	System         bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Permission is a `resource:action` grant, possibly with wildcards.
type Permission struct {
	ID          string `gorm:"primaryKey"`
	Name        string
	Description string
	CreatedAt   time.Time
}

// RolePermission assigns a permission to a role.
type RolePermission struct {
	RoleID       string `gorm:"primaryKey"`
	PermissionID string `gorm:"primaryKey"`
}

// Membership is a user's role in an organization.
type Membership struct {
	ID             string `gorm:"primaryKey"`
	UserID         string
	OrganizationID string
	RoleID         string
	Status         string
	Source         string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Invitation offers an email address a role in an organization; the first
// login with that verified email activates it.
type Invitation struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	Email          string
	RoleID         string
	InvitedBy      *string
	Status         string
	ExpiresAt      time.Time
	AcceptedAt     *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Session is one sign-in of a user at a client; its refresh tokens form a
// family that is revoked together.
type Session struct {
	ID          string `gorm:"primaryKey"`
	UserID      string
	ClientID    string
	Provider    string
	ActiveOrgID *string
	Scope       string
	AMR         string `gorm:"column:amr"`
	// ACR is the authentication context class the upstream reported
	// (empty: none).
	ACR          string `gorm:"column:acr"`
	AuthTime     time.Time
	LastUsedAt   time.Time
	ExpiresAt    time.Time
	RevokedAt    *time.Time
	RevokeReason string
	CreatedAt    time.Time
	// BrowserSessionID is the browser session the app session was opened
	// under (nil: none, as for token exchange and unsolicited sign-ins):
	// ending it ends this session too.
	BrowserSessionID *string
	// IdentityID is the upstream identity the session came through: the
	// sign-in's, or its browser session's for single sign-on. Its groups
	// and username are what the session's tokens state. Nil once the
	// identity was unlinked.
	IdentityID *string
}

// BrowserSession is Gatehouse's own sign-in in one browser (single
// sign-on). The cookie's token is stored only as TokenHash; the app
// sessions opened under it name it (Session.BrowserSessionID).
type BrowserSession struct {
	ID        string `gorm:"primaryKey"`
	TokenHash string
	UserID    string
	// IdentityID is the upstream identity the person signed in with;
	// nil once it was unlinked (the session can then sign in no one).
	IdentityID *string
	Provider   string
	// AuthTime is when the person last authenticated upstream.
	AuthTime time.Time
	AMR      string `gorm:"column:amr"`
	ACR      string `gorm:"column:acr"`
	// UpstreamLogout is what an upstream logout needs (sealed; empty when
	// the provider has none).
	UpstreamLogout string
	IP             string
	UserAgent      string
	CreatedAt      time.Time
	LastUsedAt     time.Time
	ExpiresAt      time.Time
	RevokedAt      *time.Time
	RevokeReason   string
}

// LogoutDelivery is a back-channel logout owed to a client because one of
// its sessions ended; rows are written by a database trigger when a
// session is revoked.
type LogoutDelivery struct {
	// SessionID is the app session that ended: the sid of the logout token.
	SessionID     string `gorm:"primaryKey"`
	ClientID      string
	UserID        string
	Reason        string
	CreatedAt     time.Time
	NextAttemptAt time.Time
	Attempts      int
	LastError     string
	// AuditSubject, when set, is the user reference the delivery's audit
	// events carry instead of UserID: the pseudonym of a deleted user,
	// whose id the logout token still needs as its sub.
	AuditSubject string
}

// RefreshToken is stored only as a hash; RotatedAt marks a token already
// exchanged for its successor (ReplacedBy).
type RefreshToken struct {
	ID         string `gorm:"primaryKey"`
	SessionID  string
	TokenHash  string
	ClientID   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RotatedAt  *time.Time
	ReplacedBy *string
	RevokedAt  *time.Time
}

// AuthorizationCode is a single-use code, stored only as a hash.
type AuthorizationCode struct {
	ID                  string `gorm:"primaryKey"`
	CodeHash            string
	ClientID            string
	UserID              string
	SessionID           string
	RedirectURI         string
	Scope               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	CreatedAt           time.Time
	ExpiresAt           time.Time
	UsedAt              *time.Time
}

// SigningKey is one of Gatehouse's token signing keys; the private half is
// encrypted under a key derived from GATEHOUSE_SECRET_KEY.
type SigningKey struct {
	ID                  string `gorm:"primaryKey"`
	Algorithm           string
	PublicJWK           string `gorm:"column:public_jwk"`
	PrivateKeyEncrypted []byte
	CreatedAt           time.Time
	ActivatesAt         time.Time
	RetiredAt           *time.Time
	DeleteAfter         *time.Time
}

// APIKey is an organization-scoped credential, stored as a hash with a
// visible prefix.
type APIKey struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	Name           string
	Prefix         string
	KeyHash        string
	Permissions    string
	CreatedBy      *string
	Disabled       bool
	ExpiresAt      *time.Time
	LastUsedAt     *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// TableName keeps GORM from naming the table "api_keys" differently.
func (APIKey) TableName() string { return "api_keys" }

// AuditEvent records a security-relevant decision.
type AuditEvent struct {
	ID             int64 `gorm:"primaryKey;autoIncrement"`
	OccurredAt     time.Time
	Type           string
	Outcome        string
	ActorUserID    *string
	SubjectUserID  *string
	OrganizationID *string
	ClientID       string
	Provider       string
	IP             string `gorm:"column:ip"`
	RequestID      string
	Details        string
}

// SAMLReplay remembers an accepted SAML assertion ID until it expires.
type SAMLReplay struct {
	Provider    string `gorm:"primaryKey"`
	AssertionID string `gorm:"primaryKey"`
	ExpiresAt   time.Time
	CreatedAt   time.Time
}

// TableName is the plural used by the migration.
func (SAMLReplay) TableName() string { return "saml_replays" }

// ClientAssertionJTI remembers the jti of an accepted client assertion
// (RFC 7523) until the assertion expires; JTIHash is the hex SHA-256 of
// the jti.
type ClientAssertionJTI struct {
	ClientID  string `gorm:"primaryKey"`
	JTIHash   string `gorm:"primaryKey;column:jti_hash"`
	ExpiresAt time.Time
	CreatedAt time.Time
}

// TableName is the plural used by the migration.
func (ClientAssertionJTI) TableName() string { return "client_assertion_jtis" }

// PendingLogin is the server-side record of a sign-in whose upstream
// answers with a cross-site POST (SAML): the AuthnRequest it answers, and
// whether an answer was already posted for it. The ACS finds it by the
// hash of the state and consumes it with the first answer.
type PendingLogin struct {
	// ID is the hex SHA-256 of the state (the SAML RelayState).
	ID       string `gorm:"primaryKey"`
	Provider string
	ClientID string
	// Saved is the provider's private data for the sign-in (the SAML
	// AuthnRequest ID).
	Saved      string
	ConsumedAt *time.Time
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// ProviderSecret is key material a provider generated for itself,
// encrypted under a key derived from GATEHOUSE_SECRET_KEY.
type ProviderSecret struct {
	Provider       string `gorm:"primaryKey"`
	Name           string `gorm:"primaryKey"`
	ValueEncrypted []byte
	CreatedAt      time.Time
}

// All lists every model, for schema checks.
func All() []any {
	return []any{
		&User{}, &Identity{}, &Organization{}, &OrganizationExternalID{}, &OrgSyncBinding{}, &Role{},
		&Permission{}, &RolePermission{}, &Membership{}, &Invitation{}, &Session{},
		&RefreshToken{}, &AuthorizationCode{}, &SigningKey{}, &APIKey{}, &AuditEvent{},
		&SAMLReplay{}, &PendingLogin{}, &ProviderSecret{}, &UpstreamCheck{},
		&ClientAssertionJTI{}, &DeviceAuthorization{},
	}
}
