package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// maxRefreshStatements is what one refresh grant may send the database,
// counted at the driver (dbtest.Statements): statements, BEGIN and
// COMMIT alike.
const maxRefreshStatements = 2

const statementsYAML = `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    grant_types: [authorization_code, refresh_token]
  - id: grouped
    public: true
    redirect_uris: [http://127.0.0.1:9/grouped]
    groups:
      allow: ["dev:group:*"]
      strip_prefix: "dev:group:"
      include_org_roles: true
`

// TestRefreshStatements counts what one refresh grant sends the database,
// on SQLite and PostgreSQL: a public and a confidential client
// (client_secret_basic), a session without an organization, and one
// whose organization gives its user a role with 20 permissions (which the
// access token must carry), with the email_verified check, and a client
// whose tokens carry the groups claim with organization roles and
// preferred_username (issue 15: read with the token, no statement more).
// It fails above maxRefreshStatements, and logs the statements.
func TestRefreshStatements(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			st := &dbtest.Statements{}
			s := apptest.Start(t, apptest.Options{YAML: statementsYAML, Postgres: pg, Statements: st})
			ctx := context.Background()
			store := models.NewStore(s.DB)
			org := refreshOrgWithPermissions(t, s, 20)
			var slug string
			s.DB.Raw("SELECT slug FROM organizations WHERE id = ?", org).Scan(&slug)
			for _, tc := range []struct {
				name, client, secret string
				org                  *string
			}{
				{"public client, no organization", "spa", "", nil},
				{"public client, organization with 20 permissions", "spa", "", &org},
				{"client_secret_basic, no organization", "backend", "backend-secret-0123456789", nil},
				{"client_secret_basic, organization with 20 permissions", "backend", "backend-secret-0123456789", &org},
				{"groups with organization roles, organization with 20 permissions", "grouped", "", &org},
			} {
				t.Run(tc.name, func(t *testing.T) {
					u := &models.User{Email: models.NewID() + "@example.com", EmailVerified: true, Name: "Ada"}
					ident := &models.Identity{Provider: "dev", Subject: u.Email, Email: u.Email, EmailVerified: true,
						Username: "ada", UpstreamGroups: models.EncodeGroups([]string{"dev:group:eng", "other:x"})}
					if err := store.CreateUserWithIdentity(ctx, u, ident); err != nil {
						t.Fatal(err)
					}
					scope := "openid email profile"
					if tc.client == "grouped" {
						scope += " groups"
					}
					if tc.org != nil {
						if err := store.UpsertMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org,
							RoleID: "role-load-20"}); err != nil {
							t.Fatal(err)
						}
					}
					sess, err := s.Sessions.CreateSession(ctx, tokens.NewSession{UserID: u.ID, ClientID: tc.client, Provider: "dev",
						ActiveOrgID: tc.org, Scope: scope, AMR: []string{"pwd"}, IdentityID: ident.ID})
					if err != nil {
						t.Fatal(err)
					}
					refresh, err := s.Sessions.IssueRefreshToken(ctx, sess.ID, tc.client)
					if err != nil {
						t.Fatal(err)
					}
					// A first refresh warms the pool; the second is counted.
					for round := range 2 {
						form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
						user, pass := tc.client, tc.secret
						if tc.secret == "" {
							form.Set("client_id", tc.client)
							user = ""
						}
						st.Reset()
						status, out := tokenPost(t, s, form, user, pass)
						log := executed(st)
						if status != 200 {
							t.Fatalf("refresh = %d %v", status, out)
						}
						refresh = out["refresh_token"].(string)
						checkRefreshClaims(t, out, u, tc.org)
						checkRefreshGroups(t, out, tc.client == "grouped", slug+":load")
						if round == 0 {
							continue
						}
						var b strings.Builder
						for i, q := range log {
							fmt.Fprintf(&b, "\n  %d. %s", i+1, q)
						}
						t.Logf("%d statements:%s", len(log), b.String())
						if len(log) > maxRefreshStatements {
							t.Errorf("one refresh sent %d statements to the database, more than %d", len(log), maxRefreshStatements)
						}
					}
				})
			}
		})
	}
}

