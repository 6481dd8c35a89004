package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// withOrg returns a store on db holding one organization of that slug.
func withOrg(t *testing.T, db *models.DB, slug string) (context.Context, *models.Store, *models.Organization) {
	t.Helper()
	ctx, s := context.Background(), models.NewStore(db)
	org := &models.Organization{Slug: slug}
	if err := s.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	return ctx, s, org
}

// TestSystemRolesSeeded checks the roles migration 00002 seeds, their
// levels and grants, and that every seeded grant is a valid one.
func TestSystemRolesSeeded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, org := withOrg(t, db, "acme")
		want := []struct {
			id, name string
			level    int
			grants   []string
		}{
			{models.RoleOwnerID, "owner", 100, []string{"*"}},
			{models.RoleAdminID, "admin", 80, []string{"*"}},
			{models.RoleMemberID, "member", 50, []string{"*:read", "*:write"}},
			{models.RoleViewerID, "viewer", 10, []string{"*:read"}},
		}
		for _, w := range want {
			r, err := s.FindRole(ctx, w.id)
			if err != nil || r.Name != w.name || r.Level != w.level || !r.System || r.OrganizationID != nil {
				t.Fatalf("role %s = %+v, %v", w.id, r, err)
			}
			u := &models.User{}
			if err := s.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: w.name}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: w.id}); err != nil {
				t.Fatal(err)
			}
			g, err := s.ActiveGrants(ctx, u.ID, org.ID)
			if err != nil || !slices.Equal(g.Roles, []string{w.name}) || !slices.Equal(g.Permissions, w.grants) {
				t.Fatalf("%s grants = %+v, %v", w.name, g, err)
			}
			for _, p := range g.Permissions {
				if err := rbac.ValidateGrant(p); err != nil {
					t.Errorf("seeded grant: %v", err)
				}
			}
		}
	})
}

func TestActiveGrantsEdgeCases(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, org := withOrg(t, db, "acme")
		u := &models.User{}
		_ = s.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: "u"})
		if _, err := s.ActiveGrants(ctx, u.ID, org.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("no membership: %v", err)
		}
		empty := &models.Role{Name: "nothing", OrganizationID: &org.ID}
		if err := s.CreateRole(ctx, empty); err != nil {
			t.Fatal(err)
		}
		m := &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: empty.ID}
		_ = s.CreateMembership(ctx, m)
		g, err := s.ActiveGrants(ctx, u.ID, org.ID)
		if err != nil || g.Roles[0] != "nothing" || len(g.Permissions) != 0 {
			t.Fatalf("role without permissions = %+v, %v", g, err)
		}
		db.Model(&models.Membership{}).Where("id = ?", m.ID).Update("status", models.MembershipSuspended)
		if _, err := s.ActiveGrants(ctx, u.ID, org.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("suspended membership grants: %v", err)
		}
	})
}

