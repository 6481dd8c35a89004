package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Grants are what an active membership gives a user in one organization.
type Grants struct {
	OrganizationID string
	Roles          []string
	Permissions    []string
}

// ActiveGrants returns the roles and permissions of the user's active
// membership in the organization, or ErrNotFound when there is none. It
// is one query: it runs on every token issued.
func (s *Store) ActiveGrants(ctx context.Context, userID, orgID string) (*Grants, error) {
	var rows []struct {
		Role       string
		Permission *string
	}
	err := s.db.WithContext(ctx).Table("memberships").
		Select("roles.name AS role, permissions.name AS permission").
		Joins("JOIN roles ON roles.id = memberships.role_id").
		Joins("LEFT JOIN role_permissions ON role_permissions.role_id = roles.id").
		Joins("LEFT JOIN permissions ON permissions.id = role_permissions.permission_id").
		Where("memberships.user_id = ? AND memberships.organization_id = ? AND memberships.status = ?", userID, orgID, MembershipActive).
		Order("permissions.name").
		Scan(&rows).Error
	if err != nil {
		return nil, mapErr(err, "find grants")
	}
	if len(rows) == 0 {
		return nil, mapErr(gorm.ErrRecordNotFound, "find membership")
	}
	g := &Grants{OrganizationID: orgID, Roles: []string{rows[0].Role}, Permissions: []string{}}
	for _, r := range rows {
		if r.Permission != nil {
			g.Permissions = append(g.Permissions, *r.Permission)
		}
	}
	return g, nil
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
