package admin

import (
	"context"
	"errors"
	"strings"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// Audit event types of the admin API (besides those provisioning records
// for invitations, roles and unlinking).
const (
	AuditOrgCreated      = "organization.created"
	AuditOrgUpdated      = "organization.updated"
	AuditOrgDeleted      = "organization.deleted"
	AuditMemberAdded     = "membership.added"
	AuditMemberChanged   = "membership.updated"
	AuditMemberRemoved   = "membership.removed"
	AuditRoleUpdated     = "role.updated"
	AuditRoleDeleted     = "role.deleted"
	AuditUserDisabled    = "user.disabled"
	AuditUserEnabled     = "user.enabled"
	AuditSessionRevoked  = "session.revoked"
	AuditSessionsRevoked = "sessions.revoked"
	AuditAPIKeyCreated   = "api_key.created"
	AuditAPIKeyDisabled  = "api_key.disabled"
	AuditAPIKeyEnabled   = "api_key.enabled"
	AuditAPIKeyDeleted   = "api_key.deleted"
	AuditAdminGranted    = "admin.granted"
	// AuditMemberEmailRefused: adding a member by email, or granting
	// administration, passed over users whose email only providers not
	// trusted for email verified.
	AuditMemberEmailRefused = "membership.email_refused"
	revokeReasonByAdmin     = "revoked_by_admin"
	revokeReasonDisabling   = "user_disabled"
)

// OrgInput creates or changes an organization; nil fields stay as they are.
type OrgInput struct {
	Slug *string `json:"slug"`
	Name *string `json:"name"`
}

func checkSlug(slug string) error {
	switch {
	case !config.ValidSlug(slug):
		return invalid("slug", "%q must be 1–63 lowercase letters, digits and hyphens, starting with a letter or digit", slug)
	case slug == models.AdminOrgSlug:
		return invalid("slug", "%q is reserved for the Gatehouse administrators' organization", slug)
	}
	return nil
}

func checkName(field, name string, max int) error {
	if len(name) > max || strings.ContainsAny(name, "\x00\r\n") {
		return invalid(field, "must be at most %d characters on one line", max)
	}
	return nil
}

// ListOrgs lists every organization (Gatehouse administrators only).
func (s *Service) ListOrgs(ctx context.Context, a Actor, req PageRequest) (List[Org], error) {
	p, err := req.page(false)
	if err != nil {
		return List[Org]{}, err
	}
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[Org]{}, err
	}
	rows, err := s.store.ListOrganizations(ctx, p)
	return finish(rows, p.Limit, func(o models.Organization) cursor { return cursor{T: o.CreatedAt, I: o.ID} }, orgView), err
}

// CreateOrg creates an organization (Gatehouse administrators only). It
// may take a slug an org-sync rule targets: with auto_create_orgs off,
// that is how an administrator makes a rule's organization.
func (s *Service) CreateOrg(ctx context.Context, a Actor, in OrgInput) (Org, error) {
	if in.Slug == nil {
		return Org{}, invalid("slug", "is required")
	}
	if err := checkSlug(*in.Slug); err != nil {
		return Org{}, err
	}
	o := &models.Organization{Slug: *in.Slug}
	if in.Name != nil {
		if err := checkName("name", *in.Name, 200); err != nil {
			return Org{}, err
		}
		o.Name = *in.Name
	}
	err := s.store.InTx(ctx, func(tx Store) error {
		if _, err := s.asAdministrator(ctx, tx, a); err != nil {
			return err
		}
		if err := tx.CreateOrganization(ctx, o); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return invalid("slug", "%q is taken by another organization", o.Slug)
			}
			return err
		}
		return audit(ctx, tx, a, AuditOrgCreated, o.ID, "", map[string]any{"slug": o.Slug, "name": o.Name})
	})
	return orgView(*o), err
}

// GetOrg returns an organization.
func (s *Service) GetOrg(ctx context.Context, orgID string) (Org, error) {
	o, err := s.store.FindOrganization(ctx, orgID)
	if err != nil {
		return Org{}, err
	}
	return orgView(*o), nil
}

