package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// fixture is the admin service and its guard on a real database, with
// the administrators' organization (root is its owner) and two
// organizations, acme and beta.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	store    *models.Store
	svc      *admin.Service
	guard    *admin.Guard
	sessions *tokens.SessionService
	root     admin.Actor
	acme     string
	beta     string
}

// syncRules are org-sync rules for organizations nobody has made yet: a
// literal target (finance) and an {org} pattern; auto_create_orgs is off.
var syncRules = []provisioning.Rule{
	{Index: 0, Match: "dev:group:fin", Org: "finance", Role: "member"},
	{Index: 1, Match: "dev:group:squad-*", Org: "sq-{org}", Role: "viewer"},
}

func newFixture(t *testing.T, db *models.DB) *fixture {
	t.Helper()
	store := models.NewStore(db)
	prov := provisioning.New(store, provisioning.Options{
		// dev is trusted for email, lax (a provider that verifies
		// nothing it says) is not.
		TrustedEmail: map[string]bool{"dev": true, "lax": false},
		Sync:         provisioning.SyncPolicy{Rules: syncRules},
	})
	f := &fixture{t: t, ctx: context.Background(), store: store,
		svc:      admin.New(admin.NewStore(store), prov, nil),
		sessions: tokens.NewSessionService(store, tokens.SessionOptions{})}
	f.guard = admin.NewGuard(store, f.sessions)
	rootID := f.user("root@example.com")
	if res, err := f.svc.GrantAdmin(f.ctx, "root@example.com"); err != nil || res.UserID != rootID {
		t.Fatalf("GrantAdmin = %+v, %v", res, err)
	}
	f.root = admin.Actor{UserID: rootID, OrgID: models.AdminOrgID}
	f.acme, f.beta = f.org("acme"), f.org("beta")
	return f
}

// user creates a person who signed in through dev, which verified their
// email.
func (f *fixture) user(email string) string { return f.userVia("dev", email) }

// userVia creates a person who signed in through provider, which said
// their email is verified.
func (f *fixture) userVia(provider, email string) string {
	f.t.Helper()
	u := &models.User{Email: email, EmailVerified: true, Name: email}
	id := &models.Identity{Provider: provider, Subject: provider + "|" + email, Email: email, EmailVerified: true}
	if err := f.store.CreateUserWithIdentity(f.ctx, u, id); err != nil {
		f.t.Fatal(err)
	}
	return u.ID
}

func (f *fixture) org(slug string) string {
	f.t.Helper()
	o := &models.Organization{Slug: slug, Name: slug}
	if err := f.store.CreateOrganization(f.ctx, o); err != nil {
		f.t.Fatal(err)
	}
	return o.ID
}

// member makes a new user a member of orgID with roleID (active) and
// returns them as an actor whose token acts in orgID.
func (f *fixture) member(email, orgID, roleID string) admin.Actor {
	f.t.Helper()
	a := admin.Actor{UserID: f.user(email), OrgID: orgID}
	f.join(a.UserID, orgID, roleID, models.MembershipActive)
	return a
}

func (f *fixture) join(userID, orgID, roleID, status string) {
	f.t.Helper()
	m := &models.Membership{UserID: userID, OrganizationID: orgID, RoleID: roleID, Status: status, Source: models.SourceManual}
	if err := f.store.CreateMembership(f.ctx, m); err != nil {
		f.t.Fatal(err)
	}
}

// role defines a role of orgID directly in the store.
func (f *fixture) role(orgID, name string, level int, grants ...string) string {
	f.t.Helper()
	r := &models.Role{OrganizationID: &orgID, Name: name, Level: level}
	if err := f.store.CreateRoleWithPermissions(f.ctx, r, grants); err != nil {
		f.t.Fatal(err)
	}
	return r.ID
}

// setMembership changes a membership in the store behind the actor's
// back, as another administrator would after the actor's token was
// minted.
func (f *fixture) setMembership(a admin.Actor, roleID, status string) {
	f.t.Helper()
	m, err := f.store.FindMember(f.ctx, a.OrgID, a.UserID)
	if err != nil {
		f.t.Fatal(err)
	}
	if roleID == "" {
		roleID = m.RoleID
	}
	if err := f.store.UpdateMembership(f.ctx, m.ID, roleID, status, time.Now().UTC()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) removeMembership(a admin.Actor) {
	f.t.Helper()
	m, err := f.store.FindMember(f.ctx, a.OrgID, a.UserID)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.DeleteMembership(f.ctx, m.ID); err != nil {
		f.t.Fatal(err)
	}
}

// session opens a session of the user, live for an hour.
func (f *fixture) session(userID string) string {
	f.t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := &models.Session{UserID: userID, ClientID: "admin-console", Provider: "dev", AuthTime: now, LastUsedAt: now,
		ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	if err := f.store.CreateSession(f.ctx, s); err != nil {
		f.t.Fatal(err)
	}
	return s.ID
}

// personToken is what rbac makes of an access token of the actor's
// session; its grants are the copy minted into the token.
func personToken(a admin.Actor, sessionID string, grants ...string) *rbac.Principal {
	return rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken, Subject: a.UserID, OrgID: a.OrgID,
		SessionID: sessionID, ClientID: "admin-console", Permissions: grants})
}

func (f *fixture) auditCount(typ string) int {
	f.t.Helper()
	events, err := f.store.ListAuditEvents(f.ctx, models.AuditFilter{Type: typ}, 0, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(events)
}

// outcome is what a test expects of an operation: success (""), or an
// error of a kind whose text holds a phrase.
type outcome struct {
	kind   error
	phrase string
}

var succeeds = outcome{}

func forbidden(phrase string) outcome { return outcome{admin.ErrForbidden, phrase} }
func invalid(phrase string) outcome   { return outcome{admin.ErrInvalid, phrase} }
func conflict(phrase string) outcome  { return outcome{admin.ErrConflict, phrase} }

// check reports err unless it is what want says.
func (want outcome) check(t *testing.T, name string, err error) {
	t.Helper()
	switch {
	case want.kind == nil && err != nil:
		t.Errorf("%s: %v, want success", name, err)
	case want.kind == nil:
	case !errors.Is(err, want.kind):
		t.Errorf("%s: %v, want an error of kind %q", name, err, want.kind)
	case !strings.Contains(err.Error(), want.phrase):
		t.Errorf("%s: %v, want it to say %q", name, err, want.phrase)
	}
}

func ptr[T any](v T) *T { return &v }
