package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
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

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// spaDir holds the package.json and package-lock.json that pin
// oidc-client-ts for TestOIDCClientTSInChromium; npm ci installs it in
// node_modules beside them (gitignored, reused while the lock is unchanged).
var spaDir = filepath.Join("testdata", "spa")

// oidcClientTSBundle returns oidc-client-ts's browser bundle (an IIFE that
// defines the global `oidc`), installing the locked version with npm ci
// when it is missing or stale. Without npm the test skips, saying why,
// except in CI (GATEHOUSE_TEST_REQUIRE_NODE=1, or a PostgreSQL DSN set as
// .ci/run does), where it fails: the same rule as clients/node's tests.
func oidcClientTSBundle(t *testing.T) []byte {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		msg := "the oidc-client-ts browser test needs npm (with Node.js) to fetch oidc-client-ts from the npm registry: npm is not on PATH"
		if os.Getenv("GATEHOUSE_TEST_REQUIRE_NODE") == "1" || os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	apptest.NPMCI(t, npm, spaDir)
	bundle, err := os.ReadFile(filepath.Join(spaDir, "node_modules", "oidc-client-ts", "dist", "browser", "oidc-client-ts.min.js"))
	if err != nil {
		t.Fatalf("oidc-client-ts browser bundle: %v", err)
	}
	return bundle
}

// spaPage is the whole single-page app: oidc-client-ts's UserManager with
// the settings under test, exposed as window.mgr. Each path is one of the
// app's pages: / (ready), /callback (signinRedirectCallback), /silent
// (signinSilentCallback, inside the hidden iframe) and /signed-out
// (signoutRedirectCallback). A finished page appends #done and sets
// window.result.
var spaPage = template.Must(template.New("spa").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.ClientID}}</title>
<script src="/oidc-client-ts.min.js"></script>
<script>
"use strict";
oidc.Log.setLogger(console);
oidc.Log.setLevel(oidc.Log.WARN);
window.settings = {{.Settings}};
window.mgr = new oidc.UserManager(window.settings);
// The ID token's claims as sent (user.profile leaves out protocol claims
// such as auth_time and amr: filterProtocolClaims).
const claims = (jwt) => JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
const summary = (u) => u && {
  sub: u.profile.sub, sid: claims(u.id_token).sid || null, auth_time: claims(u.id_token).auth_time || 0,
  amr: claims(u.id_token).amr || null,
  access_token: u.access_token, id_token: u.id_token, refresh_token: u.refresh_token || null, scope: u.scope,
};
const failure = (e) => ({ error: e.error || e.message || String(e), error_description: e.error_description || null });
const done = (result) => {
  window.result = result;
  const p = document.createElement("p");
  p.id = "done";
  p.textContent = JSON.stringify(result);
  document.body.append(p);
};
// What the test calls: each resolves to {user} or {error}.
// Every user the manager loads (sign-in, signinSilent, automatic renewal).
window.loaded = [];
mgr.events.addUserLoaded((u) => window.loaded.push(summary(u)));
window.silent = () => mgr.signinSilent().then((u) => ({ user: summary(u) }), failure);
window.current = () => mgr.getUser().then((u) => ({ user: summary(u) }), failure);
addEventListener("DOMContentLoaded", () => {
  switch (location.pathname) {
  case "/callback":
    mgr.signinRedirectCallback().then((u) => done({ user: summary(u) }), (e) => done(failure(e)));
    break;
  case "/silent":
    mgr.signinSilentCallback().catch((e) => console.error("silent callback", e));
    break;
  case "/signed-out":
    mgr.signoutRedirectCallback().then(() => done({ signed_out: true }), (e) => done(failure(e)));
    break;
  default:
    done({ ready: true });
  }
});
</script></head><body><h1>{{.ClientID}}</h1></body></html>`))

// spaSettings are the oidc-client-ts UserManager settings that work
// against Gatehouse (docs/oidc-provider.md, "oidc-client-ts settings that
// work"). With autoRenew the library renews by itself, through the iframe,
// a minute before the access token expires (the default of
// accessTokenExpiringNotificationTimeInSeconds); without, only when the
// test calls signinSilent.
func spaSettings(issuer, clientID, origin string, autoRenew bool) map[string]any {
	return map[string]any{
		"authority":                issuer,
		"client_id":                clientID,
		"redirect_uri":             origin + "/callback",
		"silent_redirect_uri":      origin + "/silent",
		"post_logout_redirect_uri": origin + "/signed-out",
		"response_type":            "code",
		// No offline_access, and a client without the refresh_token
		// grant: oidc-client-ts renews with a refresh token whenever it
		// holds one, and this test proves the prompt=none iframe.
		"scope":                         "openid email profile",
		"automaticSilentRenew":          autoRenew,
		"silentRequestTimeoutInSeconds": 10,
		// Gatehouse has no check_session_iframe.
		"monitorSession": false,
		"loadUserInfo":   false,
		// One upstream: skip Gatehouse's provider chooser.
		"extraQueryParams": map[string]string{"provider": "dev"},
	}
}

// spaServer serves spaPage for one client on its own port of 127.0.0.1:
// another origin than Gatehouse, but the same site, so Gatehouse's
// SameSite=Lax browser-session cookie reaches the silent-renew iframe.
func spaServer(t *testing.T) *httptest.Server {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return srv
}

func startSPA(t *testing.T, srv *httptest.Server, bundle []byte, issuer, clientID string, autoRenew bool) {
	origin := "http://" + srv.Listener.Addr().String()
	settings, err := json.Marshal(spaSettings(issuer, clientID, origin, autoRenew))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case "/oidc-client-ts.min.js":
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			_, _ = w.Write(bundle)
		case "/", "/callback", "/silent", "/signed-out":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = spaPage.Execute(w, map[string]any{"ClientID": clientID, "Settings": template.JS(settings)})
		default:
			http.NotFound(w, r)
		}
	})
	srv.Start()
}

// spaResult is what the SPA page reports: a user, or an OAuth error.
type spaResult struct {
	User *struct {
		Sub          string   `json:"sub"`
		SID          string   `json:"sid"`
		AuthTime     int64    `json:"auth_time"`
		AMR          []string `json:"amr"`
		AccessToken  string   `json:"access_token"`
		IDToken      string   `json:"id_token"`
		RefreshToken *string  `json:"refresh_token"`
		Scope        string   `json:"scope"`
	} `json:"user"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
	SignedOut   bool   `json:"signed_out"`
	Ready       bool   `json:"ready"`
}