// OrgSyncRule is an org-sync rule of the configuration file that places
// people in an organization, and why (`via`: `bound`, `slug`,
// `upstream_org` or `slug_pattern`).
type OrgSyncRule struct {
	Index    int    `json:"index"`
	Match    string `json:"match"`
	Org      string `json:"org"`
	Role     string `json:"role"`
	Provider string `json:"provider,omitempty"`
	Via      string `json:"via"`
}

// OrgSyncRules lists the org-sync rules that place people in the
// organization, in the file's order.
func (s *Service) OrgSyncRules(ctx context.Context, orgID string) (List[OrgSyncRule], error) {
	o, err := s.store.FindOrganization(ctx, orgID)
	if err != nil {
		return List[OrgSyncRule]{}, err
	}
	rules, err := s.prov.SyncRulesFor(ctx, o)
	if err != nil {
		return List[OrgSyncRule]{}, err
	}
	out := List[OrgSyncRule]{Items: make([]OrgSyncRule, 0, len(rules))}
	for _, r := range rules {
		out.Items = append(out.Items, OrgSyncRule{Index: r.Index, Match: r.Match, Org: r.Org, Role: r.Role, Provider: r.Provider, Via: r.Via})
	}
	return out, nil
}

// syncTargetSlug refuses a slug an org-sync rule may place people in
// (provisioning.SyncPolicy.RuleTargeting) to an actor who is not a
// Gatehouse administrator: an organization's admin who took `finance`
// before the rule's organization existed would receive its members.
func (s *Service) syncTargetSlug(a Actor, slug string) error {
	if a.administrator() {
		return nil
	}
	r, ok := s.prov.SyncRuleTargeting(slug)
	if !ok {
		return nil
	}
	return invalid("slug", "%q is reserved: org_sync.rules[%d] (org: %q) places people in the organization with that slug; "+
		"only Gatehouse administrators may give an organization a slug that org sync targets", slug, r.Index, r.Org)
}

// UpdateOrg renames an organization or changes its slug. Org-sync rules
// that have placed people in it keep to it whatever its slug (literal
// targets are bound to it, {org} targets mapped); a slug a rule targets
// is for Gatehouse administrators to give (syncTargetSlug).
func (s *Service) UpdateOrg(ctx context.Context, a Actor, orgID string, in OrgInput) (Org, error) {
	var o *models.Organization
	err := s.store.InTx(ctx, func(tx Store) error {
		var err error
		if o, err = tx.FindOrganization(ctx, orgID); err != nil {
			return err
		}
		before := *o
		if in.Slug != nil && *in.Slug != o.Slug {
			if orgID == models.AdminOrgID {
				return forbidden("the administrators' organization keeps its slug")
			}
			if err := checkSlug(*in.Slug); err != nil {
				return err
			}
			if err := s.syncTargetSlug(a, *in.Slug); err != nil {
				return err
			}
			o.Slug = *in.Slug
		}
		if in.Name != nil {
			if err := checkName("name", *in.Name, 200); err != nil {
				return err
			}
			o.Name = *in.Name
		}
		o.UpdatedAt = s.now()
		if err := tx.UpdateOrganization(ctx, o); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return invalid("slug", "%q is taken by another organization", o.Slug)
			}
			return err
		}
		return audit(ctx, tx, a, AuditOrgUpdated, orgID, "", map[string]any{"slug": o.Slug, "name": o.Name,
			"from_slug": before.Slug, "from_name": before.Name})
	})
	if err != nil {
		return Org{}, err
	}
	return orgView(*o), nil
}

// DeleteOrg deletes an organization with its memberships, roles,
// invitations and API keys. Owner-only; the administrators' organization
// cannot be deleted.
func (s *Service) DeleteOrg(ctx context.Context, a Actor, orgID string) error {
	if orgID == models.AdminOrgID {
		return forbidden("the administrators' organization cannot be deleted")
	}
	return s.store.InTx(ctx, func(tx Store) error {
		o, err := tx.FindOrganization(ctx, orgID)
		if err != nil {
			return err
		}
		st, err := s.standingIn(ctx, tx, a, orgID)
		if err != nil {
			return err
		}
		if st.level < OwnerLevel {
			return forbidden("deleting an organization is for owners only")
		}
		if err := tx.DeleteOrganization(ctx, orgID); err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditOrgDeleted, orgID, "", map[string]any{"slug": o.Slug})
	})
}

