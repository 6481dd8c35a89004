package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// provisioningYAML: two dev providers that link by verified email, and
// org-sync rules for the dev groups.
const provisioningYAML = flowYAML + `
providers:
  - {name: dev, type: dev, link_by_email: true}
  - {name: dev2, type: dev, display_name: Second sign-in, link_by_email: true}
org_sync:
  on_leave: remove
  auto_create_orgs: true
  rules:
    - {match: "dev:group:eng", org: acme, role: member}
    - {match: "dev:group:leads", org: acme, role: admin}
    - {match: "dev:group:team-*", org: "{org}", role: viewer}
`

// provisioningServer runs Gatehouse with provisioningYAML and returns it
// with a sign-in function: a new browser session through provider, as
// email in groups, exchanged for tokens (organization, when set, is the
// authorization request's).
func provisioningServer(t *testing.T, pg bool) (*apptest.Server, func(provider, email, groups, organization string) *oauth2.Token) {
	t.Helper()
	// No reuse grace: a refresh token is good exactly once.
	s := apptest.Start(t, apptest.Options{YAML: provisioningYAML, Postgres: pg, Env: map[string]string{"GATEHOUSE_REFRESH_REUSE_GRACE": "1ns"}})
	conf := &oauth2.Config{ClientID: "spa", RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{oidc.ScopeOpenID, "email"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	signIn := func(provider, email, groups, organization string) *oauth2.Token {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", provider)}
		if organization != "" {
			opts = append(opts, oauth2.SetAuthURLParam("organization", organization))
		}
		resp, body := newBrowser(t).devSignIn(conf.AuthCodeURL("st", opts...), email, groups)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in of %s at %s = %d %s", email, provider, resp.StatusCode, body)
		}
		target, _ := url.Parse(resp.Header.Get("Location"))
		tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		return tok
	}
	return s, signIn
}

// grants reads org_id, roles and permissions of an access token through
// introspection.
func grants(t *testing.T, s *apptest.Server, accessToken string) (string, []string, []string) {
	t.Helper()
	info := introspect(t, s, accessToken)
	if info["active"] != true {
		t.Fatalf("access token inactive: %v", info)
	}
	list := func(v any) []string {
		out := []string{}
		for _, x := range asSlice(v) {
			out = append(out, x.(string))
		}
		return out
	}
	org, _ := info["org_id"].(string)
	return org, list(info["roles"]), list(info["permissions"])
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// refresh redeems a refresh token, optionally switching organization.
func refresh(t *testing.T, s *apptest.Server, tok *oauth2.Token, organization string) (int, map[string]any) {
	t.Helper()
	return refreshWith(t, s, tok, "spa", "organization", organization)
}

// refreshWith redeems tok's refresh token as the public client, with the
// optional parameter name=value, and keeps the new tokens in tok.
func refreshWith(t *testing.T, s *apptest.Server, tok *oauth2.Token, client, name, value string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {client}}
	if value != "" {
		form.Set(name, value)
	}
	status, out := tokenPost(t, s, form, "", "")
	if status == 200 {
		tok.AccessToken, tok.RefreshToken = out["access_token"].(string), out["refresh_token"].(string)
	}
	return status, out
}

func me(t *testing.T, s *apptest.Server, accessToken string) map[string]any {
	t.Helper()
	resp, body := get(t, s.URL+"/auth/me", "Authorization", "Bearer "+accessToken)
	if resp.StatusCode != 200 {
		t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	return out
}

// TestOrgSyncThroughSignIn drives org sync end to end: the dev form's
// groups and the YAML rules decide memberships; access tokens carry the
// active membership's org, roles and permissions; a role change made by a
// later sign-in shows at the next refresh of an earlier session; the
// refresh grant's organization switches org.
func TestOrgSyncThroughSignIn(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, signIn := provisioningServer(t, pg)
			ctx := context.Background()
			acme, err := s.Store.FindOrganizationBySlug(ctx, "acme")
			if err == nil {
				t.Fatalf("acme exists before anyone signed in: %+v", acme)
			}

			// Joining: member of acme (auto-created), tokens say so.
			first := signIn("dev", "ada@example.com", "eng", "")
			if acme, err = s.Store.FindOrganizationBySlug(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			org, roles, perms := grants(t, s, first.AccessToken)
			if org != acme.ID || !slices.Equal(roles, []string{"member"}) || !slices.Equal(perms, []string{"*:read", "*:write"}) {
				t.Fatalf("first token: org %s roles %v permissions %v", org, roles, perms)
			}

			// Another sign-in reports "leads": admin from now on. The first
			// session's next refresh carries the new role.
			signIn("dev", "ada@example.com", "eng, leads", "")
			if status, out := refresh(t, s, first, ""); status != 200 {
				t.Fatalf("refresh = %d %v", status, out)
			}
			if org, roles, perms = grants(t, s, first.AccessToken); org != acme.ID || !slices.Equal(roles, []string{"admin"}) || !slices.Equal(perms, []string{"*"}) {
				t.Fatalf("after the role change: org %s roles %v permissions %v", org, roles, perms)
			}

			// Leaving acme and joining team-red (created from the {org} rule).
			third := signIn("dev", "ada@example.com", "team-red", "")
			red, err := s.Store.FindOrganizationBySlug(ctx, "team-red")
			if err != nil {
				t.Fatal(err)
			}
			if org, roles, _ = grants(t, s, third.AccessToken); org != red.ID || !slices.Equal(roles, []string{"viewer"}) {
				t.Fatalf("third session: org %s roles %v", org, roles)
			}
			refresh(t, s, first, "")
			if org, roles, perms = grants(t, s, first.AccessToken); org != "" || len(roles) != 0 || len(perms) != 0 {
				t.Fatalf("the removed membership still grants: org %s roles %v permissions %v", org, roles, perms)
			}
			// Switching organization with the refresh grant re-reads the grants;
			// an organization the user is not an active member of is refused,
			// and the refresh token stays good.
			if status, out := refresh(t, s, first, acme.ID); status != 400 || out["error"] != "invalid_request" {
				t.Fatalf("switch to a left organization = %d %v", status, out)
			}
			if status, out := refresh(t, s, first, red.ID); status != 200 {
				t.Fatalf("switch = %d %v", status, out)
			}
			if org, roles, _ = grants(t, s, first.AccessToken); org != red.ID || !slices.Equal(roles, []string{"viewer"}) {
				t.Fatalf("after switching: org %s roles %v", org, roles)
			}

			// The authorization request's organization picks the session's org.
			both := signIn("dev", "ada@example.com", "eng,team-red", acme.ID)
			if org, _, _ = grants(t, s, both.AccessToken); org != acme.ID {
				t.Fatalf("requested organization: org %s, want acme", org)
			}
			if m := me(t, s, both.AccessToken); m["active_org_id"] != acme.ID || len(asSlice(m["organizations"])) != 2 {
				t.Fatalf("/auth/me = %v", m)
			}

			var added, removed, created int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", provisioning.AuditMembershipAdded).Scan(&added)
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", provisioning.AuditMembershipRemoved).Scan(&removed)
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", provisioning.AuditOrgCreated).Scan(&created)
			if added != 3 || removed != 1 || created != 2 {
				t.Fatalf("audit events: %d added, %d removed, %d organizations created", added, removed, created)
			}
		})
	}
}

