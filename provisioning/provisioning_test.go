package provisioning_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// fixture is a provisioning service on a real database.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	db    *models.DB
	store *models.Store
	svc   *provisioning.Service
	clock time.Time
}

// defaultTrusted is what the configuration trusts for email by default,
// for providers named after their kind: dev, google and github, not
// oidc, auth0, saml (nor okta, an oidc provider in these tests).
var defaultTrusted = map[string]bool{"dev": true, "google": true, "github": true}

func newFixture(t *testing.T, db *models.DB, opts provisioning.Options) *fixture {
	// Microseconds: what PostgreSQL keeps.
	f := &fixture{t: t, ctx: context.Background(), db: db, store: models.NewStore(db), clock: time.Now().UTC().Truncate(time.Microsecond)}
	if opts.TrustedEmail == nil {
		opts.TrustedEmail = defaultTrusted
	}
	opts.Now = func() time.Time { return f.clock }
	f.svc = provisioning.New(f.store, opts)
	return f
}

// identity is a sign-in of subject at provider.
func identity(provider, subject, email string, verified bool, groups ...string) *providers.Identity {
	return &providers.Identity{Provider: provider, Subject: subject, Email: email, EmailVerified: verified,
		Name: "Person " + subject, Groups: groups, Claims: map[string]any{"sub": subject}}
}

func (f *fixture) login(id *providers.Identity) *provisioning.Result {
	f.t.Helper()
	res, err := f.svc.Provision(f.ctx, provisioning.Login{Identity: id, Meta: provisioning.Meta{ClientID: "spa", IP: "192.0.2.1", RequestID: "req-1"}})
	if err != nil {
		f.t.Fatalf("login of %s/%s: %v", id.Provider, id.Subject, err)
	}
	return res
}

func (f *fixture) count(table, where string, args ...any) int64 {
	f.t.Helper()
	var n int64
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	if err := f.db.Raw(q, args...).Scan(&n).Error; err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) audits(typ string) int64 { return f.count("audit_events", "type = ?", typ) }

func (f *fixture) org(slug string) *models.Organization {
	f.t.Helper()
	o, err := f.store.FindOrganizationBySlug(f.ctx, slug)
	if err != nil {
		o = &models.Organization{Slug: slug, Name: slug}
		if err := f.store.CreateOrganization(f.ctx, o); err != nil {
			f.t.Fatal(err)
		}
	}
	return o
}

// memberships describes the user's memberships as "slug:role:status:source", sorted.
func (f *fixture) memberships(userID string) []string {
	f.t.Helper()
	var rows []struct{ Slug, Role, Status, Source string }
	err := f.db.Table("memberships").Select("organizations.slug, roles.name AS role, memberships.status, memberships.source").
		Joins("JOIN organizations ON organizations.id = memberships.organization_id").
		Joins("JOIN roles ON roles.id = memberships.role_id").
		Where("memberships.user_id = ?", userID).Order("organizations.slug").Scan(&rows).Error
	if err != nil {
		f.t.Fatal(err)
	}
	out := []string{}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s:%s:%s:%s", r.Slug, r.Role, r.Status, r.Source))
	}
	return out
}

func TestFirstAndReturningLogin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{})
		first := f.login(identity("dev", "ada", " Ada@Example.COM ", true))
		if !first.Created || first.Linked || first.User.Email != "ada@example.com" || !first.User.EmailVerified {
			t.Fatalf("first login = %+v", first)
		}
		if f.count("users", "") != 1 || f.count("identities", "") != 1 || f.audits(provisioning.AuditUserCreated) != 1 {
			t.Fatal("first login did not create exactly one user and identity, audited")
		}
		var ev models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditUserCreated).Take(&ev)
		if ev.ClientID != "spa" || ev.IP != "192.0.2.1" || ev.RequestID != "req-1" || ev.Provider != "dev" || *ev.SubjectUserID != first.User.ID {
			t.Fatalf("audit event = %+v", ev)
		}

		// A later login refreshes the profile and the last-login time.
		f.clock = f.clock.Add(time.Hour)
		id := identity("dev", "ada", "ada@example.com", true)
		id.Name, id.AvatarURL = "Ada Lovelace", "https://example.com/ada.png"
		again := f.login(id)
		if again.Created || again.User.ID != first.User.ID || again.User.Name != "Ada Lovelace" {
			t.Fatalf("returning login = %+v", again)
		}
		u, _ := f.store.FindUser(f.ctx, first.User.ID)
		if u.Name != "Ada Lovelace" || u.AvatarURL != "https://example.com/ada.png" || !u.LastLoginAt.Equal(f.clock) {
			t.Fatalf("user after login = %+v", u)
		}
		ids, _ := f.store.ListIdentities(f.ctx, u.ID)
		if ids[0].Name != "Ada Lovelace" || !ids[0].LastLoginAt.Equal(f.clock) || ids[0].RawClaims != `{"sub":"ada"}` {
			t.Fatalf("identity after login = %+v", ids[0])
		}

		// An unverified email never replaces a verified one; empty fields keep theirs.
		f.login(&providers.Identity{Provider: "dev", Subject: "ada", Email: "mallory@example.com"})
		u, _ = f.store.FindUser(f.ctx, first.User.ID)
		if u.Email != "ada@example.com" || !u.EmailVerified || u.Name != "Ada Lovelace" {
			t.Fatalf("unverified email replaced a verified one: %+v", u)
		}
		if f.count("users", "") != 1 || f.audits(provisioning.AuditUserCreated) != 1 {
			t.Fatal("a returning login created something")
		}
	})
}

