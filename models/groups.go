package models

import (
	"context"
	"encoding/json"
	"slices"

	"gorm.io/gorm"
)

// Groups and usernames downstream (issue 15): an identity keeps the
// upstream groups and username of its last sign-in; a session names the
// identity it came through.

// EncodeGroups is the identities.upstream_groups value for groups: a JSON
// array ("[]" for none).
func EncodeGroups(groups []string) string {
	if len(groups) == 0 {
		return "[]"
	}
	b, err := json.Marshal(groups)
	if err != nil { // strings always encode
		return "[]"
	}
	return string(b)
}

// DecodeGroups reads an identities.upstream_groups value; an empty or
// malformed one is no groups (nil).
func DecodeGroups(s string) []string {
	if s == "" || s == "[]" {
		return nil
	}
	var out []string
	if json.Unmarshal([]byte(s), &out) != nil {
		return nil
	}
	return out
}

// Groups returns the identity's upstream groups as of its last sign-in.
func (i *Identity) Groups() []string { return DecodeGroups(i.UpstreamGroups) }

// FindIdentityByID returns the identity with the given id.
func (s *Store) FindIdentityByID(ctx context.Context, id string) (*Identity, error) {
	var i Identity
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&i).Error })
	return &i, mapErr(err, "find identity")
}

// SessionIdentity returns the identity the session came through
// (Session.IdentityID), in one query; ErrNotFound when the session is
// unknown or names no identity (any more).
func (s *Store) SessionIdentity(ctx context.Context, sessionID string) (*Identity, error) {
	var i Identity
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("identities").Select("identities.*").
			Joins("JOIN sessions ON sessions.identity_id = identities.id").
			Where("sessions.id = ?", sessionID).Take(&i).Error
	})
	return &i, mapErr(err, "find session identity")
}

// UserOrgRoles returns the user's active memberships as
// "<org-slug>:<role>", sorted, in one query.
func (s *Store) UserOrgRoles(ctx context.Context, userID string) ([]string, error) {
	var out []string
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("memberships").
			Select("organizations.slug || ':' || roles.name").
			Joins("JOIN organizations ON organizations.id = memberships.organization_id").
			Joins("JOIN roles ON roles.id = memberships.role_id").
			Where("memberships.user_id = ? AND memberships.status = ?", userID, MembershipActive).
			Scan(&out).Error
	})
	if err != nil {
		return nil, mapErr(err, "list organization roles")
	}
	// Sorted here, byte-wise: the same order on every database, and the
	// refresh read's (FindRefreshGrant sorts byte-wise too, whatever the
	// database's collation: custom role names may hold capitals).
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out, nil
}
