package admin_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// TestGuardCheckCredential: the admin API takes only a person's access
// token whose session is live now (not revoked, not expired, its user not
// disabled); client and API-key credentials are refused whatever they
// hold. A refusal is a plain error (401); only a transient database fault
// is rbac.ErrUnavailable (503).
func TestGuardCheckCredential(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		lea := f.member("lea@example.com", f.acme, models.RoleAdminID)
		live := f.session(lea.UserID)
		revoked := f.session(lea.UserID)
		if _, err := f.store.RevokeSession(f.ctx, revoked, "test", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		expired := f.session(lea.UserID)
		if err := db.Exec("UPDATE sessions SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), expired).Error; err != nil {
			t.Fatal(err)
		}
		dis := f.member("dis@example.com", f.acme, models.RoleAdminID)
		disabledUsers := f.session(dis.UserID)
		if _, err := f.store.SetUserDisabled(f.ctx, dis.UserID, true, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}

		const notAPerson, ended = "the admin API takes a person's access token", "the session has ended"
		for _, tc := range []struct {
			name string
			p    *rbac.Principal
			want string // "" for accepted
		}{
			{"a person's token, live session", personToken(lea, live, "*"), ""},
			{"a person's token, revoked session", personToken(lea, revoked, "*"), ended},
			{"a person's token, expired session", personToken(lea, expired, "*"), ended},
			{"a person's token, user disabled", personToken(dis, disabledUsers, "*"), ended},
			{"a person's token, unknown session", personToken(lea, "no-such-session", "*"), ended},
			{"a client_credentials token", rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken,
				Subject: "ci-bot", ClientID: "ci-bot", OrgID: models.AdminOrgID, Permissions: []string{"*"}}), notAPerson},
			{"an access token exchanged for an API key", rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken,
				Subject: rbac.APIKeySubjectPrefix + "k1", OrgID: f.acme, Permissions: []string{"*"}}), notAPerson},
			{"an API key", rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAPIKey,
				Subject: rbac.APIKeySubjectPrefix + "k1", OrgID: f.acme, Permissions: []string{"*"}}), notAPerson},
			{"an API key naming a live session", rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAPIKey,
				Subject: lea.UserID, SessionID: live, OrgID: f.acme, Permissions: []string{"*"}}), notAPerson},
		} {
			err := f.guard.CheckCredential(f.ctx, tc.p)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: %v, want accepted", tc.name, err)
			case tc.want == "":
			case err == nil || err.Error() != tc.want:
				t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			case errors.Is(err, rbac.ErrUnavailable):
				t.Errorf("%s: %v is ErrUnavailable (503), want a refusal (401)", tc.name, err)
			}
		}
	})
}

// sessionsFailing is a session store that cannot answer.
type sessionsFailing struct{ err error }

func (s sessionsFailing) SessionActive(context.Context, string) (bool, error) { return false, s.err }

// TestGuardCheckCredentialFaults: a transient database fault while
// checking the session answers 503 (the credential may be fine); any
// other failure refuses the credential.
func TestGuardCheckCredentialFaults(t *testing.T) {
	p := personToken(admin.Actor{UserID: "u1", OrgID: "o1"}, "s1", "*")
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"lost connection", fmt.Errorf("check session: %w", driver.ErrBadConn), true},
		{"deadline waiting for a connection", context.DeadlineExceeded, true},
		{"not transient: still no 401 that signs the person out", errors.New("no such table: sessions"), true},
	} {
		err := admin.NewGuard(nil, sessionsFailing{tc.err}).CheckCredential(context.Background(), p)
		if err == nil || errors.Is(err, rbac.ErrUnavailable) != tc.unavailable || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want unavailable %v wrapping %v", tc.name, err, tc.unavailable, tc.err)
		}
		if !strings.Contains(err.Error(), "check session") {
			t.Errorf("%s: %v, want it to say the session could not be checked", tc.name, err)
		}
	}
}

// TestGuardMayActOn: a token acting in the administrators' organization
// may name any organization (or none); any other token only its own, so
// a request naming no organization is the administrators' alone.
func TestGuardMayActOn(t *testing.T) {
	g := admin.NewGuard(nil, nil)
	for _, tc := range []struct {
		tokenOrg, requested string
		want                bool
	}{
		{models.AdminOrgID, "", true},
		{models.AdminOrgID, "acme", true},
		{models.AdminOrgID, models.AdminOrgID, true},
		{"acme", "acme", true},
		{"acme", "beta", false},
		{"acme", "", false},
		{"acme", models.AdminOrgID, false},
		{"", "", false},
		{"", "acme", false},
	} {
		p := rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken, Subject: "u1", OrgID: tc.tokenOrg, SessionID: "s1"})
		if got := g.MayActOn(p, tc.requested); got != tc.want {
			t.Errorf("token acting in %q, request naming %q: MayActOn = %v, want %v", tc.tokenOrg, tc.requested, got, tc.want)
		}
	}
}

// TestRouteRequirements: a route's requirement is an admin permission;
// a malformed one is a programming error, caught when routes are built.
func TestRouteRequirements(t *testing.T) {
	if got := admin.OrgRoute("members-write"); got != (admin.Route{Permission: "admin:members-write"}) {
		t.Errorf("OrgRoute = %+v", got)
	}
	if got := admin.InstanceRoute("users-read"); got != (admin.Route{Permission: "admin:users-read", InstanceWide: true}) {
		t.Errorf("InstanceRoute = %+v", got)
	}
	for _, action := range []string{"", "Members-Write", "members:write", "members-*", "*"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("OrgRoute(%q) did not panic", action)
				}
			}()
			admin.OrgRoute(action)
		}()
	}
}

