package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// syncTargetYAML is rbacYAML with a rule for an organization nobody has
// made yet (finance) and an {org} rule; auto_create_orgs stays off.
const syncTargetYAML = rbacYAML + `    - {match: "dev:group:fin", org: finance, role: member}
    - {match: "dev:group:squad-*", org: "sq-{org}", role: viewer}
`

// TestAdminSyncTargetSlugs: an organization's admin cannot give their
// organization a slug an org-sync rule may place people in (a literal
// target, or with auto_create_orgs off what an {org} pattern produces),
// so they cannot have sync place the rule's people in their
// organization; other slugs and names are theirs to change. Gatehouse
// administrators may (that is how they make a rule's organization when
// auto_create_orgs is off), and once a rule has placed people in an
// organization it keeps to it by id, whatever slugs change afterwards.
func TestAdminSyncTargetSlugs(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorldWith(t, pg, syncTargetYAML)
			acme := "/api/v1/admin/orgs/" + w.acme
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken // admin of acme
			for _, tc := range []struct{ slug, rule string }{
				{"finance", "org_sync.rules[5]"},
				{"sq-payments", "org_sync.rules[6]"},
				{provisioning.DistinctSlug("sq-payments", "dev", "squad-payments"), "org_sync.rules[6]"},
				{"beta", "org_sync.rules[4]"},
			} {
				status, body := w.call("PATCH", acme, lead, map[string]any{"slug": tc.slug}, nil)
				if status != 400 || !strings.Contains(body, `"field":"slug"`) || !strings.Contains(body, tc.rule) ||
					!strings.Contains(body, "only Gatehouse administrators") {
					t.Errorf("org admin renames acme to %s = %d %s, want 400 naming %s", tc.slug, status, body, tc.rule)
				}
			}
			var org admin.Org
			w.mustCall("GET", acme, lead, nil, 200, &org)
			if org.Slug != "acme" {
				t.Fatalf("acme's slug after refused renames = %q", org.Slug)
			}
			// Other slugs, and the name, are the organization's.
			w.mustCall("PATCH", acme, lead, map[string]any{"slug": "acme", "name": "Acme Inc"}, 200, nil)
			w.mustCall("PATCH", acme, lead, map[string]any{"slug": "acme-corp"}, 200, &org)
			if org.Slug != "acme-corp" || org.Name != "Acme Inc" {
				t.Fatalf("acme after its admin's changes = %+v", org)
			}
			// acme's rules keep to it by id (bound when lea signed in).
			w.signIn("admin-console", "mia@example.com", "eng", "")
			var members admin.List[admin.Member]
			w.mustCall("GET", acme+"/members", lead, nil, 200, &members)
			found := false
			for _, m := range members.Items {
				found = found || (m.Email == "mia@example.com" && m.Role == "member" && m.Source == "sync:dev")
			}
			if !found {
				t.Fatalf("the eng rule did not follow acme to its new slug: %+v", members.Items)
			}

			// A Gatehouse administrator makes finance for its rule.
			var fin admin.Org
			w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": "finance"}, 201, &fin)
			w.mustCall("PATCH", "/api/v1/admin/orgs/"+w.beta, w.root, map[string]any{"slug": "sq-payments"}, 200, nil)
			w.signIn("admin-console", "fay@example.com", "fin", "")
			var finMembers admin.List[admin.Member]
			w.mustCall("GET", "/api/v1/admin/orgs/"+fin.ID+"/members", w.root, nil, 200, &finMembers)
			if len(finMembers.Items) != 1 || finMembers.Items[0].Email != "fay@example.com" {
				t.Fatalf("finance's members = %+v", finMembers.Items)
			}
		})
	}
}

// TestAdminOrgSyncRules: GET /orgs/{org_id}/sync-rules names the rules
// that place people in an organization and why — bound by id (after a
// rename too), by slug before any binding, by an {org} pattern's slug —
// for the organization's admins and Gatehouse administrators, and for
// nobody else's organization.
func TestAdminOrgSyncRules(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorldWith(t, pg, syncTargetYAML)
			acme := "/api/v1/admin/orgs/" + w.acme
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken // admin of acme
			rules := func(path, token string) string {
				t.Helper()
				var out admin.List[admin.OrgSyncRule]
				w.mustCall("GET", path+"/sync-rules", token, nil, 200, &out)
				var got []string
				for _, r := range out.Items {
					got = append(got, fmt.Sprintf("%d:%s", r.Index, r.Via))
				}
				return strings.Join(got, ",")
			}
			before := rules(acme, lead)
			if !strings.Contains(before, ":bound") {
				t.Fatalf("acme's rules = %q, want a bound one (lea was placed by sync)", before)
			}
			w.mustCall("PATCH", acme, lead, map[string]any{"slug": "acme-corp"}, 200, nil)
			if after := rules(acme, w.root); after != before {
				t.Errorf("acme's rules after a rename = %q, want %q", after, before)
			}
			var fin, sq admin.Org
			w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": "finance"}, 201, &fin)
			w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": "sq-payments"}, 201, &sq)
			if got := rules("/api/v1/admin/orgs/"+fin.ID, w.root); got != "5:slug" {
				t.Errorf("finance's rules = %q, want 5:slug", got)
			}
			if got := rules("/api/v1/admin/orgs/"+sq.ID, w.root); got != "6:slug_pattern" {
				t.Errorf("sq-payments' rules = %q, want 6:slug_pattern", got)
			}
			// acme's admin cannot read another organization's rules.
			if status, body := w.call("GET", "/api/v1/admin/orgs/"+fin.ID+"/sync-rules", lead, nil, nil); status != 403 {
				t.Errorf("acme's admin reads finance's rules = %d %s, want 403", status, body)
			}
		})
	}
}
