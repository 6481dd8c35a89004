package app_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
)

// TestAdminAPI runs the admin API end to end on SQLite and PostgreSQL:
// who may reach which route, the role hierarchy, validation messages
// naming the field, pagination, users and sessions, and the audit trail.
func TestAdminAPI(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			member := w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken
			kbToken := w.signIn("kb-web", "lea@example.com", "leads", "").AccessToken
			acme := "/api/v1/admin/orgs/" + w.acme

			// Olga is made owner of acme by the administrator (level 100 everywhere).
			w.signIn("admin-console", "olga@example.com", "", "")
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"email": "olga@example.com", "role": "owner"}, 201, nil)
			var mia admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?email=MIA@example.com", w.root, nil, 200, &mia)
			if len(mia.Items) != 1 {
				t.Fatalf("users by email = %+v", mia)
			}
			miaID := mia.Items[0].ID
			var olgaList admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?email=olga@example.com", w.root, nil, 200, &olgaList)
			olga := olgaList.Items[0].ID

			access := []struct {
				name, method, path, token string
				body                      any
				want                      int
				has                       string
			}{
				{"no token", "GET", acme + "/members", "", nil, 401, "invalid_token"},
				{"token for another audience", "GET", acme + "/members", kbToken, nil, 401, "another audience"},
				{"member lists members", "GET", acme + "/members", member, nil, 403, `"required":"admin:members-read"`},
				{"member adds a member", "POST", acme + "/members", member, map[string]any{"email": "x@example.com", "role": "viewer"}, 403, "admin:members-write"},
				{"member lists users", "GET", "/api/v1/admin/users", member, nil, 403, "insufficient_permission"},
				{"member reads audit", "GET", acme + "/audit-events", member, nil, 403, "admin:audit-read"},
				{"org admin lists members", "GET", acme + "/members", lead, nil, 200, "olga@example.com"},
				{"org admin in another org", "GET", "/api/v1/admin/orgs/" + w.beta + "/members", lead, nil, 403, "another organization"},
				{"org admin lists users", "GET", "/api/v1/admin/users", lead, nil, 403, "another organization"},
				{"org admin creates an org", "POST", "/api/v1/admin/orgs", lead, map[string]any{"slug": "gamma"}, 403, ""},
				{"org admin deletes the org", "DELETE", acme, lead, nil, 403, "owners only"},
				{"org admin grants owner", "POST", acme + "/members", lead, map[string]any{"email": "root@example.com", "role": "owner"}, 403, "above your own level"},
				{"org admin demotes the owner", "PATCH", acme + "/members/" + olga, lead, map[string]any{"role": "viewer"}, 403, "above your own level"},
				{"org admin changes a system role", "PATCH", acme + "/roles/role-member", lead, map[string]any{"level": 5}, 403, "system roles"},
				{"org admin reads the org's audit", "GET", acme + "/audit-events", lead, nil, 200, "membership.added"},
				{"org admin suspends a member", "PATCH", acme + "/members/" + miaID, lead, map[string]any{"status": "suspended"}, 200, `"source":"manual"`},
				{"last owner cannot leave", "DELETE", acme + "/members/" + olga, w.root, nil, 409, "last active owner"},
				{"last owner cannot be demoted", "PATCH", acme + "/members/" + olga, w.root, map[string]any{"role": "admin"}, 409, "last active owner"},
				{"administrators' org cannot go", "DELETE", "/api/v1/admin/orgs/" + models.AdminOrgID, w.root, nil, 403, "cannot be deleted"},
			}
			for _, tc := range access {
				status, body := w.call(tc.method, tc.path, tc.token, tc.body, nil)
				if status != tc.want || !strings.Contains(body, tc.has) {
					t.Errorf("%s: %s %s = %d %s, want %d with %q", tc.name, tc.method, tc.path, status, body, tc.want, tc.has)
				}
			}

			// Only a person's token: neither a client's nor an API key.
			status, out := tokenPost(t, w.s, url.Values{"grant_type": {"client_credentials"}}, "admin-robot", "admin-robot-secret-0123456789")
			robot, _ := out["access_token"].(string)
			if status != 200 || robot == "" {
				t.Fatalf("client_credentials = %d %v", status, out)
			}
			if status, body := w.call("GET", "/api/v1/admin/users", robot, nil, nil); status != 401 || !strings.Contains(body, "a person's access token") {
				t.Errorf("client token at the admin API = %d %s", status, body)
			}
			if resp, body := send(t, "GET", w.s.URL+"/api/v1/admin/users", "", "X-API-Key", "ghk_"+strings.Repeat("a", 43)); resp.StatusCode != 401 ||
				!strings.Contains(body, "API keys are not accepted here") {
				t.Errorf("API key at the admin API = %d %s", resp.StatusCode, body)
			}

			// A role may hand on only what its holder has: a kb-admin (level
			// 60, members and API keys of acme) cannot mint admin:* keys
			// nor grant the admin role.
			w.mustCall("POST", acme+"/roles", w.root, map[string]any{"name": "kb-admin", "level": 60,
				"permissions": []string{"admin:members-*", "admin:api-keys-*", "kb:*"}}, 201, nil)
			w.signIn("admin-console", "kim@example.com", "", "")
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"email": "kim@example.com", "role": "kb-admin"}, 201, nil)
			kim := w.signIn("admin-console", "kim@example.com", "", w.acme).AccessToken
			w.mustCall("POST", acme+"/api-keys", kim, map[string]any{"name": "ok", "permissions": []string{"kb:read"}}, 201, nil)
			if status, body := w.call("POST", acme+"/api-keys", kim, map[string]any{"name": "too much", "permissions": []string{"admin:*"}}, nil); status != 400 ||
				!strings.Contains(body, `"field":"permissions"`) || !strings.Contains(body, "not covered by your own permissions") {
				t.Errorf("key beyond the creator's grants = %d %s", status, body)
			}
			if status, body := w.call("POST", acme+"/members", kim, map[string]any{"email": "root@example.com", "role": "admin"}, nil); status != 403 {
				t.Errorf("kb-admin grants admin = %d %s", status, body)
			}

			// Validation: 400 naming the field.
			validation := []struct {
				method, path string
				body         any
				field        string
			}{
				{"POST", "/api/v1/admin/orgs", map[string]any{"slug": "Bad Slug"}, "slug"},
				{"POST", "/api/v1/admin/orgs", map[string]any{"slug": 5}, "slug"},
				{"POST", "/api/v1/admin/orgs", map[string]any{"slug": "gamma", "colour": "red"}, "colour"},
				{"POST", "/api/v1/admin/orgs", "not json", "body"},
				{"POST", "/api/v1/admin/orgs", map[string]any{"slug": "acme"}, "slug"},
				{"POST", "/api/v1/admin/orgs", map[string]any{"slug": models.AdminOrgSlug}, "slug"},
				{"POST", "/api/v1/admin/orgs", map[string]any{"name": "no slug"}, "slug"},
				{"POST", acme + "/members", map[string]any{"email": "nobody@example.com", "role": "viewer"}, "email"},
				{"POST", acme + "/members", map[string]any{"email": "olga@example.com"}, "role"},
				{"POST", acme + "/members", map[string]any{"email": "olga@example.com", "role": "wizard"}, "role"},
				{"PATCH", acme + "/members/" + miaID, map[string]any{"status": "banned"}, "status"},
				{"POST", acme + "/roles", map[string]any{"name": "Bad Name"}, "name"},
				{"POST", acme + "/roles", map[string]any{"name": "ok", "permissions": []string{"KB:read"}}, "permissions"},
				{"POST", acme + "/roles", map[string]any{"name": "ok", "level": -1}, "level"},
				{"PATCH", acme + "/roles/" + w.reader, map[string]any{"level": 100}, "level"},
				{"POST", acme + "/invitations", map[string]any{"email": "not-an-email", "role": "viewer"}, "email"},
				{"POST", acme + "/invitations", map[string]any{"email": "new@example.com", "role": "viewer", "ttl": "forever"}, "ttl"},
				{"POST", acme + "/api-keys", map[string]any{"name": "", "permissions": []string{"kb:read"}}, "name"},
				{"POST", acme + "/api-keys", map[string]any{"name": "k"}, "permissions"},
				{"POST", acme + "/api-keys", map[string]any{"name": "k", "permissions": []string{"kb:read"}, "expires_at": time.Now().Add(-time.Hour)}, "expires_at"},
				{"PATCH", acme + "/api-keys/x", map[string]any{}, "disabled"},
				{"GET", "/api/v1/admin/users?limit=0", nil, "limit"},
				{"GET", "/api/v1/admin/users?limit=1000", nil, "limit"},
				{"GET", "/api/v1/admin/users?cursor=bm9wZQ", nil, "cursor"},
				{"GET", "/api/v1/admin/users?disabled=maybe", nil, "disabled"},
				{"GET", "/api/v1/admin/audit-events?since=yesterday", nil, "since"},
				{"GET", "/api/v1/admin/audit-events?cursor=" + url.QueryEscape("eyJpIjoieCJ9"), nil, "cursor"},
			}
			for _, tc := range validation {
				status, body := w.call(tc.method, tc.path, w.root, tc.body, nil)
				if status != 400 || !strings.Contains(body, `"field":"`+tc.field+`"`) || !strings.Contains(body, "invalid_request") {
					t.Errorf("%s %s %v = %d %s, want 400 naming %s", tc.method, tc.path, tc.body, status, body, tc.field)
				}
			}
			for _, p := range []string{"DELETE " + acme + "/members/nobody", "GET /api/v1/admin/users/nobody", "DELETE " + acme + "/api-keys/nope",
				"GET /api/v1/admin/orgs/nope", "DELETE " + acme + "/roles/nope", "GET /api/v1/admin/users/nobody/sessions"} {
				method, path, _ := strings.Cut(p, " ")
				if status, body := w.call(method, path, w.root, nil, nil); status != 404 || !strings.Contains(body, "not_found") {
					t.Errorf("%s = %d %s, want 404", p, status, body)
				}
			}

			// Pagination: every organization exactly once, pages of 3.
			for _, slug := range []string{"p1", "p2", "p3", "p4", "p5"} {
				w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": slug}, 201, nil)
			}
			seen, pages, cursor := map[string]bool{}, 0, ""
			for {
				var page admin.List[admin.Org]
				w.mustCall("GET", "/api/v1/admin/orgs?limit=3&cursor="+url.QueryEscape(cursor), w.root, nil, 200, &page)
				pages++
				for _, o := range page.Items {
					if seen[o.ID] {
						t.Fatalf("organization %s on two pages", o.Slug)
					}
					seen[o.ID] = true
				}
				if page.NextCursor == "" {
					break
				}
				if len(page.Items) != 3 || pages > 5 {
					t.Fatalf("page %d has %d items and a next cursor", pages, len(page.Items))
				}
				cursor = page.NextCursor
			}
			if len(seen) != 8 || pages != 3 { // acme, beta, the administrators', p1–p5
				t.Fatalf("paged through %d organizations in %d pages", len(seen), pages)
			}
			var events admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?limit=2", w.root, nil, 200, &events)
			var next admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?limit=2&cursor="+url.QueryEscape(events.NextCursor), w.root, nil, 200, &next)
			if len(events.Items) != 2 || len(next.Items) != 2 || !(events.Items[1].ID > next.Items[0].ID) {
				t.Fatalf("audit pages out of order: %+v then %+v", events.Items, next.Items)
			}
			var created admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?type=organization.created&org_id="+w.acme, w.root, nil, 200, &created)
			if len(created.Items) != 1 || *created.Items[0].ActorUserID == "" {
				t.Fatalf("organization.created events of acme = %+v", created.Items)
			}

			// Users and sessions: disabling revokes sessions and admin access at once.
			w.signIn("admin-console", "ada@example.com", "", "")
			w.mustCall("POST", "/api/v1/admin/orgs/"+models.AdminOrgID+"/members", w.root, map[string]any{"email": "ada@example.com", "role": "admin"}, 201, nil)
			ada := w.signIn("admin-console", "ada@example.com", "", models.AdminOrgID)
			w.mustCall("GET", "/api/v1/admin/users", ada.AccessToken, nil, 200, nil)
			var adaUser admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?email=ada@example.com", ada.AccessToken, nil, 200, &adaUser)
			adaID := adaUser.Items[0].ID
			var rootUser admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?email=root@example.com", w.root, nil, 200, &rootUser)
			if status, body := w.call("POST", "/api/v1/admin/users/"+rootUser.Items[0].ID+"/disable", ada.AccessToken, nil, nil); status != 403 {
				t.Errorf("admin disables the owner = %d %s", status, body)
			}
			if status, _ := w.call("POST", "/api/v1/admin/users/"+rootUser.Items[0].ID+"/disable", w.root, nil, nil); status != 403 {
				t.Errorf("disabling yourself = %d", status)
			}
			var sessions admin.List[admin.Session]
			w.mustCall("GET", "/api/v1/admin/users/"+adaID+"/sessions?limit=1", w.root, nil, 200, &sessions)
			if len(sessions.Items) != 1 || sessions.NextCursor == "" || !sessions.Items[0].Active {
				t.Fatalf("ada's sessions = %+v", sessions)
			}
			liveBrowserSessions := func() (n int64) {
				w.s.DB.Raw("SELECT COUNT(*) FROM browser_sessions WHERE user_id = ? AND revoked_at IS NULL", adaID).Scan(&n)
				return n
			}
			if liveBrowserSessions() == 0 {
				t.Fatal("ada's sign-ins left no browser session")
			}
			var user admin.User
			w.mustCall("POST", "/api/v1/admin/users/"+adaID+"/disable", w.root, nil, 200, &user)
			if !user.Disabled {
				t.Fatal("not disabled")
			}
			if n := liveBrowserSessions(); n != 0 {
				t.Fatalf("disabling left %d browser sessions of ada live", n)
			}
			if status, body := w.call("GET", "/api/v1/admin/users", ada.AccessToken, nil, nil); status != 401 || !strings.Contains(body, "session has ended") {
				t.Fatalf("disabled admin = %d %s", status, body)
			}
			if status, out := refreshAt(t, w, ada.RefreshToken, "admin-console"); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("disabled user's refresh = %d %v", status, out)
			}
			w.mustCall("POST", "/api/v1/admin/users/"+adaID+"/enable", w.root, nil, 200, &user)
			var detail admin.UserDetail
			w.mustCall("GET", "/api/v1/admin/users/"+adaID, w.root, nil, 200, &detail)
			if detail.Disabled || len(detail.Identities) != 1 || len(detail.Memberships) != 1 {
				t.Fatalf("user detail = %+v", detail)
			}
			if status, body := w.call("DELETE", "/api/v1/admin/users/"+adaID+"/identities/"+detail.Identities[0].ID, w.root, nil, nil); status != 409 {
				t.Fatalf("unlinking the last identity = %d %s", status, body)
			}
			again := w.signIn("admin-console", "ada@example.com", "", models.AdminOrgID)
			w.mustCall("GET", "/api/v1/admin/users", again.AccessToken, nil, 200, nil)
			// A second identity (dev2 links by email); unlinking it ends the
			// session opened through it, not the one through dev.
			second := w.signInWith("dev2", "admin-console", "ada@example.com", "", models.AdminOrgID)
			w.mustCall("GET", "/api/v1/admin/users/"+adaID, w.root, nil, 200, &detail)
			var dev2ID string
			for _, i := range detail.Identities {
				if i.Provider == "dev2" {
					dev2ID = i.ID
				}
			}
			if len(detail.Identities) != 2 || dev2ID == "" {
				t.Fatalf("identities after signing in through dev2 = %+v", detail.Identities)
			}
			w.mustCall("DELETE", "/api/v1/admin/users/"+adaID+"/identities/"+dev2ID, w.root, nil, 204, nil)
			if status, body := w.call("GET", "/api/v1/admin/users", second.AccessToken, nil, nil); status != 401 || !strings.Contains(body, "session has ended") {
				t.Fatalf("session of the unlinked identity = %d %s", status, body)
			}
			if status, out := refreshAt(t, w, second.RefreshToken, "admin-console"); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh of the unlinked identity's session = %d %v", status, out)
			}
			w.mustCall("GET", "/api/v1/admin/users", again.AccessToken, nil, 200, nil)
			var unlinkedSessions admin.List[admin.Session]
			w.mustCall("GET", "/api/v1/admin/users/"+adaID+"/sessions", w.root, nil, 200, &unlinkedSessions)
			reasons := map[string]string{}
			for _, x := range unlinkedSessions.Items {
				reasons[x.Provider] += x.RevokeReason + ";"
			}
			if !strings.Contains(reasons["dev2"], "identity_unlinked") || strings.Contains(reasons["dev"], "identity_unlinked") {
				t.Fatalf("revoke reasons by provider = %v", reasons)
			}
			var unlinked admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?subject_user_id="+adaID+"&type=identity.unlinked", w.root, nil, 200, &unlinked)
			if len(unlinked.Items) != 1 || unlinked.Items[0].Provider != "dev2" || !strings.Contains(string(unlinked.Items[0].Details), `"sessions_revoked":1`) {
				t.Fatalf("identity.unlinked events = %+v", unlinked.Items)
			}
			w.mustCall("PATCH", "/api/v1/admin/orgs/"+models.AdminOrgID+"/members/"+adaID, w.root, map[string]any{"status": "suspended"}, 200, nil)
			if status, body := w.call("GET", "/api/v1/admin/users", again.AccessToken, nil, nil); status != 403 || !strings.Contains(body, "no longer an active member") {
				t.Fatalf("suspended administrator = %d %s", status, body)
			}
			w.mustCall("PATCH", "/api/v1/admin/orgs/"+models.AdminOrgID+"/members/"+adaID, w.root, map[string]any{"status": "active"}, 200, nil)
			w.mustCall("DELETE", "/api/v1/admin/users/"+adaID+"/sessions", w.root, nil, 200, nil)
			if status, _ := w.call("GET", "/api/v1/admin/users", again.AccessToken, nil, nil); status != 401 {
				t.Fatalf("revoked session still reaches the admin API: %d", status)
			}
			// Granting a person who has signed in makes them an administrator at once.
			if res, err := w.s.Admin.GrantAdmin(context.Background(), "olga@example.com"); err != nil || res.UserID != olga || res.Created {
				t.Fatalf("GrantAdmin of a known user = %+v, %v", res, err)
			}
			w.mustCall("GET", "/api/v1/admin/users", w.signIn("admin-console", "olga@example.com", "", models.AdminOrgID).AccessToken, nil, 200, nil)
			var audit admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?subject_user_id="+adaID+"&type=user.disabled", w.root, nil, 200, &audit)
			if len(audit.Items) != 1 || !strings.Contains(string(audit.Items[0].Details), `"sessions_revoked":2`) {
				t.Fatalf("user.disabled events = %+v", audit.Items)
			}
		})
	}
}

