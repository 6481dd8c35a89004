package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
)

// staleFixture is what the mutating routes act on: an organization with
// a member, a spare role, a pending invitation and an API key, and a
// user with two identities and a session.
type staleFixture struct {
	org, orgSlug, role, spareRole, invitation, key string
	member, newcomer                               string // user ids
	user, identity, session, browserSession        string
	client                                         string // a stored client's id
}

// adminRoute is one mutating admin route: the permission it requires,
// and a request that succeeds for an actor who holds it.
type adminRoute struct {
	method, pattern string
	permission      string
	path            func(f staleFixture) string
	body            func(f staleFixture) any
	ok              int
}

// mutatingAdminRoutes lists every mutating admin route, in an order in
// which all of them succeed one after the other for an administrator
// (the organization is deleted last).
func mutatingAdminRoutes() []adminRoute {
	orgs := func(f staleFixture) string { return "/api/v1/admin/orgs/" + f.org }
	users := func(f staleFixture) string { return "/api/v1/admin/users/" + f.user }
	none := func(staleFixture) any { return nil }
	return []adminRoute{
		{"POST", "/api/v1/admin/orgs", "admin:orgs-write",
			func(staleFixture) string { return "/api/v1/admin/orgs" },
			func(staleFixture) any { return map[string]any{"slug": "stale-made"} }, 201},
		{"PATCH", "/api/v1/admin/orgs/:org_id", "admin:orgs-write", orgs,
			func(staleFixture) any { return map[string]any{"slug": "stale-renamed", "name": "Renamed"} }, 200},
		{"POST", "/api/v1/admin/orgs/:org_id/members", "admin:members-write",
			func(f staleFixture) string { return orgs(f) + "/members" },
			func(f staleFixture) any { return map[string]any{"user_id": f.newcomer, "role": "viewer"} }, 201},
		{"PATCH", "/api/v1/admin/orgs/:org_id/members/:user_id", "admin:members-write",
			func(f staleFixture) string { return orgs(f) + "/members/" + f.member },
			func(staleFixture) any { return map[string]any{"role": "member"} }, 200},
		{"DELETE", "/api/v1/admin/orgs/:org_id/members/:user_id", "admin:members-write",
			func(f staleFixture) string { return orgs(f) + "/members/" + f.member }, none, 204},
		{"POST", "/api/v1/admin/orgs/:org_id/roles", "admin:roles-write",
			func(f staleFixture) string { return orgs(f) + "/roles" },
			func(staleFixture) any {
				return map[string]any{"name": "made-now", "level": 5, "permissions": []string{"kb:*"}}
			}, 201},
		{"PATCH", "/api/v1/admin/orgs/:org_id/roles/:role_id", "admin:roles-write",
			func(f staleFixture) string { return orgs(f) + "/roles/" + f.role },
			func(staleFixture) any { return map[string]any{"permissions": []string{"*"}} }, 200},
		{"DELETE", "/api/v1/admin/orgs/:org_id/roles/:role_id", "admin:roles-write",
			func(f staleFixture) string { return orgs(f) + "/roles/" + f.spareRole }, none, 204},
		{"POST", "/api/v1/admin/orgs/:org_id/invitations", "admin:invitations-write",
			func(f staleFixture) string { return orgs(f) + "/invitations" },
			func(staleFixture) any { return map[string]any{"email": "someone-new@example.com", "role": "viewer"} }, 201},
		{"DELETE", "/api/v1/admin/orgs/:org_id/invitations/:invitation_id", "admin:invitations-write",
			func(f staleFixture) string { return orgs(f) + "/invitations/" + f.invitation }, none, 204},
		{"POST", "/api/v1/admin/orgs/:org_id/api-keys", "admin:api-keys-write",
			func(f staleFixture) string { return orgs(f) + "/api-keys" },
			func(staleFixture) any { return map[string]any{"name": "made now", "permissions": []string{"*"}} }, 201},
		{"PATCH", "/api/v1/admin/orgs/:org_id/api-keys/:key_id", "admin:api-keys-write",
			func(f staleFixture) string { return orgs(f) + "/api-keys/" + f.key },
			func(staleFixture) any { return map[string]any{"disabled": true} }, 200},
		{"DELETE", "/api/v1/admin/orgs/:org_id/api-keys/:key_id", "admin:api-keys-write",
			func(f staleFixture) string { return orgs(f) + "/api-keys/" + f.key }, none, 204},
		{"POST", "/api/v1/admin/users/:user_id/disable", "admin:users-write",
			func(f staleFixture) string { return users(f) + "/disable" }, none, 200},
		{"POST", "/api/v1/admin/users/:user_id/enable", "admin:users-write",
			func(f staleFixture) string { return users(f) + "/enable" }, none, 200},
		{"POST", "/api/v1/admin/users/:user_id/recheck", "admin:users-write",
			func(f staleFixture) string { return users(f) + "/recheck" }, none, 200},
		{"DELETE", "/api/v1/admin/users/:user_id/identities/:identity_id", "admin:users-write",
			func(f staleFixture) string { return users(f) + "/identities/" + f.identity }, none, 204},
		{"DELETE", "/api/v1/admin/users/:user_id/browser-sessions/:browser_session_id", "admin:sessions-write",
			func(f staleFixture) string { return users(f) + "/browser-sessions/" + f.browserSession }, none, 204},
		{"DELETE", "/api/v1/admin/users/:user_id/sessions/:session_id", "admin:sessions-write",
			func(f staleFixture) string { return users(f) + "/sessions/" + f.session }, none, 204},
		{"DELETE", "/api/v1/admin/users/:user_id/sessions", "admin:sessions-write",
			func(f staleFixture) string { return users(f) + "/sessions" }, none, 200},
		{"POST", "/api/v1/admin/signing-keys/rotate", "admin:keys-write",
			func(staleFixture) string { return "/api/v1/admin/signing-keys/rotate" }, none, 201},
		{"DELETE", "/api/v1/admin/users/:user_id", "admin:users-delete", users, none, 200},
		{"POST", "/api/v1/admin/clients", "admin:clients-write",
			func(staleFixture) string { return "/api/v1/admin/clients" },
			func(staleFixture) any {
				return map[string]any{"client_id": "stale-made", "redirect_uris": []string{"https://made.example/cb"}}
			}, 201},
		{"PATCH", "/api/v1/admin/clients/:client_id", "admin:clients-write",
			func(f staleFixture) string { return "/api/v1/admin/clients/" + f.client },
			func(staleFixture) any { return map[string]any{"name": "Renamed"} }, 200},
		{"POST", "/api/v1/admin/clients/:client_id/rotate-secret", "admin:clients-write",
			func(f staleFixture) string { return "/api/v1/admin/clients/" + f.client + "/rotate-secret" },
			func(staleFixture) any { return map[string]any{"overlap": "1h"} }, 200},
		{"DELETE", "/api/v1/admin/clients/:client_id", "admin:clients-write",
			func(f staleFixture) string { return "/api/v1/admin/clients/" + f.client }, none, 200},
		{"DELETE", "/api/v1/admin/orgs/:org_id", "admin:orgs-delete", orgs, none, 204},
	}
}

