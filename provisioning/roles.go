package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// OwnerLevel is the level of the seeded owner role; an organization's own
// roles stay below it, so owner-only actions remain the owner's.
const OwnerLevel = 100

// systemRoleNames are the names of the system roles seeded by migration
// 00002 (models.RoleOwnerID and the others).
var systemRoleNames = []string{"owner", "admin", "member", "viewer"}

// CheckRoleName reports what is wrong with the name of an organization's
// own role, or nil: the grammar of rbac.ValidateRoleName, and none of the
// system roles' names. Tokens carry role names and backends check them
// (RequireRole("owner")), so an organization's own "owner", at a lower
// level, would pass for the system owner there.
func CheckRoleName(name string) error {
	if err := rbac.ValidateRoleName(name); err != nil {
		return err
	}
	if slices.Contains(systemRoleNames, name) {
		return fmt.Errorf("role name %q is reserved for the system role of that name; choose another", name)
	}
	return nil
}

// NewRole defines a role of one organization.
type NewRole struct {
	OrganizationID string
	Name           string
	Description    string
	// Level orders roles (0–99): the higher, the more it may do.
	Level int
	// Permissions are grants: "resource:action", optionally with wildcards
	// ("kb:*", "*:read", "kb:r*").
	Permissions []string
}

// CreateRole validates and stores an organization's role. Every malformed
// permission is reported, each with what is wrong.
func (s *Service) CreateRole(ctx context.Context, in NewRole, meta Meta) (*models.Role, error) {
	var problems []string
	if err := CheckRoleName(in.Name); err != nil {
		problems = append(problems, err.Error())
	}
	if in.Level < 0 || in.Level >= OwnerLevel {
		problems = append(problems, fmt.Sprintf("level %d must be between 0 and %d (%d is the owner's)", in.Level, OwnerLevel-1, OwnerLevel))
	}
	perms := make([]string, 0, len(in.Permissions))
	for _, p := range in.Permissions {
		if err := rbac.ValidateGrant(p); err != nil {
			problems = append(problems, err.Error())
		} else if !slices.Contains(perms, p) {
			perms = append(perms, p)
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Field: "role", Reason: strings.Join(problems, "; ")}
	}
	role := &models.Role{OrganizationID: &in.OrganizationID, Name: in.Name, Description: in.Description, Level: in.Level}
	err := s.store.InTx(ctx, func(tx *models.Store) error {
		if _, err := tx.FindOrganization(ctx, in.OrganizationID); err != nil {
			return err
		}
		if err := tx.CreateRoleWithPermissions(ctx, role, perms); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return &InputError{Field: "name", Reason: fmt.Sprintf("the organization already has a role %q", in.Name)}
			}
			return err
		}
		return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditRoleCreated, OrganizationID: &in.OrganizationID},
			map[string]any{"role_id": role.ID, "name": role.Name, "level": role.Level, "permissions": perms})
	})
	if err != nil {
		return nil, err
	}
	return role, nil
}
