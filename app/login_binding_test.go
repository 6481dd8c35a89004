package app_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
	"github.com/gatehouse-id/gatehouse/signin"
)

// Sign-in completed by another browser: an attacker starts a sign-in,
// hands the upstream's URL to a victim who is signed in upstream, and the
// victim's browser brings the upstream's answer back to Gatehouse. The
// answer must sign nobody in there, and must leave nothing behind that
// the attacker's browser, which holds the login cookie of that sign-in,
// could collect.

func countRows(t *testing.T, s *apptest.Server, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// nothingSignedIn fails the test when any sign-in left a session, a code
// or a user behind.
func nothingSignedIn(t *testing.T, s *apptest.Server) {
	t.Helper()
	for _, table := range []string{"sessions", "authorization_codes", "users", "identities"} {
		if n := countRows(t, s, "SELECT COUNT(*) FROM "+table); n != 0 {
			t.Errorf("%d rows in %s", n, table)
		}
	}
}

func pendingConsumed(t *testing.T, s *apptest.Server, relayState string) bool {
	t.Helper()
	sum := sha256.Sum256([]byte(relayState))
	return countRows(t, s, "SELECT COUNT(*) FROM pending_logins WHERE id = ? AND consumed_at IS NOT NULL", hex.EncodeToString(sum[:])) == 1
}

var samlVictim = samltest.User{NameID: "victim-0001", UserEmail: "victim@example.com", UserCommonName: "Victim"}

// TestSAMLAnswerBoundToBrowser: the ACS validates an answer only in the
// browser whose login cookie holds the sign-in the answer names; the
// IdP's cross-site POST, which carries no SameSite=Lax cookie, is only
// posted again from Gatehouse's own page.
func TestSAMLAnswerBoundToBrowser(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, "")
			authURL := func() string {
				return conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "corp"))
			}
			signed := samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}

			t.Run("an answer to the attacker's sign-in, carried by the victim's browser, signs nobody in", func(t *testing.T) {
				attacker := newBrowser(t)
				resp, _ := attacker.get(authURL())
				toIdP := resp.Header.Get("Location")
				// The victim opens toIdP, signed in at the IdP, which answers
				// for the victim, through the victim's browser.
				form, err := idp.Respond(toIdP, samltest.Options{User: samlVictim, SignAssertion: true, SignResponse: true})
				if err != nil {
					t.Fatal(err)
				}
				victim := newBrowser(t)
				resp, body := victim.acs(form)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "started in another browser") {
					t.Fatalf("victim's browser = %d %s", resp.StatusCode, body)
				}
				// The attacker's browser, which holds the sign-in's login
				// cookie, follows up every way it has.
				callback := s.URL + "/auth/callback/corp?" + url.Values{"state": {form.RelayState}}.Encode()
				if resp, body := attacker.get(callback); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("attacker at the callback = %d %s", resp.StatusCode, body)
				}
				// Even holding the victim's answer itself: the sign-in took
				// its one answer.
				if resp, body := attacker.acs(form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
					t.Fatalf("attacker posting the answer = %d %s", resp.StatusCode, body)
				}
				nothingSignedIn(t, s)
				if n := countRows(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ? AND details LIKE ?",
					"login.state_rejected", "%without this sign-in's login cookie%"); n != 1 {
					t.Fatalf("audit events for the unbound answer = %d", n)
				}
			})

			t.Run("the IdP's cross-site POST is only posted again; the same-site POST completes", func(t *testing.T) {
				b := newBrowser(t)
				form := b.toIdP(idp, authURL(), signed)
				audits := countRows(t, s, "SELECT COUNT(*) FROM audit_events")
				for _, f := range []samltest.Form{
					{URL: form.URL, SAMLResponse: base64Of("<junk/>"), RelayState: form.RelayState}, // not validated here
					form,
				} {
					resp, page := b.crossSitePost(f.URL, f.Values())
					action, fields := autoPost(t, page)
					if resp.StatusCode != http.StatusOK || action != s.URL+"/auth/saml/corp/acs" || fields.Get("SAMLResponse") != f.SAMLResponse ||
						fields.Get("RelayState") != f.RelayState || fields.Get(signin.ResubmitField) != "1" {
						t.Fatalf("cross-site POST = %d, posts %v to %s", resp.StatusCode, fields, action)
					}
					// The page works under Gatehouse's CSP (script-src 'self'):
					// no inline script, a button without JavaScript; it is
					// never cached and sets no cookie.
					if !strings.Contains(page, `<script src="/static/autopost.js" defer></script>`) || strings.Count(page, "<script") != 1 ||
						!strings.Contains(page, `<button type="submit">Continue</button>`) ||
						!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") ||
						resp.Header.Get("Cache-Control") != "no-store" || len(resp.Cookies()) != 0 {
						t.Fatalf("auto-submitting page: %v\n%s", resp.Header, page)
					}
				}
				if pendingConsumed(t, s, form.RelayState) || countRows(t, s, "SELECT COUNT(*) FROM audit_events") != audits {
					t.Fatal("the cross-site POST touched the sign-in or wrote audit events")
				}
				resp, page := b.crossSitePost(form.URL, form.Values())
				action, fields := autoPost(t, page)
				resp, body := b.post(action, fields)
				target := mustLocation(t, resp)
				if !strings.HasPrefix(target.String(), "http://127.0.0.1:9/callback?") || target.Query().Get("code") == "" {
					t.Fatalf("same-site POST = %d %s %s", resp.StatusCode, target, body)
				}
				cleared := false
				for _, c := range resp.Cookies() {
					cleared = cleared || (c.Name == signin.CookieName(form.RelayState) && c.MaxAge < 0)
				}
				if !cleared || !pendingConsumed(t, s, form.RelayState) {
					t.Fatalf("login cookie cleared %v, sign-in consumed %v", cleared, pendingConsumed(t, s, form.RelayState))
				}
			})

			t.Run("the login cookie of another sign-in does not bind the answer", func(t *testing.T) {
				b := newBrowser(t)
				formA := b.toIdP(idp, authURL(), signed)
				formB := b.toIdP(idp, authURL(), signed)
				var cookieB string
				u, _ := url.Parse(s.URL + "/auth/")
				for _, c := range b.client.Jar.Cookies(u) {
					if c.Name == signin.CookieName(formB.RelayState) {
						cookieB = c.Value
					}
				}
				fields := formA.Values()
				fields.Set(signin.ResubmitField, "1")
				req, _ := http.NewRequest(http.MethodPost, formA.URL, strings.NewReader(fields.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.AddCookie(&http.Cookie{Name: signin.CookieName(formA.RelayState), Value: cookieB})
				other := &browser{t: t, client: &http.Client{CheckRedirect: b.client.CheckRedirect}}
				if resp, body := other.do(req); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "started in another browser") {
					t.Fatalf("answer A with the cookie of B = %d %s", resp.StatusCode, body)
				}
				// Sign-in A took its answer; B is untouched and completes.
				if resp, body := b.acs(formA); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
					t.Fatalf("answer A in its own browser after = %d %s", resp.StatusCode, body)
				}
				if resp, body := b.acs(formB); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("answer B = %d %s", resp.StatusCode, body)
				}
			})

			t.Run("the cross-site POST refuses what it would not post again", func(t *testing.T) {
				b := newBrowser(t)
				form := b.toIdP(idp, authURL(), signed)
				audits := countRows(t, s, "SELECT COUNT(*) FROM audit_events")
				for name, v := range map[string]string{
					"over max_response_bytes": strings.Repeat("PHNhbWw+", 17<<10),
					"not base64":              "PHNhbWw+<script>alert(1)</script>",
					"empty":                   "",
				} {
					resp, body := b.crossSitePost(form.URL, url.Values{"SAMLResponse": {v}, "RelayState": {form.RelayState}})
					if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "could not be read") ||
						strings.Contains(body, "PHNhbWw+") || strings.Contains(body, "alert(1)") {
						t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
					}
				}
				if pendingConsumed(t, s, form.RelayState) || countRows(t, s, "SELECT COUNT(*) FROM audit_events") != audits {
					t.Fatal("a refused cross-site POST touched the sign-in or wrote audit events")
				}
				if resp, body := b.acs(form); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("the genuine answer after = %d %s", resp.StatusCode, body)
				}
			})
		})
	}
}