// ListMembers lists an organization's memberships.
func (s *Service) ListMembers(ctx context.Context, orgID string, req PageRequest) (List[Member], error) {
	return orgList(ctx, s, orgID, req, false, s.store.ListMembers,
		func(m models.Member) cursor { return cursor{T: m.CreatedAt, I: m.ID} }, memberView)
}

// MemberInput adds a member or changes one; nil fields stay as they are.
type MemberInput struct {
	// UserID or Email names the person to add. A Gatehouse
	// administrator adds a user directly, by id or by an email exactly
	// one user holds verified by a trusted provider; an organization's
	// admin names an email, which is invited.
	UserID *string `json:"user_id"`
	Email  *string `json:"email"`
	// Role is a role name: the organization's own, else a system role.
	Role *string `json:"role"`
	// Status is active or suspended.
	Status *string `json:"status"`
}

// findRole resolves a role name in an organization (its own role first)
// and checks the actor may assign it: a role not above their level whose
// every grant their own grants cover. The level alone would let an actor
// with narrow grants hand out a lower role carrying wider ones (member's
// *:read and *:write, a custom role's admin:audit-read).
func findRole(ctx context.Context, st Store, orgID, name string, actor standing) (*models.Role, error) {
	roles, err := st.FindRolesByNames(ctx, []string{orgID}, []string{name})
	if err != nil {
		return nil, err
	}
	var found *models.Role
	for i := range roles {
		r := &roles[i]
		if r.OrganizationID != nil && *r.OrganizationID == orgID {
			found = r
			break
		}
		if r.OrganizationID == nil {
			found = r
		}
	}
	if found == nil {
		return nil, invalid("role", "no role %q in this organization", name)
	}
	if err := checkAssignable(ctx, st, found.ID, found.Name, found.Level, actor); err != nil {
		return nil, err
	}
	return found, nil
}

// checkAssignable checks the actor may hand on a role: not above their
// level, and every grant of it covered by their own grants.
func checkAssignable(ctx context.Context, st Store, roleID, name string, level int, actor standing) error {
	if level > actor.level {
		return forbidden("role %q (level %d) is above your own level (%d)", name, level, actor.level)
	}
	perms, err := st.RolePermissions(ctx, []string{roleID})
	if err != nil {
		return err
	}
	if missing := actor.uncovered(perms[roleID]); len(missing) > 0 {
		return forbidden("role %q holds %s, not covered by your own permissions", name, strings.Join(missing, ", "))
	}
	return nil
}

// MemberAdded is what AddMember did: Member is set when a Gatehouse
// administrator added a user directly; Invitation when an organization's
// admin added someone, who joins at their next sign-in.
type MemberAdded struct {
	Member     *Member
	Invitation *Invitation
}

// errInviteOnly refuses an organization's admin naming a user by id.
var errInviteOnly = forbidden("organization admins add people by email: the address is invited, and its owner " +
	"joins at their next sign-in through a provider trusted for email; only Gatehouse administrators add a user directly")

// AddMember gives a user a role in an organization (a manual membership,
// which org sync never changes). The role may not be above the actor's
// level, nor hold grants the actor's do not cover.
//
// Only Gatehouse administrators (acting in the administrators'
// organization) add a user directly. An organization's admin reaches
// people by invitation only: the email is invited with the role, and its
// owner joins at their next sign-in through a provider trusted for email.
// The answer is the invitation, the same whether or not anyone has that
// email, and nothing looks users up: an organization's admin neither
// learns who has an account on the instance nor enrolls anyone without
// their signing in.
func (s *Service) AddMember(ctx context.Context, a Actor, orgID string, in MemberInput) (MemberAdded, error) {
	if in.Role == nil || *in.Role == "" {
		return MemberAdded{}, invalid("role", "is required")
	}
	status := models.MembershipActive
	if in.Status != nil {
		status = *in.Status
	}
	if status != models.MembershipActive && status != models.MembershipSuspended {
		return MemberAdded{}, invalid("status", "must be active or suspended")
	}
	if !a.administrator() {
		return s.addByInvitation(ctx, a, orgID, in, status)
	}
	out, err := s.addDirectly(ctx, a, orgID, in, status)
	if err != nil {
		return MemberAdded{}, err
	}
	return MemberAdded{Member: &out}, nil
}

