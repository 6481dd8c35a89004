package app_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/ratelimit/redistest"
)

const deviceYAML = `
clients:
  - id: cli
    name: Example CLI
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:device_code, refresh_token]
  - id: cli-confidential
    name: Confidential CLI
    secret: cli-confidential-secret-0123
    grant_types: [urn:ietf:params:oauth:grant-type:device_code]
  - id: spa
    name: Example SPA
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
  - id: backend
    secret: backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/backend/callback]
    introspect_any: true
`

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// startDeviceServer starts Gatehouse with the device clients, a
// one-second polling interval (x/oauth2 waits it before every poll) and
// the given user-code attempts per minute.
func startDeviceServer(t *testing.T, pg bool, attempts string) *apptest.Server {
	t.Helper()
	return apptest.Start(t, apptest.Options{YAML: deviceYAML, Postgres: pg, Env: map[string]string{
		"GATEHOUSE_DEVICE_POLL_INTERVAL": "1s", "GATEHOUSE_DEVICE_CODE_ATTEMPTS": attempts}})
}

func deviceConfig(s *apptest.Server, clientID, secret string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: s.URL + "/auth/device", TokenURL: s.URL + "/auth/token"},
		Scopes:   []string{oidc.ScopeOpenID, "email", "profile"}}
}

// csrfOf returns the form token of a device page.
func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form token on the page: %s", body)
	}
	return m[1]
}

