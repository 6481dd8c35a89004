package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// TestUpstreamLogout: with upstream_logout, ending this browser's
// Gatehouse session sends it through the upstream's end_session_endpoint
// (with the upstream's own ID token as hint) and back, on to the client's
// registered post-logout redirect; a return whose state does not open
// goes nowhere but the signed-out page; without the option, logout stays
// at Gatehouse.
func TestUpstreamLogout(t *testing.T) {
	for _, withOption := range []bool{true, false} {
		t.Run(fmt.Sprintf("upstream_logout=%v", withOption), func(t *testing.T) {
			up := providertest.New(t, providertest.Options{})
			yaml := fmt.Sprintf(`clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/bye]
providers:
  - {name: okta, type: oidc, issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true, upstream_logout: %v}
`, up.Issuer, up.ClientID, up.ClientSecret, withOption)
			s := apptest.Start(t, apptest.Options{YAML: yaml})
			up.SetRedirectURIs(s.URL + "/auth/callback/okta")
			ctx := context.Background()
			op, conf := spaOIDC(t, s.URL)
			b := newBrowser(t)
			verifier := oauth2.GenerateVerifier()
			target := b.followToClient(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"), oauth2.SetAuthURLParam("provider", "okta")))
			tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			idToken := tok.Extra("id_token").(string)
			if _, err := op.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, idToken); err != nil {
				t.Fatal(err)
			}
			logout := s.URL + "/auth/logout?" + url.Values{"id_token_hint": {idToken},
				"post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"xyz"}}.Encode()
			resp, body := b.get(logout)
			loc, _ := resp.Location()
			if !withOption {
				if resp.StatusCode != http.StatusFound || loc == nil || loc.String() != "http://127.0.0.1:9/bye?state=xyz" {
					t.Fatalf("logout without the option = %d %v %s", resp.StatusCode, loc, body)
				}
				if n := len(up.LogoutRequests()); n != 0 {
					t.Fatalf("the upstream saw %d logouts", n)
				}
				return
			}
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), up.Issuer+"/logout?") {
				t.Fatalf("logout = %d %v %s", resp.StatusCode, loc, body)
			}
			q := loc.Query()
			if q.Get("client_id") != up.ClientID || q.Get("post_logout_redirect_uri") != s.URL+"/auth/logout/upstream" ||
				q.Get("id_token_hint") == "" || q.Get("id_token_hint") == idToken || q.Get("state") == "" {
				t.Fatalf("upstream logout request = %v", q)
			}
			resp, _ = b.get(loc.String()) // the upstream ends its session and sends the browser back
			back, _ := resp.Location()
			if back == nil || !strings.HasPrefix(back.String(), s.URL+"/auth/logout/upstream?") {
				t.Fatalf("upstream answer = %d %v", resp.StatusCode, back)
			}
			resp, body = b.get(back.String())
			final, _ := resp.Location()
			if resp.StatusCode != http.StatusFound || final == nil || final.String() != "http://127.0.0.1:9/bye?state=xyz" {
				t.Fatalf("return from the upstream = %d %v %s", resp.StatusCode, final, body)
			}
			if n := len(up.LogoutRequests()); n != 1 {
				t.Fatalf("upstream logouts = %d", n)
			}
			// The state is Gatehouse's sealed value: nothing else picks a destination.
			for name, state := range map[string]string{
				"forged":   "https://evil.example/",
				"tampered": q.Get("state")[:len(q.Get("state"))-2] + "AA",
				"empty":    "",
				"huge":     strings.Repeat("A", 5000),
			} {
				resp, body := b.get(s.URL + "/auth/logout/upstream?state=" + url.QueryEscape(state))
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(body, "signed out") {
					t.Fatalf("%s state = %d %q", name, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
		})
	}
}

// TestSingleSignOnKeepsAuth0OrganizationCheck: a browser session opened
// through an Auth0 organization answers requests naming no organization,
// but one naming an organization goes back upstream, where Auth0 checks
// it (a session of org A must not answer for org B).
func TestSingleSignOnKeepsAuth0OrganizationCheck(t *testing.T) {
	s, up := startUpstreamServer(t, false, nil)
	_, conf := spaOIDC(t, s.URL)
	b := newBrowser(t)
	login := func(org string) string {
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "tenant-a")}
		if org != "" {
			opts = append(opts, oauth2.SetAuthURLParam("organization", org))
		}
		return conf.AuthCodeURL("st", opts...)
	}
	if target := b.followToClient(login("org_a")); target.Query().Get("code") == "" {
		t.Fatalf("first sign-in = %s", target)
	}
	before := up.tenantA.LastAuthorize()
	resp, _ := b.get(login(""))
	if loc, _ := resp.Location(); loc == nil || loc.Host != "127.0.0.1:9" || loc.Query().Get("code") == "" {
		t.Fatalf("no organization named: want a code from the browser session, got %d %v", resp.StatusCode, loc)
	}
	resp, _ = b.get(login("org_b"))
	loc, _ := resp.Location()
	if loc == nil || !strings.HasPrefix(loc.String(), up.tenantA.URL) || loc.Query().Get("organization") != "org_b" {
		t.Fatalf("another organization: want the upstream, got %d %v", resp.StatusCode, loc)
	}
	_ = before
}