// addByInvitation is AddMember for an organization's admin.
func (s *Service) addByInvitation(ctx context.Context, a Actor, orgID string, in MemberInput, status string) (MemberAdded, error) {
	switch {
	case in.UserID != nil && *in.UserID != "":
		return MemberAdded{}, errInviteOnly
	case in.Email == nil || *in.Email == "":
		return MemberAdded{}, invalid("email", "is required: organization admins add people by email, as an invitation")
	case status != models.MembershipActive:
		return MemberAdded{}, invalid("status", "an invitation makes an active membership when accepted; suspend the member afterwards")
	}
	inv, err := s.Invite(ctx, a, orgID, InvitationInput{Email: *in.Email, Role: *in.Role})
	if err != nil {
		return MemberAdded{}, err
	}
	return MemberAdded{Invitation: &inv}, nil
}

// addDirectly is AddMember for a Gatehouse administrator.
func (s *Service) addDirectly(ctx context.Context, a Actor, orgID string, in MemberInput, status string) (Member, error) {
	var out Member
	var passedOver []string // users whose email only untrusted providers verified
	err := s.store.InTx(ctx, func(tx Store) error {
		if _, err := tx.FindOrganization(ctx, orgID); err != nil {
			return err
		}
		st, err := s.standingIn(ctx, tx, a, orgID)
		if err != nil {
			return err
		}
		role, err := findRole(ctx, tx, orgID, *in.Role, st)
		if err != nil {
			return err
		}
		userID, untrusted, err := s.resolveUser(ctx, tx, in)
		if err != nil {
			passedOver = untrusted
			return err
		}
		m := &models.Membership{UserID: userID, OrganizationID: orgID, RoleID: role.ID, Status: status, Source: models.SourceManual}
		if err := tx.CreateMembership(ctx, m); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return conflict("the user is already a member; change the membership instead")
			}
			return err
		}
		mm, err := tx.FindMember(ctx, orgID, userID)
		if err != nil {
			return err
		}
		out = memberView(*mm)
		return audit(ctx, tx, a, AuditMemberAdded, orgID, userID, map[string]any{"role": role.Name, "status": status, "source": models.SourceManual})
	})
	if len(passedOver) > 0 {
		// Outside the rolled-back transaction, so it stays; a failure to
		// record must not change the answer.
		_ = auditEmailRefused(ctx, s.store, a, orgID, normalEmail(*in.Email), passedOver)
	}
	return out, err
}

// resolveUser finds the user a membership request names: by id, or by an
// email that a provider trusted for email verified. When the email
// matches only users whose address untrusted providers verified, the
// answer is an error and their ids, for the audit trail.
func (s *Service) resolveUser(ctx context.Context, tx Store, in MemberInput) (string, []string, error) {
	switch {
	case in.UserID != nil && *in.UserID != "":
		u, err := tx.FindUser(ctx, *in.UserID)
		if errors.Is(err, models.ErrNotFound) {
			return "", nil, invalid("user_id", "no user %q", *in.UserID)
		}
		if err != nil {
			return "", nil, err
		}
		return u.ID, nil, nil
	case in.Email != nil && *in.Email != "":
		users, untrusted, err := s.usersByEmail(ctx, tx, normalEmail(*in.Email))
		if err != nil {
			return "", nil, err
		}
		switch {
		case len(users) == 1:
			return users[0].ID, nil, nil
		case len(users) > 1:
			return "", nil, invalid("email", "%d users have this email verified by a trusted provider; name one by user_id", len(users))
		case len(untrusted) > 0:
			return "", untrusted, invalid("email", "no user has this email verified by a provider trusted for email "+
				"(only by providers with trusted_email off); name the user by user_id, or invite the email: "+
				"a sign-in through a trusted provider accepts the invitation")
		}
		return "", nil, invalid("email", "no user has signed in with this verified email yet; invite it instead")
	}
	return "", nil, invalid("user_id", "user_id or email is required")
}