// enterCode opens verification_uri_complete and submits the prefilled
// code: the page never decides on its own.
func (b *browser) enterCode(s *apptest.Server, da *oauth2.DeviceAuthResponse) (*http.Response, string) {
	b.t.Helper()
	resp, body := b.get(da.VerificationURIComplete)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="`+da.UserCode+`"`) {
		b.t.Fatalf("device page = %d, code not prefilled: %s", resp.StatusCode, body)
	}
	return b.post(s.URL+"/device", url.Values{"csrf": {csrfOf(b.t, body)}, "user_code": {da.UserCode}})
}

// deviceSignIn enters the code, signs in at the dev provider and returns
// the approval page.
func (b *browser) deviceSignIn(s *apptest.Server, da *oauth2.DeviceAuthResponse, email string) string {
	b.t.Helper()
	resp, body := b.enterCode(s, da)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("code entry = %d %s", resp.StatusCode, body)
	}
	formURL := resp.Header.Get("Location")
	resp, body = b.get(formURL)
	m := stateField.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		b.t.Fatalf("dev form = %d %s", resp.StatusCode, body)
	}
	u, _ := url.Parse(formURL)
	resp, body = b.post(u.Scheme+"://"+u.Host+u.Path, url.Values{"state": {m[1]}, "email": {email}, "name": {"Ada Lovelace"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != s.URL+"/device/approve" {
		b.t.Fatalf("dev sign-in = %d %s → %s", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	resp, body = b.get(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("approval page = %d %s", resp.StatusCode, body)
	}
	return body
}

// decide posts the approval page's form.
func (b *browser) decide(s *apptest.Server, page, decision string) (*http.Response, string) {
	b.t.Helper()
	return b.post(s.URL+"/device/approve", url.Values{"csrf": {csrfOf(b.t, page)}, "decision": {decision}})
}

// poll asks the token endpoint once for da's tokens as clientID.
func poll(t *testing.T, s *apptest.Server, clientID, secret, deviceCode string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}}
	if secret == "" {
		form.Set("client_id", clientID)
	}
	return tokenPost(t, s, form, map[bool]string{true: clientID}[secret != ""], secret)
}

func retrieveCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestDeviceFlowWithStockClient drives the device authorization grant
// with golang.org/x/oauth2's device flow and a cookie-jar browser at
// /device: discovery, the code entry (verification_uri_complete only
// fills the form in), the dev sign-in returning to the approval page,
// which names the client and warns, approval, tokens as the code grant
// issues them (ID token verified with go-oidc, a refresh token that
// refreshes), an ordinary session that revocation ends, single sign-on
// for the next device, and refusal of a replayed device code.
func TestDeviceFlowWithStockClient(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := startDeviceServer(t, pg, "100")
			ctx := context.Background()
			provider, err := oidc.NewProvider(ctx, s.URL)
			if err != nil {
				t.Fatal(err)
			}
			var disc struct {
				DeviceEndpoint string   `json:"device_authorization_endpoint"`
				Grants         []string `json:"grant_types_supported"`
			}
			if err := provider.Claims(&disc); err != nil {
				t.Fatal(err)
			}
			if disc.DeviceEndpoint != s.URL+"/auth/device" || !strings.Contains(strings.Join(disc.Grants, " "), "device_code") {
				t.Fatalf("discovery = %+v", disc)
			}
			conf := deviceConfig(s, "cli", "")
			conf.Endpoint = provider.Endpoint() // the device endpoint from discovery
			da, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(da.UserCode) ||
				da.VerificationURI != s.URL+"/device" || da.Interval != 1 || da.Expiry.IsZero() {
				t.Fatalf("device authorization = %+v", da)
			}
			// Before the person decides, the device is told to wait.
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "authorization_pending" {
				t.Fatalf("early poll = %d %v", status, out)
			}

			b := newBrowser(t)
			page := b.deviceSignIn(s, da, "ada@example.com")
			for _, want := range []string{"Example CLI", "<code>cli</code>", "openid", "email", "Approve only if you started this", da.UserCode} {
				if !strings.Contains(page, want) {
					t.Errorf("approval page lacks %q", want)
				}
			}
			if strings.Contains(page, "<script") {
				t.Error("approval page has a script")
			}
			resp, body := b.decide(s, page, "approve")
			if resp.StatusCode != 200 || !strings.Contains(body, "Device approved") {
				t.Fatalf("approve = %d %s", resp.StatusCode, body)
			}

			tok, err := conf.DeviceAccessToken(ctx, da)
			if err != nil {
				t.Fatalf("device access token: %v", err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: "cli"}).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("ID token: %v", err)
			}
			var claims struct {
				Email string `json:"email"`
				SID   string `json:"sid"`
			}
			_ = idt.Claims(&claims)
			if claims.Email != "ada@example.com" || claims.SID == "" || tok.RefreshToken == "" {
				t.Fatalf("claims %+v, refresh token %q", claims, tok.RefreshToken)
			}
			if in := introspect(t, s, tok.AccessToken); in["active"] != true || in["client_id"] != "cli" {
				t.Fatalf("introspection = %v", in)
			}

			// The device code took its tokens once.
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("replayed device_code = %d %v", status, out)
			}

			// A refresh works like any session's.
			refreshed, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil || refreshed.AccessToken == "" {
				t.Fatalf("refresh: %v", err)
			}

			// The next device in this browser uses its sign-in: the code
			// leads straight to the approval, no upstream round trip.
			da2, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resp, page = b.enterCode(s, da2)
			if resp.StatusCode != 200 || !strings.Contains(page, "Approve this device?") || !strings.Contains(page, "Ada Lovelace") {
				t.Fatalf("code entry with a live sign-in = %d %s", resp.StatusCode, page)
			}
			if resp, body := b.decide(s, page, "approve"); resp.StatusCode != 200 || !strings.Contains(body, "Device approved") {
				t.Fatalf("approve = %d %s", resp.StatusCode, body)
			}
			tok2, err := conf.DeviceAccessToken(ctx, da2)
			if err != nil {
				t.Fatal(err)
			}

			// The session is ordinary: revoking its refresh token ends it.
			if status, out := formPost(t, s.URL+"/auth/revoke", url.Values{"token": {tok2.RefreshToken}, "client_id": {"cli"}}, "", ""); status != 200 {
				t.Fatalf("revoke = %d %v", status, out)
			}
			if in := introspect(t, s, tok2.AccessToken); in["active"] != false {
				t.Fatalf("access token of a revoked device session = %v", in)
			}
			if in := introspect(t, s, tok.AccessToken); in["active"] != true {
				t.Fatalf("the other device's session ended too: %v", in)
			}
		})
	}
}

// TestDeviceFlowRefusals covers what the device grant refuses: a denied
// device (access_denied through x/oauth2), an expired code, polling
// faster than the interval (slow_down, and the interval grows), a
// device code of another client, clients without the grant, bad scope,
// audience and client authentication, and oversized bodies.
func TestDeviceFlowRefusals(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s := startDeviceServer(t, pg, "100")
			ctx := context.Background()
			conf := deviceConfig(s, "cli", "")

			// Denied: the device is told so.
			da, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t)
			page := b.deviceSignIn(s, da, "grace@example.com")
			if resp, body := b.decide(s, page, "deny"); resp.StatusCode != 200 || !strings.Contains(body, "Device denied") {
				t.Fatalf("deny = %d %s", resp.StatusCode, body)
			}
			if _, err := conf.DeviceAccessToken(ctx, da); retrieveCode(err) != "access_denied" {
				t.Fatalf("denied device: %v", err)
			}
			// The code cannot be decided again.
			if resp, _ := b.decide(s, page, "approve"); resp.StatusCode != 400 {
				t.Fatalf("second decision = %d", resp.StatusCode)
			}

			// slow_down: a poll within the interval, and the interval
			// grows by 5 seconds (RFC 8628 §3.5).
			da, err = conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// A minute's interval, so that however slow this machine, the
			// second poll comes too early.
			var row models.DeviceAuthorization
			if err := s.DB.Where("client_id = ? AND status = ?", "cli", models.DevicePending).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if err := s.DB.Model(&row).Update("interval_seconds", 60).Error; err != nil {
				t.Fatal(err)
			}
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "authorization_pending" {
				t.Fatalf("first poll = %d %v", status, out)
			}
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "slow_down" {
				t.Fatalf("fast poll = %d %v", status, out)
			}
			if err := s.DB.Where("id = ?", row.ID).Take(&row).Error; err != nil {
				t.Fatal(err)
			}
			if row.IntervalSeconds != 65 {
				t.Fatalf("interval after slow_down = %d, want 65", row.IntervalSeconds)
			}
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "slow_down" {
				t.Fatalf("poll within the grown interval = %d %v", status, out)
			}

			// A device code is its client's only.
			status, out := poll(t, s, "cli-confidential", "cli-confidential-secret-0123", da.DeviceCode)
			if status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("another client's device code = %d %v", status, out)
			}

			// Expired: the code's time is up.
			if err := s.DB.Model(&models.DeviceAuthorization{}).Where("id = ?", row.ID).
				Update("expires_at", time.Now().UTC().Add(-time.Second)).Error; err != nil {
				t.Fatal(err)
			}
			if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "expired_token" {
				t.Fatalf("expired poll = %d %v", status, out)
			}
			// …and can no longer be entered at /device.
			if resp, body := newBrowser(t).enterCode(s, da); resp.StatusCode != 400 || !strings.Contains(body, "not valid") {
				t.Fatalf("expired code entered = %d %s", resp.StatusCode, body)
			}

			// Concurrent polls of an approved device: one takes the
			// tokens, every other is refused.
			da3, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resp, page := b.enterCode(s, da3) // this browser is signed in
			if resp.StatusCode != 200 {
				t.Fatalf("code entry = %d %s", resp.StatusCode, page)
			}
			if resp, body := b.decide(s, page, "approve"); resp.StatusCode != 200 {
				t.Fatalf("approve = %d %s", resp.StatusCode, body)
			}
			statuses := make(chan int, 8)
			for range 8 {
				go func() {
					form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da3.DeviceCode}, "client_id": {"cli"}}
					req, _ := http.NewRequest(http.MethodPost, s.URL+"/auth/token", strings.NewReader(form.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					r, err := http.DefaultClient.Do(req)
					if err != nil {
						statuses <- 0
						return
					}
					r.Body.Close()
					statuses <- r.StatusCode
				}()
			}
			won := 0
			for range 8 {
				switch st := <-statuses; st {
				case 200:
					won++
				case 400:
				default:
					t.Errorf("concurrent poll = %d", st)
				}
			}
			if won != 1 {
				t.Fatalf("%d concurrent polls took tokens, want 1", won)
			}

			// Unknown and malformed device codes.
			for _, code := range []string{"ghd_" + strings.Repeat("A", 43), "nonsense", da.DeviceCode + "x"} {
				if status, out := poll(t, s, "cli", "", code); status != 400 || out["error"] != "invalid_grant" {
					t.Errorf("device_code %q = %d %v", code, status, out)
				}
			}

			// The device authorization endpoint's refusals.
			cases := []struct {
				name       string
				form       url.Values
				user, pass string
				status     int
				code       string
			}{
				{"client without the grant", url.Values{"client_id": {"spa"}}, "", "", 400, "unauthorized_client"},
				{"confidential client without the grant", url.Values{}, "backend", "backend-secret-0123456789", 400, "unauthorized_client"},
				{"unknown client", url.Values{"client_id": {"nobody"}}, "", "", 401, "invalid_client"},
				{"wrong secret", url.Values{}, "cli-confidential", "wrong-secret-0123456789", 401, "invalid_client"},
				{"secret missing", url.Values{"client_id": {"cli-confidential"}}, "", "", 401, "invalid_client"},
				{"unknown scope", url.Values{"client_id": {"cli"}, "scope": {"openid admin:all"}}, "", "", 400, "invalid_scope"},
				{"foreign audience", url.Values{"client_id": {"cli"}, "audience": {"https://other.example"}}, "", "", 400, "invalid_target"},
				{"foreign resource", url.Values{"client_id": {"cli"}, "resource": {"https://other.example"}}, "", "", 400, "invalid_target"},
				{"repeated scope", url.Values{"client_id": {"cli"}, "scope": {"openid", "email"}}, "", "", 400, "invalid_request"},
			}
			for _, c := range cases {
				status, out := formPost(t, s.URL+"/auth/device", c.form, c.user, c.pass)
				if status != c.status || out["error"] != c.code {
					t.Errorf("%s: %d %v, want %d %s", c.name, status, out, c.status, c.code)
				}
			}
			// A confidential client authenticates as at the token endpoint
			// (x/oauth2's DeviceAuth sends only client_id: the secret goes
			// as client_secret_post, or in Basic).
			confidential := deviceConfig(s, "cli-confidential", "cli-confidential-secret-0123")
			if _, err := confidential.DeviceAuth(ctx); retrieveCode(err) != "invalid_client" {
				t.Fatalf("confidential client without its secret: %v", err)
			}
			if _, err := confidential.DeviceAuth(ctx, oauth2.SetAuthURLParam("client_secret", confidential.ClientSecret)); err != nil {
				t.Fatalf("confidential client: %v", err)
			}
			if status, out := formPost(t, s.URL+"/auth/device", url.Values{}, "cli-confidential", "cli-confidential-secret-0123"); status != 200 || out["device_code"] == nil {
				t.Fatalf("confidential client with Basic: %d %v", status, out)
			}
			// The grant itself is refused to a client without it.
			status, out = poll(t, s, "spa", "", da.DeviceCode)
			if status != 400 || out["error"] != "unauthorized_client" {
				t.Fatalf("device_code grant for spa = %d %v", status, out)
			}

			// Oversized bodies.
			big := strings.Repeat("a", 2<<20)
			for _, path := range []string{"/auth/device", "/device", "/device/approve"} {
				resp, _ := newBrowser(t).post(s.URL+path, url.Values{"client_id": {"cli"}, "pad": {big}})
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Errorf("oversized POST %s = %d", path, resp.StatusCode)
				}
			}
		})
	}
}

// TestDevicePageRefusals covers the browser side: the approval form
// needs this browser's form token (CSRF), a form or cookie copied to
// another browser decides nothing, wrong user codes are limited per IP
// and audited, and no parameter of /device redirects elsewhere.
func TestDevicePageRefusals(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			// Four entries a minute: the sign-in below enters one.
			s := startDeviceServer(t, pg, "4")
			ctx := context.Background()
			conf := deviceConfig(s, "cli", "")
			da, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t)
			page := b.deviceSignIn(s, da, "ada@example.com")

			// CSRF: no token, a wrong one, or the right one from another
			// browser (no cookie) decide nothing.
			for name, form := range map[string]url.Values{
				"no token":    {"decision": {"approve"}},
				"wrong token": {"decision": {"approve"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
			} {
				if resp, body := b.post(s.URL+"/device/approve", form); resp.StatusCode != 400 || strings.Contains(body, "Device approved") {
					t.Errorf("%s: %d %s", name, resp.StatusCode, body)
				}
			}
			other := newBrowser(t)
			if resp, body := other.decide(s, page, "approve"); resp.StatusCode != 400 || strings.Contains(body, "Device approved") {
				t.Errorf("another browser's post: %d %s", resp.StatusCode, body)
			}
			// A cross-site form page cannot read the token: the same
			// cookie with the entry page's token of another browser fails.
			_, otherEntry := other.get(s.URL + "/device")
			if resp, _ := b.post(s.URL+"/device/approve", url.Values{"decision": {"approve"}, "csrf": {csrfOf(t, otherEntry)}}); resp.StatusCode != 400 {
				t.Errorf("another browser's token: %d", resp.StatusCode)
			}
			if status, out := poll(t, s, "cli", "", da.DeviceCode); out["error"] != "authorization_pending" {
				t.Fatalf("after refused decisions the device got %d %v", status, out)
			}
			// The real form still works.
			if resp, body := b.decide(s, page, "approve"); resp.StatusCode != 200 || !strings.Contains(body, "Device approved") {
				t.Fatalf("approve = %d %s", resp.StatusCode, body)
			}

			// Open redirects: no parameter of the device pages sends the
			// browser off this issuer.
			evil := "https://evil.example/x"
			for _, u := range []string{
				"/device?user_code=BCDF-GHJK&redirect_uri=" + url.QueryEscape(evil) + "&return_to=" + url.QueryEscape(evil),
				"/device/login?provider=" + url.QueryEscape(evil),
				"/device/login?provider=dev&redirect_uri=" + url.QueryEscape(evil),
				"/device/approve?next=" + url.QueryEscape(evil),
			} {
				resp, _ := newBrowser(t).get(s.URL + u)
				if loc := resp.Header.Get("Location"); loc != "" && !strings.HasPrefix(loc, s.URL+"/") && !strings.HasPrefix(loc, "/") {
					t.Errorf("GET %s redirects to %s", u, loc)
				}
				if loc := resp.Header.Get("Location"); strings.Contains(loc, "evil") {
					t.Errorf("GET %s redirects to %s", u, loc)
				}
			}

			// Guessing: three wrong codes a minute from one IP, then 429
			// before the code is even looked up; each failure is audited.
			g := newBrowser(t)
			_, entry := g.get(s.URL + "/device")
			token := csrfOf(t, entry)
			for i, code := range []string{"BBBB-BBBB", "bcdf ghjk", "AEIO-U123"} {
				resp, body := g.post(s.URL+"/device", url.Values{"csrf": {token}, "user_code": {code}})
				if resp.StatusCode != 400 || !strings.Contains(body, "not valid") {
					t.Fatalf("wrong code %d = %d %s", i, resp.StatusCode, body)
				}
			}
			resp, _ := g.post(s.URL+"/device", url.Values{"csrf": {token}, "user_code": {"CCCC-CCCC"}})
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("fourth wrong code = %d", resp.StatusCode)
			}
			var failed int64
			if err := s.DB.Model(&models.AuditEvent{}).Where("type = ?", "device.code_failed").Count(&failed).Error; err != nil {
				t.Fatal(err)
			}
			if failed < 3 {
				t.Fatalf("device.code_failed events = %d, want at least 3", failed)
			}
			var approved int64
			if err := s.DB.Model(&models.AuditEvent{}).Where("type = ?", "device.authorized").Count(&approved).Error; err != nil {
				t.Fatal(err)
			}
			if approved != 1 {
				t.Fatalf("device.authorized events = %d, want 1", approved)
			}
		})
	}
}

// TestDeviceCodeGuessesSharedInRedis: with the rate limits in Redis,
// the user-code attempts of one client IP are counted across replicas,
// apart from the general limit and from other IPs.
func TestDeviceCodeGuessesSharedInRedis(t *testing.T) {
	env := redisEnv(redistest.URL(t), redistest.Prefix(t), "GATEHOUSE_RATE_LIMIT", "1000", "GATEHOUSE_DEVICE_CODE_ATTEMPTS", "2")
	a := apptest.Start(t, apptest.Options{YAML: deviceYAML, Env: env})
	b := apptest.Start(t, apptest.Options{YAML: deviceYAML, Env: env})
	br := newBrowser(t)
	_, entry := br.get(a.URL + "/device")
	token := csrfOf(t, entry)
	enter := func(s *apptest.Server, ip, code string) int {
		form := url.Values{"csrf": {token}, "user_code": {code}}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/device", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		resp, _ := br.do(req)
		return resp.StatusCode
	}
	if st := enter(a, "203.0.113.20", "BBBB-BBBB"); st != 400 {
		t.Fatalf("first wrong code = %d", st)
	}
	if st := enter(b, "203.0.113.20", "CCCC-CCCC"); st != 400 {
		t.Fatalf("second wrong code, other replica = %d", st)
	}
	if st := enter(a, "203.0.113.20", "DDDD-DDDD"); st != http.StatusTooManyRequests {
		t.Fatalf("third code = %d, want 429", st)
	}
	if st := enter(b, "203.0.113.21", "DDDD-DDDD"); st != 400 {
		t.Fatalf("another IP = %d", st)
	}
}

// TestDeviceChooserAndSessions: with several providers the device page
// offers the chooser (its links stay under /device), a cancelled
// upstream sign-in returns to /device, single sign-on is not used for a
// client that may not use the session's provider, and an approval whose
// session ended before the device polled gives no tokens.
func TestDeviceChooserAndSessions(t *testing.T) {
	yaml := deviceYAML + `  - id: cli-corp
    name: Corporate CLI
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:device_code]
    allowed_providers: [corp-dev]
