package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
)

// TestAdminRotationWhilePending: the admin API refuses a rotation while
// the key of an earlier one is still pending (409, naming it), on SQLite
// and PostgreSQL. Every rotation keeps the earlier keys published until
// their tokens expire, so rotating in a loop grew the JWKS by a key each
// time (about 450 bytes for RS256) until verifiers, which read at most
// 1 MiB of it, could no longer refresh their keys.
func TestAdminRotationWhilePending(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			var rotated admin.SigningKey
			w.mustCall("POST", "/api/v1/admin/signing-keys/rotate", w.root, nil, 201, &rotated)
			for range 5 {
				status, body := w.call("POST", "/api/v1/admin/signing-keys/rotate", w.root, nil, nil)
				if status != http.StatusConflict || !strings.Contains(body, `"error":"conflict"`) || !strings.Contains(body, rotated.KID) {
					t.Fatalf("rotation while %s is pending = %d %s", rotated.KID, status, body)
				}
			}
			var keys admin.List[admin.SigningKey]
			w.mustCall("GET", "/api/v1/admin/signing-keys", w.root, nil, 200, &keys)
			if len(keys.Items) != 2 || keys.Items[0].KID != rotated.KID || keys.Items[0].State != "pending" {
				t.Fatalf("keys = %+v", keys.Items)
			}
			resp, err := http.Get(w.s.URL + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var jwks struct{ Keys []json.RawMessage }
			if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || len(jwks.Keys) != 2 {
				t.Fatalf("JWKS holds %d keys (%v), want 2", len(jwks.Keys), err)
			}
			var events admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?type=signing_key.rotated", w.root, nil, 200, &events)
			if len(events.Items) != 1 {
				t.Fatalf("%d signing_key.rotated events, want 1 (refusals change nothing)", len(events.Items))
			}
		})
	}
}
