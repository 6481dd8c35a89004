package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
)

// TestAdminSessionCheckFaultIsNot401: when the admin API's session check
// meets a database error that is not transient (a broken schema, say),
// the answer is 503 with Retry-After and no trace of the error: never a
// 401 that tells the console to sign the person out, never the SQL text
// in the body or the challenge.
func TestAdminSessionCheckFaultIsNot401(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: rbacYAML})
	w := &world{t: t, s: s}
	if _, err := s.Admin.GrantAdmin(context.Background(), "root@example.com"); err != nil {
		t.Fatal(err)
	}
	w.root = w.signIn("admin-console", "root@example.com", "", models.AdminOrgID).AccessToken
	db := s.DB.SQL
	if _, err := db.Exec(`ALTER TABLE users RENAME COLUMN disabled TO disabled_broken`); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/admin/orgs", nil)
	req.Header.Set("Authorization", "Bearer "+w.root)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := db.Exec(`ALTER TABLE users RENAME COLUMN disabled_broken TO disabled`); err != nil {
		t.Fatal(err)
	}
	seen := string(body) + resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		strings.Contains(seen, "disabled") || strings.Contains(seen, "SQL") || strings.Contains(seen, "column") {
		t.Fatalf("admin API with the session check failing = %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}

// TestMalformedFormsAre400: a form that cannot be parsed (a bad
// percent-escape in the body or the query) is the sender's mistake: 400,
// a page for browsers and JSON for API callers, never a 500.
func TestMalformedFormsAre400(t *testing.T) {
	s := apptest.Start(t, apptest.Options{})
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, target, body, accept string
		json                       bool
	}{
		{"callback body", "/auth/callback/dev", "state=x&email=%zz", "", false},
		{"callback query", "/auth/callback/dev?a=%zz", "state=x", "", false},
		{"logout from a browser", "/auth/logout", "id_token_hint=%zz", "", false},
		{"logout asking for JSON", "/auth/logout", "id_token_hint=%zz", "application/json", true},
		{"token endpoint", "/auth/token", "grant_type=%zz", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, s.URL+tc.target, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", form)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			isJSON := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")
			if resp.StatusCode != http.StatusBadRequest || isJSON != tc.json || strings.Contains(string(body), "%zz") ||
				strings.Contains(string(body), "escape") {
				t.Fatalf("= %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
}
