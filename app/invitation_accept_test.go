package app_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
)

// TestInvitationKeepsHigherOrSuspendedMembership: accepting an invitation
// replaces the person's membership of the organization only where its
// inviter could have changed it: it does not lower a role above the
// invited one, nor lift a suspension; it does raise a lower role.
func TestInvitationKeepsHigherOrSuspendedMembership(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			acme := "/api/v1/admin/orgs/" + w.acme
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken // admin (80) of acme
			people := []struct {
				email, role, invite string
				suspended           bool
				wantRole, wantStat  string
			}{
				{"own@example.com", "owner", "viewer", false, "role-owner", "active"},
				{"sus@example.com", "viewer", "member", true, "role-viewer", "suspended"},
				{"pat@example.com", "viewer", "member", false, "role-member", "active"},
			}
			for _, p := range people {
				w.signIn("admin-console", p.email, "", "")
				id := w.userID(p.email)
				w.mustCall("POST", acme+"/members", w.root, map[string]any{"user_id": id, "role": p.role}, 201, nil)
				if p.suspended {
					w.mustCall("PATCH", acme+"/members/"+id, w.root, map[string]any{"status": "suspended"}, 200, nil)
				}
				w.mustCall("POST", acme+"/invitations", lead, map[string]any{"email": p.email, "role": p.invite}, 201, nil)
				w.signIn("admin-console", p.email, "", "")
				var d admin.UserDetail
				w.mustCall("GET", "/api/v1/admin/users/"+id, w.root, nil, 200, &d)
				if len(d.Memberships) != 1 || d.Memberships[0].RoleID != p.wantRole || d.Memberships[0].Status != p.wantStat {
					t.Errorf("%s (%s) invited as %s: memberships %+v, want %s %s", p.email, p.role, p.invite, d.Memberships, p.wantRole, p.wantStat)
				}
			}
			var accepted admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?type=invitation.accepted&org_id="+w.acme, w.root, nil, 200, &accepted)
			kept := 0
			for _, e := range accepted.Items {
				if strings.Contains(string(e.Details), "membership_kept") {
					kept++
				}
			}
			if len(accepted.Items) != 3 || kept != 2 {
				t.Fatalf("invitation.accepted events = %+v, want 3 with 2 keeping the membership", accepted.Items)
			}
		})
	}
}