// TestLinking: a first sign-in joins the existing user with the same
// verified email only when its provider links and is trusted for email,
// and exactly one user has that email verified by a trusted provider.
// okta is an oidc provider: not trusted unless the case opts it in.
func TestLinking(t *testing.T) {
	cases := []struct {
		name          string
		linkEnabled   bool
		newProvider   string // default github
		existingProv  string // default google
		existingEmail string
		existingVer   bool
		newVerified   bool
		secondProv    string // another user has the same verified email through it
		trustOkta     bool
		wantLinked    bool
		wantReason    string
	}{
		{name: "linked", linkEnabled: true, existingEmail: "ada@example.com", existingVer: true, newVerified: true, wantLinked: true},
		{name: "linking not enabled", existingEmail: "ada@example.com", existingVer: true, newVerified: true,
			wantReason: "linking by email is not enabled for this provider"},
		{name: "new email unverified", linkEnabled: true, existingEmail: "ada@example.com", existingVer: true,
			wantReason: "the provider did not verify the email"},
		{name: "existing email unverified", linkEnabled: true, existingEmail: "ada@example.com", newVerified: true},
		{name: "different email", linkEnabled: true, existingEmail: "bob@example.com", existingVer: true, newVerified: true},
		{name: "ambiguous", linkEnabled: true, existingEmail: "ada@example.com", existingVer: true, newVerified: true, secondProv: "dev",
			wantReason: "2 users have this email verified by a trusted provider"},
		{name: "new side untrusted", linkEnabled: true, newProvider: "okta", existingEmail: "ada@example.com", existingVer: true, newVerified: true,
			wantReason: provisioning.NotTrustedReason},
		{name: "new side trusted by opt-in", linkEnabled: true, newProvider: "okta", trustOkta: true, existingEmail: "ada@example.com",
			existingVer: true, newVerified: true, wantLinked: true},
		{name: "existing side untrusted", linkEnabled: true, existingProv: "okta", existingEmail: "ada@example.com", existingVer: true, newVerified: true,
			wantReason: "no user has this email verified by a trusted provider"},
		{name: "existing side trusted by opt-in", linkEnabled: true, existingProv: "okta", trustOkta: true, existingEmail: "ada@example.com",
			existingVer: true, newVerified: true, wantLinked: true},
		{name: "an untrusted holder does not make it ambiguous", linkEnabled: true, existingEmail: "ada@example.com", existingVer: true,
			newVerified: true, secondProv: "okta", wantLinked: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *models.DB) {
				newProv, existingProv := cmp.Or(tc.newProvider, "github"), cmp.Or(tc.existingProv, "google")
				trusted := maps.Clone(defaultTrusted)
				trusted["okta"] = tc.trustOkta
				f := newFixture(t, db, provisioning.Options{LinkByEmail: map[string]bool{newProv: tc.linkEnabled}, TrustedEmail: trusted})
				existing := f.login(identity(existingProv, "e1", tc.existingEmail, tc.existingVer))
				if tc.secondProv != "" {
					f.login(identity(tc.secondProv, "s1", tc.existingEmail, true))
				}
				res := f.login(identity(newProv, "n1", "Ada@example.com", tc.newVerified))
				if res.Linked != tc.wantLinked || (res.User.ID == existing.User.ID) != tc.wantLinked || res.Created == tc.wantLinked {
					t.Fatalf("linked = %v created = %v same user = %v, want linked %v", res.Linked, res.Created, res.User.ID == existing.User.ID, tc.wantLinked)
				}
				if tc.wantLinked {
					ids, _ := f.store.ListIdentities(f.ctx, existing.User.ID)
					if len(ids) != 2 || f.audits(provisioning.AuditIdentityLinked) != 1 {
						t.Fatalf("identities of the linked user = %d", len(ids))
					}
					// Signing in again through the linked identity finds the same user.
					if again := f.login(identity(newProv, "n1", "ada@example.com", true)); again.User.ID != existing.User.ID || again.Linked {
						t.Fatalf("second login through the linked identity = %+v", again)
					}
				}
				var ev models.AuditEvent
				err := f.db.Where("type = ? AND provider = ?", provisioning.AuditIdentityNotLinked, newProv).Take(&ev).Error
				switch {
				case tc.wantReason == "" && err == nil:
					t.Fatalf("unexpected link refusal: %s", ev.Details)
				case tc.wantReason != "" && (err != nil || !strings.Contains(ev.Details, tc.wantReason)):
					t.Fatalf("link refusal = %q, %v; want reason %q", ev.Details, err, tc.wantReason)
				}
			})
		})
	}
}

// TestEmailVerifiedFollowsTrust: Gatehouse states a user's email verified
// only when an identity of the user, of a provider trusted for email as
// configured now, reports that very address verified; and a sign-in
// through an untrusted provider cannot displace such an address. Each
// step is a sign-in under the trust settings of its time; corp and
// partner are oidc providers, trusted only where a step or "now" says so.
func TestEmailVerifiedFollowsTrust(t *testing.T) {
	type signIn struct {
		provider, subject, email string // email: a local part, made unique per case
		verified                 bool
		trusted                  []string // providers trusted for email at this sign-in
		link                     bool     // the provider links by verified email
	}
	cases := []struct {
		name      string
		steps     []signIn
		trusted   []string // trusted for email now
		wantEmail string
		want      bool
	}{
		{name: "trusted provider verified it", trusted: []string{"corp"}, wantEmail: "a", want: true,
			steps: []signIn{{provider: "corp", subject: "c", email: "a", verified: true, trusted: []string{"corp"}}}},
		{name: "untrusted provider verified it", wantEmail: "a", want: false,
			steps: []signIn{{provider: "partner", subject: "p", email: "a", verified: true}}},
		{name: "trusted provider did not verify it", trusted: []string{"corp"}, wantEmail: "a", want: false,
			steps: []signIn{{provider: "corp", subject: "c", email: "a", verified: false, trusted: []string{"corp"}}}},
		{name: "trust withdrawn since", wantEmail: "a", want: false,
			steps: []signIn{{provider: "corp", subject: "c", email: "a", verified: true, trusted: []string{"corp"}}}},
		{name: "trust granted since", trusted: []string{"partner"}, wantEmail: "a", want: true,
			steps: []signIn{{provider: "partner", subject: "p", email: "a", verified: true}}},
		{name: "signed in through an untrusted identity, a trusted one vouches", trusted: []string{"google"}, wantEmail: "a", want: true,
			steps: []signIn{
				{provider: "google", subject: "g", email: "a", verified: true, trusted: []string{"google"}},
				{provider: "partner", subject: "p", email: "a", verified: true, trusted: []string{"google", "partner"}, link: true},
				{provider: "partner", subject: "p", email: "a", verified: true, trusted: []string{"google"}},
			}},
		{name: "an untrusted identity's address does not displace the trusted one", trusted: []string{"google"}, wantEmail: "a", want: true,
			steps: []signIn{
				{provider: "google", subject: "g", email: "a", verified: true, trusted: []string{"google"}},
				{provider: "partner", subject: "p", email: "a", verified: true, trusted: []string{"google", "partner"}, link: true},
				{provider: "partner", subject: "p", email: "b", verified: true, trusted: []string{"google"}},
			}},
		{name: "the address follows the trusted identity", trusted: []string{"google"}, wantEmail: "b", want: true,
			steps: []signIn{
				{provider: "google", subject: "g", email: "a", verified: true, trusted: []string{"google"}},
				{provider: "google", subject: "g", email: "b", verified: true, trusted: []string{"google"}},
			}},
		{name: "the address follows an untrusted identity when nothing trusted vouches", wantEmail: "b", want: false,
			steps: []signIn{
				{provider: "partner", subject: "p", email: "a", verified: true},
				{provider: "partner", subject: "p", email: "b", verified: true},
			}},
		{name: "no email", trusted: []string{"dev"}, wantEmail: "", want: false,
			steps: []signIn{{provider: "dev", subject: "d", email: "", verified: true, trusted: []string{"dev"}}}},
	}
	set := func(names []string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{})
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				addr := func(local string) string {
					if local == "" {
						return ""
					}
					return fmt.Sprintf("%s.%d@example.com", local, i)
				}
				var userID string
				for _, st := range tc.steps {
					f.svc = provisioning.New(f.store, provisioning.Options{TrustedEmail: set(st.trusted),
						LinkByEmail: map[string]bool{st.provider: st.link}})
					res := f.login(identity(st.provider, fmt.Sprintf("%s-%d", st.subject, i), addr(st.email), st.verified))
					if userID != "" && res.User.ID != userID {
						t.Fatalf("sign-in through %s made another user", st.provider)
					}
					userID = res.User.ID
				}
				u, err := f.store.FindUser(f.ctx, userID)
				if err != nil {
					t.Fatal(err)
				}
				now := provisioning.New(f.store, provisioning.Options{TrustedEmail: set(tc.trusted)})
				got, err := now.EmailVerified(f.ctx, u)
				if err != nil || u.Email != addr(tc.wantEmail) || got != tc.want {
					t.Fatalf("email %q verified %v (%v); want %q verified %v", u.Email, got, err, addr(tc.wantEmail), tc.want)
				}
			})
		}
	})
}