// awaitResult waits for the page's #done and returns window.result.
func awaitResult(ctx context.Context) (spaResult, error) {
	var raw string
	err := chromedp.Run(ctx,
		chromedp.WaitReady("#done", chromedp.ByID),
		chromedp.Evaluate(`JSON.stringify(window.result)`, &raw),
	)
	var r spaResult
	if err == nil {
		err = json.Unmarshal([]byte(raw), &r)
	}
	return r, err
}

// awaitPage waits until the browser has navigated to path and the page
// there has finished, and returns its window.result. (chromedp.Poll
// fails when a navigation replaces the page it polls, so this asks for
// the location until it is the one expected.)
func awaitPage(ctx context.Context, path string) (spaResult, error) {
	for {
		var loc string
		if err := chromedp.Run(ctx, chromedp.Location(&loc)); err == nil {
			if u, err := url.Parse(loc); err == nil && u.Path == path {
				return awaitResult(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return spaResult{}, fmt.Errorf("waiting for %s (at %s): %w", path, loc, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// callJS evaluates expr, a promise of a spaResult, and waits for it.
func callJS(ctx context.Context, expr string) (spaResult, error) {
	var raw string
	err := chromedp.Run(ctx,
		chromedp.Evaluate(`window.answer = ""; void `+expr+`.then((r) => { window.answer = JSON.stringify(r); })`, nil),
		chromedp.Poll(`window.answer`, &raw, chromedp.WithPollingTimeout(30*time.Second)),
	)
	var r spaResult
	if err == nil {
		err = json.Unmarshal([]byte(raw), &r)
	}
	return r, err
}

// devFormCount reads, from Gatehouse's /metrics, how often the dev
// provider's callback route answered a GET (its sign-in form) and a POST
// (the form submitted): the upstream interaction of a dev sign-in.
func devFormCount(t *testing.T, gatehouse string) (shown, posted int) {
	t.Helper()
	resp, err := http.Get(gatehouse + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := regexp.MustCompile(`^gatehouse_http_request_duration_seconds_count\{method="(GET|POST)",route="/auth/callback/:provider",status="[0-9]+"\} ([0-9]+)$`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			if m[1] == "GET" {
				shown += n
			} else {
				posted += n
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return shown, posted
}

// TestOIDCClientTSInChromium runs a stock SPA library, oidc-client-ts from
// npm, in Chromium against Gatehouse's single sign-on: signinRedirect
// through the dev provider's form once; signinSilent (prompt=none in a
// hidden iframe, no refresh token) renews with no upstream interaction; a
// second client on another origin signs in with signinRedirect and no
// form; signoutRedirect (RP-initiated logout with id_token_hint) ends the
// browser session, after which signinSilent fails with login_required in
// both apps and the second app's access token is refused.
func TestOIDCClientTSInChromium(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			bundle := oidcClientTSBundle(t)
			ctx := browserContext(t)
			one, two := spaServer(t), spaServer(t)
			oneURL, twoURL := "http://"+one.Listener.Addr().String(), "http://"+two.Listener.Addr().String()
			client := func(id, origin string) string {
				return fmt.Sprintf(`
  - id: %s
    public: true
    grant_types: [authorization_code]
    # oidc-client-ts's automatic renewal starts a minute before expiry: 5 s after each sign-in.
    access_token_ttl: 65s
    redirect_uris: [%[2]s/callback, %[2]s/silent]
    post_logout_redirect_uris: [%[2]s/signed-out]`, id, origin)
			}
			s := apptest.Start(t, apptest.Options{Postgres: pg,
				Env: map[string]string{"GATEHOUSE_CORS_ORIGINS": oneURL + "," + twoURL},
				YAML: "clients:" + client("spa-one", oneURL) + client("spa-two", twoURL) + `
providers:
  - {name: dev, type: dev}
`})
			startSPA(t, one, bundle, s.URL, "spa-one", false)
			startSPA(t, two, bundle, s.URL, "spa-two", true)

			// 1. signinRedirect: the dev provider's form, filled once.
			first, err := func() (spaResult, error) {
				if err := chromedp.Run(ctx,
					chromedp.Navigate(oneURL+"/"),
					chromedp.WaitReady("#done", chromedp.ByID),
					chromedp.Evaluate(`void mgr.signinRedirect()`, nil),
					chromedp.WaitVisible("#email", chromedp.ByID),
					chromedp.SendKeys("#email", "ada@example.com", chromedp.ByID),
					chromedp.SendKeys("#name", "Ada Lovelace", chromedp.ByID),
					chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
				); err != nil {
					return spaResult{}, err
				}
				return awaitPage(ctx, "/callback")
			}()
			if err != nil || first.User == nil {
				t.Fatalf("signinRedirect: %v %+v", err, first)
			}
			if first.User.RefreshToken != nil {
				t.Fatal("spa-one holds a refresh token: signinSilent would use the refresh grant, not the iframe")
			}
			for _, m := range first.User.AMR {
				if m == "pwd" {
					t.Fatalf("amr %v: the dev form checks no password", first.User.AMR)
				}
			}
			// The browser-session cookie is HttpOnly: no script on the site sees it.
			var scriptCookies string
			if err := chromedp.Run(ctx, chromedp.Evaluate(`document.cookie`, &scriptCookies)); err != nil || strings.Contains(scriptCookies, "gatehouse_session") {
				t.Fatalf("document.cookie = %q (%v)", scriptCookies, err)
			}
			shown, posted := devFormCount(t, s.URL)
			if shown != 1 || posted != 1 {
				t.Fatalf("dev form shown %d, posted %d times for one sign-in", shown, posted)
			}

			// 2. signinSilent: prompt=none in the iframe, answered from the
			// browser session, no upstream interaction.
			renewed, err := callJS(ctx, `silent()`)
			if err != nil || renewed.User == nil {
				t.Fatalf("signinSilent after sign-in: %v %+v", err, renewed)
			}
			if renewed.User.Sub != first.User.Sub || renewed.User.AccessToken == first.User.AccessToken || renewed.User.IDToken == first.User.IDToken {
				t.Fatalf("signinSilent: sub %q (was %q), new tokens: %v", renewed.User.Sub, first.User.Sub, renewed.User.AccessToken != first.User.AccessToken)
			}
			if renewed.User.AuthTime != first.User.AuthTime || first.User.AuthTime == 0 {
				t.Fatalf("auth_time %d after silent renewal, %d at sign-in: it is the upstream sign-in's", renewed.User.AuthTime, first.User.AuthTime)
			}
			if renewed.User.RefreshToken != nil {
				t.Fatal("a refresh token after signinSilent")
			}

			// 3. The second app: signinRedirect with no form.
			second, err := func() (spaResult, error) {
				if err := chromedp.Run(ctx,
					chromedp.Navigate(twoURL+"/"),
					chromedp.WaitReady("#done", chromedp.ByID),
					chromedp.Evaluate(`void mgr.signinRedirect()`, nil),
				); err != nil {
					return spaResult{}, err
				}
				return awaitPage(ctx, "/callback")
			}()
			if err != nil || second.User == nil {
				t.Fatalf("signinRedirect at the second client: %v %+v", err, second)
			}
			if second.User.Sub != first.User.Sub || second.User.AuthTime != first.User.AuthTime {
				t.Fatalf("second client: sub %q auth_time %d, first %q %d", second.User.Sub, second.User.AuthTime, first.User.Sub, first.User.AuthTime)
			}
			// automaticSilentRenew: the library renews on its own, through the iframe.
			var auto string
			if err := chromedp.Run(ctx, chromedp.Poll(`window.loaded.length >= 2 && JSON.stringify(window.loaded[1])`, &auto,
				chromedp.WithPollingTimeout(30*time.Second))); err != nil {
				t.Fatalf("automaticSilentRenew at the second client: %v", err)
			}
			var autoUser struct {
				Sub         string `json:"sub"`
				AccessToken string `json:"access_token"`
				AuthTime    int64  `json:"auth_time"`
			}
			if err := json.Unmarshal([]byte(auto), &autoUser); err != nil || autoUser.Sub != first.User.Sub ||
				autoUser.AccessToken == second.User.AccessToken || autoUser.AuthTime != first.User.AuthTime {
				t.Fatalf("automatic renewal: %v %s", err, auto)
			}
			if again, _ := callJS(ctx, `silent()`); again.User == nil || again.User.Sub != first.User.Sub {
				t.Fatalf("signinSilent at the second client: %+v", again)
			}
			if shown, posted := devFormCount(t, s.URL); shown != 1 || posted != 1 {
				t.Fatalf("after silent renewal and a second client: dev form shown %d, posted %d times, want once", shown, posted)
			}

			// 4. signoutRedirect from the first app: RP-initiated logout
			// with id_token_hint, back at post_logout_redirect_uri.
			out, err := func() (spaResult, error) {
				if err := chromedp.Run(ctx,
					chromedp.Navigate(oneURL+"/"),
					chromedp.WaitReady("#done", chromedp.ByID),
					chromedp.Evaluate(`void mgr.signoutRedirect()`, nil),
				); err != nil {
					return spaResult{}, err
				}
				return awaitPage(ctx, "/signed-out")
			}()
			if err != nil || !out.SignedOut {
				t.Fatalf("signoutRedirect: %v %+v", err, out)
			}

			// 5. Silent renewal fails with login_required in both apps, and
			// the second app's session ended with the browser session.
			for _, origin := range []string{oneURL, twoURL} {
				var after spaResult
				if err := chromedp.Run(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitReady("#done", chromedp.ByID)); err == nil {
					after, err = callJS(ctx, `silent()`)
				}
				if err != nil || after.Error != "login_required" || after.User != nil {
					t.Fatalf("signinSilent at %s after logout: %v %+v, want login_required", origin, err, after)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+second.User.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the second app's access token after logout at the first: %d %s", resp.StatusCode, body)
			}
			if shown, posted := devFormCount(t, s.URL); shown != 1 || posted != 1 {
				t.Fatalf("dev form shown %d, posted %d times in all, want once", shown, posted)
			}
		})
	}
}

// TestDemoSilentRenewalInChromium drives the /demo page's silent renewal
// (prompt=none in a hidden iframe, its own vanilla code): with no session
// it answers login_required; after one sign-in through the dev form it
// renews with no form; after sign-out it answers login_required again.
func TestDemoSilentRenewalInChromium(t *testing.T) {
	ctx := browserContext(t)
	s := apptest.Start(t, apptest.Options{})
	var before, renewed, after, count, access, accessRenewed string
	err := chromedp.Run(ctx,
		chromedp.Navigate(s.URL+"/demo/"),
		chromedp.WaitVisible("#renew", chromedp.ByID),
		chromedp.Click("#renew", chromedp.ByID),
		chromedp.Poll(`document.getElementById("renew-result").textContent.includes("login_required")`, nil),
		chromedp.Text("#renew-result", &before, chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#email", chromedp.ByID),
		chromedp.SendKeys("#email", "ada@example.com", chromedp.ByID),
		chromedp.SendKeys("#name", "Ada Lovelace", chromedp.ByID),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#signed-in", chromedp.ByID),
		chromedp.Poll(`document.getElementById("me").textContent.includes("identities")`, nil),
		chromedp.Text("#access-claims", &access, chromedp.ByID),
		chromedp.Click("#renew", chromedp.ByID),
		chromedp.Poll(`document.getElementById("renew-count").textContent === "1"`, nil),
		chromedp.Text("#renew-result", &renewed, chromedp.ByID),
		chromedp.Text("#renew-count", &count, chromedp.ByID),
		chromedp.Poll(`document.getElementById("status").textContent.startsWith("Signed in")`, nil),
		chromedp.Text("#access-claims", &accessRenewed, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("sign-in and silent renewal: %v (before %q, renewed %q)", err, before, renewed)
	}
	if !strings.Contains(before, "login_required") {
		t.Fatalf("silent renewal with no session: %q", before)
	}
	if !strings.Contains(renewed, "Renewed silently") || !strings.Contains(renewed, "ada@example.com") || access == accessRenewed {
		t.Fatalf("silent renewal: %q, new access token: %v", renewed, access != accessRenewed)
	}
	if shown, posted := devFormCount(t, s.URL); shown != 1 || posted != 1 {
		t.Fatalf("dev form shown %d, posted %d times, want once", shown, posted)
	}
	err = chromedp.Run(ctx,
		chromedp.Click("#signout", chromedp.ByID),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Poll(`document.getElementById("status").textContent.includes("signed out")`, nil),
		chromedp.Click("#renew", chromedp.ByID),
		chromedp.Poll(`document.getElementById("renew-result").textContent.includes("login_required")`, nil),
		chromedp.Text("#renew-result", &after, chromedp.ByID),
	)
	if err != nil || !strings.Contains(after, "no Gatehouse session") {
		t.Fatalf("silent renewal after sign-out: %v %q", err, after)
	}
}

// TestDemoSilentPageFraming: only the demo's silent-renewal page may be
// framed, and only by its own origin; every other page keeps
// X-Frame-Options DENY and frame-ancestors 'none'.
func TestDemoSilentPageFraming(t *testing.T) {
	s := apptest.Start(t, apptest.Options{})
	for _, tc := range []struct {
		path, xfo, ancestors string
	}{
		{"/demo/silent.html", "SAMEORIGIN", "frame-ancestors 'self'"},
		{"/demo/silent.js", "DENY", "frame-ancestors 'none'"},
		{"/demo/", "DENY", "frame-ancestors 'none'"},
		{"/demo/silent.html?state=x", "SAMEORIGIN", "frame-ancestors 'self'"},
		{"/demo/index.html", "DENY", "frame-ancestors 'none'"},
		{"/demo/demo.js", "DENY", "frame-ancestors 'none'"},
		{"/auth/login?prompt=none", "DENY", "frame-ancestors 'none'"},
		{"/", "DENY", "frame-ancestors 'none'"},
	} {
		resp, body := get(t, s.URL+tc.path)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.Header.Get("X-Frame-Options") != tc.xfo || !strings.Contains(csp, tc.ancestors) ||
			!strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "object-src 'none'") {
			t.Errorf("%s: %d X-Frame-Options %q, CSP %q", tc.path, resp.StatusCode, resp.Header.Get("X-Frame-Options"), csp)
		}
		if strings.HasPrefix(tc.path, "/demo/silent.html") && (resp.StatusCode != http.StatusOK || !strings.Contains(body, "silent.js")) {
			t.Errorf("%s = %d %s", tc.path, resp.StatusCode, body)
		}
	}
}
