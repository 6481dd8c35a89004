package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// emailTrustYAML: two OpenID Connect providers whose users' emails are
// both marked verified upstream; trusted names the one (or none) set to
// trusted_email: true.
func emailTrustYAML(corp, partner *providertest.Server, trusted string) string {
	entry := func(name string, f *providertest.Server) string {
		return fmt.Sprintf("  - {name: %s, type: oidc, issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true, trusted_email: %v}\n",
			name, f.Issuer, f.ClientID, f.ClientSecret, name == trusted)
	}
	return upstreamClients + "providers:\n" + entry("corp", corp) + entry("partner", partner)
}

// stated is what one answer of Gatehouse says about the email.
type stated struct {
	where    string
	email    any
	verified any // nil: left out
}

// emailStatements collects email and email_verified from every place
// Gatehouse states them for an access token (and its ID token, when
// given): the access token's claims, UserInfo, /auth/me with its
// identity, and introspection.
func emailStatements(t *testing.T, s *apptest.Server, accessToken, idToken string) []stated {
	t.Helper()
	var out []stated
	claimsOf := func(where, jwt string) {
		if jwt != "" {
			c := jwtClaims(t, jwt)
			out = append(out, stated{where, c["email"], c["email_verified"]})
		}
	}
	if _, err := s.Keys.VerifyAccessToken(accessToken, s.URL, time.Now()); err != nil {
		t.Fatalf("access token: %v", err)
	}
	claimsOf("access token", accessToken)
	claimsOf("ID token", idToken)
	resp, body := get(t, s.URL+"/auth/userinfo", "Authorization", "Bearer "+accessToken)
	var ui map[string]any
	if err := json.Unmarshal([]byte(body), &ui); resp.StatusCode != 200 || err != nil {
		t.Fatalf("userinfo = %d %s", resp.StatusCode, body)
	}
	out = append(out, stated{"UserInfo", ui["email"], ui["email_verified"]})
	m := me(t, s, accessToken)
	out = append(out, stated{"/auth/me", m["email"], m["email_verified"]})
	for _, id := range asSlice(m["identities"]) {
		id := id.(map[string]any)
		out = append(out, stated{"/auth/me identity " + id["provider"].(string), id["email"], id["email_verified"]})
	}
	info := introspect(t, s, accessToken)
	if info["active"] != true {
		t.Fatalf("introspection = %v", info)
	}
	if v, ok := info["email_verified"]; ok {
		// Introspection names no email_verified today; should it, it must follow the rule.
		out = append(out, stated{"introspection", info["username"], v})
	}
	return out
}

// checkStatements fails unless every statement gives email and says
// email_verified is want, in so many words (false included).
func checkStatements(t *testing.T, got []stated, email string, want bool) {
	t.Helper()
	for _, st := range got {
		if st.email != email || st.verified != want {
			t.Errorf("%s: email %v email_verified %v; want %s %v", st.where, st.email, st.verified, email, want)
		}
	}
}

// TestMintedEmailVerifiedFollowsTrust: both upstreams mark the email
// verified, but only a provider trusted for email (trusted_email) makes
// Gatehouse say email_verified: true: in the ID token, the access token,
// UserInfo, /auth/me and introspection, after a code flow, a refresh and
// a token exchange. Users signed in through an untrusted provider get
// email_verified: false, stated (a relying party that links accounts by
// verified email must not merge them, nor read a missing claim as true).
// The rule is applied when tokens are minted: a Gatehouse restarted with
// the trust settings swapped says the opposite at the next refresh, for
// the same users and rows.
func TestMintedEmailVerifiedFollowsTrust(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			corp := providertest.New(t, providertest.Options{User: map[string]any{"sub": "c-1", "email": "ada@corp.example", "email_verified": true}})
			partner := providertest.New(t, providertest.Options{User: map[string]any{"sub": "p-1", "email": "ada@corp.example", "email_verified": true}})
			s := apptest.Start(t, apptest.Options{YAML: emailTrustYAML(corp, partner, "corp"), Postgres: pg})
			corp.SetRedirectURIs(s.URL + "/auth/callback/corp")
			partner.SetRedirectURIs(s.URL + "/auth/callback/partner")
			ctx := context.Background()
			op, conf := spaOIDC(t, s.URL)
			refreshed := map[string]*oauth2.Token{}
			for _, tc := range []struct {
				provider string
				up       *providertest.Server
				want     bool
			}{
				{provider: "corp", up: corp, want: true},
				{provider: "partner", up: partner, want: false},
			} {
				t.Run(tc.provider, func(t *testing.T) {
					verifier := oauth2.GenerateVerifier()
					target := newBrowser(t).followToClient(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
						oidc.Nonce("n"), oauth2.SetAuthURLParam("provider", tc.provider)))
					tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
					if err != nil {
						t.Fatal(err)
					}
					idToken, _ := tok.Extra("id_token").(string)
					if _, err := op.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, idToken); err != nil {
						t.Fatalf("ID token: %v", err)
					}
					checkStatements(t, emailStatements(t, s, tok.AccessToken, idToken), "ada@corp.example", tc.want)

					status, out := refresh(t, s, tok, "")
					if status != 200 {
						t.Fatalf("refresh = %d %v", status, out)
					}
					checkStatements(t, emailStatements(t, s, tok.AccessToken, out["id_token"].(string)), "ada@corp.example", tc.want)
					refreshed[tc.provider] = tok

					form := exchangeForm(tc.provider, tc.up.IDToken(nil), idTokenType)
					form.Set("scope", "openid email")
					status, out = tokenPost(t, s, form, "", "")
					if status != 200 {
						t.Fatalf("token exchange = %d %v", status, out)
					}
					checkStatements(t, emailStatements(t, s, out["access_token"].(string), ""), "ada@corp.example", tc.want)
				})
			}

			// The same database under swapped settings: partner trusted, corp not.
			swapped := apptest.Start(t, apptest.Options{YAML: emailTrustYAML(corp, partner, "partner"), DatabaseURL: s.Config.DatabaseURL})
			for provider, want := range map[string]bool{"corp": false, "partner": true} {
				tok := refreshed[provider]
				if tok == nil {
					t.Fatalf("no session of %s to refresh", provider)
				}
				status, out := refresh(t, swapped, tok, "")
				if status != 200 {
					t.Fatalf("refresh of the %s session after the swap = %d %v", provider, status, out)
				}
				checkStatements(t, emailStatements(t, swapped, tok.AccessToken, out["id_token"].(string)), "ada@corp.example", want)
			}
		})
	}
}
