package app_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// TestGitHubSignInThroughGatehouse drives a browser through Gatehouse and
// a fake GitHub, as a downstream app (x/oauth2 + go-oidc) would: the
// sign-in ends with Gatehouse tokens for the GitHub identity; a person
// outside the allowed organization, or a GitHub failure half-way, ends on
// a page that says why, with an audit event and no user created.
func TestGitHubSignInThroughGatehouse(t *testing.T) {
	gh := githubtest.New(t)
	gh.PageSize = 1 // every listing takes several pages
	s := apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_DEV_LOGIN": "false"}, YAML: `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
  - id: backend
    secret: backend-secret-0123456789
    grant_types: [client_credentials]
    introspect_any: true
` + githubProviderYAML(gh, "allowed_organizations: [acme]") + `
org_sync:
  auto_create_orgs: true
  rules:
    - {match: "github:org:acme", org: acme, role: member}
    - {match: "github:team:acme/*", org: acme, role: admin}
`})
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "spa", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:9/callback",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}

	signIn := func(t *testing.T, verifier string) (*http.Response, string) {
		t.Helper()
		return githubBrowserSignIn(t, s, gh, conf, verifier)
	}
	countRows := func(query string, args ...any) int64 {
		var n int64
		s.DB.Raw(query, args...).Scan(&n)
		return n
	}

	t.Run("member of the allowed organization", func(t *testing.T) {
		gh.SignIn(githubtest.User{ID: 9001, Login: "grace", Name: "Grace Hopper",
			Emails: []githubtest.Email{{Address: "grace@acme.example", Primary: true, Verified: true}},
			Orgs:   []string{"Acme", "navy"}, Teams: []githubtest.Team{{Org: "Acme", Slug: "compilers"}}})
		verifier := oauth2.GenerateVerifier()
		resp, body := signIn(t, verifier)
		target, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(target.String(), conf.RedirectURL+"?") ||
			target.Query().Get("state") != "app-state" {
			t.Fatalf("callback = %d %q %s", resp.StatusCode, target, body)
		}
		tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, rawID)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Email         string `json:"email"`
			EmailVerified bool   `json:"email_verified"`
			Name          string `json:"name"`
			IDP           string `json:"idp"`
		}
		_ = idt.Claims(&claims)
		if claims.Email != "grace@acme.example" || !claims.EmailVerified || claims.Name != "Grace Hopper" {
			t.Fatalf("ID token claims = %+v", claims)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, body = newBrowser(t).do(req)
		var me struct {
			Identities []struct{ Provider, Subject string }
		}
		_ = json.Unmarshal([]byte(body), &me)
		if resp.StatusCode != 200 || len(me.Identities) != 1 || me.Identities[0].Provider != "github" || me.Identities[0].Subject != "9001" {
			t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
		}
		// The org and team were synced: the highest matching role wins.
		org, roles, _ := grants(t, s, tok.AccessToken)
		if org == "" || strings.Join(roles, ",") != "admin" {
			t.Fatalf("synced grants: org %q roles %v", org, roles)
		}
		// Every listing was followed to its last page.
		reqs := strings.Join(gh.Requests(), "\n")
		for _, r := range []string{"/api/v3/user/orgs?page=2&per_page=100", "/api/v3/user/emails?per_page=100"} {
			if !strings.Contains(reqs, r) {
				t.Fatalf("GitHub never saw %s:\n%s", r, reqs)
			}
		}
	})

	t.Run("outside the allowed organization", func(t *testing.T) {
		users := countRows("SELECT COUNT(*) FROM users")
		gh.SignIn(githubtest.User{ID: 9002, Login: "mallory", Orgs: []string{"secret-club"},
			Emails: []githubtest.Email{{Address: "mallory@example.com", Primary: true, Verified: true}}})
		resp, body := signIn(t, oauth2.GenerateVerifier())
		page := html.UnescapeString(body)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" ||
			!strings.Contains(page, "This GitHub account is not in an allowed organization.") || strings.Contains(page, "secret-club") {
			t.Fatalf("refusal = %d %s", resp.StatusCode, page)
		}
		if n := countRows("SELECT COUNT(*) FROM audit_events WHERE type = ? AND provider = ? AND details LIKE ?",
			"login.failed", "github", "%allowed_organizations%"); n != 1 {
			t.Fatalf("refusal audit events = %d", n)
		}
		if n := countRows("SELECT COUNT(*) FROM users"); n != users {
			t.Fatalf("users went from %d to %d", users, n)
		}
	})

	t.Run("GitHub fails half-way through the team listing", func(t *testing.T) {
		users := countRows("SELECT COUNT(*) FROM users")
		gh.SignIn(githubtest.User{ID: 9003, Login: "linus", Orgs: []string{"acme"},
			Teams:  []githubtest.Team{{Org: "acme", Slug: "kernel"}, {Org: "acme", Slug: "git"}},
			Emails: []githubtest.Email{{Address: "linus@example.com", Primary: true, Verified: true}}})
		gh.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/user/teams") && r.URL.Query().Get("page") == "2" {
				githubtest.ServerError(w)
				return true
			}
			return false
		})
		defer gh.SetIntercept(nil)
		resp, body := signIn(t, oauth2.GenerateVerifier())
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(html.UnescapeString(body), "GitHub is unavailable, try again") {
			t.Fatalf("failure page = %d %s", resp.StatusCode, body)
		}
		if n := countRows("SELECT COUNT(*) FROM users"); n != users {
			t.Fatalf("users went from %d to %d", users, n)
		}
		if n := countRows("SELECT COUNT(*) FROM identities WHERE provider = ? AND subject = ?", "github", "9003"); n != 0 {
			t.Fatalf("a half-read GitHub account was provisioned")
		}
	})
}

// githubProviderYAML is the providers section of a configuration: one
// provider "github" on the fake, with one more setting.
func githubProviderYAML(gh *githubtest.Server, setting string) string {
	return `providers:
  - name: github
    type: github
    client_id: ` + githubtest.ClientID + `
    client_secret: ` + githubtest.ClientSecret + `
    base_url: ` + gh.URL + `
    ` + setting
}

// githubBrowserSignIn follows the redirects by hand: Gatehouse → GitHub →
// Gatehouse's callback, which answers with a redirect or a page.
func githubBrowserSignIn(t *testing.T, s *apptest.Server, gh *githubtest.Server, conf *oauth2.Config, verifier string) (*http.Response, string) {
	t.Helper()
	b := newBrowser(t)
	resp, _ := b.get(conf.AuthCodeURL("app-state", oauth2.S256ChallengeOption(verifier)))
	toGitHub := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(toGitHub, gh.URL+"/login/oauth/authorize?") {
		t.Fatalf("authorize = %d, to %q", resp.StatusCode, toGitHub)
	}
	resp, _ = b.get(toGitHub)
	callback := resp.Header.Get("Location")
	if !strings.HasPrefix(callback, s.URL+"/auth/callback/github?") {
		t.Fatalf("GitHub sent the browser to %q", callback)
	}
	return b.get(callback)
}

// TestGitHubPartialListingKeepsMemberships: an organization that starts
// enforcing SAML single sign-on vanishes from GitHub's listings, which
// say so (X-GitHub-SSO: partial-results). The person's synced membership
// in it survives the sign-in, with an audit event saying why, while
// another organization is joined; once GitHub answers in full again, a
// real departure is applied.
func TestGitHubPartialListingKeepsMemberships(t *testing.T) {
	gh := githubtest.New(t)
	s := apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_DEV_LOGIN": "false"}, YAML: `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
` + githubProviderYAML(gh, "sync_groups: true") + `
org_sync:
  auto_create_orgs: true
  rules:
    - {match: "github:org:*", org: "{org}", role: member}
`})
	conf := &oauth2.Config{ClientID: "spa", RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token"}}
	count := func(query string, args ...any) int64 {
		var n int64
		s.DB.Raw(query, args...).Scan(&n)
		return n
	}
	steps := []struct {
		name    string
		orgs    []string
		saml    []string // organizations enforcing SAML SSO, hidden from the listings
		want    []string // slug:status of each membership
		kept    int64    // org_sync.removal_skipped events so far
		removed int64
	}{
		{"member of acme and globex", []string{"acme", "globex"}, nil, []string{"acme:active", "globex:active"}, 0, 0},
		{"globex enforces SAML SSO, initech joined", []string{"acme", "globex", "initech"}, []string{"globex"},
			[]string{"acme:active", "globex:active", "initech:active"}, 1, 0},
		{"authorized again, globex left for real", []string{"acme", "initech"}, nil,
			[]string{"acme:active", "initech:active"}, 1, 1},
	}
	for _, st := range steps {
		gh.EnforceSAML(st.saml...)
		gh.SignIn(githubtest.User{ID: 4242, Login: "ada", Orgs: st.orgs,
			Emails: []githubtest.Email{{Address: "ada@example.com", Primary: true, Verified: true}}})
		if resp, body := githubBrowserSignIn(t, s, gh, conf, oauth2.GenerateVerifier()); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: sign-in = %d %s", st.name, resp.StatusCode, body)
		}
		var got []string
		s.DB.Raw(`SELECT organizations.slug || ':' || memberships.status FROM memberships
			JOIN organizations ON organizations.id = memberships.organization_id
			JOIN identities ON identities.user_id = memberships.user_id
			WHERE identities.provider = ? AND identities.subject = ? ORDER BY organizations.slug`, "github", "4242").Scan(&got)
		if strings.Join(got, " ") != strings.Join(st.want, " ") {
			t.Fatalf("%s: memberships %v, want %v", st.name, got, st.want)
		}
		kept := count("SELECT COUNT(*) FROM audit_events WHERE type = ? AND details LIKE ?", provisioning.AuditSyncRemovalSkipped, "%left groups out%")
		removed := count("SELECT COUNT(*) FROM audit_events WHERE type = ?", provisioning.AuditMembershipRemoved)
		if kept != st.kept || removed != st.removed {
			t.Fatalf("%s: %d removals skipped and %d made, want %d and %d", st.name, kept, removed, st.kept, st.removed)
		}
	}
}
