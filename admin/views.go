package admin

import (
	"encoding/json"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// What the admin API answers. These are views: no hash, secret or raw
// upstream claims ever leaves through them.

// Org is an organization.
type Org struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func orgView(o models.Organization) Org {
	return Org{ID: o.ID, Slug: o.Slug, Name: o.Name, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

// Member is a membership with its user and role.
type Member struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	RoleID    string    `json:"role_id"`
	Role      string    `json:"role"`
	RoleLevel int       `json:"role_level"`
	Status    string    `json:"status"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func memberView(m models.Member) Member {
	return Member{UserID: m.UserID, Email: m.Email, Name: m.Name, RoleID: m.RoleID, Role: m.RoleName, RoleLevel: m.RoleLevel,
		Status: m.Status, Source: m.Source, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// Role is a role with its grants; System roles are shared by every
// organization and cannot be changed.
type Role struct {
	ID             string   `json:"id"`
	OrganizationID string   `json:"organization_id,omitempty"`
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	Level          int      `json:"level"`
	System         bool     `json:"system"`
	Permissions    []string `json:"permissions"`
}

func roleView(r models.Role, perms []string) Role {
	v := Role{ID: r.ID, Name: r.Name, Description: r.Description, Level: r.Level, System: r.System, Permissions: perms}
	if r.OrganizationID != nil {
		v.OrganizationID = *r.OrganizationID
	}
	if v.Permissions == nil {
		v.Permissions = []string{}
	}
	return v
}

// User is a person known to Gatehouse.
type User struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	EmailVerified bool       `json:"email_verified"`
	Name          string     `json:"name"`
	AvatarURL     string     `json:"avatar_url,omitempty"`
	Disabled      bool       `json:"disabled"`
	LastLoginAt   *time.Time `json:"last_login_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

func userView(u models.User) User {
	return User{ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name, AvatarURL: u.AvatarURL,
		Disabled: u.Disabled, LastLoginAt: u.LastLoginAt, CreatedAt: u.CreatedAt}
}

// UserDetail is a user with identities and memberships.
type UserDetail struct {
	User
	Identities  []Identity   `json:"identities"`
	Memberships []Membership `json:"memberships"`
}

// Identity is one linked upstream account.
type Identity struct {
	ID            string     `json:"id"`
	Provider      string     `json:"provider"`
	Subject       string     `json:"subject"`
	Email         string     `json:"email,omitempty"`
	EmailVerified bool       `json:"email_verified"`
	LastLoginAt   *time.Time `json:"last_login_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// Membership is one of a user's memberships.
type Membership struct {
	OrganizationID string `json:"organization_id"`
	RoleID         string `json:"role_id"`
	Status         string `json:"status"`
	Source         string `json:"source"`
}

// Session is a sign-in of a user at a client.
type Session struct {
	ID           string     `json:"id"`
	ClientID     string     `json:"client_id"`
	Provider     string     `json:"provider"`
	ActiveOrgID  *string    `json:"active_org_id,omitempty"`
	Scope        string     `json:"scope"`
	Active       bool       `json:"active"`
	AuthTime     time.Time  `json:"auth_time"`
	LastUsedAt   time.Time  `json:"last_used_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
}

func sessionView(now time.Time) func(models.Session) Session {
	return func(s models.Session) Session {
		return Session{ID: s.ID, ClientID: s.ClientID, Provider: s.Provider, ActiveOrgID: s.ActiveOrgID, Scope: s.Scope,
			Active: s.RevokedAt == nil && s.ExpiresAt.After(now), AuthTime: s.AuthTime, LastUsedAt: s.LastUsedAt,
			ExpiresAt: s.ExpiresAt, RevokedAt: s.RevokedAt, RevokeReason: s.RevokeReason, CreatedAt: s.CreatedAt}
	}
}

// Invitation offers an email a role in an organization.
type Invitation struct {
	ID         string     `json:"id"`
	Email      string     `json:"email"`
	RoleID     string     `json:"role_id"`
	Status     string     `json:"status"`
	InvitedBy  *string    `json:"invited_by,omitempty"`
	ExpiresAt  time.Time  `json:"expires_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

func invitationView(now time.Time) func(models.Invitation) Invitation {
	return func(i models.Invitation) Invitation {
		status := i.Status
		if status == models.InvitationPending && !i.ExpiresAt.After(now) {
			status = models.InvitationExpired
		}
		return Invitation{ID: i.ID, Email: i.Email, RoleID: i.RoleID, Status: status, InvitedBy: i.InvitedBy,
			ExpiresAt: i.ExpiresAt, AcceptedAt: i.AcceptedAt, CreatedAt: i.CreatedAt}
	}
}

// APIKey describes a key; its secret is shown once, at creation
// (NewAPIKey), and never stored.
type APIKey struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	Name           string     `json:"name"`
	Prefix         string     `json:"prefix"`
	Permissions    []string   `json:"permissions"`
	Disabled       bool       `json:"disabled"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	LastUsedAt     *time.Time `json:"last_used_at,omitempty"`
	CreatedBy      *string    `json:"created_by,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

func apiKeyView(k models.APIKey) APIKey {
	return APIKey{ID: k.ID, OrganizationID: k.OrganizationID, Name: k.Name, Prefix: k.Prefix, Permissions: k.PermissionList(),
		Disabled: k.Disabled, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt}
}

// NewAPIKey is a created key with its secret: the only time it is shown.
type NewAPIKey struct {
	APIKey
	Key string `json:"key"`
}

// AuditEvent is one recorded decision.
type AuditEvent struct {
	ID             int64           `json:"id"`
	OccurredAt     time.Time       `json:"occurred_at"`
	Type           string          `json:"type"`
	Outcome        string          `json:"outcome"`
	ActorUserID    *string         `json:"actor_user_id,omitempty"`
	SubjectUserID  *string         `json:"subject_user_id,omitempty"`
	OrganizationID *string         `json:"organization_id,omitempty"`
	ClientID       string          `json:"client_id,omitempty"`
	Provider       string          `json:"provider,omitempty"`
	IP             string          `json:"ip,omitempty"`
	RequestID      string          `json:"request_id,omitempty"`
	Details        json.RawMessage `json:"details"`
}

func auditView(e models.AuditEvent) AuditEvent {
	d := json.RawMessage(e.Details)
	if !json.Valid(d) {
		d = json.RawMessage("{}")
	}
	return AuditEvent{ID: e.ID, OccurredAt: e.OccurredAt, Type: e.Type, Outcome: e.Outcome, ActorUserID: e.ActorUserID,
		SubjectUserID: e.SubjectUserID, OrganizationID: e.OrganizationID, ClientID: e.ClientID, Provider: e.Provider,
		IP: e.IP, RequestID: e.RequestID, Details: d}
}