// TestListUserMemberships: a user's memberships of every status with
// their organization and role, oldest first, nobody else's.
func TestListUserMemberships(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, acme := withOrg(t, db, "acme")
		beta := &models.Organization{Slug: "beta", Name: "Beta Labs"}
		if err := s.CreateOrganization(ctx, beta); err != nil {
			t.Fatal(err)
		}
		editor := &models.Role{Name: "editor", OrganizationID: &acme.ID, Level: 40}
		if err := s.CreateRole(ctx, editor); err != nil {
			t.Fatal(err)
		}
		users := map[string]*models.User{}
		for _, name := range []string{"ada", "bob", "cy"} {
			users[name] = &models.User{Email: name + "@example.com"}
			if err := s.CreateUserWithIdentity(ctx, users[name], &models.Identity{Provider: "dev", Subject: name}); err != nil {
				t.Fatal(err)
			}
		}
		// Created in this order, a second apart, so oldest first is beta first.
		start := time.Now().UTC().Truncate(time.Second)
		for i, m := range []*models.Membership{
			{UserID: users["ada"].ID, OrganizationID: beta.ID, RoleID: models.RoleViewerID, Status: models.MembershipSuspended, Source: "sync:github"},
			{UserID: users["ada"].ID, OrganizationID: acme.ID, RoleID: editor.ID},
			{UserID: users["bob"].ID, OrganizationID: acme.ID, RoleID: models.RoleOwnerID},
		} {
			m.CreatedAt = start.Add(time.Duration(i) * time.Second)
			if err := s.CreateMembership(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			user string
			want []string // slug/name/role/status/source
		}{
			{"ada", []string{"beta/Beta Labs/viewer/suspended/sync:github", "acme//editor/active/manual"}},
			{"bob", []string{"acme//owner/active/manual"}},
			{"cy", nil},
		}
		for _, tc := range cases {
			ms, err := s.ListUserMemberships(ctx, users[tc.user].ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				if m.UserID != users[tc.user].ID || m.ID == "" {
					t.Fatalf("%s: membership %+v", tc.user, m)
				}
				got = append(got, m.OrganizationSlug+"/"+m.OrganizationName+"/"+m.RoleName+"/"+m.Status+"/"+m.Source)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: memberships %q, want %q", tc.user, got, tc.want)
			}
		}
	})
}

func TestLoginQueries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		u := &models.User{Email: "ada@example.com", Name: "Ada"}
		if err := s.InsertUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		id := &models.Identity{UserID: u.ID, Provider: "dev", Subject: "s1", Email: "ada@example.com", EmailVerified: true}
		if ok, err := s.InsertIdentityIfAbsent(ctx, id); !ok || err != nil {
			t.Fatalf("first insert = %v, %v", ok, err)
		}
		if ok, err := s.InsertIdentityIfAbsent(ctx, &models.Identity{UserID: u.ID, Provider: "dev", Subject: "s1"}); ok || err != nil {
			t.Fatalf("duplicate insert = %v, %v; want false, nil", ok, err)
		}
		lu, err := s.FindLoginUser(ctx, "dev", "s1")
		if err != nil || lu.ID != u.ID || lu.IdentityID != id.ID || lu.Name != "Ada" {
			t.Fatalf("FindLoginUser = %+v, %v", lu, err)
		}
		if _, err := s.FindLoginUser(ctx, "dev", "nobody"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown identity: %v", err)
		}
		// A second user holds the address through an untrusted provider.
		v := &models.User{Email: "ada@example.com", Name: "Vera"}
		_ = s.InsertUser(ctx, v)
		_, _ = s.InsertIdentityIfAbsent(ctx, &models.Identity{UserID: v.ID, Provider: "corp", Subject: "c1", Email: "ada@example.com", EmailVerified: true})
		for _, tc := range []struct {
			trusted []string
			want    []string // "name:trusted", sorted
		}{
			{[]string{"dev"}, []string{"Ada:true", "Vera:false"}},
			{[]string{"dev", "corp"}, []string{"Ada:true", "Vera:true"}},
			{[]string{"github"}, []string{"Ada:false", "Vera:false"}},
			{nil, []string{"Ada:false", "Vera:false"}},
		} {
			users, err := s.UsersWithVerifiedEmail(ctx, "ada@example.com", tc.trusted)
			var got []string
			for _, eu := range users {
				got = append(got, fmt.Sprintf("%s:%v", eu.Name, eu.Trusted))
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("UsersWithVerifiedEmail(trusted %v) = %v, %v; want %v", tc.trusted, got, err, tc.want)
			}
			if n := len(models.TrustedOnly(users)); n != strings.Count(strings.Join(tc.want, ","), "true") {
				t.Fatalf("TrustedOnly kept %d", n)
			}
		}
		_, _ = s.InsertIdentityIfAbsent(ctx, &models.Identity{UserID: u.ID, Provider: "other", Subject: "x", Email: "eve@example.com"})
		if users, _ := s.UsersWithVerifiedEmail(ctx, "eve@example.com", []string{"other"}); len(users) != 0 {
			t.Fatalf("an unverified email matched: %v", users)
		}
		if err := s.LockUser(ctx, "nobody"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("LockUser unknown: %v", err)
		}
		if err := s.DeleteIdentity(ctx, "someone-else", id.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("DeleteIdentity of another user: %v", err)
		}
	})
}