// TestAdminEmailTrust: adding a member by email and `admin grant` match
// only users whose email a provider trusted for email verified. A user
// known only through lax (trusted_email: false) is passed over, which is
// audited; admin grant falls back to the owner invitation, which a
// sign-in through lax does not accept and one through a trusted provider
// does.
func TestAdminEmailTrust(t *testing.T) {
	cases := []struct {
		provider string
		trusted  bool
	}{
		{"lax", false},
		{"dev", true},
	}
	for _, pg := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg]+"/"+tc.provider, func(t *testing.T) {
				w := newWorld(t, pg)
				ctx := context.Background()
				acme := "/api/v1/admin/orgs/" + w.acme
				w.signInWith(tc.provider, "admin-console", "eve@example.com", "", "")
				eve := w.userID("eve@example.com")
				status, body := w.call("POST", acme+"/members", w.root, map[string]any{"email": "Eve@example.com", "role": "viewer"}, nil)
				res, err := w.s.Admin.GrantAdmin(ctx, "eve@example.com")
				if tc.trusted {
					if status != 201 || err != nil || res.UserID != eve || len(res.PassedOver) != 0 {
						t.Fatalf("add member = %d %s; GrantAdmin = %+v, %v", status, body, res, err)
					}
					tok := w.signInWith(tc.provider, "admin-console", "eve@example.com", "", models.AdminOrgID)
					w.mustCall("GET", "/api/v1/admin/users", tok.AccessToken, nil, 200, nil)
					return
				}
				if status != 400 || !strings.Contains(body, "trusted") {
					t.Fatalf("add member by an untrusted email = %d %s, want 400 naming trust", status, body)
				}
				if err != nil || res.UserID != "" || res.InvitationID == "" || !slices.Equal(res.PassedOver, []string{eve}) {
					t.Fatalf("GrantAdmin of an untrusted email = %+v, %v", res, err)
				}
				var refused admin.List[admin.AuditEvent]
				w.mustCall("GET", "/api/v1/admin/audit-events?type=membership.email_refused", w.root, nil, 200, &refused)
				orgs := []string{}
				for _, e := range refused.Items {
					if !strings.Contains(string(e.Details), eve) || !strings.Contains(string(e.Details), "not trusted for email") {
						t.Fatalf("refusal details = %s", e.Details)
					}
					orgs = append(orgs, *e.OrganizationID)
				}
				want := []string{w.acme, models.AdminOrgID}
				slices.Sort(orgs)
				slices.Sort(want)
				if !slices.Equal(orgs, want) {
					t.Fatalf("refusals audited in %v, want %v", orgs, want)
				}
				// Through lax again, the owner invitation is not accepted.
				w.signInWith("lax", "admin-console", "eve@example.com", "", models.AdminOrgID)
				var detail admin.UserDetail
				w.mustCall("GET", "/api/v1/admin/users/"+eve, w.root, nil, 200, &detail)
				if len(detail.Memberships) != 0 {
					t.Fatalf("memberships after an untrusted sign-in = %+v", detail.Memberships)
				}
				var notAccepted admin.List[admin.AuditEvent]
				w.mustCall("GET", "/api/v1/admin/audit-events?type=invitation.accept_refused&subject_user_id="+eve, w.root, nil, 200, &notAccepted)
				if len(notAccepted.Items) == 0 || *notAccepted.Items[0].OrganizationID != models.AdminOrgID {
					t.Fatalf("invitation.accept_refused events = %+v", notAccepted.Items)
				}
				// The address's owner, through a trusted provider, becomes an administrator.
				tok := w.signIn("admin-console", "eve@example.com", "", models.AdminOrgID)
				w.mustCall("GET", "/api/v1/admin/users", tok.AccessToken, nil, 200, nil)
			})
		}
	}
}

