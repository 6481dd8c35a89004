package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// ListRoles lists the roles usable in an organization, system roles
// included, highest level first.
func (s *Service) ListRoles(ctx context.Context, orgID string, req PageRequest) (List[Role], error) {
	limit, c, err := req.parse()
	if err != nil {
		return List[Role]{}, err
	}
	if _, err := s.store.FindOrganization(ctx, orgID); err != nil {
		return List[Role]{}, err
	}
	rows, err := s.store.ListRoles(ctx, orgID, c.L, c.I, limit)
	if err != nil {
		return List[Role]{}, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	perms, err := s.store.RolePermissions(ctx, ids)
	return finish(rows, limit, func(r models.Role) cursor { return cursor{I: r.ID, L: r.Level} },
		func(r models.Role) Role { return roleView(r, perms[r.ID]) }), err
}

// RoleInput defines or changes an organization's role; nil fields stay
// as they are.
type RoleInput struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Level       *int      `json:"level"`
	Permissions *[]string `json:"permissions"`
}

// uncovered returns the grants the actor's own grants do not cover
// (rbac wildcard coverage: "kb:*" covers "kb:r*", not the reverse).
// Nobody hands on more than they hold: not as a role's grants, an API
// key's, nor by assigning a role that carries them.
func (st standing) uncovered(grants []string) []string {
	var out []string
	for _, g := range grants {
		if !rbac.CoveredBy(st.permissions, g) {
			out = append(out, g)
		}
	}
	return out
}

// checkGrants validates grants and checks the actor holds each of them.
func checkGrants(field string, grants []string, actor standing) ([]string, error) {
	var problems []string
	out := make([]string, 0, len(grants))
	for _, g := range grants {
		switch err := rbac.ValidateGrant(g); {
		case err != nil:
			problems = append(problems, err.Error())
		case !slices.Contains(out, g):
			out = append(out, g)
		}
	}
	for _, g := range actor.uncovered(out) {
		problems = append(problems, fmt.Sprintf("grant %q is not covered by your own permissions", g))
	}
	if len(problems) > 0 {
		return nil, invalid(field, "%s", strings.Join(problems, "; "))
	}
	return out, nil
}

// CreateRole defines a role of the organization. Its level may not be
// above the actor's (nor reach the owner's), the actor must hold every
// grant it gives, and its name may not be a system role's.
func (s *Service) CreateRole(ctx context.Context, a Actor, orgID string, in RoleInput) (Role, error) {
	if in.Name == nil {
		return Role{}, invalid("name", "is required")
	}
	if err := provisioning.CheckRoleName(*in.Name); err != nil {
		return Role{}, invalid("name", "%v", err)
	}
	level := 0
	if in.Level != nil {
		level = *in.Level
	}
	if level < 0 || level >= OwnerLevel {
		return Role{}, invalid("level", "must be between 0 and %d (%d is the owner's)", OwnerLevel-1, OwnerLevel)
	}
	st, err := s.standingIn(ctx, s.store, a, orgID)
	if err != nil {
		return Role{}, err
	}
	if level > st.level {
		return Role{}, forbidden("level %d is above your own level (%d)", level, st.level)
	}
	var grants []string
	if in.Permissions != nil {
		if grants, err = checkGrants("permissions", *in.Permissions, st); err != nil {
			return Role{}, err
		}
	}
	desc := ""
	if in.Description != nil {
		if err := checkName("description", *in.Description, 500); err != nil {
			return Role{}, err
		}
		desc = *in.Description
	}
	r, err := s.prov.CreateRole(ctx, provisioning.NewRole{OrganizationID: orgID, Name: *in.Name, Description: desc,
		Level: level, Permissions: grants}, a.meta())
	if err != nil {
		return Role{}, err
	}
	return roleView(*r, grants), nil
}

// orgRole finds a role of the organization the actor may change: not a
// system role, not above the actor's level.
func (s *Service) orgRole(ctx context.Context, tx Store, a Actor, orgID, roleID string) (*models.Role, standing, error) {
	r, err := tx.FindRole(ctx, roleID)
	if err != nil {
		return nil, standing{}, err
	}
	if r.OrganizationID == nil || *r.OrganizationID != orgID {
		if r.System {
			return nil, standing{}, forbidden("system roles cannot be changed or deleted")
		}
		return nil, standing{}, fmt.Errorf("role %s of organization %s: %w", roleID, orgID, ErrNotFound)
	}
	st, err := s.standingIn(ctx, tx, a, orgID)
	if err != nil {
		return nil, standing{}, err
	}
	if r.Level > st.level {
		return nil, standing{}, forbidden("role %q (level %d) is above your own level (%d)", r.Name, r.Level, st.level)
	}
	return r, st, nil
}

