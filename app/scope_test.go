package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// scopeYAML: the knowledge-base SPA may be granted kb:read and kb:write
// besides the OpenID Connect scopes; backend is what introspect() uses.
const scopeYAML = `
clients:
  - id: kb-web
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    scopes: [kb:read, kb:write]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
    introspect_any: true
`

// jwtClaims decodes a JWT's payload without verifying it (the flow tests
// verify signatures; here only the claims matter).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestScopesAreCheckedAndNarrowed: an authorization request may name the
// OpenID Connect scopes and the client's own `scopes`, nothing else; a
// refresh asking for less gets tokens with less, while the session keeps
// its scope for the next refresh.
func TestScopesAreCheckedAndNarrowed(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := apptest.Start(t, apptest.Options{YAML: scopeYAML, Postgres: pg})
			conf := &oauth2.Config{ClientID: "kb-web", RedirectURL: "http://127.0.0.1:9/callback",
				Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token"}}
			b := newBrowser(t)
			authURL := func(scope, verifier string) string {
				return conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev"),
					oauth2.SetAuthURLParam("scope", scope))
			}

			// A scope the client was not given goes back to the client as
			// invalid_scope, before any sign-in.
			resp, _ := b.get(authURL("openid email kb:admin payments:write", oauth2.GenerateVerifier()))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			q := loc.Query()
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), conf.RedirectURL+"?") ||
				q.Get("error") != "invalid_scope" || !strings.Contains(q.Get("error_description"), `"kb:admin"`) ||
				q.Get("state") != "st" || q.Get("iss") != s.URL {
				t.Fatalf("unknown scope = %d %s", resp.StatusCode, loc)
			}

			// The OpenID Connect scopes and the client's own are granted as asked.
			const full = "openid email profile kb:read offline_access"
			verifier := oauth2.GenerateVerifier()
			target := b.signIn(authURL(full+" kb:read", verifier), "ada@example.com")
			tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.Extra("scope") != full || jwtClaims(t, tok.AccessToken)["scope"] != full {
				t.Fatalf("code grant scope = %v, access token scope = %v", tok.Extra("scope"), jwtClaims(t, tok.AccessToken)["scope"])
			}
			sid, _ := jwtClaims(t, tok.AccessToken)["sid"].(string)

			refresh := func(scope string) (int, map[string]any) {
				t.Helper()
				return refreshWith(t, s, tok, "kb-web", "scope", scope)
			}
			for _, tc := range []struct {
				ask, want string
				idToken   bool // an ID token, and whether it names the email
				email     bool
			}{
				{ask: "openid", want: "openid", idToken: true},
				{ask: "kb:read", want: "kb:read"},
				{ask: "email openid email", want: "email openid", idToken: true, email: true},
				// Without scope the session's whole scope comes back: narrowing
				// applied to those tokens only.
				{ask: "", want: full, idToken: true, email: true},
			} {
				status, out := refresh(tc.ask)
				if status != 200 {
					t.Fatalf("refresh for %q = %d %v", tc.ask, status, out)
				}
				at := jwtClaims(t, out["access_token"].(string))
				if out["scope"] != tc.want || at["scope"] != tc.want || at["sid"] != sid {
					t.Fatalf("refresh for %q: scope %v, access token scope %v, want %q", tc.ask, out["scope"], at["scope"], tc.want)
				}
				idt, _ := out["id_token"].(string)
				if (idt != "") != tc.idToken {
					t.Fatalf("refresh for %q: id_token %q, want one: %v", tc.ask, idt, tc.idToken)
				}
				if idt != "" && (jwtClaims(t, idt)["email"] != nil) != tc.email {
					t.Fatalf("refresh for %q: ID token claims %v", tc.ask, jwtClaims(t, idt))
				}
				if info := introspect(t, s, out["access_token"].(string)); info["scope"] != tc.want {
					t.Fatalf("refresh for %q: introspection scope %v", tc.ask, info["scope"])
				}
			}

			// Widening is refused, and the refresh token stays usable.
			for _, wider := range []string{"openid kb:write", "openid kb:admin"} {
				if status, out := refresh(wider); status != 400 || out["error"] != "invalid_scope" {
					t.Fatalf("refresh widening to %q = %d %v", wider, status, out)
				}
			}
			if status, out := refresh("openid"); status != 200 || out["scope"] != "openid" {
				t.Fatalf("refresh after a refused widening = %d %v", status, out)
			}

			// A session opened before scopes were checked keeps its stored
			// scope, but only what the client may still be granted is minted.
			if err := s.DB.Exec("UPDATE sessions SET scope = ? WHERE id = ?", "openid kb:read kb:admin payments:write", sid).Error; err != nil {
				t.Fatal(err)
			}
			if status, out := refresh(""); status != 200 || out["scope"] != "openid kb:read" ||
				jwtClaims(t, out["access_token"].(string))["scope"] != "openid kb:read" {
				t.Fatalf("refresh of a session with stale scopes = %d %v", status, out)
			}
		})
	}
}
