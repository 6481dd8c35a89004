package admin_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// TestRoleHierarchy: nobody acts above their own level, in the
// organization their token acts in (a Gatehouse administrator with their
// level in the administrators' organization): no role defined, changed,
// deleted or assigned above it, no member above it changed; nobody hands
// on a grant they do not hold, as a role's grants, an API key's, or by
// assigning or reactivating a role that carries it; an organization
// keeps an active owner; deleting it is for owners. The checks run
// inside the service whatever the route's permission allowed.
func TestRoleHierarchy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		senior := f.role(f.acme, "senior", 90, "kb:*")
		kbLead := f.role(f.acme, "kb-lead", 60, "admin:members-*", "admin:invitations-*", "admin:api-keys-*", "kb:*")
		olga := f.member("olga@example.com", f.acme, models.RoleOwnerID) // acme's only owner
		lea := f.member("lea@example.com", f.acme, models.RoleAdminID)   // 80, "*"
		kim := f.member("kim@example.com", f.acme, kbLead)               // 60, narrow grants
		vic := f.member("vic@example.com", f.acme, models.RoleViewerID)
		sam := f.member("sam@example.com", f.acme, models.RoleMemberID)
		f.setMembership(sam, "", models.MembershipSuspended)
		bob := f.member("bob@example.com", f.beta, models.RoleOwnerID)            // beta's owner
		ada := f.member("ada@example.com", models.AdminOrgID, models.RoleAdminID) // administrator at 80

		svc, ctx, acme := f.svc, f.ctx, f.acme
		role := func(name string, level int, grants ...string) admin.RoleInput {
			return admin.RoleInput{Name: &name, Level: &level, Permissions: &grants}
		}
		setRole := func(name string) admin.MemberInput { return admin.MemberInput{Role: &name} }
		setStatus := func(status string) admin.MemberInput { return admin.MemberInput{Status: &status} }
		for _, tc := range []struct {
			name string
			op   func() error
			want outcome
		}{
			// Roles.
			{"define a role above one's level", func() error { _, err := svc.CreateRole(ctx, lea, acme, role("boss", 90)); return err },
				forbidden("level 90 is above your own level (80)")},
			{"define a role at the owner's level", func() error { _, err := svc.CreateRole(ctx, lea, acme, role("boss", 100)); return err },
				invalid("must be between 0 and 99")},
			{"define a role named like a system role", func() error { _, err := svc.CreateRole(ctx, lea, acme, role("owner", 10)); return err },
				invalid(`role name "owner" is reserved`)},
			{"define a role with a malformed grant", func() error {
				_, err := svc.CreateRole(ctx, lea, acme, role("keys", 10, "api_key:rotate_"))
				return err
			}, invalid(`grant "api_key:rotate_": action "rotate_" ends with an underscore`)},
			{"define a role with a grant one does not hold", func() error {
				_, err := svc.CreateRole(ctx, kim, acme, role("billing", 10, "kb:read", "billing:read"))
				return err
			}, invalid(`grant "billing:read" is not covered by your own permissions`)},
			{"raise a role above one's level", func() error {
				_, err := svc.UpdateRole(ctx, lea, acme, kbLead, admin.RoleInput{Level: ptr(85)})
				return err
			}, forbidden("level 85 is above your own level (80)")},
			{"change a role above one's level", func() error {
				_, err := svc.UpdateRole(ctx, lea, acme, senior, admin.RoleInput{Description: ptr("mine now")})
				return err
			}, forbidden(`role "senior" (level 90) is above your own level (80)`)},
			{"delete a role above one's level", func() error { return svc.DeleteRole(ctx, lea, acme, senior) },
				forbidden(`role "senior" (level 90) is above your own level (80)`)},
			{"change a system role", func() error {
				_, err := svc.UpdateRole(ctx, olga, acme, models.RoleViewerID, admin.RoleInput{Permissions: &[]string{"*"}})
				return err
			}, forbidden("system roles cannot be changed or deleted")},
			{"give a role a grant one does not hold", func() error {
				_, err := svc.UpdateRole(ctx, kim, acme, kbLead, admin.RoleInput{Permissions: &[]string{"*"}})
				return err
			}, invalid(`grant "*" is not covered by your own permissions`)},

			// Members.
			{"change the owner", func() error { _, err := svc.UpdateMember(ctx, lea, acme, olga.UserID, setRole("viewer")); return err },
				forbidden(`the member's role "owner" (level 100) is above your own level (80)`)},
			{"remove the owner", func() error { return svc.RemoveMember(ctx, lea, acme, olga.UserID) },
				forbidden(`the member's role "owner" (level 100) is above your own level (80)`)},
			{"make someone owner", func() error { _, err := svc.UpdateMember(ctx, lea, acme, vic.UserID, setRole("owner")); return err },
				forbidden(`role "owner" (level 100) is above your own level (80)`)},
			{"assign a role above one's level", func() error { _, err := svc.UpdateMember(ctx, lea, acme, vic.UserID, setRole("senior")); return err },
				forbidden(`role "senior" (level 90) is above your own level (80)`)},
			{"change a member above one's level", func() error { _, err := svc.UpdateMember(ctx, kim, acme, lea.UserID, setRole("viewer")); return err },
				forbidden(`the member's role "admin" (level 80) is above your own level (60)`)},
			{"assign a lower role carrying grants one does not hold", func() error {
				_, err := svc.UpdateMember(ctx, kim, acme, vic.UserID, setRole("member"))
				return err
			}, forbidden(`role "member" holds *:read, *:write, not covered by your own permissions`)},
			{"reactivate a member whose role carries grants one does not hold", func() error {
				_, err := svc.UpdateMember(ctx, kim, acme, sam.UserID, setStatus(models.MembershipActive))
				return err
			}, forbidden(`role "member" holds *:read, *:write, not covered by your own permissions`)},
			{"invite with a role above one's level", func() error {
				_, err := svc.Invite(ctx, kim, acme, admin.InvitationInput{Email: "new@example.com", Role: "admin"})
				return err
			}, forbidden(`role "admin" (level 80) is above your own level (60)`)},
			{"add by email with a role carrying grants one does not hold", func() error {
				_, err := svc.AddMember(ctx, kim, acme, admin.MemberInput{Email: ptr("new@example.com"), Role: ptr("member")})
				return err
			}, forbidden("not covered by your own permissions")},
			{"the last owner steps down", func() error { _, err := svc.UpdateMember(ctx, olga, acme, olga.UserID, setRole("admin")); return err },
				conflict("last active owner")},
			{"the last owner is suspended", func() error {
				_, err := svc.UpdateMember(ctx, olga, acme, olga.UserID, setStatus(models.MembershipSuspended))
				return err
			}, conflict("last active owner")},
			{"the last owner leaves", func() error { return svc.RemoveMember(ctx, olga, acme, olga.UserID) },
				conflict("last active owner")},
			{"an administrator demotes the last owner", func() error {
				_, err := svc.UpdateMember(ctx, f.root, acme, olga.UserID, setRole("admin"))
				return err
			}, conflict("last active owner")},

			// API keys and the organization.
			{"an API key with a grant one does not hold", func() error {
				_, err := svc.CreateAPIKey(ctx, kim, acme, admin.APIKeyInput{Name: "ci", Permissions: []string{"*"}})
				return err
			}, invalid(`grant "*" is not covered by your own permissions`)},
			{"an admin deletes the organization", func() error { return svc.DeleteOrg(ctx, lea, acme) },
				forbidden("deleting an organization is for owners only")},

			// Another organization's token, and administrators' levels.
			{"another organization's owner changes a member", func() error {
				_, err := svc.UpdateMember(ctx, bob, acme, vic.UserID, setRole("member"))
				return err
			}, forbidden("the token acts in another organization")},
			{"another organization's owner defines a role", func() error { _, err := svc.CreateRole(ctx, bob, acme, role("x", 1)); return err },
				forbidden("the token acts in another organization")},
			{"an administrator below the owner's level changes the owner", func() error {
				_, err := svc.UpdateMember(ctx, ada, acme, olga.UserID, setRole("viewer"))
				return err
			}, forbidden(`the member's role "owner" (level 100) is above your own level (80)`)},
			{"an administrator who is not an owner deletes the organization", func() error { return svc.DeleteOrg(ctx, ada, acme) },
				forbidden("deleting an organization is for owners only")},

			// What the same actors may do (last: these change the state).
			{"define a role within one's level and grants", func() error {
				_, err := svc.CreateRole(ctx, kim, acme, role("kb-reader", 60, "kb:read"))
				return err
			}, succeeds},
			{"define a role whose grants name resources with underscores", func() error {
				if _, err := svc.CreateRole(ctx, lea, acme, role("key-rotator", 20, "api_key:rotate", "api_key:read_*")); err != nil {
					return err
				}
				roles, err := svc.ListRoles(ctx, acme, admin.PageRequest{Limit: "100"})
				for _, r := range roles.Items {
					if r.Name == "key-rotator" {
						if !slices.Contains(r.Permissions, "api_key:rotate") || !slices.Contains(r.Permissions, "api_key:read_*") {
							return errors.New("stored grants: " + strings.Join(r.Permissions, " "))
						}
						return err
					}
				}
				return errors.New("the role was not stored")
			}, succeeds},
			{"an API key within one's grants", func() error {
				_, err := svc.CreateAPIKey(ctx, kim, acme, admin.APIKeyInput{Name: "ci", Permissions: []string{"kb:r*"}})
				return err
			}, succeeds},
			{"assign a role within one's level and grants", func() error { _, err := svc.UpdateMember(ctx, lea, acme, vic.UserID, setRole("member")); return err }, succeeds},
			{"change a member at one's own level", func() error { _, err := svc.UpdateMember(ctx, lea, acme, lea.UserID, setRole("admin")); return err }, succeeds},
			{"an owner hands ownership on, then steps down", func() error {
				if _, err := svc.UpdateMember(ctx, olga, acme, lea.UserID, setRole("owner")); err != nil {
					return err
				}
				_, err := svc.UpdateMember(ctx, olga, acme, olga.UserID, setRole("admin"))
				return err
			}, succeeds},
			{"an owner deletes their organization", func() error { return svc.DeleteOrg(ctx, bob, f.beta) }, succeeds},
		} {
			tc.want.check(t, tc.name, tc.op())
		}
	})
}