// TestAdminStaleGrants: every mutating admin route authorizes against
// the actor's grants as the database holds them now, not the copy in
// their access token. Tokens minted before their holder was demoted,
// removed from the organization, suspended, or stripped of Gatehouse
// administration get 403 naming the route's permission on every
// mutating route, and change nothing; the same requests by an
// administrator then succeed, which shows each request was one the
// stale token would have been allowed. The table is checked against the
// router: a new mutating route without an entry fails the test.
func TestAdminStaleGrants(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			routes := mutatingAdminRoutes()
			listed := map[string]bool{}
			for _, r := range routes {
				listed[r.method+" "+r.pattern] = true
			}
			seen := map[string]bool{}
			for _, ri := range w.s.Engine.Routes() {
				if !strings.HasPrefix(ri.Path, "/api/v1/admin") {
					continue
				}
				switch ri.Method {
				case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
				default:
					continue
				}
				key := ri.Method + " " + ri.Path
				seen[key] = true
				if !listed[key] {
					t.Errorf("mutating admin route %s has no entry in mutatingAdminRoutes: add one", key)
				}
			}
			for key := range listed {
				if !seen[key] {
					t.Errorf("mutatingAdminRoutes lists %s, which the router does not serve", key)
				}
			}

			f := w.staleFixture("stale")
			adminsOrg := "/api/v1/admin/orgs/" + models.AdminOrgID + "/members/"
			orgMembers := "/api/v1/admin/orgs/" + f.org + "/members/"
			// Each actor signs in while holding "*" (owner or admin), then
			// loses it.
			actors := []struct {
				name, email, org, role string
				lose                   func(userID string)
			}{
				{"org admin demoted", "lea@example.com", f.org, "admin", func(id string) {
					w.mustCall("PATCH", orgMembers+id, w.root, map[string]any{"role": "viewer"}, 200, nil)
				}},
				{"org admin removed", "leo@example.com", f.org, "admin", func(id string) {
					w.mustCall("DELETE", orgMembers+id, w.root, nil, 204, nil)
				}},
				{"org admin suspended", "oli@example.com", f.org, "admin", func(id string) {
					w.mustCall("PATCH", orgMembers+id, w.root, map[string]any{"status": "suspended"}, 200, nil)
				}},
				{"administrator demoted", "ada@example.com", models.AdminOrgID, "owner", func(id string) {
					w.mustCall("PATCH", adminsOrg+id, w.root, map[string]any{"role": "viewer"}, 200, nil)
				}},
				{"administrator's grant revoked", "abe@example.com", models.AdminOrgID, "admin", func(id string) {
					w.mustCall("DELETE", adminsOrg+id, w.root, nil, 204, nil)
				}},
				{"administrator suspended", "sam@example.com", models.AdminOrgID, "owner", func(id string) {
					w.mustCall("PATCH", adminsOrg+id, w.root, map[string]any{"status": "suspended"}, 200, nil)
				}},
			}
			for _, a := range actors {
				w.signIn("admin-console", a.email, "", "")
				id := w.userID(a.email)
				w.mustCall("POST", "/api/v1/admin/orgs/"+a.org+"/members", w.root, map[string]any{"user_id": id, "role": a.role}, 201, nil)
				stale := w.signIn("admin-console", a.email, "", a.org).AccessToken
				w.mustCall("GET", "/api/v1/admin/orgs/"+f.org+"/members", stale, nil, 200, nil) // allowed while it holds
				a.lose(id)
				for _, r := range routes {
					status, body := w.call(r.method, r.path(f), stale, r.body(f), nil)
					instanceRoute := !strings.Contains(r.pattern, ":org_id")
					if status != 403 {
						t.Errorf("%s: %s %s = %d %s, want 403", a.name, r.method, r.pattern, status, body)
						continue
					}
					// An organization's admin meets the administrators-only
					// refusal first on instance routes; everywhere else the
					// refusal is the permission check on current grants.
					if !(instanceRoute && a.org != models.AdminOrgID) && !strings.Contains(body, `"required":"`+r.permission+`"`) {
						t.Errorf("%s: %s %s = %s, want the refusal to name %s", a.name, r.method, r.pattern, body, r.permission)
					}
				}
				// Reads too: what the token says is not what the person holds.
				if status, body := w.call("GET", "/api/v1/admin/orgs/"+f.org+"/members", stale, nil, nil); status != 403 ||
					!strings.Contains(body, `"required":"admin:members-read"`) {
					t.Errorf("%s: listing members = %d %s, want 403", a.name, status, body)
				}
			}

			// Nothing changed: the administrator's requests all succeed.
			for _, r := range routes {
				if status, body := w.call(r.method, r.path(f), w.root, r.body(f), nil); status != r.ok {
					t.Errorf("administrator: %s %s = %d %s, want %d", r.method, r.pattern, status, body, r.ok)
				}
			}
		})
	}
}