// TestTrustedVerifiedEmails: the addresses a user's identities of trusted
// providers report verified, each once; unverified addresses, empty ones,
// untrusted providers' and other users' never.
func TestTrustedVerifiedEmails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		ada, eve := &models.User{Email: "ada@example.com"}, &models.User{Email: "ada@example.com"}
		_ = s.InsertUser(ctx, ada)
		_ = s.InsertUser(ctx, eve)
		for _, i := range []models.Identity{
			{UserID: ada.ID, Provider: "google", Subject: "g", Email: "ada@example.com", EmailVerified: true},
			{UserID: ada.ID, Provider: "corp", Subject: "c", Email: "ada@example.com", EmailVerified: true},
			{UserID: ada.ID, Provider: "okta", Subject: "o", Email: "ada@okta.example", EmailVerified: true},
			{UserID: ada.ID, Provider: "github", Subject: "h", Email: "ada@github.example", EmailVerified: false},
			{UserID: ada.ID, Provider: "dev", Subject: "d", Email: "", EmailVerified: true},
			{UserID: eve.ID, Provider: "partner", Subject: "p", Email: "eve@example.com", EmailVerified: true},
		} {
			if ok, err := s.InsertIdentityIfAbsent(ctx, &i); !ok || err != nil {
				t.Fatalf("insert identity %s: %v, %v", i.Provider, ok, err)
			}
		}
		for _, tc := range []struct {
			trusted []string
			want    []string // sorted
		}{
			{trusted: []string{"google"}, want: []string{"ada@example.com"}},
			{trusted: []string{"google", "corp", "okta"}, want: []string{"ada@example.com", "ada@okta.example"}},
			{trusted: []string{"github", "dev"}, want: nil},
			{trusted: []string{"partner"}, want: nil},
			{trusted: nil, want: nil},
		} {
			got, err := s.TrustedVerifiedEmails(ctx, ada.ID, tc.trusted)
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("TrustedVerifiedEmails(trusted %v) = %v, %v; want %v", tc.trusted, got, err, tc.want)
			}
		}
	})
}

