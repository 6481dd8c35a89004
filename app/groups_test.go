package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// groupsYAML: a GitHub and an Okta-like OIDC upstream; a Kubernetes-like
// client that sees the typed strings as they are, an oauth2-proxy-like
// confidential client that sees them stripped plus its Gatehouse
// organization roles, and a client without a groups block.
func groupsYAML(gh *githubtest.Server, okta *providertest.Server) string {
	return fmt.Sprintf(`
clients:
  - id: kubectl
    public: true
    redirect_uris: [http://127.0.0.1:9/kubectl]
    groups:
      allow: ["github:team:acme/*", "oidc:group:*"]
  - id: proxy
    secret: proxy-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/proxy]
    groups:
      allow: ["github:team:acme/platform-*", "oidc:group:eng*"]
      strip_prefix: ["github:team:", "oidc:group:"]
      include_org_roles: true
  - id: plain
    public: true
    redirect_uris: [http://127.0.0.1:9/plain]
providers:
  - name: github
    type: github
    client_id: %s
    client_secret: %s
    base_url: %s
    sync_groups: true
  - {name: okta, type: oidc, issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true,
     scopes: [openid, email, profile, groups], claims: {groups: groups}}
org_sync:
  auto_create_orgs: true
  rules:
    - {match: "github:org:acme", org: acme, role: member}
    - {match: "github:team:acme/platform-*", org: acme, role: admin}
`, githubtest.ClientID, githubtest.ClientSecret, gh.URL, okta.Issuer, okta.ClientID, okta.ClientSecret)
}

// groupsClaims are what a relying party reads from a token or UserInfo.
type groupsClaims struct {
	Groups            []string `json:"groups"`
	PreferredUsername string   `json:"preferred_username"`
}

// TestGroupsReachRelyingParties signs in through GitHub and an OIDC
// upstream with stock clients (x/oauth2 + go-oidc), and checks the exact
// strings an `--allowed-group` (oauth2-proxy), `--oidc-groups-claim`
// (Kubernetes) or a Grafana/Argo CD policy compares: the same in the ID
// token, UserInfo and the access token, filtered per client, kept by a
// refresh, and following the upstream at the next sign-in. A client
// without the scope gets no claim; a client without a groups block may
// not ask for it; a claim over the bound is left out, audited.
func TestGroupsReachRelyingParties(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			testGroupsReachRelyingParties(t, pg)
		})
	}
}

