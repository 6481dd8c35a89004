package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
)

// rbacYAML: a public client for the knowledge-base SPA (audience kb-api),
// the kb backend's confidential client (introspection, API-key
// exchange), the admin console (audience gatehouse-admin), the dev
// provider (and dev2, which links by email, for a second identity; and
// lax, standing for an IdP whose verified flag is not trusted for email)
// and sync rules that put dev groups into acme.
const rbacYAML = `
clients:
  - id: kb-web
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    audience: [kb-api]
  - id: kb-backend
    secret: kb-backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/kb/callback]
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    audience: [kb-api]
  - id: admin-console
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    audience: [gatehouse-admin]
  - id: admin-robot            # a client, not a person: refused by the admin API
    secret: admin-robot-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/robot/callback]
    grant_types: [client_credentials]
    audience: [gatehouse-admin]
    permissions: ["admin:*"]
providers:
  - {name: dev, type: dev}
  - {name: dev2, type: dev, link_by_email: true}
  - {name: lax, type: dev, trusted_email: false}
org_sync:
  rules:
    - {match: "dev:group:eng", org: acme, role: member}
    - {match: "dev:group:readers", org: acme, role: reader}
    - {match: "dev:group:viewers", org: acme, role: viewer}
    - {match: "dev:group:leads", org: acme, role: admin}
    - {match: "dev:group:beta", org: beta, role: member}
`

// world is a running Gatehouse with an administrator, organizations
// acme and beta, and acme's own role "reader" (kb:r*).
type world struct {
	t      *testing.T
	s      *apptest.Server
	root   string // the administrator's admin-console token (administrators' org)
	acme   string
	beta   string
	reader string // role id
}

func newWorld(t *testing.T, pg bool) *world {
	t.Helper()
	return newWorldWith(t, pg, rbacYAML)
}

// newWorldWith is newWorld with another configuration file.
func newWorldWith(t *testing.T, pg bool, yaml string) *world {
	t.Helper()
	s := apptest.Start(t, apptest.Options{YAML: yaml, Postgres: pg, Env: map[string]string{"GATEHOUSE_REFRESH_REUSE_GRACE": "1ns"}})
	w := &world{t: t, s: s}
	res, err := s.Admin.GrantAdmin(context.Background(), "root@example.com")
	if err != nil || res.InvitationID == "" || !res.Created {
		t.Fatalf("GrantAdmin = %+v, %v", res, err)
	}
	w.root = w.signIn("admin-console", "root@example.com", "", models.AdminOrgID).AccessToken
	var org admin.Org
	w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": "acme", "name": "Acme"}, 201, &org)
	w.acme = org.ID
	w.mustCall("POST", "/api/v1/admin/orgs", w.root, map[string]any{"slug": "beta"}, 201, &org)
	w.beta = org.ID
	var role admin.Role
	w.mustCall("POST", "/api/v1/admin/orgs/"+w.acme+"/roles", w.root,
		map[string]any{"name": "reader", "level": 20, "permissions": []string{"kb:r*"}}, 201, &role)
	w.reader = role.ID
	return w
}

// signIn signs email in through the dev form at client, in groups, and
// returns the tokens; organization is the authorization request's.
func (w *world) signIn(client, email, groups, organization string) *oauth2.Token {
	w.t.Helper()
	return w.signInWith("dev", client, email, groups, organization)
}

// signInWith is signIn through the named provider's form.
func (w *world) signInWith(provider, client, email, groups, organization string) *oauth2.Token {
	w.t.Helper()
	conf := &oauth2.Config{ClientID: client, RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: w.s.URL + "/auth/login", TokenURL: w.s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", provider)}
	if organization != "" {
		opts = append(opts, oauth2.SetAuthURLParam("organization", organization))
	}
	resp, body := newBrowser(w.t).devSignIn(conf.AuthCodeURL("st", opts...), email, groups)
	if resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("sign-in of %s = %d %s", email, resp.StatusCode, body)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		w.t.Fatalf("exchange for %s: %v", email, err)
	}
	return tok
}

// call sends a JSON request with a bearer token to Gatehouse and decodes
// the answer into out (when not nil); it returns the status and raw body.
func (w *world) call(method, path, token string, body any, out any) (int, string) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = bytes.NewReader([]byte(s))
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, w.s.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, string(raw)
}

func (w *world) mustCall(method, path, token string, body any, want int, out any) {
	w.t.Helper()
	if status, raw := w.call(method, path, token, body, out); status != want {
		w.t.Fatalf("%s %s = %d %s, want %d", method, path, status, raw, want)
	}
}

// userID returns the id of the user with this email, as the administrator
// finds it through the admin API.
func (w *world) userID(email string) string {
	w.t.Helper()
	var users admin.List[admin.User]
	w.mustCall("GET", "/api/v1/admin/users?email="+url.QueryEscape(email), w.root, nil, 200, &users)
	if len(users.Items) != 1 {
		w.t.Fatalf("users with email %s = %+v", email, users.Items)
	}
	return users.Items[0].ID
}