// TestAdministratorRules: the instance-wide operations are for tokens
// acting in the administrators' organization, and the service refuses
// everyone else on its own (the one exception: an organization's admin
// reads their own organization's audit events). Administrators do not
// act on an administrator above their own level, nor disable themselves;
// the administrators' organization keeps its slug and is never deleted.
func TestAdministratorRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		svc, ctx := f.svc, f.ctx
		lea := f.member("lea@example.com", f.acme, models.RoleOwnerID)
		ada := f.member("ada@example.com", models.AdminOrgID, models.RoleAdminID)
		sue := f.member("sue@example.com", models.AdminOrgID, models.RoleOwnerID)
		f.setMembership(sue, "", models.MembershipSuspended)
		rootSession := f.session(f.root.UserID)
		ids, err := f.store.ListIdentities(ctx, f.root.UserID)
		if err != nil || len(ids) != 1 {
			t.Fatalf("root's identities = %+v, %v", ids, err)
		}
		page := admin.PageRequest{}
		adminsOnly := outcome{admin.ErrAdministratorsOnly, "Gatehouse administrators only"}
		for _, tc := range []struct {
			name string
			op   func() error
			want outcome
		}{
			{"org owner lists organizations", func() error { _, err := svc.ListOrgs(ctx, lea, page); return err }, adminsOnly},
			{"org owner creates an organization", func() error { _, err := svc.CreateOrg(ctx, lea, admin.OrgInput{Slug: ptr("gamma")}); return err }, adminsOnly},
			{"org owner lists users", func() error { _, err := svc.ListUsers(ctx, lea, admin.UserQuery{}, page); return err }, adminsOnly},
			{"org owner reads a user", func() error { _, err := svc.GetUser(ctx, lea, f.root.UserID); return err }, adminsOnly},
			{"org owner disables a user", func() error { _, err := svc.SetUserDisabled(ctx, lea, f.root.UserID, true); return err }, adminsOnly},
			{"org owner lists sessions", func() error { _, err := svc.ListSessions(ctx, lea, f.root.UserID, page); return err }, adminsOnly},
			{"org owner signs a user out", func() error { _, err := svc.RevokeAllSessions(ctx, lea, f.root.UserID); return err }, adminsOnly},
			{"org owner ends a session", func() error { return svc.RevokeSession(ctx, lea, f.root.UserID, rootSession) }, adminsOnly},
			{"org owner unlinks an identity", func() error { return svc.Unlink(ctx, lea, f.root.UserID, ids[0].ID) }, adminsOnly},
			{"org owner reads the whole audit trail", func() error { _, err := svc.ListAudit(ctx, lea, admin.AuditQuery{}, page); return err }, adminsOnly},
			{"org owner reads another organization's audit events", func() error {
				_, err := svc.ListAudit(ctx, lea, admin.AuditQuery{OrganizationID: f.beta}, page)
				return err
			}, forbidden("the token acts in another organization")},
			{"org owner reads their organization's audit events", func() error {
				_, err := svc.ListAudit(ctx, lea, admin.AuditQuery{OrganizationID: f.acme}, page)
				return err
			}, succeeds},
			{"a suspended administrator lists users", func() error { _, err := svc.ListUsers(ctx, sue, admin.UserQuery{}, page); return err },
				forbidden("no longer an active member of the organization")},
			{"an administrator disables themselves", func() error { _, err := svc.SetUserDisabled(ctx, f.root, f.root.UserID, true); return err },
				forbidden("you cannot disable yourself")},
			{"an administrator disables one above their level", func() error { _, err := svc.SetUserDisabled(ctx, ada, f.root.UserID, true); return err },
				forbidden("the user is an administrator above your own level (80)")},
			{"an administrator signs out one above their level", func() error { _, err := svc.RevokeAllSessions(ctx, ada, f.root.UserID); return err },
				forbidden("the user is an administrator above your own level (80)")},
			{"an administrator ends a session of one above their level", func() error { return svc.RevokeSession(ctx, ada, f.root.UserID, rootSession) },
				forbidden("the user is an administrator above your own level (80)")},
			{"an administrator unlinks one above their level", func() error { return svc.Unlink(ctx, ada, f.root.UserID, ids[0].ID) },
				forbidden("the user is an administrator above your own level (80)")},
			{"the administrators' organization changes its slug", func() error {
				_, err := svc.UpdateOrg(ctx, f.root, models.AdminOrgID, admin.OrgInput{Slug: ptr("admins")})
				return err
			}, forbidden("the administrators' organization keeps its slug")},
			{"the administrators' organization is deleted", func() error { return svc.DeleteOrg(ctx, f.root, models.AdminOrgID) },
				forbidden("the administrators' organization cannot be deleted")},
			{"an organization takes the administrators' slug", func() error {
				_, err := svc.CreateOrg(ctx, f.root, admin.OrgInput{Slug: ptr(models.AdminOrgSlug)})
				return err
			}, invalid("is reserved for the Gatehouse administrators' organization")},
			{"an administrator lists users", func() error { _, err := svc.ListUsers(ctx, ada, admin.UserQuery{}, page); return err }, succeeds},
			{"an administrator disables a user below their level", func() error { _, err := svc.SetUserDisabled(ctx, ada, lea.UserID, true); return err }, succeeds},
		} {
			tc.want.check(t, tc.name, tc.op())
		}
		// The root session survived every refused attempt.
		if err := f.guard.CheckCredential(ctx, personToken(f.root, rootSession, "*")); err != nil {
			t.Errorf("root's session after refused attempts: %v", err)
		}
	})
}

