package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// openidClientDir pins openid-client for TestPrivateKeyJWTWithOpenIDClient;
// npm ci installs it in node_modules beside it (gitignored, reused while
// the lock is unchanged).
var openidClientDir = filepath.Join("testdata", "openid-client")

// requireOpenIDClient finds node and installs the locked openid-client.
// Without node or npm the test skips, saying why, except in CI
// (GATEHOUSE_TEST_REQUIRE_NODE=1, or a PostgreSQL DSN set as .ci/run
// does), where it fails: the rule of the other Node tests.
func requireOpenIDClient(t *testing.T) string {
	t.Helper()
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		msg := "the openid-client test needs Node.js and npm on PATH"
		if os.Getenv("GATEHOUSE_TEST_REQUIRE_NODE") == "1" || os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	apptest.NPMCI(t, npm, openidClientDir)
	return node
}

// TestPrivateKeyJWTWithOpenIDClient: openid-client (Node.js), unchanged,
// authenticates as a private_key_jwt client with the assertions it
// builds itself: client credentials, the code flow's exchange (the
// browser part done here), a refresh, introspection and revocation.
func TestPrivateKeyJWTWithOpenIDClient(t *testing.T) {
	node := requireOpenIDClient(t)
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := startKeyWorld(t, pg)
			conf := &oauth2.Config{ClientID: "svc-key", RedirectURL: "http://127.0.0.1:9/k/callback", Scopes: []string{"openid", "email"},
				Endpoint: oauth2.Endpoint{AuthURL: w.s.URL + "/auth/login", TokenURL: w.tokenURL}}
			verifier := oauth2.GenerateVerifier()
			target := newBrowser(t).signIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")), "ada@example.com")
			private, err := json.Marshal(jose.JSONWebKey{Key: w.ec.key, KeyID: w.ec.kid})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, "pkjwt.mjs")
			cmd.Dir = openidClientDir
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "NODE_OPTIONS=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, "GH_ISSUER="+w.s.URL, "GH_CLIENT_ID=svc-key", "GH_PRIVATE_JWK="+string(private),
				"GH_CALLBACK_URL="+target.String(), "GH_VERIFIER="+verifier)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("node pkjwt.mjs: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			var got struct {
				ClientCredentials   bool   `json:"client_credentials"`
				IntrospectionActive bool   `json:"introspection_active"`
				IDTokenSub          string `json:"id_token_sub"`
				Refreshed           bool   `json:"refreshed"`
				RevokedActive       *bool  `json:"revoked_active"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("openid-client printed %q: %v", stdout.String(), err)
			}
			if !got.ClientCredentials || !got.IntrospectionActive || got.IDTokenSub == "" || !got.Refreshed ||
				got.RevokedActive == nil || *got.RevokedActive {
				t.Fatalf("openid-client saw %s", stdout.String())
			}
		})
	}
}