// refreshAt redeems a refresh token at client.
func refreshAt(t *testing.T, w *world, token, client string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, w.s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {client}}, "", "")
}

// TestAdminInstanceRoutes: the instance-wide routes (all users, their
// identities and sessions, all organizations) are for Gatehouse
// administrators only. An organization admin who names their own
// organization in the query (?org_id=) passes the rbac organization
// check, so the routes refuse them on their own, and the service refuses
// them again. /audit-events?org_id= stays open to an organization's
// admins for their organization's events. Administrators do not sign out
// or unlink one above their own level.
func TestAdminInstanceRoutes(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			ctx := context.Background()
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken // admin of acme: holds "*"
			// A second identity, so that unlinking one is not refused as the last.
			w.signInWith("dev2", "admin-console", "root@example.com", "", models.AdminOrgID)
			rootID, leadID := w.userID("root@example.com"), w.userID("lea@example.com")
			var detail admin.UserDetail
			w.mustCall("GET", "/api/v1/admin/users/"+rootID, w.root, nil, 200, &detail)
			var sessions admin.List[admin.Session]
			w.mustCall("GET", "/api/v1/admin/users/"+rootID+"/sessions", w.root, nil, 200, &sessions)
			if len(detail.Identities) != 2 || len(sessions.Items) != 2 {
				t.Fatalf("root's identities %+v, sessions %+v", detail.Identities, sessions.Items)
			}
			identity, session := detail.Identities[1].ID, sessions.Items[0].ID

			users, own := "/api/v1/admin/users/"+rootID, "?org_id="+w.acme
			for _, tc := range []struct {
				method, path string
				body         any
			}{
				{"GET", "/api/v1/admin/users" + own, nil},
				{"GET", users + own, nil},
				{"POST", users + "/disable" + own, nil},
				{"POST", users + "/enable" + own, nil},
				{"DELETE", users + "/identities/" + identity + own, nil},
				{"GET", users + "/sessions" + own, nil},
				{"DELETE", users + "/sessions/" + session + own, nil},
				{"DELETE", users + "/sessions" + own, nil},
				{"GET", "/api/v1/admin/orgs" + own, nil},
				{"POST", "/api/v1/admin/orgs" + own, map[string]any{"slug": "gamma"}},
			} {
				if status, body := w.call(tc.method, tc.path, lead, tc.body, nil); status != 403 || !strings.Contains(body, "Gatehouse administrators only") {
					t.Errorf("org admin: %s %s = %d %s, want 403 for administrators only", tc.method, tc.path, status, body)
				}
			}
			// Nothing happened: the administrator keeps both identities and
			// their session, and there is no organization gamma.
			w.mustCall("GET", "/api/v1/admin/users/"+rootID, w.root, nil, 200, &detail)
			if len(detail.Identities) != 2 {
				t.Fatalf("root's identities after the org admin's attempts = %+v", detail.Identities)
			}
			var orgs admin.List[admin.Org]
			w.mustCall("GET", "/api/v1/admin/orgs", w.root, nil, 200, &orgs)
			for _, o := range orgs.Items {
				if o.Slug == "gamma" {
					t.Fatal("the org admin created an organization")
				}
			}

			// The service refuses on its own (whatever the router lets through).
			as := admin.Actor{UserID: leadID, OrgID: w.acme}
			page := admin.PageRequest{}
			for name, call := range map[string]func() error{
				"ListUsers": func() error { _, err := w.s.Admin.ListUsers(ctx, as, admin.UserQuery{}, page); return err },
				"GetUser":   func() error { _, err := w.s.Admin.GetUser(ctx, as, rootID); return err },
				"ListSessions": func() error {
					_, err := w.s.Admin.ListSessions(ctx, as, rootID, page)
					return err
				},
				"RevokeSession": func() error { return w.s.Admin.RevokeSession(ctx, as, rootID, session) },
				"RevokeAllSessions": func() error {
					_, err := w.s.Admin.RevokeAllSessions(ctx, as, rootID)
					return err
				},
				"Unlink":   func() error { return w.s.Admin.Unlink(ctx, as, rootID, identity) },
				"ListOrgs": func() error { _, err := w.s.Admin.ListOrgs(ctx, as, page); return err },
				"CreateOrg": func() error {
					slug := "delta"
					_, err := w.s.Admin.CreateOrg(ctx, as, admin.OrgInput{Slug: &slug})
					return err
				},
				"ListAudit of every organization": func() error {
					_, err := w.s.Admin.ListAudit(ctx, as, admin.AuditQuery{}, page)
					return err
				},
				"ListAudit of another organization": func() error {
					_, err := w.s.Admin.ListAudit(ctx, as, admin.AuditQuery{OrganizationID: w.beta}, page)
					return err
				},
			} {
				if err := call(); !errors.Is(err, admin.ErrForbidden) {
					t.Errorf("service %s by an org admin = %v, want ErrForbidden", name, err)
				}
			}

			// The deliberate exception: an organization's admin reads its
			// events, and only those.
			var events admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events"+own, lead, nil, 200, &events)
			if len(events.Items) == 0 {
				t.Fatal("no audit events of acme")
			}
			for _, e := range events.Items {
				if e.OrganizationID == nil || *e.OrganizationID != w.acme {
					t.Fatalf("org admin's audit events include %+v", e)
				}
			}
			for _, path := range []string{"/api/v1/admin/audit-events", "/api/v1/admin/audit-events?org_id=" + w.beta} {
				if status, body := w.call("GET", path, lead, nil, nil); status != 403 {
					t.Errorf("org admin: GET %s = %d %s, want 403", path, status, body)
				}
			}

			// An administrator (admin, 80) does not sign out the owner (100)
			// nor unlink their identities; users below them, yes.
			w.signIn("admin-console", "ada@example.com", "", "")
			w.mustCall("POST", "/api/v1/admin/orgs/"+models.AdminOrgID+"/members", w.root, map[string]any{"email": "ada@example.com", "role": "admin"}, 201, nil)
			ada := w.signIn("admin-console", "ada@example.com", "", models.AdminOrgID).AccessToken
			for _, p := range []string{"DELETE " + users + "/sessions/" + session, "DELETE " + users + "/sessions", "DELETE " + users + "/identities/" + identity} {
				method, path, _ := strings.Cut(p, " ")
				if status, body := w.call(method, path, ada, nil, nil); status != 403 || !strings.Contains(body, "above your own level") {
					t.Errorf("administrator below the owner: %s = %d %s, want 403", p, status, body)
				}
			}
			w.mustCall("GET", "/api/v1/admin/users/"+rootID, w.root, nil, 200, &detail)
			if len(detail.Identities) != 2 {
				t.Fatalf("root's identities after ada's attempts = %+v", detail.Identities)
			}
			w.mustCall("DELETE", "/api/v1/admin/users/"+leadID+"/sessions", ada, nil, 200, nil)
			if status, _ := w.call("GET", "/api/v1/admin/orgs/"+w.acme+"/members", lead, nil, nil); status != 401 {
				t.Errorf("the org admin's session survived being revoked: %d", status)
			}
		})
	}
}