// staleFixture creates, as the administrator, an organization with what
// every mutating route needs.
func (w *world) staleFixture(slug string) staleFixture {
	w.t.Helper()
	var f staleFixture
	var org admin.Org
	w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": slug}, 201, &org)
	f.org, f.orgSlug = org.ID, org.Slug
	base := "/api/v1/admin/orgs/" + f.org
	var role admin.Role
	w.mustCall("POST", base+"/roles", w.root, map[string]any{"name": "kb-reader", "level": 20, "permissions": []string{"kb:r*"}}, 201, &role)
	f.role = role.ID
	w.mustCall("POST", base+"/roles", w.root, map[string]any{"name": "spare", "level": 1}, 201, &role)
	f.spareRole = role.ID
	var inv admin.Invitation
	w.mustCall("POST", base+"/invitations", w.root, map[string]any{"email": "pending@example.com", "role": "viewer"}, 201, &inv)
	f.invitation = inv.ID
	var key admin.NewAPIKey
	w.mustCall("POST", base+"/api-keys", w.root, map[string]any{"name": "ci", "permissions": []string{"kb:read"}}, 201, &key)
	f.key = key.ID
	w.signIn("admin-console", "mel@example.com", "", "")
	f.member = w.userID("mel@example.com")
	w.mustCall("POST", base+"/members", w.root, map[string]any{"user_id": f.member, "role": "viewer"}, 201, nil)
	w.signIn("admin-console", "noa@example.com", "", "")
	f.newcomer = w.userID("noa@example.com")
	// A user with two identities (dev2 links by email) and a session.
	w.signIn("admin-console", "vic@example.com", "", "")
	w.signInWith("dev2", "admin-console", "vic@example.com", "", "")
	f.user = w.userID("vic@example.com")
	var detail admin.UserDetail
	w.mustCall("GET", "/api/v1/admin/users/"+f.user, w.root, nil, 200, &detail)
	for _, i := range detail.Identities {
		if i.Provider == "dev2" {
			f.identity = i.ID
		}
	}
	var sessions admin.List[admin.Session]
	w.mustCall("GET", "/api/v1/admin/users/"+f.user+"/sessions", w.root, nil, 200, &sessions)
	for _, s := range sessions.Items {
		if s.Provider == "dev" {
			f.session = s.ID
		}
	}
	f.browserSession = w.browserSession(f.user)
	f.client = slug + "-client"
	w.mustCall("POST", "/api/v1/admin/clients", w.root, map[string]any{"client_id": f.client,
		"redirect_uris": []string{"https://stale.example/cb"}}, 201, nil)
	if f.identity == "" || f.session == "" {
		w.t.Fatalf("fixture user: identities %+v, sessions %+v", detail.Identities, sessions.Items)
	}
	return f
}
