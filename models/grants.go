package models

import (
	"context"
	"time"
)

// Grants are what an active membership gives a user in one organization.
type Grants struct {
	OrganizationID string
	Roles          []string
	Permissions    []string
}

// ActiveGrants returns the roles and permissions of the user's active
// membership in the organization, or ErrNotFound when there is none.
func (s *Store) ActiveGrants(ctx context.Context, userID, orgID string) (*Grants, error) {
	var m Membership
	err := s.db.WithContext(ctx).
		Where("user_id = ? AND organization_id = ? AND status = ?", userID, orgID, MembershipActive).
		Take(&m).Error
	if err != nil {
		return nil, mapErr(err, "find membership")
	}
	g := &Grants{OrganizationID: orgID}
	var role Role
	if err := s.db.WithContext(ctx).Where("id = ?", m.RoleID).Take(&role).Error; err != nil {
		return nil, mapErr(err, "find role")
	}
	g.Roles = []string{role.Name}
	err = s.db.WithContext(ctx).Table("role_permissions").
		Select("permissions.name").
		Joins("JOIN permissions ON permissions.id = role_permissions.permission_id").
		Where("role_permissions.role_id = ?", role.ID).
		Order("permissions.name").
		Pluck("permissions.name", &g.Permissions).Error
	return g, mapErr(err, "list permissions")
}

// UpdateLogin refreshes an identity's and its user's profile fields and
// last-login time after a successful upstream sign-in.
func (s *Store) UpdateLogin(ctx context.Context, identityID string, fields Identity, now time.Time) error {
	return s.InTx(ctx, func(tx *Store) error {
		err := tx.db.Model(&Identity{}).Where("id = ?", identityID).Updates(map[string]any{
			"email": fields.Email, "email_verified": fields.EmailVerified, "name": fields.Name,
			"avatar_url": fields.AvatarURL, "raw_claims": fields.RawClaims, "last_login_at": now, "updated_at": now,
		}).Error
		if err != nil {
			return mapErr(err, "update identity")
		}
		updates := map[string]any{"last_login_at": now, "updated_at": now}
		if fields.Email != "" {
			updates["email"], updates["email_verified"] = fields.Email, fields.EmailVerified
		}
		if fields.Name != "" {
			updates["name"] = fields.Name
		}
		if fields.AvatarURL != "" {
			updates["avatar_url"] = fields.AvatarURL
		}
		return mapErr(tx.db.Model(&User{}).Where("id = ?", fields.UserID).Updates(updates).Error, "update user")
	})
}