// TestAdminRoleAssignmentNeedsItsGrants: whoever assigns a role (adding
// a member, changing a member's role, reactivating a suspended member,
// inviting) must hold every grant of that role, not only a level at least
// its own: a role is handed on like the grants it carries.
func TestAdminRoleAssignmentNeedsItsGrants(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			acme := "/api/v1/admin/orgs/" + w.acme
			// Kim leads the knowledge base: a high level (60) but narrow grants.
			w.mustCall("POST", acme+"/roles", w.root, map[string]any{"name": "kb-lead", "level": 60,
				"permissions": []string{"admin:members-*", "admin:invitations-*", "kb:*"}}, 201, nil)
			w.mustCall("POST", acme+"/roles", w.root, map[string]any{"name": "auditor", "level": 30,
				"permissions": []string{"admin:audit-read", "billing:*"}}, 201, nil)
			w.signIn("admin-console", "kim@example.com", "", "")
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"email": "kim@example.com", "role": "kb-lead"}, 201, nil)
			kim := w.signIn("admin-console", "kim@example.com", "", w.acme).AccessToken
			w.signIn("admin-console", "nia@example.com", "", "")
			nia := w.userID("nia@example.com")

			// member (50: *:read, *:write) and auditor (30) are below her
			// level but carry grants she does not hold.
			for _, role := range []string{"member", "viewer", "auditor"} {
				for _, tc := range []struct{ method, path string }{{"POST", acme + "/members"}, {"POST", acme + "/invitations"}} {
					body := map[string]any{"email": "nia@example.com", "role": role}
					if status, out := w.call(tc.method, tc.path, kim, body, nil); status != 403 || !strings.Contains(out, "not covered by your own permissions") {
						t.Errorf("kb-lead assigns %s: %s %s = %d %s, want 403", role, tc.method, tc.path, status, out)
					}
				}
			}
			// reader (kb:r*) is covered by her kb:*. As an organization's
			// admin she invites; nia joins at her next sign-in.
			w.mustCall("POST", acme+"/members", kim, map[string]any{"email": "nia@example.com", "role": "reader"}, 202, nil)
			w.signIn("admin-console", "nia@example.com", "", "")
			w.mustCall("POST", acme+"/invitations", kim, map[string]any{"email": "new@example.com", "role": "reader"}, 201, nil)
			for _, role := range []string{"member", "auditor"} {
				if status, out := w.call("PATCH", acme+"/members/"+nia, kim, map[string]any{"role": role}, nil); status != 403 || !strings.Contains(out, "not covered by your own permissions") {
					t.Errorf("kb-lead changes a member to %s = %d %s, want 403", role, status, out)
				}
			}
			var members admin.List[admin.Member]
			w.mustCall("GET", acme+"/members", w.root, nil, 200, &members)
			for _, m := range members.Items {
				if m.UserID == nia && m.Role != "reader" {
					t.Fatalf("nia's role = %s, want reader", m.Role)
				}
			}
			// Reactivating a suspended member hands their role on again:
			// she may suspend a member (level 50, below hers), not bring
			// them back with grants she does not hold.
			w.signIn("admin-console", "max@example.com", "", "")
			maxID := w.userID("max@example.com")
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"user_id": maxID, "role": "member"}, 201, nil)
			w.mustCall("PATCH", acme+"/members/"+maxID, kim, map[string]any{"status": "suspended"}, 200, nil)
			if status, out := w.call("PATCH", acme+"/members/"+maxID, kim, map[string]any{"status": "active"}, nil); status != 403 ||
				!strings.Contains(out, "not covered by your own permissions") {
				t.Errorf("kb-lead reactivates a member = %d %s, want 403", status, out)
			}
			w.mustCall("PATCH", acme+"/members/"+maxID, w.root, map[string]any{"status": "active"}, 200, nil)
			// An actor holding "*" assigns any role up to their level.
			w.mustCall("PATCH", acme+"/members/"+nia, w.root, map[string]any{"role": "auditor"}, 200, nil)
		})
	}
}