// TestDisablingEndsAdminAccess: disabling a user revokes their sessions,
// so the guard refuses their token at once, before it expires.
func TestDisablingEndsAdminAccess(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		ada := f.member("ada@example.com", models.AdminOrgID, models.RoleAdminID)
		token := personToken(ada, f.session(ada.UserID), "*")
		if err := f.guard.CheckCredential(f.ctx, token); err != nil {
			t.Fatalf("before: %v", err)
		}
		if _, err := f.svc.SetUserDisabled(f.ctx, f.root, ada.UserID, true); err != nil {
			t.Fatal(err)
		}
		if err := f.guard.CheckCredential(f.ctx, token); err == nil || err.Error() != "the session has ended" {
			t.Errorf("after disabling: %v, want the session has ended", err)
		}
	})
}

// TestSyncTargetSlugs: an organization's admin cannot give their
// organization a slug an org-sync rule may place people in (a literal
// target, or what an {org} pattern can produce with auto_create_orgs
// off), nor the administrators' slug; other slugs and the name are
// theirs. Gatehouse administrators may give a rule's slug: that is how
// they make a rule's organization.
func TestSyncTargetSlugs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		lea := f.member("lea@example.com", f.acme, models.RoleOwnerID)
		reserved := invalid("places people in the organization with that slug; " +
			"only Gatehouse administrators may give an organization a slug that org sync targets")
		for _, tc := range []struct {
			actor     admin.Actor
			org, slug string
			want      outcome
			rule      string
		}{
			{lea, f.acme, "finance", reserved, "org_sync.rules[0]"},
			{lea, f.acme, "sq-payments", reserved, "org_sync.rules[1]"},
			{lea, f.acme, provisioning.DistinctSlug("sq-payments", "dev", "squad-payments"), reserved, "org_sync.rules[1]"},
			{lea, f.acme, models.AdminOrgSlug, invalid("is reserved for the Gatehouse administrators' organization"), ""},
			{lea, f.acme, "acme", succeeds, ""},
			{lea, f.acme, "acme-corp", succeeds, ""},
			{f.root, f.beta, "finance", succeeds, ""},
		} {
			name := tc.slug + " by " + tc.actor.OrgID
			_, err := f.svc.UpdateOrg(f.ctx, tc.actor, tc.org, admin.OrgInput{Slug: &tc.slug, Name: ptr("Renamed")})
			tc.want.check(t, name, err)
			var ie *admin.InputError
			if tc.rule != "" && (!errors.As(err, &ie) || ie.Field != "slug" || !strings.Contains(ie.Reason, tc.rule)) {
				t.Errorf("%s: %v, want an input error on slug naming %s", name, err, tc.rule)
			}
		}
		if _, err := f.svc.CreateOrg(f.ctx, f.root, admin.OrgInput{Slug: ptr("sq-payments")}); err != nil {
			t.Errorf("an administrator creates sq-payments: %v", err)
		}
		o, err := f.svc.GetOrg(f.ctx, f.acme)
		if err != nil || o.Slug != "acme-corp" || o.Name != "Renamed" {
			t.Errorf("acme after its owner's changes = %+v, %v", o, err)
		}
	})
}

