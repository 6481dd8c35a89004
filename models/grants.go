package models

import (
	"context"

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
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("memberships").
			Select("roles.name AS role, permissions.name AS permission").
			Joins("JOIN roles ON roles.id = memberships.role_id").
			Joins("LEFT JOIN role_permissions ON role_permissions.role_id = roles.id").
			Joins("LEFT JOIN permissions ON permissions.id = role_permissions.permission_id").
			Where("memberships.user_id = ? AND memberships.organization_id = ? AND memberships.status = ?", userID, orgID, MembershipActive).
			Order("permissions.name").
			Scan(&rows).Error
	})
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
