package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// findChromium returns a headless-capable browser, or "" when none is
// installed (GATEHOUSE_TEST_CHROME names one explicitly).
func findChromium() string {
	if p := os.Getenv("GATEHOUSE_TEST_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserContext starts headless Chromium; on failure it saves a
// screenshot under test-artifacts/ at the repository root.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	chrome := findChromium()
	if chrome == "" {
		t.Skip("browser tests skipped: no Chromium found (apt-get install chromium, or set GATEHOUSE_TEST_CHROME)")
	}
	// Not t.TempDir: Chromium's helpers may still write there while the
	// browser exits, which would fail the test's cleanup.
	profile, err := os.MkdirTemp("", "gatehouse-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			var png []byte
			shotCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := chromedp.Run(shotCtx, chromedp.FullScreenshot(&png, 90)); err == nil {
				dir := filepath.Join("..", "test-artifacts")
				_ = os.MkdirAll(dir, 0o755)
				name := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
				if os.WriteFile(name, png, 0o644) == nil {
					t.Logf("screenshot saved to %s", name)
				}
			}
			cancel()
		}
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}

// TestDemoInChromium signs in through the /demo app in a real browser:
// sign in, pick nothing (dev is the only provider), fill the form, see the
// claims and /auth/me, switch organization, refresh, sign out.
func TestDemoInChromium(t *testing.T) {
	ctx := browserContext(t)
	// Each dev group becomes an organization, so the user has two.
	s := apptest.Start(t, apptest.Options{YAML: `
org_sync:
  auto_create_orgs: true
  rules:
    - {match: "dev:group:*", org: "{org}", role: member}
`})
	var access, switched, me, count, status string
	err := chromedp.Run(ctx,
		chromedp.Navigate(s.URL+"/demo/"),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#email", chromedp.ByID),
		chromedp.SendKeys("#email", "ada@example.com", chromedp.ByID),
		chromedp.SendKeys("#name", "Ada Lovelace", chromedp.ByID),
		chromedp.SendKeys("#groups", "eng, ops", chromedp.ByID),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#signed-in", chromedp.ByID),
		chromedp.Poll(`document.getElementById("me").textContent.includes("identities")`, nil),
		chromedp.Text("#access-claims", &access, chromedp.ByID),
		chromedp.Text("#me", &me, chromedp.ByID),
		// Switch to the other organization: a refresh with `organization`.
		chromedp.WaitVisible("#org-picker", chromedp.ByID),
		chromedp.Evaluate(`(() => { const s = document.getElementById("org");
			s.value = [...s.options].find((o) => !o.selected).value;
			s.dispatchEvent(new Event("change")); })()`, nil),
		chromedp.Poll(`document.getElementById("refresh-count").textContent === "1"`, nil),
		chromedp.Text("#access-claims", &switched, chromedp.ByID),
		chromedp.Click("#refresh", chromedp.ByID),
		chromedp.Poll(`document.getElementById("refresh-count").textContent === "2"`, nil),
		chromedp.Text("#refresh-count", &count, chromedp.ByID),
		chromedp.Click("#signout", chromedp.ByID),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Poll(`document.getElementById("status").textContent.includes("signed out")`, nil),
		chromedp.Text("#status", &status, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("browser flow: %v", err)
	}
	if !strings.Contains(access, `"email": "ada@example.com"`) || !strings.Contains(access, `"sid"`) {
		t.Fatalf("access token claims:\n%s", access)
	}
	orgOf := func(claims string) string {
		var c struct {
			OrgID string `json:"org_id"`
		}
		_ = json.Unmarshal([]byte(claims), &c)
		return c.OrgID
	}
	if orgOf(access) == "" || orgOf(switched) == "" || orgOf(access) == orgOf(switched) {
		t.Fatalf("organization switch: %q then %q", orgOf(access), orgOf(switched))
	}
	if !strings.Contains(me, `"provider": "dev"`) || count != "2" || !strings.Contains(status, "signed out") {
		t.Fatalf("me=%s count=%s status=%s", me, count, status)
	}
	var sessions int64
	s.DB.Raw("SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", "logout").Scan(&sessions)
	if sessions != 1 {
		t.Fatalf("logged-out sessions = %d, want 1", sessions)
	}
}

// TestDemoBadPathsInChromium: a sign-in cancelled at the provider, a
// tampered callback and an expired login each end on a readable page with
// a way back.
func TestDemoBadPathsInChromium(t *testing.T) {
	ctx := browserContext(t)
	s := apptest.Start(t, apptest.Options{})
	var text string
	err := chromedp.Run(ctx,
		// Cancelled at the provider: back at the demo with the reason and a sign-in button.
		chromedp.Navigate(s.URL+"/demo/"),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#email", chromedp.ByID),
		chromedp.Click(`a[href*="error=access_denied"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &text, chromedp.ByID),
		chromedp.WaitVisible("#signin", chromedp.ByID),
	)
	if err != nil || !strings.Contains(text, "cancelled") {
		t.Fatalf("cancel: %v %q", err, text)
	}
	err = chromedp.Run(ctx,
		// A tampered callback that this page never started.
		chromedp.Navigate(s.URL+"/demo/?code=ghc_forged&state=forged"),
		chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &text, chromedp.ByID),
		chromedp.WaitVisible("#signin", chromedp.ByID),
	)
	if err != nil || !strings.Contains(text, "not started here") {
		t.Fatalf("tampered callback: %v %q", err, text)
	}
	err = chromedp.Run(ctx,
		// An expired or foreign login state at Gatehouse: a page with a way back.
		chromedp.Navigate(s.URL+"/auth/callback/dev?state=expired-or-forged"),
		chromedp.WaitVisible("h1", chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if err != nil || !strings.Contains(text, "please start again") || !strings.Contains(text, "Start again") {
		t.Fatalf("expired login: %v %q", err, text)
	}
}

// TestSAMLInChromium signs in through a SAML IdP on another site
// (localhost against Gatehouse on 127.0.0.1), so Chromium's SameSite
// rules apply: the IdP's form posts cross-site without the login cookie,
// Gatehouse's auto-submitting page posts it again under Gatehouse's CSP,
// and that same-site POST, cookie and all, completes the sign-in. The
// IdP's answer to a sign-in another browser started ends on a page that
// says so, and signs nobody in.
func TestSAMLInChromium(t *testing.T) {
	ctx := browserContext(t)
	idp := samltest.NewOnHost(t, "localhost")
	idp.SetDefault(samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true})
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>app</title><p id="done">back at the application</p>`))
	}))
	t.Cleanup(client.Close)
	s := apptest.Start(t, apptest.Options{YAML: `
clients:
  - id: spa
    public: true
    redirect_uris: [` + client.URL + `/callback]
providers:
  - name: corp
    type: saml
    idp_metadata_url: ` + idp.URL + `/metadata
    insecure_http_metadata: true
`})
	idp.TrustSPMetadataURL(t, s.URL+"/auth/saml/corp/metadata")
	conf := &oauth2.Config{ClientID: "spa", Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login"}, RedirectURL: client.URL + "/callback",
		Scopes: []string{"openid", "email"}}
	authURL := func() string {
		return conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "corp"))
	}
	var location string
	err := chromedp.Run(ctx,
		chromedp.Navigate(authURL()),
		chromedp.WaitVisible(`#SAMLResponseForm input[type="submit"]`, chromedp.ByQuery), // the IdP's page
		chromedp.Click(`#SAMLResponseForm input[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#done", chromedp.ByID),
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("browser flow: %v", err)
	}
	back, _ := url.Parse(location)
	if !strings.HasPrefix(location, client.URL+"/callback?") || back.Query().Get("code") == "" || back.Query().Get("state") != "st" {
		t.Fatalf("landed on %s", location)
	}

	// The attacker starts a sign-in elsewhere and hands the IdP's URL to
	// this browser, signed in at the IdP.
	attacker := newBrowser(t)
	resp, _ := attacker.get(authURL())
	var text string
	err = chromedp.Run(ctx,
		chromedp.Navigate(resp.Header.Get("Location")),
		chromedp.WaitVisible(`#SAMLResponseForm input[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`#SAMLResponseForm input[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("h1", chromedp.ByQuery),
		chromedp.Text("main", &text, chromedp.ByQuery),
	)
	if err != nil || !strings.Contains(text, "started in another browser") {
		t.Fatalf("answer to another browser's sign-in: %v %q", err, text)
	}
	var sessions int64
	s.DB.Raw("SELECT COUNT(*) FROM sessions").Scan(&sessions)
	if sessions != 1 {
		t.Fatalf("sessions = %d, want the one sign-in of this browser", sessions)
	}
}
