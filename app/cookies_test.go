package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/signin"
)

// noRedirects is a client that shows every hop and keeps no cookies, so
// a test sees exactly what Gatehouse set.
var noRedirects = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

func loginCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, signin.LoginCookiePrefix) {
			return c
		}
	}
	return nil
}

// TestLoginCookieAttributesAndHSTS: the login-state cookie is HttpOnly,
// SameSite=Lax, scoped to /auth/, short-lived, and Secure when the issuer
// is https, both when it is set and when it is cleared; an https issuer
// sends Strict-Transport-Security on every answer, a plain-HTTP one
// (development on localhost) sends none.
func TestLoginCookieAttributesAndHSTS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		issuer string // "" keeps the test server's http://127.0.0.1 URL
		secure bool
	}{
		{name: "https issuer", issuer: "https://gatehouse.test", secure: true},
		{name: "http issuer on localhost", secure: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"GATEHOUSE_DEV_LOGIN": "true", "GATEHOUSE_LOGIN_STATE_TTL": "5m"}
			if tc.issuer != "" {
				env["GATEHOUSE_ISSUER"] = tc.issuer
			}
			s := apptest.Start(t, apptest.Options{YAML: flowYAML, Env: env})
			checkHSTS := func(resp *http.Response) {
				t.Helper()
				hsts := resp.Header.Get("Strict-Transport-Security")
				switch {
				case tc.secure && (!strings.HasPrefix(hsts, "max-age=") || strings.HasPrefix(hsts, "max-age=0")):
					t.Fatalf("%s: Strict-Transport-Security = %q on an https issuer", resp.Request.URL.Path, hsts)
				case !tc.secure && hsts != "":
					t.Fatalf("%s: Strict-Transport-Security = %q on a plain-HTTP issuer", resp.Request.URL.Path, hsts)
				}
			}
			for _, path := range []string{"/healthz", "/.well-known/openid-configuration", "/auth/login"} {
				resp, _ := get(t, s.URL+path)
				checkHSTS(resp)
			}

			q := url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:9/callback"},
				"state": {"st"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
				"code_challenge_method": {"S256"}, "provider": {"dev"}}
			resp, err := noRedirects.Get(s.URL + "/auth/login?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			checkHSTS(resp)
			set := loginCookie(resp)
			if resp.StatusCode != http.StatusFound || set == nil {
				t.Fatalf("authorize = %d, cookies %v", resp.StatusCode, resp.Cookies())
			}
			if !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Secure != tc.secure || set.Path != "/auth/" ||
				set.MaxAge <= 0 || set.MaxAge > int((5*time.Minute).Seconds()) || set.Domain != "" {
				t.Fatalf("login-state cookie = %+v (raw %q), want HttpOnly, SameSite=Lax, Secure=%v, Path=/auth/, 0 < Max-Age <= 300, no Domain",
					set, resp.Header.Get("Set-Cookie"), tc.secure)
			}

			// Completing the sign-in clears the cookie with the same attributes.
			form, _ := url.Parse(resp.Header.Get("Location"))
			state := form.Query().Get("state")
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/callback/dev",
				strings.NewReader(url.Values{"state": {state}, "email": {"ada@example.com"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: set.Name, Value: set.Value})
			resp, err = noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			checkHSTS(resp)
			cleared := loginCookie(resp)
			if resp.StatusCode != http.StatusSeeOther || cleared == nil {
				t.Fatalf("callback = %d, cookies %v", resp.StatusCode, resp.Cookies())
			}
			if cleared.Name != set.Name || cleared.MaxAge >= 0 || !cleared.HttpOnly || cleared.SameSite != http.SameSiteLaxMode ||
				cleared.Secure != tc.secure || cleared.Path != "/auth/" {
				t.Fatalf("clearing cookie = %+v (raw %q)", cleared, resp.Header.Get("Set-Cookie"))
			}
		})
	}
}

// subtestName writes an origin without slashes, which go test reads as
// subtest levels.
func subtestName(origin string) string {
	return strings.NewReplacer("://", " ", "/", "").Replace(origin)
}