// normalEmail is an email as provisioning stores it.
func normalEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// UpdateMember changes a member's role or status. Neither the member's
// current role nor the new one may be above the actor's level, and an
// organization keeps at least one active owner. Reactivating a suspended
// member hands their role on again, so it follows the rules of assigning
// it (checkAssignable): the actor's grants must cover the role's.
func (s *Service) UpdateMember(ctx context.Context, a Actor, orgID, userID string, in MemberInput) (Member, error) {
	if in.Status != nil && *in.Status != models.MembershipActive && *in.Status != models.MembershipSuspended {
		return Member{}, invalid("status", "must be active or suspended")
	}
	var out Member
	err := s.store.InTx(ctx, func(tx Store) error {
		m, st, err := s.memberToChange(ctx, tx, a, orgID, userID)
		if err != nil {
			return err
		}
		roleID, roleName, level, status := m.RoleID, m.RoleName, m.RoleLevel, m.Status
		if in.Role != nil {
			role, err := findRole(ctx, tx, orgID, *in.Role, st)
			if err != nil {
				return err
			}
			roleID, roleName, level = role.ID, role.Name, role.Level
		}
		if in.Status != nil {
			status = *in.Status
		}
		if in.Role == nil && status == models.MembershipActive && m.Status != models.MembershipActive {
			if err := checkAssignable(ctx, tx, roleID, roleName, level, st); err != nil {
				return err
			}
		}
		if err := s.keepAnOwner(ctx, tx, orgID, m, level, status); err != nil {
			return err
		}
		if err := tx.UpdateMembership(ctx, m.ID, roleID, status, s.now()); err != nil {
			return err
		}
		mm, err := tx.FindMember(ctx, orgID, userID)
		if err != nil {
			return err
		}
		out = memberView(*mm)
		return audit(ctx, tx, a, AuditMemberChanged, orgID, userID, map[string]any{"role": roleName, "status": status,
			"from_role": m.RoleName, "from_status": m.Status, "from_source": m.Source})
	})
	return out, err
}

// RemoveMember ends a membership, under the rules of UpdateMember.
func (s *Service) RemoveMember(ctx context.Context, a Actor, orgID, userID string) error {
	return s.store.InTx(ctx, func(tx Store) error {
		m, _, err := s.memberToChange(ctx, tx, a, orgID, userID)
		if err != nil {
			return err
		}
		if err := s.keepAnOwner(ctx, tx, orgID, m, -1, ""); err != nil {
			return err
		}
		if err := tx.DeleteMembership(ctx, m.ID); err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditMemberRemoved, orgID, userID, map[string]any{"from_role": m.RoleName, "from_source": m.Source})
	})
}

// memberToChange finds the membership and checks the actor outranks or
// equals it.
func (s *Service) memberToChange(ctx context.Context, tx Store, a Actor, orgID, userID string) (*models.Member, standing, error) {
	m, err := tx.FindMember(ctx, orgID, userID)
	if err != nil {
		return nil, standing{}, err
	}
	st, err := s.standingIn(ctx, tx, a, orgID)
	if err != nil {
		return nil, standing{}, err
	}
	if m.RoleLevel > st.level {
		return nil, standing{}, forbidden("the member's role %q (level %d) is above your own level (%d)", m.RoleName, m.RoleLevel, st.level)
	}
	return m, st, nil
}

// keepAnOwner refuses a change that leaves the organization without an
// active owner (newLevel -1: the membership goes).
func (s *Service) keepAnOwner(ctx context.Context, tx Store, orgID string, m *models.Member, newLevel int, newStatus string) error {
	wasOwner := m.RoleLevel >= OwnerLevel && m.Status == models.MembershipActive
	staysOwner := newLevel >= OwnerLevel && newStatus == models.MembershipActive
	if !wasOwner || staysOwner {
		return nil
	}
	n, err := tx.CountActiveAtLevel(ctx, orgID, OwnerLevel)
	if err != nil {
		return err
	}
	if n <= 1 {
		return conflict("this is the organization's last active owner; make someone else owner first")
	}
	return nil
}