func TestDisabledUser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{LinkByEmail: map[string]bool{"github": true},
			Sync: provisioning.SyncPolicy{AutoCreateOrgs: true, Rules: []provisioning.Rule{{Match: "dev:group:*", Org: "{org}", Role: "member"}}}})
		res := f.login(identity("dev", "ada", "ada@example.com", true))
		before := *res.User.LastLoginAt
		f.db.Model(&models.User{}).Where("id = ?", res.User.ID).Update("disabled", true)
		f.clock = f.clock.Add(time.Hour)

		for _, id := range []*providers.Identity{
			identity("dev", "ada", "ada@example.com", true, "dev:group:eng"),
			identity("github", "gh-ada", "ada@example.com", true), // linking must not be a way around it
		} {
			_, err := f.svc.Provision(f.ctx, provisioning.Login{Identity: id})
			if !errors.Is(err, provisioning.ErrUserDisabled) {
				t.Fatalf("%s: err = %v, want ErrUserDisabled", id.Provider, err)
			}
		}
		u, _ := f.store.FindUser(f.ctx, res.User.ID)
		if !u.LastLoginAt.Equal(before) || f.count("identities", "") != 1 || f.count("organizations", "") != 0 {
			t.Fatal("a refused login changed something")
		}
		var evs []models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditLoginRefused).Find(&evs)
		if len(evs) != 2 || *evs[0].SubjectUserID != u.ID || evs[0].Outcome != models.OutcomeFailure || !strings.Contains(evs[0].Details, "user disabled") {
			t.Fatalf("refusals audited = %+v", evs)
		}
	})
}

// together runs fn(0) … fn(n-1) in n goroutines released at the same
// moment, so that they contend, and waits for them all.
func together(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// TestConcurrentFirstLogins is the race-safety proof: 200 concurrent
// logins of 50 people, each also joining an organization that org sync
// creates on the fly, yield exactly 50 users, 50 identities, one
// organization, 50 memberships and no error. A transient fault is not a
// wrong answer: SQLite queues 200 writers one at a time, and on a slow
// machine (the race detector, two busy cores) a writer can wait past the
// busy timeout; the person then sees a retry page (503) and tries again,
// which is what the test does (logging how often).
func TestConcurrentFirstLogins(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "dev:group:*", Org: "{org}", Role: "member"}}}})
		const logins, people = 200, 50
		var failures, retries atomic.Int64
		defer func() { t.Logf("%d logins retried after a transient fault", retries.Load()) }()
		users := make([]string, logins)
		together(logins, func(i int) {
			p := i % people
			login := provisioning.Login{Identity: identity("dev", fmt.Sprint(p),
				fmt.Sprintf("p%d@example.com", p), true, "dev:group:eng")}
			res, err := f.svc.Provision(f.ctx, login)
			for try := 0; try < 5 && models.IsTransient(err); try++ {
				retries.Add(1)
				res, err = f.svc.Provision(f.ctx, login)
			}
			if err != nil {
				failures.Add(1)
				t.Errorf("login %d: %v", i, err)
				return
			}
			users[i] = res.User.ID
		})
		if failures.Load() != 0 {
			t.Fatalf("%d failed logins", failures.Load())
		}
		for i := range logins {
			if users[i] != users[i%people] {
				t.Fatalf("logins of person %d got users %s and %s", i%people, users[i], users[i%people])
			}
		}
		got := []int64{f.count("users", ""), f.count("identities", ""), f.count("organizations", ""), f.count("memberships", ""),
			f.audits(provisioning.AuditUserCreated), f.audits(provisioning.AuditOrgCreated), f.audits(provisioning.AuditMembershipAdded)}
		if want := []int64{people, people, 1, people, people, 1, people}; !slices.Equal(got, want) {
			t.Fatalf("users, identities, orgs, memberships, and their audit events = %v, want %v", got, want)
		}
	})
}

// TestConcurrentLoginsOfOneUser: sign-ins of one person at once that all
// call for the same role change make it once, and audit it once.
func TestConcurrentLoginsOfOneUser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{Rules: []provisioning.Rule{
			{Index: 0, Match: "dev:group:eng", Org: "acme", Role: "member"},
			{Index: 1, Match: "dev:group:leads", Org: "acme", Role: "admin"},
			{Index: 2, Match: "dev:group:ops", Org: "ops", Role: "viewer"},
		}}})
		f.org("acme")
		f.org("ops")
		u := f.login(identity("dev", "ada", "ada@example.com", true, "dev:group:eng")).User
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := f.svc.Provision(f.ctx, provisioning.Login{Identity: identity("dev", "ada", "ada@example.com", true,
					"dev:group:eng", "dev:group:leads", "dev:group:ops")})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got := f.memberships(u.ID); !slices.Equal(got, []string{"acme:admin:active:sync:dev", "ops:viewer:active:sync:dev"}) {
			t.Fatalf("memberships = %v", got)
		}
		if r, a := f.audits(provisioning.AuditMembershipRole), f.audits(provisioning.AuditMembershipAdded); r != 1 || a != 2 {
			t.Fatalf("%d role changes and %d additions audited, want 1 and 2", r, a)
		}
	})
}