// UpdateRole changes an organization's role under the rules of
// CreateRole; members holding it get the change at their next token.
func (s *Service) UpdateRole(ctx context.Context, a Actor, orgID, roleID string, in RoleInput) (Role, error) {
	var out Role
	err := s.store.InTx(ctx, func(tx Store) error {
		r, st, err := s.orgRole(ctx, tx, a, orgID, roleID)
		if err != nil {
			return err
		}
		if in.Name != nil {
			if err := provisioning.CheckRoleName(*in.Name); err != nil {
				return invalid("name", "%v", err)
			}
			r.Name = *in.Name
		}
		if in.Description != nil {
			if err := checkName("description", *in.Description, 500); err != nil {
				return err
			}
			r.Description = *in.Description
		}
		if in.Level != nil {
			switch {
			case *in.Level < 0 || *in.Level >= OwnerLevel:
				return invalid("level", "must be between 0 and %d (%d is the owner's)", OwnerLevel-1, OwnerLevel)
			case *in.Level > st.level:
				return forbidden("level %d is above your own level (%d)", *in.Level, st.level)
			}
			r.Level = *in.Level
		}
		var grants []string
		if in.Permissions != nil {
			if grants, err = checkGrants("permissions", *in.Permissions, st); err != nil {
				return err
			}
		}
		r.UpdatedAt = s.now()
		if err := tx.UpdateRole(ctx, r, grants); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return invalid("name", "the organization already has a role %q", r.Name)
			}
			return err
		}
		perms, err := tx.RolePermissions(ctx, []string{r.ID})
		if err != nil {
			return err
		}
		out = roleView(*r, perms[r.ID])
		return audit(ctx, tx, a, AuditRoleUpdated, orgID, "", map[string]any{"role_id": r.ID, "name": r.Name,
			"level": r.Level, "permissions": out.Permissions})
	})
	return out, err
}

// DeleteRole deletes an organization's role that no membership or
// pending invitation holds.
func (s *Service) DeleteRole(ctx context.Context, a Actor, orgID, roleID string) error {
	return s.store.InTx(ctx, func(tx Store) error {
		r, _, err := s.orgRole(ctx, tx, a, orgID, roleID)
		if err != nil {
			return err
		}
		if err := tx.DeleteRole(ctx, orgID, roleID); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return conflict("%v", err)
			}
			return err
		}
		return audit(ctx, tx, a, AuditRoleDeleted, orgID, "", map[string]any{"role_id": r.ID, "name": r.Name})
	})
}

// ListInvitations lists an organization's invitations, oldest first; a
// pending one past its expiry shows as expired.
func (s *Service) ListInvitations(ctx context.Context, orgID string, req PageRequest) (List[Invitation], error) {
	return orgList(ctx, s, orgID, req, false, s.store.ListInvitationsPage,
		func(i models.Invitation) cursor { return cursor{T: i.CreatedAt, I: i.ID} }, invitationView(s.now()))
}

// InvitationInput invites an email with a role.
type InvitationInput struct {
	Email string `json:"email"`
	Role  string `json:"role"`
	// TTL is a Go duration ("72h"); empty means 7 days.
	TTL string `json:"ttl"`
}

// Invite invites an email to the organization with a role not above the
// actor's level.
func (s *Service) Invite(ctx context.Context, a Actor, orgID string, in InvitationInput) (Invitation, error) {
	if in.Role == "" {
		return Invitation{}, invalid("role", "is required")
	}
	var ttl time.Duration
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil || d <= 0 || d > 90*24*time.Hour {
			return Invitation{}, invalid("ttl", "must be a duration such as 72h, at most 2160h (90 days)")
		}
		ttl = d
	}
	st, err := s.standingIn(ctx, s.store, a, orgID)
	if err != nil {
		return Invitation{}, err
	}
	if _, err := findRole(ctx, s.store, orgID, in.Role, st); err != nil {
		return Invitation{}, err
	}
	inv, err := s.prov.Invite(ctx, provisioning.NewInvitation{OrganizationID: orgID, Email: in.Email, Role: in.Role,
		InvitedBy: a.UserID, TTL: ttl}, a.meta())
	if errors.Is(err, provisioning.ErrAlreadyInvited) {
		return Invitation{}, conflict("this email already has a pending invitation to the organization")
	}
	if err != nil {
		return Invitation{}, err
	}
	return invitationView(s.now())(*inv), nil
}

// RevokeInvitation withdraws a pending invitation.
func (s *Service) RevokeInvitation(ctx context.Context, a Actor, orgID, id string) error {
	err := s.prov.RevokeInvitation(ctx, orgID, id, a.meta())
	if errors.Is(err, provisioning.ErrNotPending) {
		return conflict("the invitation is no longer pending")
	}
	return err
}