// TestGuardAuthorize: a route's permission is checked against the grants
// the database holds now, in the organization the token acts in, never
// the copy in the token: a token minted while its holder held "*" is
// refused once they were demoted, suspended or removed, or their role
// lost the grant. Instance-wide routes take only tokens acting in the
// administrators' organization, before any permission is looked at.
func TestGuardAuthorize(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		kbLead := f.role(f.acme, "kb-lead", 60, "admin:members-*", "kb:*")
		lea := f.member("lea@example.com", f.acme, models.RoleAdminID)
		vic := f.member("vic@example.com", f.acme, models.RoleViewerID)
		kim := f.member("kim@example.com", f.acme, kbLead)
		ada := f.member("ada@example.com", models.AdminOrgID, models.RoleAdminID)

		// Tokens minted while each held "*" (or kb-lead's grants), whose
		// holders then lose them.
		demoted := f.member("dem@example.com", f.acme, models.RoleAdminID)
		f.setMembership(demoted, models.RoleViewerID, models.MembershipActive)
		suspended := f.member("sue@example.com", f.acme, models.RoleAdminID)
		f.setMembership(suspended, "", models.MembershipSuspended)
		removed := f.member("rem@example.com", f.acme, models.RoleAdminID)
		f.removeMembership(removed)
		narrowedRole := f.role(f.acme, "narrowed", 60, "admin:members-*")
		narrowed := f.member("nar@example.com", f.acme, narrowedRole)
		if err := f.store.UpdateRole(f.ctx, &models.Role{ID: narrowedRole, Name: "narrowed", Level: 60}, []string{"kb:read"}); err != nil {
			t.Fatal(err)
		}
		exAdmin := f.member("exa@example.com", models.AdminOrgID, models.RoleOwnerID)
		f.setMembership(exAdmin, models.RoleViewerID, models.MembershipActive)
		goneAdmin := f.member("gone@example.com", models.AdminOrgID, models.RoleOwnerID)
		f.removeMembership(goneAdmin)
		// A token acting in an organization its holder never belonged to.
		stranger := admin.Actor{UserID: lea.UserID, OrgID: f.beta}

		const notMember = "no longer an active member of the organization your token acts in"
		notGranted := func(perm string) string { return "does not grant " + perm }
		for _, tc := range []struct {
			name  string
			actor admin.Actor
			route admin.Route
			want  string // "" allowed; ErrAdministratorsOnly's text; or a *PermissionError's reason
		}{
			{"org admin, members-write", lea, admin.OrgRoute("members-write"), ""},
			{"org admin, orgs-delete", lea, admin.OrgRoute("orgs-delete"), ""},
			{"org admin, instance route", lea, admin.InstanceRoute("users-read"), admin.ErrAdministratorsOnly.Error()},
			{"viewer, members-read (*:read is not admin:members-read)", vic, admin.OrgRoute("members-read"), notGranted("admin:members-read")},
			{"kb-lead, members-write", kim, admin.OrgRoute("members-write"), ""},
			{"kb-lead, roles-write", kim, admin.OrgRoute("roles-write"), notGranted("admin:roles-write")},
			{"kb-lead, instance route", kim, admin.InstanceRoute("users-write"), admin.ErrAdministratorsOnly.Error()},
			{"administrator, instance route", ada, admin.InstanceRoute("users-write"), ""},
			{"administrator, any organization's route", ada, admin.OrgRoute("api-keys-write"), ""},
			{"root, instance route", f.root, admin.InstanceRoute("sessions-write"), ""},
			{"org admin demoted to viewer", demoted, admin.OrgRoute("members-write"), notGranted("admin:members-write")},
			{"org admin demoted, reads too", demoted, admin.OrgRoute("members-read"), notGranted("admin:members-read")},
			{"org admin suspended", suspended, admin.OrgRoute("members-read"), notMember},
			{"org admin removed", removed, admin.OrgRoute("orgs-write"), notMember},
			{"role lost the grant", narrowed, admin.OrgRoute("members-write"), notGranted("admin:members-write")},
			{"administrator demoted", exAdmin, admin.InstanceRoute("users-read"), notGranted("admin:users-read")},
			{"administrator demoted, organization route", exAdmin, admin.OrgRoute("members-write"), notGranted("admin:members-write")},
			{"administrator removed", goneAdmin, admin.InstanceRoute("sessions-write"), notMember},
			{"token acting in an organization its holder is not in", stranger, admin.OrgRoute("members-read"), notMember},
		} {
			err := f.guard.Authorize(f.ctx, tc.actor, tc.route)
			var pe *admin.PermissionError
			switch {
			case tc.want == "":
				if err != nil {
					t.Errorf("%s: %v, want allowed", tc.name, err)
				}
			case !errors.Is(err, admin.ErrForbidden):
				t.Errorf("%s: %v, want ErrForbidden", tc.name, err)
			case tc.want == admin.ErrAdministratorsOnly.Error():
				if !errors.Is(err, admin.ErrAdministratorsOnly) || errors.As(err, &pe) {
					t.Errorf("%s: %v, want ErrAdministratorsOnly", tc.name, err)
				}
			case !errors.As(err, &pe) || pe.Required != tc.route.Permission || !strings.Contains(pe.Reason, tc.want):
				t.Errorf("%s: %v, want a *PermissionError requiring %s saying %q", tc.name, err, tc.route.Permission, tc.want)
			}
		}
	})
}