func TestSyncMembershipWrites(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		now := time.Now().UTC()
		u := &models.User{}
		_ = s.InsertUser(ctx, u)
		manualOrg, syncOrg := &models.Organization{Slug: "manual"}, &models.Organization{Slug: "synced"}
		_ = s.CreateOrganization(ctx, manualOrg)
		_ = s.CreateOrganization(ctx, syncOrg)
		manual := &models.Membership{UserID: u.ID, OrganizationID: manualOrg.ID, RoleID: models.RoleViewerID}
		_ = s.CreateMembership(ctx, manual)
		src := models.SyncSource("dev")

		// A sync upsert never overwrites a membership made by hand.
		ok, err := s.UpsertSyncMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: manualOrg.ID, RoleID: models.RoleOwnerID,
			Status: models.MembershipActive, Source: src})
		if ok || err != nil {
			t.Fatalf("upsert over manual = %v, %v", ok, err)
		}
		if ok, _ := s.UpdateSyncMembership(ctx, manual.ID, src, models.RoleOwnerID, models.MembershipActive, now); ok {
			t.Fatal("update touched a manual membership")
		}
		if ok, _ := s.DeleteSyncMembership(ctx, manual.ID, src); ok {
			t.Fatal("delete touched a manual membership")
		}
		ms, _ := s.ListMemberships(ctx, u.ID)
		if len(ms) != 1 || ms[0].RoleID != models.RoleViewerID || ms[0].Source != models.SourceManual {
			t.Fatalf("manual membership changed: %+v", ms)
		}

		// Its own memberships it creates, updates and deletes.
		m := &models.Membership{UserID: u.ID, OrganizationID: syncOrg.ID, RoleID: models.RoleMemberID, Status: models.MembershipActive, Source: src}
		if ok, err := s.UpsertSyncMembership(ctx, m); !ok || err != nil {
			t.Fatalf("insert = %v, %v", ok, err)
		}
		again := &models.Membership{UserID: u.ID, OrganizationID: syncOrg.ID, RoleID: models.RoleAdminID, Status: models.MembershipActive, Source: src}
		if ok, err := s.UpsertSyncMembership(ctx, again); !ok || err != nil {
			t.Fatalf("upsert of own = %v, %v", ok, err)
		}
		if g, _ := s.ActiveGrants(ctx, u.ID, syncOrg.ID); g == nil || g.Roles[0] != "admin" {
			t.Fatalf("upsert did not change the role: %+v", g)
		}
		if ok, _ := s.UpsertSyncMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: syncOrg.ID, RoleID: models.RoleAdminID,
			Status: models.MembershipActive, Source: src}); ok {
			t.Fatal("an upsert changing nothing reports a change")
		}
		if ok, _ := s.UpdateSyncMembership(ctx, m.ID, src, models.RoleMemberID, models.MembershipSuspended, now); !ok {
			t.Fatal("update of own membership")
		}
		if ok, _ := s.UpdateSyncMembership(ctx, m.ID, src, models.RoleMemberID, models.MembershipSuspended, now); ok {
			t.Fatal("an update changing nothing reports a change")
		}
		if ok, _ := s.DeleteSyncMembership(ctx, m.ID, src); !ok {
			t.Fatal("delete of own membership")
		}
	})
}