// refreshOrgWithPermissions creates an organization whose own role
// "role-load-20" carries n permissions, and returns its id.
func refreshOrgWithPermissions(t testing.TB, s *apptest.Server, n int) string {
	t.Helper()
	ctx := context.Background()
	store := models.NewStore(s.DB)
	org := &models.Organization{Slug: "load-" + strings.ToLower(models.NewID()[:8]), Name: "Load"}
	if err := store.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateRole(ctx, &models.Role{ID: "role-load-20", OrganizationID: &org.ID, Name: "load", Level: 20}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range n {
		p := &models.Permission{ID: models.NewID(), Name: fmt.Sprintf("resource%02d:read", i), CreatedAt: now}
		if err := s.DB.Create(p).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.DB.Create(&models.RolePermission{RoleID: "role-load-20", PermissionID: p.ID}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return org.ID
}

// checkRefreshClaims checks what the refreshed access and ID tokens say
// of the user and organization.
func checkRefreshClaims(t *testing.T, out map[string]any, u *models.User, org *string) {
	t.Helper()
	var at struct {
		Sub           string   `json:"sub"`
		Email         string   `json:"email"`
		EmailVerified *bool    `json:"email_verified"`
		OrgID         string   `json:"org_id"`
		Roles         []string `json:"roles"`
		Permissions   []string `json:"permissions"`
	}
	decodePayload(t, out["access_token"].(string), &at)
	if at.Sub != u.ID || at.Email != u.Email || at.EmailVerified == nil || !*at.EmailVerified {
		t.Fatalf("access token claims %+v", at)
	}
	if org == nil && (at.OrgID != "" || len(at.Permissions) != 0) {
		t.Fatalf("access token of a session without organization: %+v", at)
	}
	if org != nil && (at.OrgID != *org || len(at.Roles) != 1 || at.Roles[0] != "load" || len(at.Permissions) != 20 ||
		at.Permissions[0] != "resource00:read" || at.Permissions[19] != "resource19:read") {
		t.Fatalf("access token of a session with organization: %+v", at)
	}
	idt, _ := out["id_token"].(string)
	var id struct {
		Sub           string `json:"sub"`
		EmailVerified *bool  `json:"email_verified"`
	}
	decodePayload(t, idt, &id)
	if id.Sub != u.ID || id.EmailVerified == nil || !*id.EmailVerified {
		t.Fatalf("ID token claims %+v", id)
	}
}

// checkRefreshGroups checks the groups and preferred_username claims of
// a refresh: the identity's filtered groups and organization role for
// the grouped client, no groups for the others.
func checkRefreshGroups(t *testing.T, out map[string]any, grouped bool, orgRole string) {
	t.Helper()
	var at, id struct {
		Groups            []string `json:"groups"`
		PreferredUsername string   `json:"preferred_username"`
	}
	decodePayload(t, out["access_token"].(string), &at)
	decodePayload(t, out["id_token"].(string), &id)
	want := []string(nil)
	if grouped {
		want = []string{"eng", orgRole}
	}
	if !slices.Equal(at.Groups, want) || !slices.Equal(id.Groups, want) || id.PreferredUsername != "ada" {
		t.Fatalf("groups: access token %q, ID token %q %q; want %q", at.Groups, id.Groups, id.PreferredUsername, want)
	}
}

func decodePayload(t *testing.T, jwt string, v any) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// executed is what st recorded but the PREPAREs: a statement is prepared
// once per pooled connection (models' statement cache, pgx's), not per
// refresh, so one met on a connection the warm-up did not use is no
// statement of the refresh.
func executed(st *dbtest.Statements) []string {
	var out []string
	for _, q := range st.Log() {
		if !strings.HasPrefix(q, "PREPARE ") {
			out = append(out, q)
		}
	}
	return out
}