func testGroupsReachRelyingParties(t *testing.T, pg bool) {
	gh := githubtest.New(t)
	oktaUser := providertest.DefaultUser()
	oktaUser["preferred_username"] = "ada@corp.example"
	oktaUser["groups"] = []any{"engineering", "Platform Admins", "finance"}
	okta := providertest.New(t, providertest.Options{User: oktaUser, UserInfoOnly: []string{"groups"}})
	s := apptest.Start(t, apptest.Options{YAML: groupsYAML(gh, okta), Postgres: pg,
		Env: map[string]string{"GATEHOUSE_DEV_LOGIN": "false"}})
	okta.SetRedirectURIs(s.URL + "/auth/callback/okta")
	ctx := context.Background()
	op, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	config := func(client, secret string, scopes ...string) *oauth2.Config {
		return &oauth2.Config{ClientID: client, ClientSecret: secret, Endpoint: op.Endpoint(),
			RedirectURL: "http://127.0.0.1:9/" + client, Scopes: scopes}
	}
	// signIn returns the tokens of a sign-in at provider, with the ID
	// token verified by go-oidc.
	signIn := func(t *testing.T, conf *oauth2.Config, provider string) (*oauth2.Token, groupsClaims) {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		target := newBrowser(t).followToClient(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("provider", provider)))
		if target.Query().Get("code") == "" {
			t.Fatalf("client redirect = %s", target)
		}
		tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok, verifiedID(t, op, conf.ClientID, tok)
	}
	userinfo := func(t *testing.T, accessToken string) groupsClaims {
		t.Helper()
		ui, err := op.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken}))
		if err != nil {
			t.Fatal(err)
		}
		var c groupsClaims
		if err := ui.Claims(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// same checks that the ID token, UserInfo and the access token state
	// exactly want (nil: no claim at all) and the username.
	same := func(t *testing.T, tok *oauth2.Token, id groupsClaims, want []string, username string) {
		t.Helper()
		ui := userinfo(t, tok.AccessToken)
		at := jwtClaims(t, tok.AccessToken)
		var atGroups []string
		if v, ok := at["groups"]; ok {
			atGroups = []string{}
			for _, g := range v.([]any) {
				atGroups = append(atGroups, g.(string))
			}
		}
		for where, got := range map[string][]string{"ID token": id.Groups, "UserInfo": ui.Groups, "access token": atGroups} {
			if !slices.Equal(got, want) || (want == nil) != (got == nil) {
				t.Errorf("%s groups = %q, want %q", where, got, want)
			}
		}
		if id.PreferredUsername != username || ui.PreferredUsername != username {
			t.Errorf("preferred_username: ID token %q, UserInfo %q, want %q", id.PreferredUsername, ui.PreferredUsername, username)
		}
	}
	refresh := func(t *testing.T, conf *oauth2.Config, tok *oauth2.Token) (*oauth2.Token, groupsClaims) {
		t.Helper()
		next, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatal(err)
		}
		return next, verifiedID(t, op, conf.ClientID, next)
	}

	grace := githubtest.User{ID: 4242, Login: "grace-h", Name: "Grace Hopper",
		Emails: []githubtest.Email{{Address: "grace@acme.example", Primary: true, Verified: true}},
		Orgs:   []string{"Acme", "navy"},
		Teams: []githubtest.Team{{Org: "Acme", Slug: "Platform-SRE"}, {Org: "acme", Slug: "compilers"},
			{Org: "navy", Slug: "cobol"}}}
	kubectl := config("kubectl", "", oidc.ScopeOpenID, "profile", "email", "groups", "offline_access")
	proxy := config("proxy", "proxy-secret-0123456789", oidc.ScopeOpenID, "profile", "email", "groups")

	t.Run("GitHub teams", func(t *testing.T) {
		gh.SignIn(grace)
		tok, id := signIn(t, kubectl, "github")
		// GitHub names are lowercased and sorted; teams are org/slug.
		same(t, tok, id, []string{"github:team:acme/compilers", "github:team:acme/platform-sre"}, "grace-h")
		tok, id = refresh(t, kubectl, tok)
		same(t, tok, id, []string{"github:team:acme/compilers", "github:team:acme/platform-sre"}, "grace-h")

		ptok, pid := signIn(t, proxy, "github")
		// Stripped, then the organization role org sync gave her.
		same(t, ptok, pid, []string{"acme/platform-sre", "acme:admin"}, "grace-h")
		ptok, pid = refresh(t, proxy, ptok)
		same(t, ptok, pid, []string{"acme/platform-sre", "acme:admin"}, "grace-h")

		// She leaves the platform team; her next sign-in stores it, and
		// the first session's next refresh says so.
		left := grace
		left.Teams = []githubtest.Team{{Org: "acme", Slug: "compilers"}}
		gh.SignIn(left)
		signIn(t, kubectl, "github")
		tok, id = refresh(t, kubectl, tok)
		same(t, tok, id, []string{"github:team:acme/compilers"}, "grace-h")
		ptok, pid = refresh(t, proxy, ptok)
		same(t, ptok, pid, []string{"acme:member"}, "grace-h")
	})

	t.Run("OIDC groups", func(t *testing.T) {
		tok, id := signIn(t, kubectl, "okta")
		same(t, tok, id, []string{"oidc:group:engineering", "oidc:group:Platform Admins", "oidc:group:finance"}, "ada@corp.example")
		ptok, pid := signIn(t, proxy, "okta")
		// No organization: org sync has no rule for Okta groups.
		same(t, ptok, pid, []string{"engineering"}, "ada@corp.example")
	})

	t.Run("no groups scope, no claim", func(t *testing.T) {
		gh.SignIn(grace)
		tok, id := signIn(t, config("kubectl", "", oidc.ScopeOpenID, "profile", "offline_access"), "github")
		same(t, tok, id, nil, "grace-h")
		// Without profile, no preferred_username either.
		tok, id = signIn(t, config("kubectl", "", oidc.ScopeOpenID, "groups"), "github")
		same(t, tok, id, []string{"github:team:acme/compilers", "github:team:acme/platform-sre"}, "")
	})

	t.Run("a client without a groups block may not ask", func(t *testing.T) {
		conf := config("plain", "", oidc.ScopeOpenID, "profile", "groups")
		resp, _ := newBrowser(t).get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("provider", "github")))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_scope" ||
			!strings.Contains(loc.Query().Get("error_description"), `"groups"`) {
			t.Fatalf("groups scope for a client without groups = %d %s", resp.StatusCode, loc)
		}
		// Without the scope it signs in as before.
		gh.SignIn(grace)
		tok, id := signIn(t, config("plain", "", oidc.ScopeOpenID, "profile"), "github")
		same(t, tok, id, nil, "grace-h")
	})

	t.Run("over the bound the claim is left out and audited", func(t *testing.T) {
		many := grace
		many.ID, many.Login = 4343, "many-teams"
		many.Teams = nil
		for i := range 201 {
			many.Teams = append(many.Teams, githubtest.Team{Org: "acme", Slug: fmt.Sprintf("team-%03d", i)})
		}
		gh.SignIn(many)
		tok, id := signIn(t, kubectl, "github")
		same(t, tok, id, nil, "many-teams")
		tok, id = refresh(t, kubectl, tok)
		same(t, tok, id, nil, "many-teams")
		var events []string
		s.DB.Raw("SELECT details FROM audit_events WHERE type = ? AND client_id = ? ORDER BY id", "groups_claim.omitted", "kubectl").
			Scan(&events)
		// Code exchange, UserInfo (same's), refresh, UserInfo again.
		if len(events) != 4 || !strings.Contains(events[0], `"values":201`) || !strings.Contains(events[0], `"max_values":200`) ||
			!strings.Contains(events[1], `"issued":"userinfo"`) {
			t.Fatalf("omission audit events = %q", events)
		}

		// Few groups, but long ones: the byte bound.
		long := many
		long.ID, long.Login = 4444, "long-names"
		long.Teams = nil
		for i := range 40 {
			long.Teams = append(long.Teams, githubtest.Team{Org: "acme", Slug: fmt.Sprintf("%s-%02d", strings.Repeat("x", 90), i)})
		}
		gh.SignIn(long)
		tok, id = signIn(t, kubectl, "github")
		same(t, tok, id, nil, "long-names")
		var bytesEvents int64
		s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND details LIKE ?", "groups_claim.omitted", `%"values":40%`).
			Scan(&bytesEvents)
		if bytesEvents != 2 {
			t.Fatalf("byte-bound omission events = %d", bytesEvents)
		}
		// The proxy's filter lets none of those through: nothing to omit.
		ptok, pid := signIn(t, proxy, "github")
		same(t, ptok, pid, []string{"acme:member"}, "long-names")
	})
}

// verifiedID verifies a token response's ID token as go-oidc does for a
// stock relying party and returns its groups claims.
func verifiedID(t *testing.T, op *oidc.Provider, clientID string, tok *oauth2.Token) groupsClaims {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var c groupsClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