func TestEnsureOrganizationConcurrently(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		var wg sync.WaitGroup
		created := make(chan bool, 20)
		ids := make(chan string, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.InTx(ctx, func(tx *models.Store) error {
					o := &models.Organization{Slug: "acme", Name: "Acme"}
					c, err := tx.EnsureOrganization(ctx, o, "github", "acme")
					created <- c
					ids <- o.ID
					return err
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		close(created)
		close(ids)
		n, first := 0, ""
		for c := range created {
			if c {
				n++
			}
		}
		for id := range ids {
			if first == "" {
				first = id
			}
			if id != first {
				t.Fatalf("callers got different organizations: %s, %s", first, id)
			}
		}
		if n != 1 {
			t.Fatalf("%d callers created the organization, want 1", n)
		}
		ext, err := s.FindOrganizationExternalIDs(ctx, "github", []string{"acme", "other"})
		if err != nil || len(ext) != 1 || ext["acme"] != first {
			t.Fatalf("external ids = %v, %v", ext, err)
		}
		orgs, err := s.FindOrganizationsBySlugs(ctx, []string{"acme", "nope"})
		if err != nil || len(orgs) != 1 {
			t.Fatalf("FindOrganizationsBySlugs = %v, %v", orgs, err)
		}
	})
}

// TestOrganizationMappings: an organization with an upstream external id
// stands for that upstream organization only. EnsureOrganization never
// hands a sign-in an existing organization standing for something else,
// ClaimOrganization maps an unmapped one once, and FindSyncOrganizations
// finds organizations by slug or by mapping, with all their mappings.
func TestOrganizationMappings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, hand := withOrg(t, db, "eng-team") // made by hand: stands for nothing
		inTx := func(fn func(tx *models.Store) error) error { return s.InTx(ctx, fn) }

		foo := &models.Organization{Slug: "foo-co-uk", Name: "foo.co.uk"}
		var created bool
		if err := inTx(func(tx *models.Store) (err error) {
			created, err = tx.EnsureOrganization(ctx, foo, "google", "foo.co.uk")
			return err
		}); err != nil || !created {
			t.Fatalf("create foo-co-uk = %v, %v", created, err)
		}
		for _, tc := range []struct {
			slug, provider, ext string
			wantErr             error
		}{
			{"foo-co-uk", "google", "foo.co.uk", nil},                  // its own upstream organization
			{"foo-co-uk", "google", "foo-co.uk", models.ErrConflict},   // another whose slug collides
			{"foo-co-uk", "google-2", "foo.co.uk", models.ErrConflict}, // the same name at another provider
			{"eng-team", "okta", "eng-team", models.ErrConflict},       // made by hand: not adopted
			{"eng-team", "", "", nil},                                  // a literal slug is just the slug
		} {
			o := &models.Organization{Slug: tc.slug}
			err := inTx(func(tx *models.Store) error {
				c, err := tx.EnsureOrganization(ctx, o, tc.provider, tc.ext)
				if c {
					t.Errorf("%s for %s/%s: created again", tc.slug, tc.provider, tc.ext)
				}
				return err
			})
			if !errors.Is(err, tc.wantErr) || (err == nil && o.Slug != tc.slug) {
				t.Errorf("EnsureOrganization(%s, %s/%s) = %+v, %v; want %v", tc.slug, tc.provider, tc.ext, o, err, tc.wantErr)
			}
		}

		// A claim maps an unmapped organization once; the same claim again
		// is a no-op, any other is a conflict.
		claim := func(orgID, provider, ext string) (ok bool, err error) {
			err = inTx(func(tx *models.Store) error {
				ok, err = tx.ClaimOrganization(ctx, orgID, provider, ext)
				return err
			})
			return ok, err
		}
		if ok, err := claim(hand.ID, "okta", "Eng Team"); !ok || err != nil {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		if ok, err := claim(hand.ID, "okta", "Eng Team"); ok || err != nil {
			t.Fatalf("same claim again = %v, %v", ok, err)
		}
		for _, tc := range []struct{ orgID, provider, ext string }{
			{hand.ID, "okta", "eng-team"},    // the organization stands for Eng Team now
			{foo.ID, "google", "foo-co.uk"},  // stands for foo.co.uk
			{hand.ID, "google", "foo.co.uk"}, // foo.co.uk stands for foo-co-uk
		} {
			if ok, err := claim(tc.orgID, tc.provider, tc.ext); ok || !errors.Is(err, models.ErrConflict) {
				t.Errorf("claim of %s for %s/%s = %v, %v", tc.orgID, tc.provider, tc.ext, ok, err)
			}
		}
		if _, err := claim("no-such-org", "okta", "x"); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("claim of a missing organization = %v", err)
		}

		found, err := s.FindSyncOrganizations(ctx, []string{"eng-team", "nope"}, "google", []string{"foo.co.uk", "bar.example"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range found.Orgs {
			got = append(got, o.Slug)
		}
		for _, m := range found.Mappings {
			got = append(got, m.OrganizationID+"="+m.Provider+":"+m.ExternalID)
		}
		want := []string{"eng-team", "foo-co-uk", hand.ID + "=okta:Eng Team", foo.ID + "=google:foo.co.uk"}
		if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Fatalf("FindSyncOrganizations = %v, want %v", got, want)
		}
	})
}

// TestConcurrentClaims: of sign-ins of different upstream organizations
// claiming one unmapped organization at once, exactly one wins and the
// others get ErrConflict, never an error of the database.
func TestConcurrentClaims(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, org := withOrg(t, db, "eng-team")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.InTx(ctx, func(tx *models.Store) error {
					ok, err := tx.ClaimOrganization(ctx, org.ID, "okta", []string{"Eng Team", "eng-team", "ENG TEAM", "eng team"}[i%4])
					mu.Lock()
					defer mu.Unlock()
					if ok {
						wins++
					}
					return err
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, models.ErrConflict):
					conflicts++
				case err != nil:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		var n int64
		db.Model(&models.OrganizationExternalID{}).Where("organization_id = ?", org.ID).Count(&n)
		// The winner's own upstream organization may claim again without
		// effect: 20 = 1 win + its 4 repeats + 15 conflicts.
		if wins != 1 || n != 1 || conflicts != 15 {
			t.Fatalf("%d wins, %d conflicts, %d mappings; want 1, 15, 1", wins, conflicts, n)
		}
	})
}

