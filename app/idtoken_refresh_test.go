package app_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

const idTokenOnRefreshYAML = `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
  - id: quiet
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    id_token_on_refresh: false
`

// TestIDTokenOnRefresh: a refresh of an openid session answers an ID
// token by default; a client with id_token_on_refresh: false gets one at
// the code exchange and none at refresh (OpenID Connect Core §12.2), and
// its access token is the same as ever.
func TestIDTokenOnRefresh(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: idTokenOnRefreshYAML})
	for _, tc := range []struct {
		client    string
		onRefresh bool
	}{{"spa", true}, {"quiet", false}} {
		t.Run(tc.client, func(t *testing.T) {
			conf := &oauth2.Config{ClientID: tc.client, RedirectURL: "http://127.0.0.1:9/callback",
				Scopes:   []string{"openid", "email", "profile"},
				Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev"))
			resp, body := newBrowser(t).devSignIn(authURL, tc.client+"@example.com", "")
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in = %d %s", resp.StatusCode, body)
			}
			target, _ := url.Parse(resp.Header.Get("Location"))
			tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if idt, _ := tok.Extra("id_token").(string); idt == "" {
				t.Fatal("no ID token at the code exchange")
			}
			status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
				"client_id": {tc.client}}, "", "")
			if status != 200 || out["access_token"] == nil || out["refresh_token"] == nil || out["scope"] != "openid email profile" {
				t.Fatalf("refresh = %d %v", status, out)
			}
			idt, has := out["id_token"].(string)
			if has != tc.onRefresh {
				t.Fatalf("ID token on refresh: %v, want %v", has, tc.onRefresh)
			}
			var at struct {
				Sub   string `json:"sub"`
				Email string `json:"email"`
			}
			decodePayload(t, out["access_token"].(string), &at)
			if at.Email != tc.client+"@example.com" || at.Sub == "" {
				t.Fatalf("access token claims %+v", at)
			}
			if has {
				var id struct {
					Sub    string `json:"sub"`
					AtHash string `json:"at_hash"`
				}
				decodePayload(t, idt, &id)
				if id.Sub != at.Sub || id.AtHash == "" {
					t.Fatalf("ID token claims %+v", id)
				}
			}
		})
	}
}
