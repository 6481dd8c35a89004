package signin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

const sessionCookieName = "__Host-" + SessionCookieBase

// browserReq is a request to target carrying cookies (those with a
// name); form makes it a POST.
func browserReq(target string, form url.Values, cookies ...Cookie) *http.Request {
	r := request(target, form, Cookie{})
	for _, c := range cookies {
		if c.Name != "" {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return r
}

// sessionCookieOf returns the browser-session cookie out sets (its
// zero value when none) and whether out clears it.
func sessionCookieOf(out Outcome) (set Cookie, cleared bool) {
	for _, c := range out.Cookies {
		if c.Name == sessionCookieName {
			if c.MaxAge < 0 {
				return Cookie{}, true
			}
			return c, false
		}
	}
	return Cookie{}, false
}

// devSignIn runs a sign-in of query q at the dev provider as email in a
// browser holding session cookie sc, and returns the outcome of the
// form's POST and the session cookie it sets.
func (f *fixture) devSignIn(t *testing.T, q url.Values, sc Cookie, email string) (Outcome, Cookie) {
	t.Helper()
	q.Set("provider", "dev")
	begins := f.begins["dev"].Load()
	out := f.s.Login(context.Background(), loginRequest(q, sc), oauth.RequestMeta{})
	u, _ := url.Parse(out.RedirectURL)
	if out.Err != nil || out.Status != http.StatusFound || u.Path != "/auth/callback/dev" || f.begins["dev"].Load() != begins+1 {
		t.Fatalf("login = %+v, want the dev form", out)
	}
	state := u.Query().Get("state")
	var lc Cookie
	for _, c := range out.Cookies {
		if c.Name == CookieName(state) {
			lc = c
		}
	}
	r := browserReq("/auth/callback/dev", url.Values{"state": {state}, "email": {email}, "name": {"Name of " + email}}, lc, sc)
	r.Header.Set("User-Agent", "TestBrowser/1.0 "+strings.Repeat("x", 400))
	out = f.s.Callback(context.Background(), "dev", r, oauth.RequestMeta{IP: "192.0.2.7"})
	checkCodeRedirect(t, out, http.StatusSeeOther)
	set, _ := sessionCookieOf(out)
	if set.Name == "" {
		t.Fatalf("no browser-session cookie set: %+v", out.Cookies)
	}
	return out, set
}

// sessionOfCode returns the app session the code in out's redirect opened.
func (f *fixture) sessionOfCode(t *testing.T, out Outcome) *models.Session {
	t.Helper()
	u, _ := url.Parse(out.RedirectURL)
	c, err := f.store.FindAuthorizationCodeByHash(context.Background(), opaqueHashForTest(u.Query().Get("code")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.store.FindSession(context.Background(), c.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func opaqueHashForTest(code string) string { return stateHash(code) }

// browserSessionOf returns the stored browser session of cookie c.
func (f *fixture) browserSessionOf(t *testing.T, c Cookie) *models.BrowserSession {
	t.Helper()
	var b models.BrowserSession
	if err := f.store.Gorm().Where("token_hash = ?", stateHash(c.Value)).Take(&b).Error; err != nil {
		t.Fatalf("browser session of cookie: %v", err)
	}
	return &b
}

// ssoOutcome is what Login answers q in a browser holding c, and whether
// it went upstream (a sign-in begun at any provider).
func (f *fixture) ssoOutcome(q url.Values, c Cookie) (Outcome, bool) {
	before := f.begins["dev"].Load() + f.begins["up"].Load()
	out := f.s.Login(context.Background(), loginRequest(q, c), oauth.RequestMeta{RequestID: "sso"})
	return out, f.begins["dev"].Load()+f.begins["up"].Load() != before
}

// checkSSO checks that out is a code for the client without an upstream
// round trip.
func checkSSO(t *testing.T, out Outcome, upstream bool) {
	t.Helper()
	if upstream {
		t.Fatalf("went upstream: %+v", out)
	}
	checkCodeRedirect(t, out, http.StatusFound)
	if len(out.Cookies) != 0 {
		t.Fatalf("cookies %+v on a single sign-on", out.Cookies)
	}
}

// checkLoginRequired checks a redirect to the client with
// login_required (or code), its state and iss.
func checkRedirectError(t *testing.T, out Outcome, code string) {
	t.Helper()
	var re *oauth.RedirectError
	if !errors.As(out.Err, &re) {
		t.Fatalf("outcome = %+v, want a redirect with %s", out, code)
	}
	u, _ := url.Parse(re.RedirectURL)
	q := u.Query()
	if !strings.HasPrefix(re.RedirectURL, clientRedirect+"?") || q.Get("error") != code || q.Get("state") != "app-state" ||
		q.Get("iss") != testIssuer || q.Has("code") {
		t.Fatalf("redirect = %s, want error=%s", re.RedirectURL, code)
	}
}

func with(q url.Values, kv ...string) url.Values {
	q = cloneValues(q)
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

// TestSingleSignOn: a completed upstream sign-in leaves a browser
// session that answers later authorization requests of any client at
// once, within its rules, on both databases.
func TestSingleSignOn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixtureOn(t, db)
		ctx := context.Background()
		first, cookie := f.devSignIn(t, authorize("app", ""), Cookie{}, "ada@example.com")

		t.Run("the cookie", func(t *testing.T) {
			if cookie.Name != sessionCookieName || cookie.Path != "/" || !cookie.HTTPOnly || !cookie.Secure || !cookie.SameSiteLax ||
				len(cookie.Value) != 43 || cookie.MaxAge < 7*24*3600-5 || cookie.Expires.IsZero() {
				t.Fatalf("cookie = %+v", cookie)
			}
			b := f.browserSessionOf(t, cookie)
			var stored int64
			f.store.Gorm().Raw("SELECT COUNT(*) FROM browser_sessions WHERE token_hash = ? OR id = ?", cookie.Value, cookie.Value).Scan(&stored)
			if stored != 0 || b.IdentityID == nil || b.Provider != "dev" || b.IP != "192.0.2.7" || len(b.UserAgent) != 256 ||
				b.AMR == "" || b.RevokedAt != nil {
				t.Fatalf("browser session = %+v (token stored in clear: %d)", b, stored)
			}
			sess := f.sessionOfCode(t, first)
			if sess.BrowserSessionID == nil || *sess.BrowserSessionID != b.ID || !sess.AuthTime.Equal(b.AuthTime) {
				t.Fatalf("app session %+v not under browser session %s", sess, b.ID)
			}
		})
		t.Run("another client gets a code without a sign-in", func(t *testing.T) {
			n := f.counted()
			out, up := f.ssoOutcome(authorize("two", ""), cookie)
			checkSSO(t, out, up)
			b := f.browserSessionOf(t, cookie)
			sess := f.sessionOfCode(t, out)
			if sess.ClientID != "two" || *sess.BrowserSessionID != b.ID || !sess.AuthTime.Equal(b.AuthTime) || sess.AMR != b.AMR {
				t.Fatalf("app session = %+v, browser session %+v", sess, b)
			}
			if got := f.countedSince(n); !slices.Equal(got, []string{"dev sso"}) {
				t.Fatalf("counted %v", got)
			}
			if !f.audited(t, AuditLoginSSO, "sso") {
				t.Fatal("no login.sso event")
			}
		})
		for _, tc := range []struct {
			name string
			q    url.Values
			// sso: a code at once; else upstream, or with prompt=none
			// login_required.
			sso bool
		}{
			{"no provider named", authorize("app", ""), true},
			{"its provider named", authorize("app", "dev"), true},
			{"max_age not exceeded", with(authorize("app", ""), "max_age", "3600"), true},
			{"max_age of ten digits, beyond a time.Duration", with(authorize("app", ""), "max_age", "9999999999", "prompt", "none"), true},
			{"max_age one second beyond a time.Duration", with(authorize("app", ""), "max_age", "9223372037", "prompt", "none"), true},
			{"prompt=none", with(authorize("app", ""), "prompt", "none"), true},
			{"prompt=login", with(authorize("app", ""), "prompt", "login"), false},
			{"prompt=consent is a new sign-in", with(authorize("app", ""), "prompt", "consent"), false},
			{"max_age=0", with(authorize("app", ""), "max_age", "0"), false},
			{"max_age=0 with prompt=none", with(authorize("app", ""), "max_age", "0", "prompt", "none"), false},
			{"another provider named", authorize("app", "up"), false},
			{"another provider named with prompt=none", with(authorize("app", "up"), "prompt", "none"), false},
			{"a client not allowed the session's provider", authorize("uponly", ""), false},
			{"... with prompt=none", with(authorize("uponly", ""), "prompt", "none"), false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, up := f.ssoOutcome(tc.q, cookie)
				switch {
				case tc.sso:
					checkSSO(t, out, up)
				case tc.q.Get("prompt") == "none":
					if up {
						t.Fatal("prompt=none went upstream")
					}
					checkRedirectError(t, out, "login_required")
				case out.Chooser != nil:
					// A sign-in, at a provider the person chooses.
					if up || out.Err != nil || out.Status != http.StatusOK {
						t.Fatalf("outcome = %+v", out)
					}
				default:
					u, _ := url.Parse(out.RedirectURL)
					if !up || out.Err != nil || out.Status != http.StatusFound || strings.HasPrefix(out.RedirectURL, clientRedirect) ||
						(u.Host != "" && u.Host != "auth.example.com" && !strings.HasPrefix(out.RedirectURL, f.upstream.URL)) {
						t.Fatalf("outcome = %+v, want an upstream sign-in", out)
					}
				}
			})
		}
		t.Run("refused parameters", func(t *testing.T) {
			for _, q := range []url.Values{
				with(authorize("app", ""), "prompt", "none login"),
				with(authorize("app", ""), "max_age", "-1"),
				with(authorize("app", ""), "max_age", "1.5"),
				with(authorize("app", ""), "max_age", "99999999999"),
				with(authorize("app", ""), "id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
				with(authorize("app", ""), "prompt", "none", "id_token_hint", "not-a-jwt"),
			} {
				out, up := f.ssoOutcome(q, cookie)
				if up {
					t.Fatalf("%v went upstream", q)
				}
				checkRedirectError(t, out, "invalid_request")
			}
		})
		t.Run("select_account shows the chooser, with continue as", func(t *testing.T) {
			out, up := f.ssoOutcome(with(authorize("devonly", ""), "prompt", "select_account"), cookie)
			if up || out.Chooser == nil || len(out.Chooser.Providers) != 1 || out.Chooser.Continue == nil ||
				out.Chooser.Continue.DisplayName != "Name of ada@example.com" {
				t.Fatalf("outcome = %+v chooser %+v", out, out.Chooser)
			}
			cu, _ := url.Parse(out.Chooser.Continue.URL)
			if cu.Query().Has("prompt") || cu.Query().Get("provider") != "dev" {
				t.Fatalf("continue = %s", out.Chooser.Continue.URL)
			}
			out, up = f.ssoOutcome(cu.Query(), cookie)
			checkSSO(t, out, up)
		})
		t.Run("cookies that name no live session are ignored and cleared", func(t *testing.T) {
			other := newFixture(t)
			_, foreign := other.devSignIn(t, authorize("app", ""), Cookie{}, "ada@example.com")
			tampered := cookie
			tampered.Value = flipFirst(cookie.Value)
			for name, c := range map[string]Cookie{
				"another issuer's": foreign, "tampered": tampered, "unknown": {Name: sessionCookieName, Value: randomToken(32)},
				"malformed": {Name: sessionCookieName, Value: cookie.Value + "AAAA"},
			} {
				out, up := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), c)
				checkRedirectError(t, out, "login_required")
				if _, cleared := sessionCookieOf(out); up || !cleared {
					t.Errorf("%s cookie: upstream %v, cleared %v", name, up, cleared)
				}
				out, up = f.ssoOutcome(authorize("app", "dev"), c)
				if !up || out.Err != nil {
					t.Errorf("%s cookie: outcome %+v", name, out)
				}
			}
		})
		t.Run("prompt=none without a session", func(t *testing.T) {
			out, up := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), Cookie{})
			checkRedirectError(t, out, "login_required")
			if up || len(out.Cookies) != 0 {
				t.Fatalf("outcome = %+v", out)
			}
		})
		t.Run("rotation: a new sign-in of the same user renews the session with a new token", func(t *testing.T) {
			before := f.browserSessionOf(t, cookie)
			earlier := f.sessionOfCode(t, first)
			f.skew.Store(int64(time.Minute))
			defer f.skew.Store(0)
			_, renewed := f.devSignIn(t, with(authorize("app", ""), "prompt", "login"), cookie, "ada@example.com")
			after := f.browserSessionOf(t, renewed)
			if renewed.Value == cookie.Value || after.ID != before.ID || !after.AuthTime.After(before.AuthTime) {
				t.Fatalf("renewed %+v from %+v", after, before)
			}
			out, up := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), cookie)
			if up {
				t.Fatal("upstream")
			}
			checkRedirectError(t, out, "login_required") // the old token is dead
			if ok, _ := f.store.SessionActive(ctx, earlier.ID, time.Now()); !ok {
				t.Fatal("an app session of the renewed browser session ended")
			}
			cookie = renewed
		})
		t.Run("max_age exceeded", func(t *testing.T) {
			f.skew.Store(int64(2 * time.Hour))
			defer f.skew.Store(0)
			out, _ := f.ssoOutcome(with(authorize("app", ""), "max_age", "3600", "prompt", "none"), cookie)
			checkRedirectError(t, out, "login_required")
			out, up := f.ssoOutcome(with(authorize("app", ""), "max_age", "36000"), cookie)
			checkSSO(t, out, up)
		})
		t.Run("idle expiry", func(t *testing.T) {
			f.skew.Store(int64(2*time.Hour + 12*time.Hour + time.Minute))
			defer f.skew.Store(0)
			out, _ := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), cookie)
			checkRedirectError(t, out, "login_required")
		})
		t.Run("absolute expiry, however often it is used", func(t *testing.T) {
			_, c := f.devSignIn(t, authorize("app", ""), Cookie{}, "abs@example.com")
			for h := 11; ; h += 11 {
				f.skew.Store(int64(time.Duration(h) * time.Hour))
				out, up := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), c)
				if h <= 7*24 {
					checkSSO(t, out, up)
					continue
				}
				checkRedirectError(t, out, "login_required")
				break
			}
			f.skew.Store(0)
		})
		t.Run("another user signing in ends the previous user's browser session", func(t *testing.T) {
			_, grace := f.devSignIn(t, authorize("app", ""), Cookie{}, "grace@example.com")
			gs := f.browserSessionOf(t, grace)
			out, _ := f.ssoOutcome(authorize("two", ""), grace)
			appSess := f.sessionOfCode(t, out)
			_, bob := f.devSignIn(t, with(authorize("app", ""), "prompt", "login"), grace, "bob@example.com")
			bs := f.browserSessionOf(t, bob)
			gs, _ = f.store.FindBrowserSession(ctx, gs.ID)
			if bs.ID == gs.ID || gs.RevokedAt == nil || gs.RevokeReason != RevokeReasonReplaced {
				t.Fatalf("grace's session %+v, bob's %+v", gs, bs)
			}
			if ok, _ := f.store.SessionActive(ctx, appSess.ID, time.Now()); ok {
				t.Fatal("an app session of the replaced browser session is still active")
			}
		})
		t.Run("a disabled user", func(t *testing.T) {
			_, c := f.devSignIn(t, authorize("app", ""), Cookie{}, "dis@example.com")
			b := f.browserSessionOf(t, c)
			if _, err := f.store.SetUserDisabled(ctx, b.UserID, true, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			out, _ := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), c)
			checkRedirectError(t, out, "login_required")
			out, up := f.ssoOutcome(authorize("app", "dev"), c)
			if !up || out.Err != nil {
				t.Fatalf("outcome = %+v", out)
			}
		})
		t.Run("an unlinked identity", func(t *testing.T) {
			_, c := f.devSignIn(t, authorize("app", ""), Cookie{}, "unlinked@example.com")
			b := f.browserSessionOf(t, c)
			if err := f.store.Gorm().Exec("DELETE FROM identities WHERE id = ?", *b.IdentityID).Error; err != nil {
				t.Fatal(err)
			}
			if b = f.browserSessionOf(t, c); b.IdentityID != nil {
				t.Fatalf("identity of the browser session = %v", *b.IdentityID)
			}
			out, _ := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), c)
			checkRedirectError(t, out, "login_required")
		})
	})
}