// TestSAMLOneAnswerPerSignIn: the first answer to reach the same-site
// POST ends the sign-in, whether it is accepted or not, so one RelayState
// buys one validation.
func TestSAMLOneAnswerPerSignIn(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, "")
			signed := samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}
			tampered := signed
			tampered.Tamper = samltest.Replace(t, ">ada@example.com<", ">mallory@example.com<")
			for _, tc := range []struct {
				name string
				// first posts the first answer to the sign-in at toIdP.
				first func(b *browser, toIdP string) (*http.Response, string)
				page  string
			}{
				{"an answer that fails validation", func(b *browser, toIdP string) (*http.Response, string) {
					f, err := idp.Respond(toIdP, tampered)
					if err != nil {
						t.Fatal(err)
					}
					return b.acs(f)
				}, "changed after signing"},
				{"an answer the cheap checks refuse", func(b *browser, toIdP string) (*http.Response, string) {
					loc, _ := url.Parse(toIdP)
					return b.post(s.URL+"/auth/saml/corp/acs", url.Values{"SAMLResponse": {base64Of(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`)},
						"RelayState": {loc.Query().Get("RelayState")}, signin.ResubmitField: {"1"}})
				}, "could not be read"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					b := newBrowser(t)
					resp, _ := b.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "corp")))
					toIdP := resp.Header.Get("Location")
					genuine, err := idp.Respond(toIdP, signed)
					if err != nil {
						t.Fatal(err)
					}
					if resp, body := tc.first(b, toIdP); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.page) {
						t.Fatalf("first answer = %d %s", resp.StatusCode, body)
					}
					// The genuine answer, posted after, with the same
					// RelayState and the login cookie, is refused unread.
					before := countRows(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ?", "login.failed")
					if resp, body := b.acs(genuine); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
						t.Fatalf("genuine answer after = %d %s", resp.StatusCode, body)
					}
					if countRows(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ?", "login.failed") != before {
						t.Fatal("the replayed RelayState reached validation")
					}
					nothingSignedIn(t, s)
				})
			}
		})
	}
}

// TestCallbacksBoundToBrowser: the same attack against the OpenID
// Connect and GitHub callbacks. It fails there because the callback
// completes a sign-in only when the state in the URL matches the sealed
// login cookie of the same browser (signin's openLoginState: the cookie is named
// after the state and sealed with it as additional data). The upstream
// returns the victim's browser to the callback with a top-level GET
// redirect; that browser holds no cookie for the attacker's state, so the
// callback refuses before the code is redeemed upstream, and the code,
// single-use upstream, never reaches the attacker's browser.
func TestCallbacksBoundToBrowser(t *testing.T) {
	for _, tc := range []struct {
		provider string
		// start runs Gatehouse with the provider on a fake upstream that
		// signs the victim in, and returns the upstream's URL.
		start func(t *testing.T) (s *apptest.Server, upstream string)
	}{
		{"okta", func(t *testing.T) (*apptest.Server, string) {
			s, up := startUpstreamServer(t, false, map[string]string{"GATEHOUSE_DEV_LOGIN": "false"})
			return s, up.okta.URL
		}},
		{"github", func(t *testing.T) (*apptest.Server, string) {
			gh := githubtest.New(t)
			gh.SignIn(githubtest.User{ID: 7007, Login: "victim", Emails: []githubtest.Email{{Address: "victim@example.com", Primary: true, Verified: true}}})
			return apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_DEV_LOGIN": "false"}, YAML: `
clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
` + githubProviderYAML(gh, "")}), gh.URL
		}},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			s, upstream := tc.start(t)
			_, conf := spaOIDC(t, s.URL)
			attacker, victim := newBrowser(t), newBrowser(t)
			resp, _ := attacker.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("provider", tc.provider)))
			toUpstream := resp.Header.Get("Location")
			if !strings.HasPrefix(toUpstream, upstream) {
				t.Fatalf("authorize = %d %s", resp.StatusCode, toUpstream)
			}
			resp, _ = victim.get(toUpstream) // the victim is signed in upstream
			callback := resp.Header.Get("Location")
			if !strings.HasPrefix(callback, s.URL+"/auth/callback/"+tc.provider+"?") || !strings.Contains(callback, "code=") {
				t.Fatalf("the upstream sent the victim to %q", callback)
			}
			resp, body := victim.get(callback)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") || resp.Header.Get("Location") != "" {
				t.Fatalf("victim at the callback = %d %s", resp.StatusCode, body)
			}
			nothingSignedIn(t, s)
			if n := countRows(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ? AND provider = ?", "login.state_rejected", tc.provider); n != 1 {
				t.Fatalf("state_rejected audit events = %d", n)
			}
		})
	}
}

func base64Of(doc string) string { return base64.StdEncoding.EncodeToString([]byte(doc)) }
