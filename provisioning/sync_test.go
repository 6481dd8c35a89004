package provisioning_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

func strp(s string) *string { return &s }

// The directory of the sync scenarios: organizations acme (with its own
// "editor" role) and beta, which literal targets of their slugs are bound
// to already; the four system roles.
var syncDir = provisioning.Directory{
	OrgsBySlug: map[string]string{"acme": "org-acme", "beta": "org-beta"},
	Bindings:   map[string]string{"acme": "org-acme", "beta": "org-beta"},
	Roles: []models.Role{
		{ID: models.RoleOwnerID, Name: "owner", Level: 100},
		{ID: models.RoleAdminID, Name: "admin", Level: 80},
		{ID: models.RoleMemberID, Name: "member", Level: 50},
		{ID: models.RoleViewerID, Name: "viewer", Level: 10},
		{ID: "role-acme-editor", Name: "editor", Level: 40, OrganizationID: strp("org-acme")},
		{ID: "role-acme-member", Name: "member", Level: 45, OrganizationID: strp("org-acme")},
	},
}

func synced(id, org, role, status string) models.Membership {
	return models.Membership{ID: id, OrganizationID: org, RoleID: role, Status: status, Source: "sync:github"}
}

// mappedDir adds organizations that stand for upstream organizations:
// foo-co-uk for Google's foo.co.uk, acme-corp (renamed from acme-com) for
// Google's acme.com, acme for GitHub's acme, and eng-team made by hand.
var mappedDir = provisioning.Directory{
	OrgsBySlug: map[string]string{"acme": "org-acme", "beta": "org-beta", "foo-co-uk": "org-foo", "acme-corp": "org-renamed",
		"eng-team": "org-eng", models.AdminOrgSlug: models.AdminOrgID},
	ExternalIDs: []models.OrganizationExternalID{
		{OrganizationID: "org-foo", Provider: "google", ExternalID: "foo.co.uk"},
		{OrganizationID: "org-renamed", Provider: "google", ExternalID: "acme.com"},
		{OrganizationID: "org-acme", Provider: "github", ExternalID: "acme"},
		{OrganizationID: models.AdminOrgID, Provider: "github", ExternalID: "root"},
	},
	Bindings: syncDir.Bindings,
	Roles:    syncDir.Roles,
}

// boundDir: the literal target finance is bound to org-fin, since renamed
// finance-old; another organization has taken the slug finance since.
// The literal target payroll is bound to nothing yet.
var boundDir = provisioning.Directory{
	OrgsBySlug: map[string]string{"finance-old": "org-fin", "finance": "org-squat", "payroll": "org-pay"},
	Bindings:   map[string]string{"finance": "org-fin"},
	Roles:      syncDir.Roles,
}

// withOrg is mappedDir plus one organization and its mappings.
func withOrg(slug, id string, ext ...models.OrganizationExternalID) *provisioning.Directory {
	d := mappedDir
	d.OrgsBySlug = maps.Clone(d.OrgsBySlug)
	d.OrgsBySlug[slug] = id
	d.ExternalIDs = slices.Concat(d.ExternalIDs, ext)
	return &d
}