func TestFindRolesByNames(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		a, b := &models.Organization{Slug: "a"}, &models.Organization{Slug: "b"}
		_ = s.CreateOrganization(ctx, a)
		_ = s.CreateOrganization(ctx, b)
		_ = s.CreateRole(ctx, &models.Role{Name: "editor", OrganizationID: &a.ID, Level: 40})
		_ = s.CreateRole(ctx, &models.Role{Name: "editor", OrganizationID: &b.ID, Level: 40})
		roles, err := s.FindRolesByNames(ctx, []string{a.ID}, []string{"editor", "member"})
		if err != nil || len(roles) != 2 {
			t.Fatalf("roles = %+v, %v", roles, err)
		}
		for _, r := range roles {
			if r.OrganizationID != nil && *r.OrganizationID != a.ID {
				t.Fatalf("a role of another organization: %+v", r)
			}
		}
		if roles, _ := s.FindRolesByNames(ctx, nil, []string{"editor", "viewer"}); len(roles) != 1 || roles[0].Name != "viewer" {
			t.Fatalf("system roles only = %+v", roles)
		}
	})
}

func TestCreateRoleWithPermissions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, org := withOrg(t, db, "a")
		r := &models.Role{Name: "kb-editor", OrganizationID: &org.ID, Level: 30}
		// "*:read" exists (seeded): it is reused, not duplicated.
		if err := s.CreateRoleWithPermissions(ctx, r, []string{"kb:write", "*:read"}); err != nil {
			t.Fatal(err)
		}
		u := &models.User{}
		_ = s.InsertUser(ctx, u)
		_ = s.CreateMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: r.ID})
		g, err := s.ActiveGrants(ctx, u.ID, org.ID)
		if err != nil || !slices.Equal(g.Permissions, []string{"*:read", "kb:write"}) {
			t.Fatalf("grants = %+v, %v", g, err)
		}
		if err := s.CreateRoleWithPermissions(ctx, &models.Role{Name: "kb-editor", OrganizationID: &org.ID}, nil); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate role: %v", err)
		}
	})
}

func TestInvitationQueries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		now := time.Now().UTC()
		org := &models.Organization{Slug: "acme"}
		_ = s.CreateOrganization(ctx, org)
		inv := func(expires time.Time) *models.Invitation {
			return &models.Invitation{OrganizationID: org.ID, Email: "ada@example.com", RoleID: models.RoleMemberID, ExpiresAt: expires}
		}
		first := inv(now.Add(time.Hour))
		if err := s.CreateInvitation(ctx, first, now); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateInvitation(ctx, inv(now.Add(time.Hour)), now); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("second pending invitation: %v", err)
		}
		// Once the first has expired, a new one replaces it.
		later := now.Add(2 * time.Hour)
		second := inv(later.Add(time.Hour))
		if err := s.CreateInvitation(ctx, second, later); err != nil {
			t.Fatalf("invitation after expiry: %v", err)
		}
		list, err := s.ListInvitations(ctx, org.ID)
		if err != nil || len(list) != 2 || list[1].ID != first.ID || list[1].Status != models.InvitationExpired {
			t.Fatalf("ListInvitations = %+v, %v", list, err)
		}
		pending, err := s.PendingInvitations(ctx, "ada@example.com", later)
		if err != nil || len(pending) != 1 || pending[0].ID != second.ID {
			t.Fatalf("PendingInvitations = %+v, %v", pending, err)
		}
		if ok, err := s.AcceptInvitation(ctx, second.ID, later); !ok || err != nil {
			t.Fatalf("accept = %v, %v", ok, err)
		}
		if ok, _ := s.AcceptInvitation(ctx, second.ID, later); ok {
			t.Fatal("accepted twice")
		}
		if _, err := s.RevokeInvitation(ctx, org.ID, second.ID, later); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("revoke accepted: %v", err)
		}
		if _, err := s.RevokeInvitation(ctx, org.ID, "nope", later); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		third := inv(later.Add(time.Hour))
		third.Email = "bob@example.com"
		_ = s.CreateInvitation(ctx, third, later)
		if got, err := s.RevokeInvitation(ctx, org.ID, third.ID, later); err != nil || got.Status != models.InvitationRevoked {
			t.Fatalf("revoke = %+v, %v", got, err)
		}
		if pending, _ := s.PendingInvitations(ctx, "bob@example.com", later); len(pending) != 0 {
			t.Fatalf("revoked invitation pending: %v", pending)
		}
	})
}