// TestMeOrganizations: /auth/me lists each membership with its
// organization and role, and reads them in one query however many there
// are.
func TestMeOrganizations(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, signIn := provisioningServer(t, pg)
			tok := signIn("dev", "ada@example.com", "leads,team-red,team-blue", "")
			var orgQueries atomic.Int64
			count := func(db *gorm.DB) {
				if strings.Contains(db.Statement.SQL.String(), "organizations") {
					orgQueries.Add(1)
				}
			}
			if err := s.DB.Callback().Query().After("gorm:query").Register("test:count_query", count); err != nil {
				t.Fatal(err)
			}
			if err := s.DB.Callback().Row().After("gorm:row").Register("test:count_row", count); err != nil {
				t.Fatal(err)
			}
			m := me(t, s, tok.AccessToken)
			if n := orgQueries.Load(); n != 1 {
				t.Fatalf("/auth/me read organizations in %d queries, want 1", n)
			}
			var got []string
			active := 0
			for _, o := range asSlice(m["organizations"]) {
				org := o.(map[string]any)
				keys := slices.Sorted(maps.Keys(org))
				if !slices.Equal(keys, []string{"active", "id", "name", "role", "slug", "source", "status"}) {
					t.Fatalf("organization fields %v", keys)
				}
				if org["active"] == true {
					active++
					if org["id"] != m["active_org_id"] {
						t.Fatalf("active organization %v, active_org_id %v", org["id"], m["active_org_id"])
					}
				}
				got = append(got, fmt.Sprintf("%s:%s:%s:%s", org["slug"], org["role"], org["status"], org["source"]))
			}
			slices.Sort(got)
			want := []string{"acme:admin:active:sync:dev", "team-blue:viewer:active:sync:dev", "team-red:viewer:active:sync:dev"}
			if !slices.Equal(got, want) || active != 1 {
				t.Fatalf("/auth/me organizations %v (%d active), want %v (1 active)", got, active, want)
			}
		})
	}
}