func TestDiff(t *testing.T) {
	gh := func(rules ...provisioning.Rule) provisioning.SyncPolicy {
		for i := range rules {
			rules[i].Index = i
		}
		return provisioning.SyncPolicy{Rules: rules, OnLeave: provisioning.LeaveRemove}
	}
	acmeMember := provisioning.Rule{Match: "github:org:acme", Org: "acme", Role: "viewer"}
	platformAdmin := provisioning.Rule{Match: "github:team:acme/platform-*", Org: "acme", Role: "admin"}
	perOrg := provisioning.Rule{Match: "github:org:*", Org: "{org}", Role: "viewer"}
	active, suspended := models.MembershipActive, models.MembershipSuspended
	suspendOnLeave := func(rules ...provisioning.Rule) provisioning.SyncPolicy {
		p := gh(rules...)
		p.OnLeave = provisioning.LeaveSuspend
		return p
	}
	autoCreate := func(rules ...provisioning.Rule) provisioning.SyncPolicy {
		p := gh(rules...)
		p.AutoCreateOrgs = true
		return p
	}
	perDomain := provisioning.Rule{Match: "google:domain:*", Org: "{org}", Role: "member"}
	perGroup := provisioning.Rule{Match: "oidc:group:*", Org: "{org}", Role: "member"}
	alt := provisioning.DistinctSlug
	taken := func(slug, provider, ext string) string {
		return fmt.Sprintf("%q is taken by an organization that does not stand for %s organization %q", slug, provider, ext)
	}
	const (
		keptNotRemoved  = "the upstream's answer left groups out, so a missing group may still be the person's"
		keepAcmeRemove  = "keep org-acme: not removed: " + keptNotRemoved
		keepAcmeSuspend = "keep org-acme: not suspended: " + keptNotRemoved
		keepGoneRemove  = "keep org-gone: not removed: " + keptNotRemoved
	)

	cases := []struct {
		name     string
		policy   provisioning.SyncPolicy
		provider string                  // default github
		dir      *provisioning.Directory // default syncDir
		current  []models.Membership
		groups   []string
		partial  bool // the upstream said it left groups out
		want     []string
	}{
		{name: "no rules, nothing held", policy: gh(), groups: []string{"github:org:acme"}},
		{name: "join", policy: gh(acmeMember), groups: []string{"github:org:acme"},
			want: []string{"add acme viewer"}},
		{name: "already a member with that role", policy: gh(acmeMember), groups: []string{"github:org:acme"},
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)}},
		{name: "glob rule, highest level wins", policy: gh(acmeMember, platformAdmin),
			groups: []string{"github:org:acme", "github:team:acme/platform-eng"},
			want:   []string{"add acme admin"}},
		{name: "glob does not match another team", policy: gh(platformAdmin),
			groups: []string{"github:team:acme/web", "github:team:beta/platform-eng"}},
		{name: "* does not cross /", policy: gh(provisioning.Rule{Match: "github:team:*", Org: "acme", Role: "viewer"}),
			groups: []string{"github:team:acme/platform"}},
		{name: "role change", policy: gh(acmeMember, platformAdmin),
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			groups:  []string{"github:team:acme/platform-eng"},
			want:    []string{"change_role acme admin"}},
		{name: "leave removes", policy: gh(acmeMember),
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			want:    []string{"remove org-acme"}},
		{name: "leave suspends", policy: provisioning.SyncPolicy{Rules: []provisioning.Rule{acmeMember}, OnLeave: provisioning.LeaveSuspend},
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			want:    []string{"suspend org-acme"}},
		{name: "already suspended stays", policy: provisioning.SyncPolicy{Rules: []provisioning.Rule{acmeMember}, OnLeave: provisioning.LeaveSuspend},
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, suspended)}},
		{name: "back upstream reactivates", policy: gh(acmeMember), groups: []string{"github:org:acme"},
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, suspended)},
			want:    []string{"reactivate acme viewer"}},
		{name: "manual membership untouched", policy: gh(platformAdmin), groups: []string{"github:team:acme/platform-eng"},
			current: []models.Membership{{ID: "m1", OrganizationID: "org-acme", RoleID: models.RoleViewerID, Status: active, Source: models.SourceManual}}},
		{name: "manual membership never removed", policy: gh(),
			current: []models.Membership{{ID: "m1", OrganizationID: "org-acme", RoleID: models.RoleViewerID, Status: active, Source: models.SourceManual}}},
		{name: "another provider's membership untouched", policy: gh(acmeMember),
			current: []models.Membership{{ID: "m1", OrganizationID: "org-beta", RoleID: models.RoleViewerID, Status: active, Source: "sync:google"}}},
		{name: "organization's own role before the system role", policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "acme", Role: "member"},
			provisioning.Rule{Match: "github:org:beta", Org: "beta", Role: "member"}),
			groups: []string{"github:org:acme", "github:org:beta"},
			want:   []string{"add acme member", "add beta member"}},
		{name: "rule limited to another provider", policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "acme", Role: "viewer", Provider: "github-enterprise"}),
			groups: []string{"github:org:acme"}},
		{name: "missing organization without auto-create", policy: gh(provisioning.Rule{Match: "github:org:gamma", Org: "gamma", Role: "viewer"}),
			groups: []string{"github:org:gamma"},
			want:   []string{`skip rule 0: organization "gamma" does not exist and auto_create_orgs is off`}},
		{name: "unknown role skipped, membership kept", policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "acme", Role: "superuser"}),
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			groups:  []string{"github:org:acme"},
			want:    []string{`skip rule 0: role "superuser" does not exist in organization "acme"`}},
		{name: "auto-create a named organization", policy: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "github:org:acme", Org: "gamma", Role: "admin"}}},
			groups: []string{"github:org:acme"},
			want:   []string{"create_org gamma", "add gamma admin"}},
		{name: "auto-create one organization per upstream org", policy: autoCreate(perOrg), dir: &mappedDir,
			groups: []string{"github:org:acme", "github:org:Zeta.IO", "github:team:acme/web"},
			want:   []string{"create_org zeta-io", "add acme viewer", "add zeta-io viewer"}},
		// acme exists but stands for nothing: made by hand, or by a literal
		// rule. Anyone may name an upstream organization "acme", so with
		// auto-create it is not adopted: the upstream gets its own.
		{name: "auto-create passes over an unmapped organization with the slug", policy: autoCreate(perOrg),
			groups: []string{"github:org:acme"},
			want: []string{"create_org " + alt("acme", "github", "acme") + ": " + taken("acme", "github", "acme"),
				"add " + alt("acme", "github", "acme") + " viewer"}},
		// Without auto-create the administrators made the organizations for
		// the rule: the first upstream organization to use one claims it.
		{name: "{org} pattern claims existing unmapped organizations", policy: gh(perOrg),
			groups: []string{"github:org:beta", "github:org:delta"},
			want:   []string{"map_org beta", `skip rule 0: organization "delta" does not exist and auto_create_orgs is off`, "add beta viewer"}},
		// The reported merge: foo.co.uk and foo-co.uk both slugify to
		// foo-co-uk, which stands for foo.co.uk.
		{name: "a colliding upstream organization gets a distinct slug", policy: autoCreate(perDomain), provider: "google", dir: &mappedDir,
			groups: []string{"google:domain:foo-co.uk"},
			want: []string{"create_org " + alt("foo-co-uk", "google", "foo-co.uk") + ": " + taken("foo-co-uk", "google", "foo-co.uk"),
				"add " + alt("foo-co-uk", "google", "foo-co.uk") + " member"}},
		{name: "the mapped upstream organization joins its own", policy: autoCreate(perDomain), provider: "google", dir: &mappedDir,
			groups: []string{"google:domain:foo.co.uk"},
			want:   []string{"add foo-co-uk member"}},
		{name: "a membership merged before moves out", policy: autoCreate(perDomain), provider: "google", dir: &mappedDir,
			current: []models.Membership{{ID: "m1", OrganizationID: "org-foo", RoleID: models.RoleMemberID, Status: active, Source: "sync:google"}},
			groups:  []string{"google:domain:foo-co.uk"},
			want: []string{"create_org " + alt("foo-co-uk", "google", "foo-co.uk") + ": " + taken("foo-co-uk", "google", "foo-co.uk"),
				"add " + alt("foo-co-uk", "google", "foo-co.uk") + " member", "remove org-foo"}},
		{name: "a colliding upstream organization without auto-create is skipped", policy: gh(perDomain), provider: "google", dir: &mappedDir,
			groups: []string{"google:domain:foo-co.uk"},
			want: []string{fmt.Sprintf("skip rule 0: organization %q does not exist and auto_create_orgs is off (%s)",
				alt("foo-co-uk", "google", "foo-co.uk"), taken("foo-co-uk", "google", "foo-co.uk"))}},
		{name: "both slugs taken", policy: autoCreate(perDomain), provider: "google",
			dir: withOrg(alt("foo-co-uk", "google", "foo-co.uk"), "org-squatter",
				models.OrganizationExternalID{OrganizationID: "org-squatter", Provider: "google", ExternalID: "squat.example"}),
			groups: []string{"google:domain:foo-co.uk"},
			want: []string{fmt.Sprintf("skip rule 0: %q and %q are taken by organizations that do not stand for google organization %q",
				"foo-co-uk", alt("foo-co-uk", "google", "foo-co.uk"), "foo-co.uk")}},
		{name: "a renamed organization is still found by its mapping", policy: gh(perDomain), provider: "google", dir: &mappedDir,
			groups: []string{"google:domain:acme.com"},
			want:   []string{"add acme-corp member"}},
		{name: "another provider's mapping is not this provider's", policy: autoCreate(perDomain), provider: "google-2", dir: &mappedDir,
			groups: []string{"google:domain:foo.co.uk"},
			want: []string{"create_org " + alt("foo-co-uk", "google-2", "foo.co.uk") + ": " + taken("foo-co-uk", "google-2", "foo.co.uk"),
				"add " + alt("foo-co-uk", "google-2", "foo.co.uk") + " member"}},
		{name: "two upstream organizations colliding in one sign-in", policy: autoCreate(perGroup), provider: "okta",
			groups: []string{"oidc:group:Site Ops", "oidc:group:site-ops"},
			want: []string{"create_org site-ops", "create_org " + alt("site-ops", "okta", "site-ops") + ": " + taken("site-ops", "okta", "site-ops"),
				"add site-ops member", "add " + alt("site-ops", "okta", "site-ops") + " member"}},
		{name: "first come claims, the next is told", policy: gh(perGroup), provider: "okta", dir: &mappedDir,
			groups: []string{"oidc:group:Eng Team", "oidc:group:eng-team"},
			want: []string{"map_org eng-team", fmt.Sprintf("skip rule 0: organization %q does not exist and auto_create_orgs is off (%s)",
				alt("eng-team", "okta", "eng-team"), taken("eng-team", "okta", "eng-team")), "add eng-team member"}},
		{name: "a literal rule and an {org} rule naming one new slug", provider: "okta",
			policy: autoCreate(perGroup, provisioning.Rule{Match: "oidc:group:*", Org: "ops", Role: "viewer"}),
			groups: []string{"oidc:group:ops"},
			want:   []string{"create_org ops", "add ops member"}},
		{name: "a literal rule's new slug is not an {org} target's", provider: "okta",
			policy: autoCreate(provisioning.Rule{Match: "oidc:group:*", Org: "ops", Role: "viewer"}, perGroup),
			groups: []string{"oidc:group:ops"},
			want: []string{"create_org ops", "create_org " + alt("ops", "okta", "ops") + ": " + taken("ops", "okta", "ops"),
				"add ops viewer", "add " + alt("ops", "okta", "ops") + " member"}},
		{name: "a mapping to the administrators' organization is never used", policy: autoCreate(perOrg), dir: &mappedDir,
			groups: []string{"github:org:root"},
			want:   []string{`skip rule 0: organization "gatehouse-admin" is the Gatehouse administrators'; sync never manages it`}},
		{name: "{org} from a group naming none", policy: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "*", Org: "{org}", Role: "viewer"}}},
			groups: []string{"plain", "github:org:..."},
			want:   []string{`skip rule 0: group "plain" names no organization usable in "{org}"`, `skip rule 0: group "github:org:..." names no organization usable in "{org}"`}},
		{name: "the administrators' organization is never synced", policy: provisioning.SyncPolicy{AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Match: "github:team:*/*", Org: "{org}", Role: "owner"}}},
			groups: []string{"github:team:gatehouse-admin/owners"},
			want:   []string{`skip rule 0: organization "gatehouse-admin" is the Gatehouse administrators'; sync never manages it`}},
		// Literal targets follow their binding, not the slug.
		{name: "a bound literal target follows its organization, not the slug", dir: &boundDir,
			policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "finance", Role: "viewer"}),
			groups: []string{"github:org:acme"},
			want:   []string{"add finance-old viewer"}},
		{name: "a bound literal target's members stay put when another organization takes the slug", dir: &boundDir,
			policy:  gh(provisioning.Rule{Match: "github:org:acme", Org: "finance", Role: "viewer"}),
			current: []models.Membership{synced("m1", "org-fin", models.RoleViewerID, active)},
			groups:  []string{"github:org:acme"}},
		{name: "an unbound literal target is bound to the organization with its slug", dir: &boundDir,
			policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "payroll", Role: "viewer"}),
			groups: []string{"github:org:acme"},
			want:   []string{"bind_org payroll", "add payroll viewer"}},
		{name: "two rules naming one unbound target bind it once", dir: &boundDir,
			policy: gh(provisioning.Rule{Match: "github:org:acme", Org: "payroll", Role: "viewer"},
				provisioning.Rule{Match: "github:team:acme/*", Org: "payroll", Role: "admin"}),
			groups: []string{"github:org:acme", "github:team:acme/web"},
			want:   []string{"bind_org payroll", "add payroll admin"}},
		{name: "join, change, leave and untouched at once", policy: gh(acmeMember, platformAdmin,
			provisioning.Rule{Match: "github:org:beta", Org: "beta", Role: "viewer"}),
			current: []models.Membership{
				synced("m1", "org-acme", models.RoleViewerID, active),
				synced("m2", "org-gone", models.RoleViewerID, active),
				{ID: "m3", OrganizationID: "org-hand", RoleID: models.RoleOwnerID, Status: active, Source: models.SourceManual},
			},
			groups: []string{"github:team:acme/platform-x", "github:org:beta"},
			want:   []string{"change_role acme admin", "add beta viewer", "remove org-gone"}},
		// A partial answer (GitHub hid organizations enforcing SAML SSO)
		// never takes a membership away, and still adds and changes.
		{name: "partial: leave is kept, not removed", policy: gh(acmeMember), partial: true,
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			want:    []string{keepAcmeRemove}},
		{name: "partial: leave is kept, not suspended", policy: suspendOnLeave(acmeMember), partial: true,
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			want:    []string{keepAcmeSuspend}},
		{name: "partial: already suspended stays, nothing to keep", policy: suspendOnLeave(acmeMember), partial: true,
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, suspended)}},
		{name: "partial: a removed rule does not remove either", policy: gh(), partial: true,
			current: []models.Membership{synced("m1", "org-acme", models.RoleViewerID, active)},
			want:    []string{keepAcmeRemove}},
		{name: "partial: manual and other providers' memberships untouched, nothing kept", policy: gh(acmeMember), partial: true,
			current: []models.Membership{
				{ID: "m1", OrganizationID: "org-acme", RoleID: models.RoleViewerID, Status: active, Source: models.SourceManual},
				{ID: "m2", OrganizationID: "org-beta", RoleID: models.RoleViewerID, Status: active, Source: "sync:google"},
			}},
		{name: "partial: join, change and reactivate still apply", policy: autoCreate(acmeMember, platformAdmin,
			provisioning.Rule{Match: "github:org:beta", Org: "beta", Role: "viewer"},
			provisioning.Rule{Match: "github:org:zeta", Org: "{org}", Role: "viewer"}), partial: true,
			current: []models.Membership{
				synced("m1", "org-acme", models.RoleViewerID, active),
				synced("m2", "org-gone", models.RoleViewerID, active),
				synced("m3", "org-beta", models.RoleViewerID, suspended),
			},
			groups: []string{"github:team:acme/platform-x", "github:org:beta", "github:org:zeta"},
			want:   []string{"create_org zeta", "change_role acme admin", "reactivate beta viewer", "add zeta viewer", keepGoneRemove}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := syncDir
			if tc.dir != nil {
				dir = *tc.dir
			}
			changes := tc.policy.Diff(cmp.Or(tc.provider, "github"), tc.current, tc.groups, tc.partial, dir)
			var got []string
			for _, c := range changes {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Diff =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestDiffDetails checks what changes carry for applying and auditing.
func TestDiffDetails(t *testing.T) {
	p := provisioning.SyncPolicy{AutoCreateOrgs: true, OnLeave: provisioning.LeaveRemove, Rules: []provisioning.Rule{
		{Index: 0, Match: "github:team:acme/*", Org: "acme", Role: "viewer"},
		{Index: 1, Match: "github:org:*", Org: "gh-{org}", Role: "member"},
	}}
	current := []models.Membership{synced("m1", "org-acme", models.RoleMemberID, models.MembershipActive)}
	changes := p.Diff("github", current, []string{"github:org:Acme", "github:team:acme/web"}, false, syncDir)
	want := []provisioning.Change{
		{Kind: provisioning.ChangeCreateOrg, Slug: "gh-acme", Name: "gh-Acme", ExternalID: "Acme", Rule: 1, Group: "github:org:Acme"},
		{Kind: provisioning.ChangeRole, Slug: "acme", OrgID: "org-acme", MembershipID: "m1", RoleID: models.RoleViewerID,
			RoleName: "viewer", FromRoleID: models.RoleMemberID, Rule: 0, Group: "github:team:acme/web"},
		{Kind: provisioning.ChangeAdd, Slug: "gh-acme", RoleID: models.RoleMemberID, RoleName: "member", Rule: 1, Group: "github:org:Acme"},
	}
	if !slices.Equal(changes, want) {
		t.Fatalf("Diff =\n%+v\nwant\n%+v", changes, want)
	}

	// Upstream organizations whose slugs collide: the second gets a
	// distinct slug, its own name and external id, and the reason.
	changes = p.Diff("github", nil, []string{"github:org:Acme", "github:org:acme"}, false, syncDir)
	distinct := provisioning.DistinctSlug("gh-acme", "github", "acme")
	want = []provisioning.Change{
		{Kind: provisioning.ChangeCreateOrg, Slug: "gh-acme", Name: "gh-Acme", ExternalID: "Acme", Rule: 1, Group: "github:org:Acme"},
		{Kind: provisioning.ChangeCreateOrg, Slug: distinct, Name: "gh-acme", ExternalID: "acme", Rule: 1, Group: "github:org:acme",
			Reason: `"gh-acme" is taken by an organization that does not stand for github organization "acme"`},
		{Kind: provisioning.ChangeAdd, Slug: "gh-acme", RoleID: models.RoleMemberID, RoleName: "member", Rule: 1, Group: "github:org:Acme"},
		{Kind: provisioning.ChangeAdd, Slug: distinct, RoleID: models.RoleMemberID, RoleName: "member", Rule: 1, Group: "github:org:acme"},
	}
	if !slices.Equal(changes, want) {
		t.Fatalf("Diff (colliding) =\n%+v\nwant\n%+v", changes, want)
	}

	// Claiming an organization without auto-create names it.
	p.AutoCreateOrgs = false
	changes = p.Diff("github", nil, []string{"github:org:Acme"}, false, provisioning.Directory{
		OrgsBySlug: map[string]string{"gh-acme": "org-gh-acme"}, Roles: syncDir.Roles})
	want = []provisioning.Change{
		{Kind: provisioning.ChangeMapOrg, Slug: "gh-acme", OrgID: "org-gh-acme", ExternalID: "Acme", Rule: 1, Group: "github:org:Acme"},
		{Kind: provisioning.ChangeAdd, Slug: "gh-acme", OrgID: "org-gh-acme", RoleID: models.RoleMemberID, RoleName: "member", Rule: 1, Group: "github:org:Acme"},
	}
	if !slices.Equal(changes, want) {
		t.Fatalf("Diff (claim) =\n%+v\nwant\n%+v", changes, want)
	}

	// A literal target: the organization created for it is bound to it;
	// one that exists unbound is bound to it.
	literal := provisioning.SyncPolicy{AutoCreateOrgs: true, OnLeave: provisioning.LeaveRemove, Rules: []provisioning.Rule{
		{Index: 0, Match: "github:org:*", Org: "finance", Role: "viewer"}}}
	for _, tc := range []struct {
		name string
		orgs map[string]string
		want []provisioning.Change
	}{
		{"created", nil, []provisioning.Change{
			{Kind: provisioning.ChangeCreateOrg, Slug: "finance", Name: "finance", Target: "finance", Rule: 0, Group: "github:org:acme"},
			{Kind: provisioning.ChangeAdd, Slug: "finance", RoleID: models.RoleViewerID, RoleName: "viewer", Rule: 0, Group: "github:org:acme"}}},
		{"bound", map[string]string{"finance": "org-fin"}, []provisioning.Change{
			{Kind: provisioning.ChangeBindOrg, Slug: "finance", OrgID: "org-fin", Target: "finance", Rule: 0, Group: "github:org:acme"},
			{Kind: provisioning.ChangeAdd, Slug: "finance", OrgID: "org-fin", RoleID: models.RoleViewerID, RoleName: "viewer", Rule: 0, Group: "github:org:acme"}}},
	} {
		changes = literal.Diff("github", nil, []string{"github:org:acme"}, false, provisioning.Directory{OrgsBySlug: tc.orgs, Roles: syncDir.Roles})
		if !slices.Equal(changes, tc.want) {
			t.Fatalf("Diff (literal, %s) =\n%+v\nwant\n%+v", tc.name, changes, tc.want)
		}
	}

	// A kept membership carries what applying needs to audit it.
	p.OnLeave = provisioning.LeaveSuspend
	kept := p.Diff("github", current, nil, true, syncDir)
	wantKept := []provisioning.Change{{Kind: provisioning.ChangeKeep, OrgID: "org-acme", MembershipID: "m1", FromRoleID: models.RoleMemberID, Rule: -1,
		Reason: "not suspended: the upstream's answer left groups out, so a missing group may still be the person's"}}
	if !slices.Equal(kept, wantKept) {
		t.Fatalf("Diff (partial) =\n%+v\nwant\n%+v", kept, wantKept)
	}
}

func TestUpstreamOrgAndSlugify(t *testing.T) {
	cases := []struct{ group, org, slug string }{
		{"github:org:acme", "acme", "acme"},
		{"github:team:acme/platform", "acme", "acme"},
		{"google:domain:acme.com", "acme.com", "acme-com"},
		{"auth0:org:org_123", "org_123", "org-123"},
		{"saml:group:Engineering", "Engineering", "engineering"},
		{"oidc:group:  Site Reliability  ", "  Site Reliability  ", "site-reliability"},
		{"dev:group:eng", "eng", "eng"},
		{"dev:group:", "", ""},
		{"plain", "", ""},
		{"x:y:Ünïcode", "Ünïcode", "n-code"},
	}
	for _, tc := range cases {
		org := provisioning.UpstreamOrg(tc.group)
		if org != tc.org || provisioning.Slugify(org) != tc.slug {
			t.Errorf("%q: org %q slug %q, want %q %q", tc.group, org, provisioning.Slugify(org), tc.org, tc.slug)
		}
	}
}

// TestDistinctSlug: Slugify is lossy, DistinctSlug separates what it merges.
func TestDistinctSlug(t *testing.T) {
	if provisioning.Slugify("foo.co.uk") != provisioning.Slugify("foo-co.uk") {
		t.Fatal("the collision this guards against is gone; keep the test honest")
	}
	a, b := provisioning.DistinctSlug("foo-co-uk", "google", "foo.co.uk"), provisioning.DistinctSlug("foo-co-uk", "google", "foo-co.uk")
	other := provisioning.DistinctSlug("foo-co-uk", "google-2", "foo-co.uk")
	if a == b || b == other || !strings.HasPrefix(a, "foo-co-uk-") || len(a) != len("foo-co-uk-")+8 {
		t.Fatalf("distinct slugs %q %q %q", a, b, other)
	}
	if again := provisioning.DistinctSlug("foo-co-uk", "google", "foo.co.uk"); again != a {
		t.Fatalf("not deterministic: %q then %q", a, again)
	}
	long := strings.Repeat("a", 53) + "-" + strings.Repeat("b", 9) // 63 characters, cut at the hyphen
	if d := provisioning.DistinctSlug(long, "github", "x"); len(d) > 63 || !config.ValidSlug(d) || strings.Contains(d, "--") {
		t.Fatalf("long slug %q (%d characters)", d, len(d))
	}
}

// TestRuleTargeting: the slugs an organization's admin may not take are
// those a rule may place people in: a literal target, and with
// auto_create_orgs off every slug an {org} pattern produces, its
// distinct slugs included (checked against what Targets produces).
func TestRuleTargeting(t *testing.T) {
	rules := []provisioning.Rule{
		{Index: 0, Match: "github:org:acme", Org: "finance", Role: "member"},
		{Index: 1, Match: "github:org:*", Org: "gh-{org}", Role: "viewer"},
		{Index: 2, Match: "oidc:group:*", Org: "{org}-team", Role: "viewer"},
	}
	off := provisioning.SyncPolicy{Rules: rules}
	on := provisioning.SyncPolicy{Rules: rules, AutoCreateOrgs: true}
	long := "gh-" + strings.Repeat("x", 58)
	cases := []struct {
		slug    string
		off, on int // rule index, -1 for none
	}{
		{"finance", 0, 0},
		{"gh-acme", 1, -1},
		{"gh-acme-com", 1, -1},
		{provisioning.DistinctSlug("gh-acme", "github", "acme"), 1, -1},
		{provisioning.DistinctSlug(long, "github", "x"), 1, -1},
		{"site-ops-team", 2, -1},
		{provisioning.DistinctSlug("site-ops-team", "okta", "site-ops"), 2, -1},
		{"gh-", -1, -1},
		{"gh--acme", -1, -1},
		{"team", -1, -1},
		{"acme", -1, -1},
		{"finance-eu", -1, -1},
		{"acme-1234567g", -1, -1},
	}
	for _, tc := range cases {
		for _, p := range []struct {
			policy provisioning.SyncPolicy
			want   int
		}{{off, tc.off}, {on, tc.on}} {
			r, ok := p.policy.RuleTargeting(tc.slug)
			got := -1
			if ok {
				got = r.Index
			}
			if got != p.want {
				t.Errorf("RuleTargeting(%q) with auto_create_orgs=%v = %d, want %d", tc.slug, p.policy.AutoCreateOrgs, got, p.want)
			}
		}
	}
	// Whatever the groups, every slug a target may use is reserved.
	groups := []string{"github:org:acme", "github:org:Acme.COM", "github:team:a/b", "github:org:" + strings.Repeat("Long.Name", 9),
		"github:org:" + strings.Repeat("x", 57), "oidc:group:Site Ops", "oidc:group:site-ops", "oidc:group:" + strings.Repeat("y", 52),
		"oidc:group:" + strings.Repeat("z", 70)}
	for _, provider := range []string{"github", "okta"} {
		for _, tgt := range off.Targets(provider, groups) {
			for _, slug := range []string{tgt.Slug, tgt.AltSlug} {
				if slug == "" {
					continue
				}
				if _, ok := off.RuleTargeting(slug); !ok {
					t.Errorf("target slug %q of rule %d (group %q) is not reserved", slug, tgt.Rule, tgt.Group)
				}
			}
		}
	}
}

// TestRulesFor: literal targets go by their binding (a bound target
// follows its organization whatever slugs are now), else by slug; {org}
// targets by the providers whose upstream organizations map to the
// organization, else by the slug pattern without auto_create_orgs.
func TestRulesFor(t *testing.T) {
	rules := []provisioning.Rule{
		{Index: 0, Match: "github:org:acme", Org: "finance", Role: "member"},
		{Index: 1, Match: "github:org:*", Org: "gh-{org}", Role: "viewer", Provider: "github"},
		{Index: 2, Match: "oidc:group:*", Org: "{org}-team", Role: "viewer"},
		{Index: 3, Match: "okta:group:ops", Org: "ops", Role: "admin"},
	}
	off := provisioning.SyncPolicy{Rules: rules}
	on := provisioning.SyncPolicy{Rules: rules, AutoCreateOrgs: true}
	cases := []struct {
		name     string
		policy   provisioning.SyncPolicy
		org      models.Organization
		bindings map[string]string
		mapped   []string
		want     string // index:via, comma-separated
	}{
		{"bound, renamed", off, models.Organization{ID: "o1", Slug: "money"}, map[string]string{"finance": "o1"}, nil, "0:bound"},
		{"slug taken by another after binding", off, models.Organization{ID: "o2", Slug: "finance"}, map[string]string{"finance": "o1"}, nil, ""},
		{"not bound yet", off, models.Organization{ID: "o2", Slug: "finance"}, nil, nil, "0:slug"},
		{"mapped for github", on, models.Organization{ID: "o3", Slug: "whatever"}, nil, []string{"github"}, "1:upstream_org,2:upstream_org"},
		{"mapped for okta only", on, models.Organization{ID: "o3", Slug: "whatever"}, nil, []string{"okta"}, "2:upstream_org"},
		{"pattern by slug, auto-create off", off, models.Organization{ID: "o4", Slug: "gh-acme"}, nil, nil, "1:slug_pattern"},
		{"pattern by slug, auto-create on", on, models.Organization{ID: "o4", Slug: "gh-acme"}, nil, nil, ""},
		{"none", off, models.Organization{ID: "o5", Slug: "marketing"}, map[string]string{"ops": "o6"}, nil, ""},
	}
	for _, tc := range cases {
		var got []string
		for _, r := range tc.policy.RulesFor(tc.org, tc.bindings, tc.mapped) {
			got = append(got, fmt.Sprintf("%d:%s", r.Index, r.Via))
		}
		if s := strings.Join(got, ","); s != tc.want {
			t.Errorf("%s: RulesFor = %q, want %q", tc.name, s, tc.want)
		}
	}
}
