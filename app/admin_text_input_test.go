package app_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
)

// TestAdminTextInput: a NUL or invalid UTF-8 in an admin API route
// parameter, query parameter or JSON string is a 400 naming it, on
// SQLite and PostgreSQL. PostgreSQL refused such text with an error the
// API answered as a 500, and SQLite cut the user search's pattern at the
// NUL, so q=%00 listed every user.
func TestAdminTextInput(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			for _, tc := range []struct {
				method, path string
				body         any
				field        string
			}{
				{"GET", "/api/v1/admin/users?q=%00", nil, "q"},
				{"GET", "/api/v1/admin/users?q=a%00b", nil, "q"},
				{"GET", "/api/v1/admin/users?email=%FF", nil, "email"},
				{"GET", "/api/v1/admin/users/a%00", nil, "user_id"},
				{"GET", "/api/v1/admin/users/a%FF/sessions", nil, "user_id"},
				{"GET", "/api/v1/admin/orgs/a%00", nil, "org_id"},
				{"GET", "/api/v1/admin/clients/a%00", nil, "client_id"},
				{"GET", "/api/v1/admin/audit-events?client_id=%00", nil, "client_id"},
				{"GET", "/api/v1/admin/audit-events?type=%FF", nil, "type"},
				{"GET", "/api/v1/admin/activity?bucket=%00", nil, "bucket"},
				{"POST", "/api/v1/admin/orgs/" + w.acme + "/invitations", `{"email":"new@example.com","role":"viewer\u0000"}`, "body"},
				{"POST", "/api/v1/admin/orgs", `{"slug":"nul","name":"a\u0000b"}`, "body"},
			} {
				status, body := w.call(tc.method, tc.path, w.root, tc.body, nil)
				if status != 400 || !strings.Contains(body, `"field":"`+tc.field+`"`) {
					t.Errorf("%s %s = %d %s, want 400 naming %s", tc.method, tc.path, status, body, tc.field)
				}
			}
			// Without a token it is still 401, and plain text still works.
			if status, _ := w.call("GET", "/api/v1/admin/users?q=%00", "", nil, nil); status != 401 {
				t.Errorf("without a token = %d", status)
			}
			var found admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?q=%C3%A9%5C", w.root, nil, 200, &found)
			w.mustCall("POST", "/api/v1/admin/orgs", w.root, `{"slug":"plain","name":"Caf\u00e9 \\u0000 literal"}`, 201, nil)
		})
	}
}