// TestLinkingAndDisabledThroughSignIn: a second provider with the same
// verified email joins the user (visible in /auth/me); once disabled, the
// user's sign-in shows a clear page, is audited, issues nothing, and the
// existing session stops refreshing.
func TestLinkingAndDisabledThroughSignIn(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, signIn := provisioningServer(t, pg)
			tok := signIn("dev", "grace@example.com", "", "")
			signIn("dev2", "Grace@Example.com", "", "")
			m := me(t, s, tok.AccessToken)
			var providers []string
			for _, id := range asSlice(m["identities"]) {
				providers = append(providers, id.(map[string]any)["provider"].(string))
			}
			if !slices.Equal(providers, []string{"dev", "dev2"}) {
				t.Fatalf("identities in /auth/me = %v", providers)
			}
			var users int64
			s.DB.Raw("SELECT COUNT(*) FROM users").Scan(&users)
			if users != 1 {
				t.Fatalf("%d users after linking", users)
			}

			s.DB.Model(&models.User{}).Where("id = ?", m["id"]).Update("disabled", true)
			b := newBrowser(t)
			authURL := s.URL + "/auth/login?" + url.Values{"client_id": {"spa"}, "response_type": {"code"}, "provider": {"dev2"},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode()
			resp, body := b.devSignIn(authURL, "grace@example.com", "")
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Account disabled") || resp.Header.Get("Location") != "" {
				t.Fatalf("disabled sign-in = %d %s", resp.StatusCode, body)
			}
			var refused int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND subject_user_id = ? AND client_id = ?",
				provisioning.AuditLoginRefused, m["id"], "spa").Scan(&refused)
			if refused != 1 {
				t.Fatalf("refusal audit events = %d", refused)
			}
			var codes int64
			s.DB.Raw("SELECT COUNT(*) FROM authorization_codes").Scan(&codes)
			if codes != 2 {
				t.Fatalf("a code was issued to a disabled user (%d codes)", codes)
			}
			if status, out := refresh(t, s, tok, ""); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh of a disabled user = %d %v", status, out)
			}
		})
	}
}

// TestInvitationThroughSignIn: an invitation made through the service is
// activated by the first sign-in with that verified email.
func TestInvitationThroughSignIn(t *testing.T) {
	s, signIn := provisioningServer(t, false)
	ctx := context.Background()
	org := &models.Organization{Slug: "reports", Name: "Reports"}
	if err := s.Store.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Provisioning.Invite(ctx, provisioning.NewInvitation{OrganizationID: org.ID, Email: "lin@example.com", Role: "viewer"}, provisioning.Meta{}); err != nil {
		t.Fatal(err)
	}
	tok := signIn("dev", "lin@example.com", "", "")
	if gotOrg, roles, perms := grants(t, s, tok.AccessToken); gotOrg != org.ID || !slices.Equal(roles, []string{"viewer"}) || !slices.Equal(perms, []string{"*:read"}) {
		t.Fatalf("invited user's token: org %s roles %v permissions %v", gotOrg, roles, perms)
	}
	list, _ := s.Provisioning.ListInvitations(ctx, org.ID)
	if len(list) != 1 || list[0].Status != models.InvitationAccepted {
		t.Fatalf("invitations = %+v", list)
	}
}