providers:
  - {name: corp-dev, type: dev, display_name: Corporate test login}
`
	s := apptest.Start(t, apptest.Options{YAML: yaml, Env: map[string]string{"GATEHOUSE_DEVICE_POLL_INTERVAL": "1s"}})
	ctx := context.Background()
	conf := deviceConfig(s, "cli", "")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	resp, body := b.enterCode(s, da)
	if resp.StatusCode != 200 || !strings.Contains(body, "Corporate test login") || !strings.Contains(body, "Example CLI") ||
		!strings.Contains(body, s.URL+"/device/login?provider=corp-dev") {
		t.Fatalf("chooser = %d %s", resp.StatusCode, body)
	}
	// A provider that is not one is an error page, not a redirect.
	if resp, _ := b.get(s.URL + "/device/login?provider=nope"); resp.StatusCode < 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("unknown provider = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Cancelling at the upstream comes back to the device page.
	resp, _ = b.get(s.URL + "/device/login?provider=corp-dev")
	formURL, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || formURL.Path != "/auth/callback/corp-dev" {
		t.Fatalf("chooser entry = %d → %s", resp.StatusCode, formURL)
	}
	resp, _ = b.get(s.URL + formURL.Path + "?state=" + url.QueryEscape(formURL.Query().Get("state")) + "&error=access_denied")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != s.URL+"/device" {
		t.Fatalf("cancelled sign-in = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Signing in at the dev provider through the chooser.
	resp, _ = b.get(s.URL + "/device/login?provider=dev")
	formURL, _ = url.Parse(resp.Header.Get("Location"))
	resp, _ = b.post(s.URL+formURL.Path, url.Values{"state": {formURL.Query().Get("state")}, "email": {"ada@example.com"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != s.URL+"/device/approve" {
		t.Fatalf("dev sign-in = %d → %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := b.get(s.URL + "/device/approve")
	if resp, body := b.decide(s, page, "approve"); resp.StatusCode != 200 || !strings.Contains(body, "Device approved") {
		t.Fatalf("approve = %d %s", resp.StatusCode, body)
	}
	// The session ends (an admin, a logout) before the device polls.
	var row models.DeviceAuthorization
	if err := s.DB.Where("client_id = ? AND status = ?", "cli", models.DeviceApproved).Take(&row).Error; err != nil || row.SessionID == nil {
		t.Fatalf("approved row: %v", err)
	}
	if _, err := s.Sessions.EndSession(ctx, *row.SessionID, "test"); err != nil {
		t.Fatal(err)
	}
	if status, out := poll(t, s, "cli", "", da.DeviceCode); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("poll after the session ended = %d %v", status, out)
	}

	// The browser's sign-in was at dev: the corporate CLI, which allows
	// corp-dev only, gets a sign-in there instead of single sign-on.
	da, err = deviceConfig(s, "cli-corp", "").DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, body = b.enterCode(s, da)
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/auth/callback/corp-dev" {
		t.Fatalf("code entry for cli-corp = %d %s", resp.StatusCode, body)
	}
}