// TestAddMemberByEmail: an organization's admin reaches people only by
// invitation, and the answer is the same whether the address belongs to
// a user known through a provider trusted for email, to one known only
// through an untrusted provider, or to nobody: nothing looks users up,
// nobody becomes a member before signing in. Naming a user by id is
// refused alike for known and unknown ids. A Gatehouse administrator adds
// users directly, by an email a trusted provider verified.
func TestAddMemberByEmail(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		svc, ctx := f.svc, f.ctx
		lea := f.member("lea@example.com", f.acme, models.RoleAdminID)
		kay := f.user("kay@example.com")
		f.userVia("lax", "lux@example.com")

		var first *admin.Invitation
		for _, email := range []string{"kay@example.com", "lux@example.com", "ghost@example.com"} {
			out, err := svc.AddMember(ctx, lea, f.acme, admin.MemberInput{Email: &email, Role: ptr("viewer")})
			if err != nil || out.Member != nil || out.Invitation == nil {
				t.Fatalf("org admin adds %s = %+v, %v; want an invitation", email, out, err)
			}
			inv := *out.Invitation
			if inv.Email != email || inv.Status != "pending" || inv.RoleID != models.RoleViewerID ||
				inv.InvitedBy == nil || *inv.InvitedBy != lea.UserID || (inv.ExpiresAt.Sub(inv.CreatedAt)-provisioning.DefaultInvitationTTL).Abs() > time.Minute {
				t.Errorf("org admin adds %s: invitation %+v", email, inv)
			}
			inv.ID, inv.Email, inv.ExpiresAt, inv.CreatedAt = "", "", time.Time{}, time.Time{}
			if first == nil {
				first = &inv
			} else if inv.Status != first.Status || inv.RoleID != first.RoleID || *inv.InvitedBy != *first.InvitedBy || inv.AcceptedAt != first.AcceptedAt {
				t.Errorf("org admin adds %s: %+v differs from %+v", email, inv, *first)
			}
			_, err = svc.AddMember(ctx, lea, f.acme, admin.MemberInput{Email: &email, Role: ptr("viewer")})
			conflict("this email already has a pending invitation to the organization").check(t, "again "+email, err)
		}
		var byID []string
		for _, id := range []string{kay, "00000000-0000-0000-0000-000000000000"} {
			_, err := svc.AddMember(ctx, lea, f.acme, admin.MemberInput{UserID: &id, Role: ptr("viewer")})
			forbidden("organization admins add people by email").check(t, "org admin adds user_id "+id, err)
			if err != nil {
				byID = append(byID, err.Error())
			}
		}
		if len(byID) == 2 && byID[0] != byID[1] {
			t.Errorf("a known and an unknown user id answer differently: %q / %q", byID[0], byID[1])
		}
		if n := f.auditCount(admin.AuditMemberEmailRefused); n != 0 {
			t.Errorf("org admin's invitations recorded %d email refusals: users were looked up", n)
		}
		if _, err := f.store.FindMember(ctx, f.acme, kay); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("kay's membership before signing in: %v, want none", err)
		}
		_, err := svc.AddMember(ctx, lea, f.acme, admin.MemberInput{Email: ptr("sue@example.com"), Role: ptr("viewer"), Status: ptr(models.MembershipSuspended)})
		invalid("an invitation makes an active membership when accepted").check(t, "org admin invites as suspended", err)

		// Gatehouse administrators add directly.
		out, err := svc.AddMember(ctx, f.root, f.beta, admin.MemberInput{Email: ptr("kay@example.com"), Role: ptr("viewer")})
		if err != nil || out.Member == nil || out.Member.UserID != kay || out.Member.Status != models.MembershipActive {
			t.Errorf("administrator adds kay = %+v, %v", out, err)
		}
		_, err = svc.AddMember(ctx, f.root, f.beta, admin.MemberInput{Email: ptr("lux@example.com"), Role: ptr("viewer")})
		invalid("only by providers with trusted_email off").check(t, "administrator adds lux", err)
		if n := f.auditCount(admin.AuditMemberEmailRefused); n != 1 {
			t.Errorf("email refusals recorded after the administrator's attempt: %d, want 1", n)
		}
		_, err = svc.AddMember(ctx, f.root, f.beta, admin.MemberInput{Email: ptr("ghost@example.com"), Role: ptr("viewer")})
		invalid("no user has signed in with this verified email yet").check(t, "administrator adds ghost", err)
	})
}