// TestAdminReservedRoleNames: an organization's roles may not take the
// system roles' names, which backends check (RequireRole("owner")) and
// tokens carry: an organization's level-80 "owner" would pass for the
// owner.
func TestAdminReservedRoleNames(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			acme := "/api/v1/admin/orgs/" + w.acme
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken
			for _, name := range []string{"owner", "admin", "member", "viewer"} {
				for _, token := range []string{lead, w.root} {
					if status, body := w.call("POST", acme+"/roles", token, map[string]any{"name": name, "level": 80, "permissions": []string{"*"}}, nil); status != 400 ||
						!strings.Contains(body, `"field":"name"`) || !strings.Contains(body, "reserved") {
						t.Errorf("creating a role %q = %d %s, want 400 naming the name", name, status, body)
					}
				}
				if status, body := w.call("PATCH", acme+"/roles/"+w.reader, lead, map[string]any{"name": name}, nil); status != 400 ||
					!strings.Contains(body, `"field":"name"`) || !strings.Contains(body, "reserved") {
					t.Errorf("renaming a role to %q = %d %s, want 400 naming the name", name, status, body)
				}
			}
			var roles admin.List[admin.Role]
			w.mustCall("GET", acme+"/roles", w.root, nil, 200, &roles)
			for _, r := range roles.Items {
				if !r.System && slices.Contains([]string{"owner", "admin", "member", "viewer"}, r.Name) {
					t.Fatalf("organization role named %q: %+v", r.Name, r)
				}
			}
			// Other names are the organization's to choose.
			w.mustCall("PATCH", acme+"/roles/"+w.reader, lead, map[string]any{"name": "owners-reader"}, 200, nil)
		})
	}
}