// TestOrgSyncAcrossLogins plays sign-ins of one person whose upstream
// groups change, and checks the memberships after each.
func TestOrgSyncAcrossLogins(t *testing.T) {
	rules := []provisioning.Rule{
		{Index: 0, Match: "github:org:acme", Org: "acme", Role: "member"},
		{Index: 1, Match: "github:team:acme/platform-*", Org: "acme", Role: "admin"},
		{Index: 2, Match: "github:org:*", Org: "gh-{org}", Role: "viewer"},
	}
	steps := []struct {
		name   string
		groups []string
		want   []string
		audit  string // an event type this step must add
	}{
		{"join", []string{"github:org:acme"},
			[]string{"acme:member:active:sync:github", "gh-acme:viewer:active:sync:github", "hand:owner:active:manual"}, provisioning.AuditMembershipAdded},
		{"role change by a team glob", []string{"github:org:acme", "github:team:acme/platform-infra"},
			[]string{"acme:admin:active:sync:github", "gh-acme:viewer:active:sync:github", "hand:owner:active:manual"}, provisioning.AuditMembershipRole},
		{"auto-create another upstream org", []string{"github:org:acme", "github:org:Beta-Labs"},
			[]string{"acme:member:active:sync:github", "gh-acme:viewer:active:sync:github", "gh-beta-labs:viewer:active:sync:github", "hand:owner:active:manual"}, provisioning.AuditOrgCreated},
		{"leave suspends", []string{"github:org:Beta-Labs"},
			[]string{"acme:member:suspended:sync:github", "gh-acme:viewer:suspended:sync:github", "gh-beta-labs:viewer:active:sync:github", "hand:owner:active:manual"}, provisioning.AuditMembershipSuspend},
		{"back again reactivates", []string{"github:org:acme"},
			[]string{"acme:member:active:sync:github", "gh-acme:viewer:active:sync:github", "gh-beta-labs:viewer:suspended:sync:github", "hand:owner:active:manual"}, provisioning.AuditMembershipRevived},
		{"a rule for the hand-made membership's org changes nothing there", []string{"github:org:acme", "github:org:hand"},
			[]string{"acme:member:active:sync:github", "gh-acme:viewer:active:sync:github", "gh-beta-labs:viewer:suspended:sync:github", "gh-hand:viewer:active:sync:github", "hand:owner:active:manual"}, ""},
	}
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{Rules: append(rules,
			provisioning.Rule{Index: 3, Match: "github:org:hand", Org: "hand", Role: "viewer"}),
			OnLeave: provisioning.LeaveSuspend, AutoCreateOrgs: true}})
		f.org("acme")
		user := f.login(identity("github", "42", "ada@example.com", true)).User
		// An administrator made Ada owner of "hand" by hand.
		if err := f.store.CreateMembership(f.ctx, &models.Membership{UserID: user.ID, OrganizationID: f.org("hand").ID, RoleID: models.RoleOwnerID}); err != nil {
			t.Fatal(err)
		}
		for _, st := range steps {
			before := int64(0)
			if st.audit != "" {
				before = f.audits(st.audit)
			}
			res := f.login(identity("github", "42", "ada@example.com", true, st.groups...))
			if got := f.memberships(user.ID); !slices.Equal(got, st.want) {
				t.Fatalf("%s: memberships =\n  %s\nwant\n  %s", st.name, strings.Join(got, "\n  "), strings.Join(st.want, "\n  "))
			}
			if len(res.Memberships) != len(st.want) {
				t.Fatalf("%s: the result lists %d memberships, want %d", st.name, len(res.Memberships), len(st.want))
			}
			if st.audit != "" && f.audits(st.audit) <= before {
				t.Fatalf("%s: no %s audit event", st.name, st.audit)
			}
		}
		// Another provider's login never touches github's memberships.
		f.login(identity("google", "g", "ada@example.com", true))
		if n := f.count("memberships", "user_id = ?", user.ID); n != 5 {
			t.Fatalf("memberships after a google login = %d", n)
		}
	})
}

// TestOrgSyncRemoveAndSkip covers on_leave: remove and rules that cannot apply.
func TestOrgSyncRemoveAndSkip(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{Rules: []provisioning.Rule{
			{Index: 0, Match: "dev:group:eng", Org: "acme", Role: "member"},
			{Index: 1, Match: "dev:group:ops", Org: "missing", Role: "member"},
		}}})
		f.org("acme")
		u := f.login(identity("dev", "ada", "ada@example.com", true, "dev:group:eng")).User
		if got := f.memberships(u.ID); !slices.Equal(got, []string{"acme:member:active:sync:dev"}) {
			t.Fatalf("memberships = %v", got)
		}
		f.login(identity("dev", "ada", "ada@example.com", true, "dev:group:ops"))
		if got := f.memberships(u.ID); len(got) != 0 || f.audits(provisioning.AuditMembershipRemoved) != 1 {
			t.Fatalf("memberships after leaving = %v", got)
		}
		var ev models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditSyncRuleSkipped).Take(&ev)
		if ev.Outcome != models.OutcomeFailure || !strings.Contains(ev.Details, `organization \"missing\" does not exist`) {
			t.Fatalf("skipped rule audit = %+v", ev)
		}
	})
}

