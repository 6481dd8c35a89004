// Package node_test runs the Node.js middleware's tests (clients/node, the
// @gatehouse/node npm package) against a real Gatehouse: it starts one in
// process, signs people in through the authorization-code flow with the
// dev provider to get real access tokens, creates API keys through the
// admin API, installs the package's locked dependencies (npm ci, only when
// node_modules is missing or stale) and runs `node --test` with the
// server's URL, the tokens and the expected values in the environment. So
// `go test ./...` runs the Node tests too.
package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// nodeYAML: the knowledge-base SPA (audience kb-api), the kb backend's
// confidential client (introspection), the admin console (audience
// gatehouse-admin, a token for another audience), the dev provider and
// sync rules that put dev groups into organizations acme and beta.
const nodeYAML = `
clients:
  - id: kb-web
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    audience: [kb-api]
  - id: kb-backend
    secret: kb-backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/kb/callback]
    grant_types: [client_credentials]
    audience: [kb-api]
  - id: admin-console
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    audience: [gatehouse-admin]
providers:
  - {name: dev, type: dev}
org_sync:
  rules:
    - {match: "dev:group:eng", org: acme, role: member}
    - {match: "dev:group:readers", org: acme, role: reader}
    - {match: "dev:group:viewers", org: acme, role: viewer}
    - {match: "dev:group:leads", org: acme, role: admin}
    - {match: "dev:group:keyadmins", org: acme, role: keyadmin}
    - {match: "dev:group:beta", org: beta, role: member}
`

// minNode is the oldest Node.js the package supports (jose 6 needs it).
var minNode = [3]int{20, 19, 0}

// TestNodeMiddleware runs clients/node/test/*.test.js with node --test
// against a live Gatehouse.
func TestNodeMiddleware(t *testing.T) {
	node, npm := requireNode(t)
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	apptest.NPMCI(t, npm, dir)

	s := apptest.Start(t, apptest.Options{YAML: nodeYAML})
	w := &world{t: t, url: s.URL}
	ctx := context.Background()
	if res, err := s.Admin.GrantAdmin(ctx, "root@example.com"); err != nil || !res.Created {
		t.Fatalf("GrantAdmin = %+v, %v", res, err)
	}
	root := w.signIn("admin-console", "root@example.com", "", models.AdminOrgID)
	var org struct {
		ID string `json:"id"`
	}
	w.mustCall("POST", "/api/v1/admin/orgs", root.AccessToken, map[string]any{"slug": "acme", "name": "Acme"}, 201, &org)
	acme := org.ID
	w.mustCall("POST", "/api/v1/admin/orgs", root.AccessToken, map[string]any{"slug": "beta"}, 201, &org)
	beta := org.ID
	w.mustCall("POST", "/api/v1/admin/orgs/"+acme+"/roles", root.AccessToken,
		map[string]any{"name": "reader", "level": 20, "permissions": []string{"kb:r*"}}, 201, nil)
	// A permission with an underscore (seed 001's api_key): accepted once
	// Gatehouse's grammar allows it; until then the Node test skips it.
	underscore := ""
	if status, _ := w.call("POST", "/api/v1/admin/orgs/"+acme+"/roles", root.AccessToken,
		map[string]any{"name": "keyadmin", "level": 20, "permissions": []string{"api_key:read"}}, nil); status == 201 {
		underscore = w.signIn("kb-web", "kim@example.com", "keyadmins", "").AccessToken
	}

	member := w.signIn("kb-web", "mia@example.com", "eng", "")
	idToken, _ := member.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no ID token in the kb-web sign-in")
	}

	newKey := func(name string) (string, string) {
		var key struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		}
		w.mustCall("POST", "/api/v1/admin/orgs/"+acme+"/api-keys", root.AccessToken,
			map[string]any{"name": name, "permissions": []string{"kb:read"}}, 201, &key)
		return key.ID, key.Key
	}
	keyID, key := newKey("node reader")
	disableID, disableKey := newKey("node reader, disabled mid-run")

	gom, err := rbac.New(ctx, rbac.Options{Issuer: s.URL, Audience: "kb-api",
		APIKeys: &rbac.APIKeyOptions{ClientID: "kb-backend", ClientSecret: "kb-backend-secret-0123456789"}})
	if err != nil {
		t.Fatal(err)
	}
	defer gom.Close()
	// The Go rbac package behind the same routes: the Node tests compare
	// every refusal's status, headers and body with its answer.
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) })
	mux := http.NewServeMux()
	mux.Handle("GET /kb", gom.RequirePermission("kb", "read")(ok))
	mux.Handle("POST /kb", gom.RequirePermission("kb", "write")(ok))
	mux.Handle("GET /orgs/{org_id}/kb", gom.RequirePermission("kb", "read")(ok))
	mux.Handle("DELETE /kb/{id}", gom.RequireAnyPermission("kb:delete", "kb:admin")(ok))
	mux.Handle("GET /billing", gom.RequireRole("admin")(ok))
	mux.Handle("GET /me", gom.Authenticate()(ok))
	mux.Handle("GET /scoped", gom.RequireScope("email")(ok))
	mux.Handle("GET /scoped-admin", gom.RequireScope("kb:admin")(ok))
	mux.Handle("GET /keys", gom.RequirePermission("api_key", "read")(ok))
	goSrv := httptest.NewServer(mux)
	defer goSrv.Close()
	env := map[string]string{
		"GH_GO_BACKEND":       goSrv.URL,
		"GH_ISSUER":           s.URL,
		"GH_AUDIENCE":         "kb-api",
		"GH_CLIENT_ID":        "kb-backend",
		"GH_CLIENT_SECRET":    "kb-backend-secret-0123456789",
		"GH_ACME":             acme,
		"GH_BETA":             beta,
		"GH_ADMIN_TOKEN":      root.AccessToken,
		"GH_MEMBER_TOKEN":     member.AccessToken,
		"GH_ID_TOKEN":         idToken,
		"GH_READER_TOKEN":     w.signIn("kb-web", "rae@example.com", "readers", "").AccessToken,
		"GH_VIEWER_TOKEN":     w.signIn("kb-web", "vic@example.com", "viewers", "").AccessToken,
		"GH_LEAD_TOKEN":       w.signIn("kb-web", "lee@example.com", "leads", "").AccessToken,
		"GH_BETA_TOKEN":       w.signIn("kb-web", "bob@example.com", "beta", "").AccessToken,
		"GH_NOORG_TOKEN":      w.signIn("kb-web", "nora@example.com", "", "").AccessToken,
		"GH_OTHER_AUD_TOKEN":  w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken,
		"GH_UNDERSCORE_TOKEN": underscore,
		"GH_API_KEY":          key,
		"GH_API_KEY_ID":       keyID,
		"GH_DISABLE_KEY":      disableKey,
		"GH_DISABLE_KEY_ID":   disableID,
		"GH_PERMISSION_CASES": filepath.Join(dir, "..", "..", "rbac", "testdata", "permission-cases.json"),
	}

	files, err := filepath.Glob(filepath.Join(dir, "test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Node test files in %s/test (%v)", dir, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(dir, f)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	// The tests run with this environment: no NODE_OPTIONS from outside,
	// and no test-runner context of an enclosing node --test.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NODE_OPTIONS=") && !strings.HasPrefix(kv, "NODE_TEST_CONTEXT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", strings.Join(files, " "), err, out.String())
	}
	t.Logf("node --test:\n%s", out.String())
	if !regexp.MustCompile(`(?m)^ℹ fail 0$`).Match(out.Bytes()) || !regexp.MustCompile(`(?m)^ℹ pass [1-9]`).Match(out.Bytes()) {
		t.Fatalf("node --test did not report passing tests and no failures")
	}
}