// TestLogoutWithoutHint: without an id_token_hint, a browser session
// ends only through the confirmation page's POST from Gatehouse's own
// origin.
func TestLogoutWithoutHint(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixtureOn(t, db)
		ctx := context.Background()
		first, cookie := f.devSignIn(t, authorize("app", ""), Cookie{}, "ada@example.com")
		appSess := f.sessionOfCode(t, first)
		bye := url.Values{"client_id": {"app"}, "post_logout_redirect_uri": {"https://app.example.com/bye"}, "state": {"s1"}}
		live := func() bool {
			b := f.browserSessionOf(t, cookie)
			ok, _ := f.store.SessionActive(ctx, appSess.ID, time.Now())
			return b.RevokedAt == nil && ok
		}
		t.Run("GET shows the confirmation and ends nothing", func(t *testing.T) {
			out := f.s.Logout(ctx, browserReq("/auth/logout?"+bye.Encode(), nil, cookie), "", oauth.RequestMeta{})
			c := out.LogoutConfirm
			if out.Err != nil || out.Status != http.StatusOK || c == nil || c.Action != "/auth/logout" || c.Client != "App app" ||
				c.Fields["post_logout_redirect_uri"] != "https://app.example.com/bye" || c.Fields["state"] != "s1" || len(out.Cookies) != 0 {
				t.Fatalf("outcome = %+v, confirm %+v", out, c)
			}
			if !live() {
				t.Fatal("a GET ended the session")
			}
		})
		t.Run("an unregistered redirect is refused before any confirmation", func(t *testing.T) {
			q := with(bye, "post_logout_redirect_uri", "https://evil.example/")
			out := f.s.Logout(ctx, browserReq("/auth/logout?"+q.Encode(), nil, cookie), "", oauth.RequestMeta{})
			if kindOf(out) != fault.LogoutUnregistered || !live() {
				t.Fatalf("outcome = %+v", out)
			}
		})
		for name, header := range map[string][2]string{
			"no Origin":               {"", ""},
			"another Origin":          {"Origin", "https://evil.example"},
			"an origin of null":       {"Origin", "null"},
			"cross-site fetch":        {"Sec-Fetch-Site", "cross-site"},
			"same-site, not origin":   {"Sec-Fetch-Site", "same-site"},
			"http origin of the host": {"Origin", "http://auth.example.com"},
		} {
			t.Run("POST refused: "+name, func(t *testing.T) {
				r := browserReq("/auth/logout", bye, cookie)
				if header[0] != "" {
					r.Header.Set(header[0], header[1])
				}
				out := f.s.Logout(ctx, r, "", oauth.RequestMeta{})
				if kindOf(out) != fault.LogoutCrossSite || len(out.Cookies) != 0 || !live() {
					t.Fatalf("outcome = %+v", out)
				}
			})
		}
		t.Run("client_only must be true or false", func(t *testing.T) {
			out := f.s.Logout(ctx, browserReq("/auth/logout?client_only=yes", nil, cookie), "", oauth.RequestMeta{})
			if kindOf(out) != fault.InvalidRequest || !live() {
				t.Fatalf("outcome = %+v", out)
			}
		})
		t.Run("the same-origin POST ends the browser session and its app sessions", func(t *testing.T) {
			r := browserReq("/auth/logout", bye, cookie)
			r.Header.Set("Origin", testIssuer)
			out := f.s.Logout(ctx, r, "", oauth.RequestMeta{RequestID: "bye"})
			if _, cleared := sessionCookieOf(out); out.Err != nil || out.Status != http.StatusFound ||
				out.RedirectURL != "https://app.example.com/bye?state=s1" || !cleared {
				t.Fatalf("outcome = %+v", out)
			}
			if live() || !f.audited(t, oauth.AuditLogout, "bye") {
				t.Fatal("the session lives on, or no logout event")
			}
			out, up := f.ssoOutcome(with(authorize("app", ""), "prompt", "none"), cookie)
			checkRedirectError(t, out, "login_required")
			if up {
				t.Fatal("upstream")
			}
		})
		t.Run("without a live session: nothing to confirm, the cookie cleared", func(t *testing.T) {
			out := f.s.Logout(ctx, browserReq("/auth/logout", nil, cookie), "", oauth.RequestMeta{})
			if _, cleared := sessionCookieOf(out); out.Err != nil || !out.SignedOut || out.Status != http.StatusOK || !cleared {
				t.Fatalf("outcome = %+v", out)
			}
		})
	})
}