// TestOrgSyncPartialGroups: a sign-in whose provider says its groups are
// incomplete adds memberships but removes and suspends none, and audits
// each one it kept; the next complete answer applies the leave.
func TestOrgSyncPartialGroups(t *testing.T) {
	steps := []struct {
		name    string
		groups  []string
		partial bool
		want    []string
		kept    int64 // org_sync.removal_skipped events so far
	}{
		{"join", []string{"github:org:acme", "github:org:beta"}, false,
			[]string{"acme:member:active:sync:github", "beta:member:active:sync:github"}, 0},
		{"beta hidden: kept, and gamma joined", []string{"github:org:acme", "github:org:gamma"}, true,
			[]string{"acme:member:active:sync:github", "beta:member:active:sync:github", "gamma:member:active:sync:github"}, 1},
		{"everything hidden: all kept", nil, true,
			[]string{"acme:member:active:sync:github", "beta:member:active:sync:github", "gamma:member:active:sync:github"}, 4},
		{"complete again: beta left for real", []string{"github:org:acme", "github:org:gamma"}, false,
			[]string{"acme:member:active:sync:github", "gamma:member:active:sync:github"}, 4},
	}
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "github:org:*", Org: "{org}", Role: "member"}}}})
		var userID string
		for _, st := range steps {
			id := identity("github", "42", "ada@example.com", true, st.groups...)
			id.GroupsPartial = st.partial
			userID = f.login(id).User.ID
			if got := f.memberships(userID); !slices.Equal(got, st.want) {
				t.Fatalf("%s: memberships =\n  %s\nwant\n  %s", st.name, strings.Join(got, "\n  "), strings.Join(st.want, "\n  "))
			}
			if n := f.audits(provisioning.AuditSyncRemovalSkipped); n != st.kept {
				t.Fatalf("%s: %d %s events, want %d", st.name, n, provisioning.AuditSyncRemovalSkipped, st.kept)
			}
		}
		if n := f.audits(provisioning.AuditMembershipRemoved); n != 1 {
			t.Fatalf("%d removals, want the one after the complete answer", n)
		}
		var ev models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditSyncRemovalSkipped).Order("id").Take(&ev)
		if ev.Outcome != models.OutcomeFailure || ev.OrganizationID == nil || *ev.OrganizationID != f.org("beta").ID ||
			ev.Provider != "github" || *ev.SubjectUserID != userID || !strings.Contains(ev.Details, "left groups out") {
			t.Fatalf("removal skipped audit = %+v", ev)
		}
	})
}

// TestOrgSyncCollidingUpstreams is the reported merge: with a rule
// google:domain:* → {org}, foo.co.uk and foo-co.uk both slugify to
// foo-co-uk, and whoever registered foo-co.uk joined foo.co.uk's
// organization. Now the organization stands for foo.co.uk (its mapping),
// foo-co.uk gets its own under a distinct slug, a rename does not detach
// the mapped organization, and a membership merged before moves out.
func TestOrgSyncCollidingUpstreams(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "google:domain:*", Org: "{org}", Role: "member"}}}})
		ada := f.login(identity("google", "ada", "ada@foo.co.uk", true, "google:domain:foo.co.uk")).User
		mallory := f.login(identity("google", "mallory", "m@foo-co.uk", true, "google:domain:foo-co.uk")).User
		distinct := provisioning.DistinctSlug("foo-co-uk", "google", "foo-co.uk")
		if got := f.memberships(ada.ID); !slices.Equal(got, []string{"foo-co-uk:member:active:sync:google"}) {
			t.Fatalf("ada's memberships = %v", got)
		}
		if got := f.memberships(mallory.ID); !slices.Equal(got, []string{distinct + ":member:active:sync:google"}) {
			t.Fatalf("foo-co.uk's member joined %v, want only %s", got, distinct)
		}
		if n := f.count("memberships", "organization_id = ?", f.org("foo-co-uk").ID); n != 1 {
			t.Fatalf("foo.co.uk's organization has %d members, want 1", n)
		}
		var ev models.AuditEvent
		f.db.Where("type = ? AND organization_id = ?", provisioning.AuditOrgCreated, f.org(distinct).ID).Take(&ev)
		if !strings.Contains(ev.Details, `does not stand for google organization \"foo-co.uk\"`) || !strings.Contains(ev.Details, `"external_id":"foo-co.uk"`) {
			t.Fatalf("creation of %s audited as %+v", distinct, ev)
		}

		// An administrator renames the organization: the mapping still finds it.
		if err := f.db.Exec("UPDATE organizations SET slug = ? WHERE slug = ?", "foo", "foo-co-uk").Error; err != nil {
			t.Fatal(err)
		}
		f.login(identity("google", "ada", "ada@foo.co.uk", true, "google:domain:foo.co.uk"))
		if got := f.memberships(ada.ID); !slices.Equal(got, []string{"foo:member:active:sync:google"}) || f.count("organizations", "slug <> ?", models.AdminOrgSlug) != 2 {
			t.Fatalf("after the rename: memberships %v, %d organizations", got, f.count("organizations", "slug <> ?", models.AdminOrgSlug))
		}

		// A membership the old sync merged into foo.co.uk's organization
		// goes at its holder's next sign-in.
		merged := &models.Membership{UserID: mallory.ID, OrganizationID: f.org("foo").ID, RoleID: models.RoleMemberID, Source: "sync:google"}
		if err := f.store.CreateMembership(f.ctx, merged); err != nil {
			t.Fatal(err)
		}
		f.login(identity("google", "mallory", "m@foo-co.uk", true, "google:domain:foo-co.uk"))
		if got := f.memberships(mallory.ID); !slices.Equal(got, []string{distinct + ":member:active:sync:google"}) {
			t.Fatalf("after the next sign-in the merged member holds %v", got)
		}
	})
}