// corsAnswer makes one request with an Origin and returns the answer.
func corsAnswer(t *testing.T, method, target, origin string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(""))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestCORSOnlyForRegisteredOrigins: a registered SPA origin gets
// Access-Control-Allow-Origin (its own, never *, never with credentials)
// on the endpoints an SPA calls, and its preflight is answered; any other
// origin, including look-alikes, gets no CORS header and its preflight is
// refused, while its request is answered as without an Origin (browsers
// send one with every form POST: an upstream's cross-site POST must still
// reach Gatehouse).
func TestCORSOnlyForRegisteredOrigins(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: flowYAML, Env: map[string]string{
		// The trailing slash is accepted by the setting; browsers never send it.
		"GATEHOUSE_CORS_ORIGINS": "https://app.example.com, https://admin.example.com/"}})
	plain := apptest.Start(t, apptest.Options{YAML: flowYAML})
	endpoints := []struct{ method, path, body string }{
		{http.MethodPost, "/auth/token", "grant_type=refresh_token&refresh_token=junk&client_id=spa"},
		{http.MethodPost, "/auth/revoke", "token=junk&client_id=spa"},
		{http.MethodGet, "/auth/userinfo", ""},
		{http.MethodGet, "/.well-known/openid-configuration", ""},
		{http.MethodGet, "/.well-known/jwks.json", ""},
	}
	statusWithout := map[string]int{}
	for _, ep := range endpoints {
		resp := corsAnswer(t, ep.method, s.URL+ep.path, "", "Content-Type", "application/x-www-form-urlencoded")
		statusWithout[ep.path] = resp.StatusCode
	}

	for _, origin := range []string{"https://app.example.com", "https://admin.example.com"} {
		t.Run("registered "+subtestName(origin), func(t *testing.T) {
			for _, ep := range endpoints {
				resp := corsAnswer(t, ep.method, s.URL+ep.path, origin, "Content-Type", "application/x-www-form-urlencoded")
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin || resp.StatusCode != statusWithout[ep.path] {
					t.Fatalf("%s %s: %d, Access-Control-Allow-Origin %q; want %d and %q", ep.method, ep.path, resp.StatusCode, got, statusWithout[ep.path], origin)
				}
				if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
					t.Fatalf("%s: credentials allowed cross-origin", ep.path)
				}
				pre := corsAnswer(t, http.MethodOptions, s.URL+ep.path, origin,
					"Access-Control-Request-Method", ep.method, "Access-Control-Request-Headers", "authorization,content-type")
				if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != origin ||
					!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), ep.method) ||
					!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") {
					t.Fatalf("preflight %s = %d %v", ep.path, pre.StatusCode, pre.Header)
				}
			}
		})
	}
	for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.example",
		"https://app.example.com:8443", "https://evil-app.example.com", "null"} {
		t.Run("unregistered "+subtestName(origin), func(t *testing.T) {
			for _, ep := range endpoints {
				resp := corsAnswer(t, ep.method, s.URL+ep.path, origin, "Content-Type", "application/x-www-form-urlencoded")
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" || resp.StatusCode != statusWithout[ep.path] {
					t.Fatalf("%s %s: %d, Access-Control-Allow-Origin %q; want %d and none", ep.method, ep.path, resp.StatusCode, got, statusWithout[ep.path])
				}
				pre := corsAnswer(t, http.MethodOptions, s.URL+ep.path, origin, "Access-Control-Request-Method", ep.method)
				if pre.StatusCode != http.StatusForbidden || pre.Header.Get("Access-Control-Allow-Origin") != "" {
					t.Fatalf("preflight %s = %d %v", ep.path, pre.StatusCode, pre.Header)
				}
			}
		})
	}
	t.Run("no origins configured", func(t *testing.T) {
		for _, ep := range endpoints {
			resp := corsAnswer(t, ep.method, plain.URL+ep.path, "https://app.example.com", "Content-Type", "application/x-www-form-urlencoded")
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
				t.Fatalf("%s: Access-Control-Allow-Origin %q without GATEHOUSE_CORS_ORIGINS", ep.path, got)
			}
		}
	})
	t.Run("a cross-site form POST still signs in", func(t *testing.T) {
		// What an upstream's POST binding (the SAML ACS) looks like to
		// Gatehouse: a form post carrying the upstream's Origin.
		b := newBrowser(t)
		authURL := s.URL + "/auth/login?" + url.Values{"response_type": {"code"}, "client_id": {"spa"},
			"redirect_uri": {"http://127.0.0.1:9/callback"}, "state": {"st"}, "provider": {"dev"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode()
		resp, _ := b.get(authURL)
		form, _ := url.Parse(resp.Header.Get("Location"))
		req, _ := http.NewRequest(http.MethodPost, s.URL+form.Path,
			strings.NewReader(url.Values{"state": {form.Query().Get("state")}, "email": {"ada@example.com"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://idp.example")
		resp, body := b.do(req)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "http://127.0.0.1:9/callback?") {
			t.Fatalf("form POST with a foreign Origin = %d %s", resp.StatusCode, body)
		}
		resp = corsAnswer(t, http.MethodPost, s.URL+"/auth/saml/corp/acs", "https://idp.example", "Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode == http.StatusForbidden {
			t.Fatalf("the ACS refused a POST for its Origin: %d", resp.StatusCode)
		}
	})
}