// flipFirst changes the first character of a token.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// TestUpstreamFactsCarried: the amr and acr an upstream reports (the
// OIDC fake's amr claim; acr as the provider reports it) are the
// browser session's and every app session's opened from it, with the
// upstream sign-in's time.
func TestUpstreamFactsCarried(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixtureOn(t, db)
		user := providertest.DefaultUser()
		user["amr"] = []string{"mfa", "hwk"}
		f.upstream.SetUser(user)
		upstreamAuth := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
		edit := func(id *providers.Identity) {
			id.ACR, id.UpstreamLogout, id.AuthTime = "urn:example:loa:2", "upstream-session-1", upstreamAuth
		}
		f.edit.Store(&edit)
		out := f.s.Login(context.Background(), loginRequest(authorize("app", "up"), Cookie{}), oauth.RequestMeta{})
		var lc Cookie
		for _, c := range out.Cookies {
			if strings.HasPrefix(c.Name, LoginCookiePrefix) {
				lc = c
			}
		}
		noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(out.RedirectURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		out = f.s.Callback(context.Background(), "up", browserReq(resp.Header.Get("Location"), nil, lc), oauth.RequestMeta{})
		checkCodeRedirect(t, out, http.StatusSeeOther)
		cookie, _ := sessionCookieOf(out)
		b := f.browserSessionOf(t, cookie)
		if b.AMR != "mfa hwk" || b.ACR != "urn:example:loa:2" || b.Provider != "up" || !b.AuthTime.Equal(upstreamAuth) {
			t.Fatalf("browser session = %+v", b)
		}
		if b.UpstreamLogout == "" || strings.Contains(b.UpstreamLogout, "upstream-session-1") || f.s.UpstreamLogoutOf(b) != "upstream-session-1" {
			t.Fatalf("upstream logout stored as %q, opens to %q", b.UpstreamLogout, f.s.UpstreamLogoutOf(b))
		}
		moved := *b
		moved.ID = "another-session"
		if f.s.UpstreamLogoutOf(&moved) != "" {
			t.Fatal("the sealed upstream logout opens for another browser session")
		}
		for _, o := range []Outcome{out, func() Outcome { o, up := f.ssoOutcome(authorize("two", ""), cookie); checkSSO(t, o, up); return o }()} {
			sess := f.sessionOfCode(t, o)
			if sess.AMR != "mfa hwk" || sess.ACR != "urn:example:loa:2" || !sess.AuthTime.Equal(b.AuthTime) {
				t.Fatalf("app session = %+v", sess)
			}
		}
	})
}

// TestUpstreamAskedAgain: max_age and acr_values go to the provider a
// sign-in begins at.
func TestUpstreamAskedAgain(t *testing.T) {
	f := newFixture(t)
	out, up := f.ssoOutcome(with(authorize("app", "up"), "max_age", "0", "acr_values", " urn:a   urn:b "), Cookie{})
	got := lastBegin.Load()
	if !up || out.Err != nil || got.MaxAge == nil || *got.MaxAge != 0 || got.ACRValues != "urn:a urn:b" {
		t.Fatalf("outcome %+v, begun with %+v", out, got)
	}
	out, _ = f.ssoOutcome(authorize("app", "up"), Cookie{})
	if got = lastBegin.Load(); out.Err != nil || got.MaxAge != nil || got.ACRValues != "" {
		t.Fatalf("begun with %+v", got)
	}
}