// requireNode finds node and npm. Without them (or with a Node.js too old)
// the test fails in CI (GATEHOUSE_TEST_POSTGRES_DSN or
// GATEHOUSE_TEST_REQUIRE_NODE=1 set) and skips elsewhere, saying why.
func requireNode(t *testing.T) (string, string) {
	t.Helper()
	missing := func(why string) {
		msg := "the Node.js middleware's tests (clients/node) need " + why +
			": install Node.js " + fmt.Sprintf("%d.%d", minNode[0], minNode[1]) + " or later with npm"
		if os.Getenv("GATEHOUSE_TEST_REQUIRE_NODE") == "1" || os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node, which is not on PATH")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		missing("npm, which is not on PATH")
	}
	v, err := exec.Command(node, "--version").Output()
	if err != nil {
		missing("a working node (node --version failed)")
	}
	if !atLeast(strings.TrimSpace(string(v)), minNode) {
		missing("a newer node than " + strings.TrimSpace(string(v)))
	}
	return node, npm
}

// atLeast compares "v20.19.1" with min.
func atLeast(version string, min [3]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	for i := 0; i < 3; i++ {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(strings.TrimFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' }))
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

// world signs people in at a live Gatehouse and calls its admin API.
type world struct {
	t   *testing.T
	url string
}

var stateField = regexp.MustCompile(`name="state" value="([^"]+)"`)

// signIn runs the authorization-code flow with PKCE through the dev
// provider's form as email in groups (comma-separated) at client, asking
// for organization when set, and returns the tokens.
func (w *world) signIn(client, email, groups, organization string) *oauth2.Token {
	w.t.Helper()
	conf := &oauth2.Config{ClientID: client, RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: w.url + "/auth/login", TokenURL: w.url + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")}
	if organization != "" {
		opts = append(opts, oauth2.SetAuthURLParam("organization", organization))
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		resp, err := browser.Get(u)
		if err != nil {
			w.t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, _ := get(conf.AuthCodeURL("st", opts...))
	if resp.StatusCode != http.StatusFound {
		w.t.Fatalf("authorize for %s = %d", email, resp.StatusCode)
	}
	formURL := resp.Header.Get("Location")
	resp, body := get(formURL)
	m := stateField.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		w.t.Fatalf("dev form = %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(formURL)
	resp, err := browser.PostForm(u.Scheme+"://"+u.Host+u.Path,
		url.Values{"state": {m[1]}, "email": {email}, "name": {"Ada Lovelace"}, "groups": {groups}})
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("sign-in of %s = %d", email, resp.StatusCode)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		w.t.Fatalf("exchange for %s: %v", email, err)
	}
	return tok
}

// call sends a JSON request with a bearer token to Gatehouse and decodes
// the answer into out (when not nil).
func (w *world) call(method, path, token string, body, out any) (int, string) {
	w.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, w.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
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