// TestOrgSyncBindings: a literal org-sync target bound to an organization
// is found through the binding whatever the organization's slug, and
// another organization taking the slug later is not; a binding is made
// once (the same again is a no-op, another organization a conflict, a
// missing one not found) and goes with its organization.
func TestOrgSyncBindings(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s, finance := withOrg(t, db, "finance")
		bind := func(target, orgID string) (ok bool, err error) {
			err = s.InTx(ctx, func(tx *models.Store) error {
				ok, err = tx.BindSyncTarget(ctx, target, orgID)
				return err
			})
			return ok, err
		}
		if ok, err := bind("finance", finance.ID); !ok || err != nil {
			t.Fatalf("first binding = %v, %v", ok, err)
		}
		if ok, err := bind("finance", finance.ID); ok || err != nil {
			t.Fatalf("same binding again = %v, %v", ok, err)
		}
		// The bound organization is renamed; another takes the slug.
		finance.Slug, finance.UpdatedAt = "finance-old", time.Now()
		if err := s.UpdateOrganization(ctx, finance); err != nil {
			t.Fatal(err)
		}
		squat := &models.Organization{Slug: "finance"}
		if err := s.CreateOrganization(ctx, squat); err != nil {
			t.Fatal(err)
		}
		if ok, err := bind("finance", squat.ID); ok || !errors.Is(err, models.ErrConflict) {
			t.Fatalf("binding a bound target to another organization = %v, %v", ok, err)
		}
		if ok, err := bind("payroll", "no-such-org"); ok || !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("binding to a missing organization = %v, %v", ok, err)
		}
		found, err := s.FindSyncOrganizations(ctx, []string{"finance"}, "dev", nil, []string{"finance", "payroll"})
		if err != nil {
			t.Fatal(err)
		}
		slugs := []string{}
		for _, o := range found.Orgs {
			slugs = append(slugs, o.Slug)
		}
		slices.Sort(slugs)
		if !slices.Equal(slugs, []string{"finance", "finance-old"}) || len(found.Bindings) != 1 || found.Bindings["finance"] != finance.ID {
			t.Fatalf("FindSyncOrganizations = %v, bindings %v", slugs, found.Bindings)
		}
		// Deleting the organization removes its binding.
		if err := s.DeleteOrganization(ctx, finance.ID); err != nil {
			t.Fatal(err)
		}
		if found, err = s.FindSyncOrganizations(ctx, nil, "dev", nil, []string{"finance"}); err != nil || len(found.Bindings) != 0 || len(found.Orgs) != 0 {
			t.Fatalf("after deleting the bound organization: %+v, %v", found, err)
		}
		if ok, err := bind("finance", squat.ID); !ok || err != nil {
			t.Fatalf("binding after the bound organization is gone = %v, %v", ok, err)
		}
	})
}