// TestOrgSyncBindsLiteralTargets: a literal target (org: finance) is
// bound to the organization sync first creates or finds for it, and
// follows that organization's id: renamed, it keeps the rule's members;
// another organization renamed to finance afterwards (the squat: an
// organization's admin taking the slug of a rule's organization) gets
// nobody. With the bound organization deleted, the target is free again.
func TestOrgSyncBindsLiteralTargets(t *testing.T) {
	for _, autoCreate := range []bool{true, false} {
		t.Run(fmt.Sprintf("auto_create_orgs=%v", autoCreate), func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *models.DB) {
				f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{AutoCreateOrgs: autoCreate,
					Rules: []provisioning.Rule{{Match: "github:org:acme", Org: "finance", Role: "member"}}}})
				if !autoCreate {
					f.org("finance") // an administrator made it for the rule
				}
				ada := f.login(identity("github", "ada", "ada@example.com", true, "github:org:acme")).User
				fin := f.org("finance")
				if got := f.memberships(ada.ID); !slices.Equal(got, []string{"finance:member:active:sync:github"}) {
					t.Fatalf("ada's memberships = %v", got)
				}
				want := map[bool]string{true: provisioning.AuditOrgCreated, false: provisioning.AuditOrgBound}[autoCreate]
				var ev models.AuditEvent
				f.db.Where("type = ? AND organization_id = ?", want, fin.ID).Take(&ev)
				if !strings.Contains(ev.Details, `"target":"finance"`) || f.count("org_sync_bindings", "target = ? AND organization_id = ?", "finance", fin.ID) != 1 {
					t.Fatalf("binding of finance: event %+v, %d bindings", ev, f.count("org_sync_bindings", ""))
				}

				// The bound organization is renamed; a squatter takes the slug.
				if err := f.db.Exec("UPDATE organizations SET slug = ? WHERE id = ?", "finance-eu", fin.ID).Error; err != nil {
					t.Fatal(err)
				}
				squat := f.org("finance")
				bob := f.login(identity("github", "bob", "bob@example.com", true, "github:org:acme")).User
				f.login(identity("github", "ada", "ada@example.com", true, "github:org:acme"))
				for _, u := range []*models.User{ada, bob} {
					if got := f.memberships(u.ID); !slices.Equal(got, []string{"finance-eu:member:active:sync:github"}) {
						t.Fatalf("%s's memberships after the squat = %v", u.Email, got)
					}
				}
				if n := f.count("memberships", "organization_id = ?", squat.ID); n != 0 {
					t.Fatalf("the squatting organization got %d members", n)
				}

				// Deleted, the bound organization takes its binding along:
				// the rule resolves by slug again (and binds it).
				if err := f.store.DeleteOrganization(f.ctx, fin.ID); err != nil {
					t.Fatal(err)
				}
				f.login(identity("github", "bob", "bob@example.com", true, "github:org:acme"))
				if got := f.memberships(bob.ID); !slices.Equal(got, []string{"finance:member:active:sync:github"}) ||
					f.count("org_sync_bindings", "target = ? AND organization_id = ?", "finance", squat.ID) != 1 {
					t.Fatalf("after deleting the bound organization: %v", got)
				}
			})
		})
	}
}

// TestOrgSyncClaimsWithoutAutoCreate: without auto_create_orgs an {org}
// rule fills organizations the administrators made; the first upstream
// organization to use one maps it (audited), and a colliding one is
// skipped instead of joining.
func TestOrgSyncClaimsWithoutAutoCreate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{
			Rules: []provisioning.Rule{{Match: "oidc:group:*", Org: "{org}", Role: "member"}}}})
		team := f.org("eng-team")
		first := f.login(identity("okta", "1", "one@example.com", true, "oidc:group:Eng Team")).User
		second := f.login(identity("okta", "2", "two@example.com", true, "oidc:group:eng-team")).User
		if got := f.memberships(first.ID); !slices.Equal(got, []string{"eng-team:member:active:sync:okta"}) {
			t.Fatalf("first member: %v", got)
		}
		if got := f.memberships(second.ID); len(got) != 0 {
			t.Fatalf("a colliding upstream group joined %v", got)
		}
		var mapped, skipped models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditOrgMapped).Take(&mapped)
		f.db.Where("type = ? AND subject_user_id = ?", provisioning.AuditSyncRuleSkipped, second.ID).Take(&skipped)
		if mapped.OrganizationID == nil || *mapped.OrganizationID != team.ID || !strings.Contains(mapped.Details, `"external_id":"Eng Team"`) ||
			!strings.Contains(skipped.Details, "auto_create_orgs is off") {
			t.Fatalf("audited: mapped %+v, skipped %+v", mapped, skipped)
		}
	})
}

// TestConcurrentCollidingFirstLogins: first sign-ins of people of two
// upstream organizations whose slugs collide, all at once, never put
// anyone in the other's organization and never fail; a sign-in that lost
// the race for the slug joins at its next sign-in.
func TestConcurrentCollidingFirstLogins(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "google:domain:*", Org: "{org}", Role: "member"}}}})
		const logins, people = 100, 20
		domains := []string{"foo.co.uk", "foo-co.uk"}
		login := func(p int) error {
			_, err := f.svc.Provision(f.ctx, provisioning.Login{Identity: identity("google", fmt.Sprint(p),
				fmt.Sprintf("p%d@%s", p, domains[p%2]), true, "google:domain:"+domains[p%2])})
			return err
		}
		together(logins, func(i int) {
			if err := login(i % people); err != nil {
				t.Errorf("login %d: %v", i, err)
			}
		})
		for p := range people {
			if err := login(p); err != nil {
				t.Fatal(err)
			}
		}
		var rows []struct {
			Slug, ExternalID string
			Members          int64
			Domains          string
		}
		err := f.db.Raw(`SELECT o.slug, x.external_id, COUNT(m.id) AS members, MIN(i.email) || ' ' || MAX(i.email) AS domains
			FROM organizations o JOIN organization_external_ids x ON x.organization_id = o.id
			JOIN memberships m ON m.organization_id = o.id JOIN identities i ON i.user_id = m.user_id
			GROUP BY o.slug, x.external_id ORDER BY x.external_id`).Scan(&rows).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || f.count("organizations", "slug <> ?", models.AdminOrgSlug) != 2 {
			t.Fatalf("organizations = %+v", rows)
		}
		for _, r := range rows {
			lo, hi, _ := strings.Cut(r.Domains, " ")
			if r.Members != people/2 || !strings.HasSuffix(lo, "@"+r.ExternalID) || !strings.HasSuffix(hi, "@"+r.ExternalID) {
				t.Fatalf("organization %s for %s has %d members (%s)", r.Slug, r.ExternalID, r.Members, r.Domains)
			}
		}
	})
}

