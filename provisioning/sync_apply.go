package provisioning

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// syncOrgs loads what Diff needs, applies its changes in the login's
// transaction and returns how many it applied. Without matching rules and
// synced memberships it runs no query at all.
func (s *Service) syncOrgs(ctx context.Context, tx *models.Store, user *models.User, id *providers.Identity, current []models.Membership, meta Meta, now time.Time) (int, error) {
	policy := s.policy.Load().sync
	dir, err := loadDirectory(ctx, tx, id.Provider, policy.Targets(id.Provider, id.Groups))
	if err != nil {
		return 0, err
	}
	source := models.SyncSource(id.Provider)
	created := map[string]string{} // slug → id of organizations created now
	lost := map[string]bool{}      // slugs another sign-in took meanwhile
	applied := 0
	for _, c := range policy.Diff(id.Provider, current, id.Groups, id.GroupsPartial, dir) {
		if lost[c.Slug] && c.Kind == ChangeAdd {
			continue // audited with the organization change that failed
		}
		e := models.AuditEvent{Provider: id.Provider, SubjectUserID: &user.ID}
		details := map[string]any{"source": source, "rule": c.Rule, "group": c.Group}
		orgID := cmp.Or(c.OrgID, created[c.Slug])
		if orgID != "" {
			e.OrganizationID = &orgID
		}
		var ok bool
		switch c.Kind {
		case ChangeCreateOrg, ChangeMapOrg, ChangeBindOrg:
			o := &models.Organization{ID: c.OrgID, Slug: c.Slug, Name: c.Name}
			e.Type = AuditOrgCreated
			switch c.Kind {
			case ChangeCreateOrg:
				ok, err = tx.EnsureOrganization(ctx, o, id.Provider, c.ExternalID)
				if err == nil && c.Target != "" {
					// Bound in the same transaction: the target follows this
					// organization's id from now on.
					_, err = tx.BindSyncTarget(ctx, c.Target, o.ID)
				}
			case ChangeMapOrg:
				e.Type = AuditOrgMapped
				ok, err = tx.ClaimOrganization(ctx, c.OrgID, id.Provider, c.ExternalID)
			case ChangeBindOrg:
				e.Type = AuditOrgBound
				ok, err = tx.BindSyncTarget(ctx, c.Target, c.OrgID)
			}
			details["slug"] = c.Slug
			if c.ExternalID != "" || c.Target == "" {
				details["external_id"] = c.ExternalID
			}
			if c.Target != "" {
				details["target"] = c.Target
			}
			if c.Reason != "" {
				details["reason"] = c.Reason
			}
			if errors.Is(err, models.ErrConflict) || errors.Is(err, models.ErrNotFound) {
				// Diff read the directory before a concurrent sign-in took
				// the slug for another upstream organization, or bound the
				// target to another organization (or an administrator
				// deleted the organization): nothing is joined now; the
				// next sign-in reads the new state.
				lost[c.Slug], ok, err = true, true, nil
				c.Kind, e.Type, e.Outcome = ChangeSkip, AuditSyncRuleSkipped, models.OutcomeFailure
				what := fmt.Sprintf("%s organization %q", id.Provider, c.ExternalID)
				if c.Target != "" {
					what = fmt.Sprintf("the target %q", c.Target)
				}
				details["reason"] = fmt.Sprintf("organization %q was taken for something else, or deleted, during this sign-in; "+
					"the next sign-in places %s", c.Slug, what)
				break
			}
			if err == nil && o.ID != "" {
				created[c.Slug] = o.ID
				e.OrganizationID = &o.ID
			}
		case ChangeSkip:
			ok = true
			e.Type, e.Outcome = AuditSyncRuleSkipped, models.OutcomeFailure
			details["reason"] = c.Reason
		case ChangeKeep:
			ok = true
			e.Type, e.Outcome = AuditSyncRemovalSkipped, models.OutcomeFailure
			details["reason"], details["membership_id"], details["from_role_id"] = c.Reason, c.MembershipID, c.FromRoleID
		case ChangeAdd:
			m := &models.Membership{UserID: user.ID, OrganizationID: orgID, RoleID: c.RoleID, Status: models.MembershipActive, Source: source}
			ok, err = tx.UpsertSyncMembership(ctx, m)
			e.Type, details["role"] = AuditMembershipAdded, c.RoleName
		case ChangeRole, ChangeReactivate:
			ok, err = tx.UpdateSyncMembership(ctx, c.MembershipID, source, c.RoleID, models.MembershipActive, now)
			e.Type, details["role"], details["from_role_id"] = AuditMembershipRole, c.RoleName, c.FromRoleID
			if c.Kind == ChangeReactivate {
				e.Type = AuditMembershipRevived
			}
		case ChangeRemove:
			ok, err = tx.DeleteSyncMembership(ctx, c.MembershipID, source)
			e.Type, details["from_role_id"] = AuditMembershipRemoved, c.FromRoleID
		case ChangeSuspend:
			ok, err = tx.UpdateSyncMembership(ctx, c.MembershipID, source, c.FromRoleID, models.MembershipSuspended, now)
			e.Type, details["from_role_id"] = AuditMembershipSuspend, c.FromRoleID
		}
		if err != nil {
			return applied, err
		}
		if !ok {
			continue // a concurrent login or an administrator got there first
		}
		if c.Kind != ChangeSkip && c.Kind != ChangeKeep {
			applied++
		}
		if err := s.audit(ctx, tx, meta, e, details); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// loadDirectory reads the organizations, mappings and roles the targets
// name: at most two queries, whatever the number of groups and rules.
func loadDirectory(ctx context.Context, tx *models.Store, provider string, targets []Target) (Directory, error) {
	dir := Directory{OrgsBySlug: map[string]string{}}
	var slugs, externalIDs, roleNames, literals []string
	seen := map[string]bool{}
	add := func(list *[]string, kind, v string) {
		if v != "" && !seen[kind+v] {
			seen[kind+v] = true
			*list = append(*list, v)
		}
	}
	for _, t := range targets {
		if t.Problem != "" {
			continue
		}
		add(&slugs, "o:", t.Slug)
		add(&slugs, "o:", t.AltSlug)
		add(&externalIDs, "x:", t.ExternalID)
		add(&roleNames, "r:", t.Role)
		if t.ExternalID == "" {
			add(&literals, "t:", t.Slug)
		}
	}
	if len(slugs) == 0 {
		return dir, nil
	}
	found, err := tx.FindSyncOrganizations(ctx, slugs, provider, externalIDs, literals)
	if err != nil {
		return dir, err
	}
	dir.ExternalIDs, dir.Bindings = found.Mappings, found.Bindings
	orgIDs := make([]string, 0, len(found.Orgs))
	for _, o := range found.Orgs {
		dir.OrgsBySlug[o.Slug] = o.ID
		orgIDs = append(orgIDs, o.ID)
	}
	dir.Roles, err = tx.FindRolesByNames(ctx, orgIDs, roleNames)
	return dir, err
}
