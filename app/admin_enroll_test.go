package app_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
)

// TestAdminOrgAdminsInvite: an organization's admin adding a member by
// email gets the same answer (202 and an invitation) whether the address
// belongs to a user of a trusted provider, to one known only through an
// untrusted provider, or to nobody, and nobody becomes a member until
// they sign in through a provider trusted for email. Naming a user by id
// is refused alike for known and unknown ids. A Gatehouse administrator
// still adds users directly.
func TestAdminOrgAdminsInvite(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			acme := "/api/v1/admin/orgs/" + w.acme
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken // admin of acme
			w.signIn("admin-console", "kay@example.com", "", "")
			w.signInWith("lax", "admin-console", "lux@example.com", "", "")
			kay := w.userID("kay@example.com")

			// The same answer for every address, apart from the address
			// itself, the invitation's id and its times.
			shape := func(status int, body string) string {
				var m map[string]any
				if err := json.Unmarshal([]byte(body), &m); err != nil {
					return fmt.Sprintf("%d %s", status, body)
				}
				keys := make([]string, 0, len(m))
				for k, v := range m {
					switch k {
					case "id", "email", "expires_at", "created_at":
						keys = append(keys, k)
					default:
						keys = append(keys, fmt.Sprintf("%s=%v", k, v))
					}
				}
				slices.Sort(keys)
				return fmt.Sprintf("%d %s", status, strings.Join(keys, " "))
			}
			var want string
			for _, email := range []string{"kay@example.com", "lux@example.com", "ghost@example.com"} {
				status, body := w.call("POST", acme+"/members", lead, map[string]any{"email": email, "role": "viewer"}, nil)
				got := shape(status, body)
				if status != 202 || !strings.Contains(body, `"status":"pending"`) || !strings.Contains(body, `"email":"`+email+`"`) {
					t.Errorf("org admin adds %s = %d %s, want 202 and a pending invitation", email, status, body)
				}
				if want == "" {
					want = got
				} else if got != want {
					t.Errorf("org admin adds %s: answer %q differs from %q", email, got, want)
				}
				// Again: the pending invitation, whoever the address is.
				status, body = w.call("POST", acme+"/members", lead, map[string]any{"email": email, "role": "viewer"}, nil)
				if status != 409 || !strings.Contains(body, "already has a pending invitation") {
					t.Errorf("org admin adds %s twice = %d %s, want 409", email, status, body)
				}
			}
			// By id: refused, known or not, with the same answer.
			var byID []string
			for _, id := range []string{kay, "00000000-0000-0000-0000-000000000000"} {
				status, body := w.call("POST", acme+"/members", lead, map[string]any{"user_id": id, "role": "viewer"}, nil)
				if status != 403 || !strings.Contains(body, "by email") {
					t.Errorf("org admin adds user_id %s = %d %s, want 403", id, status, body)
				}
				byID = append(byID, body)
			}
			if byID[0] != byID[1] {
				t.Errorf("adding a known and an unknown user id answer differently: %s / %s", byID[0], byID[1])
			}
			// Nobody was looked up: no email refusal recorded for lux.
			var refused admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?type=membership.email_refused", w.root, nil, 200, &refused)
			if len(refused.Items) != 0 {
				t.Errorf("membership.email_refused events = %+v", refused.Items)
			}

			// Not a member until kay signs in through a trusted provider.
			memberOfAcme := func(userID string) *admin.Membership {
				var d admin.UserDetail
				w.mustCall("GET", "/api/v1/admin/users/"+userID, w.root, nil, 200, &d)
				for _, m := range d.Memberships {
					if m.OrganizationID == w.acme {
						return &m
					}
				}
				return nil
			}
			if m := memberOfAcme(kay); m != nil {
				t.Fatalf("kay is a member of acme without signing in: %+v", m)
			}
			var members admin.List[admin.Member]
			w.mustCall("GET", acme+"/members", lead, nil, 200, &members)
			for _, m := range members.Items {
				if m.UserID == kay {
					t.Fatalf("kay listed as a member: %+v", m)
				}
			}
			w.signIn("admin-console", "kay@example.com", "", "")
			if m := memberOfAcme(kay); m == nil || m.Status != "active" || m.RoleID != "role-viewer" || m.Source != "manual" {
				t.Fatalf("kay's membership after her sign-in = %+v", m)
			}
			// lux's sign-ins through the untrusted provider accept nothing.
			w.signInWith("lax", "admin-console", "lux@example.com", "", "")
			if m := memberOfAcme(w.userID("lux@example.com")); m != nil {
				t.Fatalf("an untrusted sign-in accepted the invitation: %+v", m)
			}

			// A suspension is not passed over; invitations for an active
			// status only.
			if status, body := w.call("POST", acme+"/members", lead, map[string]any{"email": "sue@example.com", "role": "viewer", "status": "suspended"}, nil); status != 400 ||
				!strings.Contains(body, `"field":"status"`) {
				t.Errorf("org admin invites as suspended = %d %s, want 400", status, body)
			}

			// Gatehouse administrators add directly, as before.
			w.signIn("admin-console", "dan@example.com", "", "")
			var m admin.Member
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"email": "dan@example.com", "role": "viewer"}, 201, &m)
			if m.Status != "active" || m.Email != "dan@example.com" {
				t.Fatalf("administrator's direct add = %+v", m)
			}
			w.mustCall("POST", acme+"/members", w.root, map[string]any{"user_id": w.userID("lux@example.com"), "role": "viewer"}, 201, nil)
			if status, body := w.call("POST", acme+"/members", w.root, map[string]any{"email": "ghost2@example.com", "role": "viewer"}, nil); status != 400 ||
				!strings.Contains(body, `"field":"email"`) {
				t.Errorf("administrator adds an unknown email = %d %s, want 400", status, body)
			}
		})
	}
}