func TestInvitations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{})
		acme, beta := f.org("acme"), f.org("beta")
		admin := provisioning.Meta{ActorUserID: "", IP: "192.0.2.9"}
		inv, err := f.svc.Invite(f.ctx, provisioning.NewInvitation{OrganizationID: acme.ID, Email: "Ada@Example.com", Role: "admin"}, admin)
		if err != nil || inv.Email != "ada@example.com" || inv.RoleID != models.RoleAdminID || !inv.ExpiresAt.Equal(f.clock.Add(provisioning.DefaultInvitationTTL)) {
			t.Fatalf("Invite = %+v, %v", inv, err)
		}

		// Refusals say what is wrong.
		for _, tc := range []struct {
			in   provisioning.NewInvitation
			want error
		}{
			{provisioning.NewInvitation{OrganizationID: acme.ID, Email: "ada@example.com", Role: "member"}, provisioning.ErrAlreadyInvited},
			{provisioning.NewInvitation{OrganizationID: acme.ID, Email: "not an email", Role: "member"}, provisioning.ErrInvalid},
			{provisioning.NewInvitation{OrganizationID: acme.ID, Email: "bob@example.com", Role: "wizard"}, provisioning.ErrInvalid},
			{provisioning.NewInvitation{OrganizationID: "nope", Email: "bob@example.com", Role: "member"}, provisioning.ErrNotFound},
		} {
			if _, err := f.svc.Invite(f.ctx, tc.in, admin); !errors.Is(err, tc.want) {
				t.Errorf("Invite(%+v) = %v, want %v", tc.in, err, tc.want)
			}
		}

		// An expired and a revoked invitation do nothing.
		if _, err := f.svc.Invite(f.ctx, provisioning.NewInvitation{OrganizationID: beta.ID, Email: "ada@example.com", Role: "member", TTL: time.Minute}, admin); err != nil {
			t.Fatal(err)
		}
		f.clock = f.clock.Add(2 * time.Minute)
		bob, _ := f.svc.Invite(f.ctx, provisioning.NewInvitation{OrganizationID: acme.ID, Email: "bob@example.com", Role: "member"}, admin)
		if err := f.svc.RevokeInvitation(f.ctx, acme.ID, bob.ID, admin); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.RevokeInvitation(f.ctx, acme.ID, bob.ID, admin); !errors.Is(err, provisioning.ErrNotPending) {
			t.Fatalf("second revoke = %v", err)
		}
		if err := f.svc.RevokeInvitation(f.ctx, beta.ID, inv.ID, admin); !errors.Is(err, provisioning.ErrNotFound) {
			t.Fatalf("revoke through another organization = %v", err)
		}
		list, _ := f.svc.ListInvitations(f.ctx, beta.ID)
		if len(list) != 1 || list[0].Status != provisioning.InvitationExpired {
			t.Fatalf("beta invitations = %+v", list)
		}
		if u := f.login(identity("dev", "bob", "bob@example.com", true)).User; len(f.memberships(u.ID)) != 0 {
			t.Fatal("a revoked invitation granted a membership")
		}

		// An unverified email does not accept; the first verified sign-in does.
		u := f.login(identity("dev", "ada", "ada@example.com", false)).User
		if len(f.memberships(u.ID)) != 0 {
			t.Fatal("an unverified email accepted an invitation")
		}
		res := f.login(identity("dev", "ada", "ada@example.com", true))
		if got := f.memberships(u.ID); !slices.Equal(got, []string{"acme:admin:active:manual"}) || len(res.Memberships) != 1 {
			t.Fatalf("memberships after accepting = %v", got)
		}
		list, _ = f.svc.ListInvitations(f.ctx, acme.ID)
		statuses := []string{}
		for _, i := range list {
			statuses = append(statuses, i.Email+":"+i.Status)
		}
		slices.Sort(statuses)
		if !slices.Equal(statuses, []string{"ada@example.com:accepted", "bob@example.com:revoked"}) {
			t.Fatalf("acme invitations = %v", statuses)
		}
		if err := f.svc.RevokeInvitation(f.ctx, acme.ID, inv.ID, admin); !errors.Is(err, provisioning.ErrNotPending) {
			t.Fatalf("revoke accepted = %v", err)
		}
		got := []int64{f.audits(provisioning.AuditInvitationCreated), f.audits(provisioning.AuditInvitationRevoked), f.audits(provisioning.AuditInvitationAccepted)}
		if !slices.Equal(got, []int64{3, 1, 1}) {
			t.Fatalf("invitation audit events (created, revoked, accepted) = %v", got)
		}
		// Accepted means done: signing in again adds nothing.
		f.login(identity("dev", "ada", "ada@example.com", true))
		if f.audits(provisioning.AuditInvitationAccepted) != 1 {
			t.Fatal("an invitation was accepted twice")
		}
	})
}

// TestInvitationTrust: only a sign-in through a provider trusted for
// email accepts an invitation, the owner invitation to the
// administrators' organization included. Through any other the
// invitation stays pending, the refusal is audited with the reason, and
// a later trusted sign-in with the address still accepts it.
func TestInvitationTrust(t *testing.T) {
	cases := []struct {
		name       string
		provider   string
		trustOkta  bool
		adminOrg   bool
		wantAccept bool
	}{
		{name: "untrusted oidc", provider: "okta"},
		{name: "untrusted oidc, administrators' owner invitation", provider: "okta", adminOrg: true},
		{name: "untrusted saml", provider: "corp-saml"},
		{name: "oidc trusted by opt-in", provider: "okta", trustOkta: true, wantAccept: true},
		{name: "oidc trusted by opt-in, administrators' owner invitation", provider: "okta", trustOkta: true, adminOrg: true, wantAccept: true},
		{name: "google", provider: "google", wantAccept: true},
		{name: "github, administrators' owner invitation", provider: "github", adminOrg: true, wantAccept: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *models.DB) {
				trusted := maps.Clone(defaultTrusted)
				trusted["okta"] = tc.trustOkta
				f := newFixture(t, db, provisioning.Options{TrustedEmail: trusted})
				org, role := f.org("acme"), "member"
				if tc.adminOrg {
					org, role = &models.Organization{ID: models.AdminOrgID, Slug: models.AdminOrgSlug, Name: "admins"}, "owner"
					if err := f.store.CreateOrganization(f.ctx, org); err != nil {
						t.Fatal(err)
					}
				}
				inv, err := f.svc.Invite(f.ctx, provisioning.NewInvitation{OrganizationID: org.ID, Email: "ada@example.com", Role: role}, provisioning.Meta{})
				if err != nil {
					t.Fatal(err)
				}
				// Twice: a returning sign-in is held to the same rule.
				f.login(identity(tc.provider, "p1", "ada@example.com", true))
				res := f.login(identity(tc.provider, "p1", "ada@example.com", true))
				want := []string{}
				if tc.wantAccept {
					want = []string{org.Slug + ":" + role + ":active:manual"}
				}
				if got := f.memberships(res.User.ID); !slices.Equal(got, want) {
					t.Fatalf("memberships = %v, want %v", got, want)
				}
				var evs []models.AuditEvent
				f.db.Where("type = ?", provisioning.AuditInvitationRefused).Order("id").Find(&evs)
				if tc.wantAccept {
					if len(evs) != 0 || f.audits(provisioning.AuditInvitationAccepted) != 1 {
						t.Fatalf("refusals = %+v, acceptances = %d", evs, f.audits(provisioning.AuditInvitationAccepted))
					}
					return
				}
				if len(evs) != 2 || evs[0].Outcome != models.OutcomeFailure || evs[0].Provider != tc.provider ||
					*evs[0].OrganizationID != org.ID || *evs[0].SubjectUserID != res.User.ID ||
					!strings.Contains(evs[0].Details, provisioning.NotTrustedReason) || !strings.Contains(evs[0].Details, inv.ID) {
					t.Fatalf("refusals audited = %+v", evs)
				}
				list, _ := f.svc.ListInvitations(f.ctx, org.ID)
				if len(list) != 1 || list[0].Status != provisioning.InvitationPending {
					t.Fatalf("invitations after the refusal = %+v", list)
				}
				// The address's owner, signing in through a trusted provider, still gets it.
				owner := f.login(identity("google", "g1", "ada@example.com", true))
				if got := f.memberships(owner.User.ID); !slices.Equal(got, []string{org.Slug + ":" + role + ":active:manual"}) {
					t.Fatalf("trusted sign-in after the refusal: memberships = %v", got)
				}
			})
		})
	}
}

