package app_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// TestRecheckAppliesToSingleSignOn: a browser session cannot mint new
// app sessions past the upstream re-check rules. Single sign-on answers
// an authorization request without the upstream, so it obeys the rules a
// refresh obeys: a due re-check runs first (the upstream forgot the
// grant: every session ends and the request goes back to the upstream,
// or login_required with prompt=none), an unreachable upstream is kept or
// denied as configured, and a SAML sign-in older than max_session_age is
// asked again.
func TestRecheckAppliesToSingleSignOn(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startRecheckServer(t, pg, nil)
			_, conf := spaOIDC(t, s.URL)
			// signIn signs in through provider in a new browser, returning it.
			signIn := func(t *testing.T, provider string) *browser {
				b := newBrowser(t)
				verifier := oauth2.GenerateVerifier()
				target := b.followToClient(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"),
					oauth2.SetAuthURLParam("provider", provider)))
				if _, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
					t.Fatal(err)
				}
				return b
			}
			// sso asks for a code silently (prompt=none) and returns where
			// the browser is sent.
			sso := func(t *testing.T, b *browser, provider string) url.Values {
				resp, body := b.get(conf.AuthCodeURL("st2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oidc.Nonce("n2"),
					oauth2.SetAuthURLParam("provider", provider), oauth2.SetAuthURLParam("prompt", "none")))
				loc, err := resp.Location()
				if err != nil || loc.Host != "127.0.0.1:9" {
					t.Fatalf("silent authorization = %d %s", resp.StatusCode, body)
				}
				return loc.Query()
			}
			ended := func(reason string) int64 {
				return countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", reason)
			}

			t.Run("upstream forgot the grant", func(t *testing.T) {
				b := signIn(t, "keep")
				if q := sso(t, b, "keep"); q.Get("code") == "" {
					t.Fatalf("single sign-on with the grant alive = %v", q)
				}
				up.keep.ForgetGrants()
				if q := sso(t, b, "keep"); q.Get("code") != "" || q.Get("error") != "login_required" {
					t.Fatalf("single sign-on after the upstream forgot the grant = %v", q)
				}
				if n := ended("upstream_recheck"); n != 2 {
					t.Fatalf("sessions ended by the re-check = %d, want 2", n)
				}
				if n := countOf(t, s, "SELECT COUNT(*) FROM browser_sessions WHERE revoke_reason = ?", "upstream_recheck"); n != 1 {
					t.Fatalf("browser sessions ended = %d", n)
				}
			})

			t.Run("not due", func(t *testing.T) {
				b := signIn(t, "lazy")
				calls := up.lazy.RefreshGrants()
				if q := sso(t, b, "lazy"); q.Get("code") == "" || up.lazy.RefreshGrants() != calls {
					t.Fatalf("single sign-on with a fresh check = %v, upstream asked %d times", q, up.lazy.RefreshGrants()-calls)
				}
				up.lazy.ForgetGrants()
				s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-2*time.Hour))
				if q := sso(t, b, "lazy"); q.Get("error") != "login_required" {
					t.Fatalf("single sign-on with a due check after the upstream forgot = %v", q)
				}
			})

			t.Run("unavailable", func(t *testing.T) {
				k, d := signIn(t, "keep"), signIn(t, "deny")
				up.keep.SetTokenDown(true)
				up.deny.SetTokenDown(true)
				defer up.keep.SetTokenDown(false)
				defer up.deny.SetTokenDown(false)
				if q := sso(t, k, "keep"); q.Get("code") == "" {
					t.Fatalf("keep: single sign-on with the upstream down = %v", q)
				}
				if q := sso(t, d, "deny"); q.Get("error") != "login_required" {
					t.Fatalf("deny: single sign-on with the upstream down = %v", q)
				}
				// keep, past recheck_max_staleness.
				s.DB.Exec("UPDATE upstream_checks SET claimed_at = NULL, checked_at = ?", time.Now().UTC().Add(-25*time.Hour))
				if q := sso(t, k, "keep"); q.Get("error") != "login_required" {
					t.Fatalf("keep: stale single sign-on = %v", q)
				}
			})
		})
	}
}

// TestSAMLMaxSessionAgeAppliesToSingleSignOn: a SAML browser session
// older than max_session_age mints no new app session.
func TestSAMLMaxSessionAgeAppliesToSingleSignOn(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, "    max_session_age: 8h\n")
			b := samlSignInBrowser(t, s, idp, conf)
			silent := func() url.Values {
				resp, body := b.get(conf.AuthCodeURL("st2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
					oauth2.SetAuthURLParam("provider", "corp"), oauth2.SetAuthURLParam("prompt", "none")))
				loc, err := resp.Location()
				if err != nil {
					t.Fatalf("silent authorization = %d %s", resp.StatusCode, body)
				}
				return loc.Query()
			}
			if q := silent(); q.Get("code") == "" {
				t.Fatalf("single sign-on within max_session_age = %v", q)
			}
			s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-9*time.Hour))
			if q := silent(); q.Get("code") != "" || q.Get("error") != "login_required" {
				t.Fatalf("single sign-on past max_session_age = %v", q)
			}
		})
	}
}

// samlSignInBrowser signs samlAda in through corp in a new browser and
// returns it, its browser session live.
func samlSignInBrowser(t *testing.T, _ *apptest.Server, idp *samltest.IdP, conf *oauth2.Config) *browser {
	t.Helper()
	b, _ := samlMaxAgeSignIn(t, idp, conf)
	return b
}