func TestUnlink(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{LinkByEmail: map[string]bool{"github": true, "google": true}})
		u := f.login(identity("google", "g1", "ada@example.com", true)).User
		f.login(identity("github", "gh1", "ada@example.com", true))
		ids, _ := f.store.ListIdentities(f.ctx, u.ID)
		if len(ids) != 2 {
			t.Fatalf("identities = %d", len(ids))
		}
		// A session opened through each provider.
		sessions := map[string]string{}
		for _, p := range []string{"google", "github"} {
			sess := &models.Session{UserID: u.ID, ClientID: "spa", Provider: p, AuthTime: f.clock, LastUsedAt: f.clock, ExpiresAt: f.clock.Add(time.Hour)}
			if err := f.store.CreateSession(f.ctx, sess); err != nil {
				t.Fatal(err)
			}
			sessions[p] = sess.ID
		}
		sessionState := func() string {
			var out []string
			for _, p := range []string{"google", "github"} {
				sess, _ := f.store.FindSession(f.ctx, sessions[p])
				out = append(out, p+":"+cmp.Or(sess.RevokeReason, "live"))
			}
			return strings.Join(out, " ")
		}
		if err := f.svc.Unlink(f.ctx, u.ID, "nope", provisioning.Meta{}); !errors.Is(err, provisioning.ErrNotFound) {
			t.Fatalf("unknown identity: %v", err)
		}
		if err := f.svc.Unlink(f.ctx, u.ID, ids[0].ID, provisioning.Meta{}); err != nil {
			t.Fatal(err)
		}
		// Unlinking google ended the session opened through it, only.
		if got := sessionState(); got != "google:identity_unlinked github:live" {
			t.Fatalf("sessions after unlinking google: %s", got)
		}
		if err := f.svc.Unlink(f.ctx, u.ID, ids[1].ID, provisioning.Meta{}); !errors.Is(err, provisioning.ErrLastIdentity) {
			t.Fatalf("unlinking the last identity: %v", err)
		}
		if got := sessionState(); got != "google:identity_unlinked github:live" {
			t.Fatalf("sessions after a refused unlink: %s", got)
		}
		if f.count("identities", "user_id = ?", u.ID) != 1 || f.audits(provisioning.AuditIdentityUnlinked) != 1 {
			t.Fatal("unlink did not remove exactly one identity, audited")
		}
		var ev models.AuditEvent
		f.db.Where("type = ?", provisioning.AuditIdentityUnlinked).Take(&ev)
		if ev.Provider != "google" || !strings.Contains(ev.Details, `"sessions_revoked":1`) || !strings.Contains(ev.Details, ids[0].ID) {
			t.Fatalf("unlink audit = %+v", ev)
		}
		// The unlinked account signing in again is linked back (verified email, linking on).
		if res := f.login(identity("google", "g1", "ada@example.com", true)); res.User.ID != u.ID || !res.Linked {
			t.Fatalf("sign-in after unlink = %+v", res)
		}
	})
}

func TestCreateRole(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{Sync: provisioning.SyncPolicy{Rules: []provisioning.Rule{
			{Match: "dev:group:writers", Org: "acme", Role: "kb-editor"}}}})
		acme := f.org("acme")
		_, err := f.svc.CreateRole(f.ctx, provisioning.NewRole{OrganizationID: acme.ID, Name: "KB Editor", Level: 100,
			Permissions: []string{"kb:write", "KB:read", "kb:w*x"}}, provisioning.Meta{})
		var ie *provisioning.InputError
		if !errors.As(err, &ie) {
			t.Fatalf("err = %v, want *InputError", err)
		}
		for _, want := range []string{`role name "KB Editor"`, "level 100 must be between 0 and 99", `grant "KB:read": resource "KB" has the uppercase letter "K"`, "wildcard in the middle"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		// The system roles' names are reserved: tokens carry role names, and
		// an organization's "owner" would pass for the owner at backends.
		for _, name := range []string{"owner", "admin", "member", "viewer"} {
			_, err := f.svc.CreateRole(f.ctx, provisioning.NewRole{OrganizationID: acme.ID, Name: name, Level: 80}, provisioning.Meta{})
			if !errors.Is(err, provisioning.ErrInvalid) || !strings.Contains(err.Error(), "reserved for the system role") {
				t.Errorf("role named %q: err = %v, want reserved", name, err)
			}
		}
		role, err := f.svc.CreateRole(f.ctx, provisioning.NewRole{OrganizationID: acme.ID, Name: "kb-editor", Level: 30,
			Permissions: []string{"kb:*", "*:read", "kb:*"}}, provisioning.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CreateRole(f.ctx, provisioning.NewRole{OrganizationID: acme.ID, Name: "kb-editor"}, provisioning.Meta{}); !errors.Is(err, provisioning.ErrInvalid) {
			t.Fatalf("duplicate role = %v", err)
		}
		// A sync rule naming the organization's role uses it.
		u := f.login(identity("dev", "ada", "ada@example.com", true, "dev:group:writers")).User
		g, err := f.store.ActiveGrants(f.ctx, u.ID, acme.ID)
		if err != nil || !slices.Equal(g.Roles, []string{"kb-editor"}) || !slices.Equal(g.Permissions, []string{"*:read", "kb:*"}) {
			t.Fatalf("grants = %+v, %v (role %s)", g, err, role.ID)
		}
	})
}
