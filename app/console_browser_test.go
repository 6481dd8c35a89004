package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/admin"
)

// consoleYAML: the example backend's confidential client, the client the
// test world signs its administrator in with, the dev provider alone (so
// the console's sign-in goes straight to its form) and org sync off.
const consoleYAML = `
clients:
  - id: kb-backend
    secret: kb-backend-secret-0123456789
    redirect_uris: [http://127.0.0.1:9/kb/callback]
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    audience: [kb-api]
  - id: admin-console
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    audience: [gatehouse-admin]
providers:
  - {name: dev, type: dev}
`

// console drives the admin console in Chromium.
type console struct {
	t   *testing.T
	ctx context.Context
	url string
	// shots, when set (GATEHOUSE_CONSOLE_SCREENSHOTS), is where each page's
	// screenshot is saved, for the documentation.
	shots string
}

// run runs one step with its own deadline, so that a stuck step leaves
// time to report what the page showed (and for the failure screenshot).
func (c *console) run(what string, actions ...chromedp.Action) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var text, url string
		_ = chromedp.Run(c.ctx, chromedp.Location(&url), chromedp.Evaluate(`document.body.innerText`, &text))
		c.t.Fatalf("%s: %v\nat %s the page shows:\n%s", what, err, url, text)
	}
}

// signIn signs email in at /admin/ through the dev form.
func (c *console) signIn(email, name string) {
	c.t.Helper()
	c.run("sign in as "+email,
		chromedp.Navigate(c.url+"/admin/"),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#email", chromedp.ByID),
		chromedp.SendKeys("#email", email, chromedp.ByID),
		chromedp.SendKeys("#name", name, chromedp.ByID),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#who-name", chromedp.ByID),
	)
}

func (c *console) signOut() {
	c.t.Helper()
	c.run("sign out",
		chromedp.Click("#signout", chromedp.ByID),
		chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Poll(`document.getElementById("status")?.textContent.includes("signed out")`, nil),
	)
}

// confirm answers the confirmation dialog and waits until it closed.
func (c *console) confirm() {
	c.t.Helper()
	c.run("confirm",
		chromedp.WaitVisible("#confirm-ok", chromedp.ByID),
		chromedp.Click("#confirm-ok", chromedp.ByID),
		chromedp.WaitNotVisible("#confirm", chromedp.ByID),
	)
}

// waitFor polls a JavaScript condition.
func (c *console) waitFor(what, js string) {
	c.t.Helper()
	c.run(what, chromedp.Poll(js, nil))
}

// shot saves a screenshot of the page as docs/admin-console-<name>.png
// when GATEHOUSE_CONSOLE_SCREENSHOTS names the folder.
func (c *console) shot(name string) {
	c.t.Helper()
	if c.shots == "" {
		return
	}
	var png []byte
	c.run("screenshot "+name, chromedp.Evaluate(`document.getElementById("toast").hidden = true`, nil), chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(c.shots, "admin-console-"+name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// TestConsoleInChromium: an administrator signs in to the console through
// the dev provider and invites a user; that user signs in (the invitation
// makes them a member) and, holding no admin permission, sees the refusal
// page; the administrator finds them among the members, changes their
// role, creates an API key and uses it against the example backend, ends
// the user's session, rotates the signing key, creates a client (its
// secret shown once), changes it, rotates its secret and deletes it, and
// finds each of those actions in the audit page. A failure saves a screenshot under
// test-artifacts/.
func TestConsoleInChromium(t *testing.T) {
	ctx := browserContext(t)
	w := newWorldWith(t, false, consoleYAML)
	be := kbBackend(t, w, 0)
	c := &console{t: t, ctx: ctx, url: w.s.URL, shots: os.Getenv("GATEHOUSE_CONSOLE_SCREENSHOTS")}
	// The first Run starts the browser: on the test's own context, not on
	// a step's, whose end would close it.
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatal(err)
	}
	acme := "#/orgs/" + w.acme

	// The administrator signs in: the users page, acting in the administrators' organization.
	c.signIn("root@example.com", "Root Admin")
	var who string
	c.run("who", chromedp.WaitVisible("#user-q", chromedp.ByID), chromedp.Text("#who-text", &who, chromedp.ByID))
	if !strings.Contains(who, "Root Admin") || !strings.Contains(who, "Gatehouse administrators") {
		t.Fatalf("signed in as %q", who)
	}

	// Invite ivy to acme as a member.
	c.run("invite",
		chromedp.Navigate(c.url+"/admin/"+acme+"/members"),
		chromedp.WaitVisible(`input[name="email"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, "ivy@example.com", chromedp.ByQuery),
		chromedp.Click(`form.inline button[type="submit"]`, chromedp.ByQuery),
	)
	c.waitFor("invitation sent", `document.getElementById("toast").textContent.includes("ivy@example.com")`)
	c.signOut()

	// Ivy signs in: the invitation makes her a member of acme, whose
	// member role grants no admin permission: the refusal page says so.
	c.signIn("ivy@example.com", "Ivy Invited")
	var refusal string
	c.run("refusal", chromedp.WaitVisible("#refusal", chromedp.ByID), chromedp.Text("#refusal", &refusal, chromedp.ByID))
	for _, want := range []string{"You cannot use the admin console", "Ivy Invited", "Acme", "admin:members-read", "gatehouse admin grant ivy@example.com"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("refusal page lacks %q:\n%s", want, refusal)
		}
	}
	c.shot("refusal")
	c.signOut()
	// Ivy signs in to an app, so she has a session the administrator can end.
	w.signIn("admin-console", "ivy@example.com", "", "")

	// The administrator again: ivy is a member; make her a viewer.
	c.signIn("root@example.com", "Root Admin")
	c.run("members",
		chromedp.Navigate(c.url+"/admin/"+acme+"/members"),
		chromedp.WaitVisible(`tr[data-member="ivy@example.com"]`, chromedp.ByQuery),
	)
	c.shot("organization")
	// The org-sync tab (this file has no rules: it says so).
	c.run("org sync", chromedp.Navigate(c.url+"/admin/"+acme+"/sync"))
	c.waitFor("acme's org-sync rules", `document.querySelector("main").textContent.includes("No org-sync rule places people in this organization")`)
	c.run("members again",
		chromedp.Navigate(c.url+"/admin/"+acme+"/members"),
		chromedp.WaitVisible(`tr[data-member="ivy@example.com"]`, chromedp.ByQuery),
	)
	c.run("change role",
		chromedp.SetValue(`tr[data-member="ivy@example.com"] select`, "viewer", chromedp.ByQuery),
		chromedp.Click(`tr[data-member="ivy@example.com"] td:nth-child(3) button`, chromedp.ByQuery),
	)
	c.confirm()
	c.waitFor("role changed", `document.querySelector('tr[data-member="ivy@example.com"] select')?.value === "viewer" &&
		document.getElementById("toast").textContent.includes("viewer")`)

	// A refused change shows the API's words under the form, naming the field.
	c.run("invalid role",
		chromedp.Navigate(c.url+"/admin/"+acme+"/roles"),
		chromedp.WaitVisible(`input[name="name"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "owner", chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
	)
	c.waitFor("validation message", `[...document.querySelectorAll("form .error")].some((e) => !e.hidden && e.textContent.includes("reserved for the system role"))`)

	// An API key, shown once, used against the example backend.
	var key string
	c.run("create key",
		chromedp.Navigate(c.url+"/admin/#/api-keys/"+w.acme),
		chromedp.WaitVisible(`input[name="permissions"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "ci reader", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="permissions"]`, "kb:read", chromedp.ByQuery),
		chromedp.Click(`form.inline button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#new-key", chromedp.ByID),
		chromedp.Text("#new-key", &key, chromedp.ByID),
		chromedp.WaitVisible(`tr[data-key="ci reader"]`, chromedp.ByQuery),
	)
	c.shot("api-keys")
	if status, body, _ := hit(t, http.MethodGet, be.URL+"/kb", "X-API-Key", key); status != 200 || !strings.Contains(body, `"kind":"api_key"`) {
		t.Fatalf("the new key at the backend = %d %s", status, body)
	}

	// Ivy's session, ended from her user page.
	ivy := w.userID("ivy@example.com")
	c.run("users",
		chromedp.Navigate(c.url+"/admin/#/users?q=ivy"),
		chromedp.WaitVisible(`a[href="#/users/`+ivy+`"]`, chromedp.ByQuery),
	)
	c.shot("users")
	c.run("user",
		chromedp.Click(`a[href="#/users/`+ivy+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[data-session]`, chromedp.ByQuery),
	)
	c.shot("user")
	c.run("end session", chromedp.Click(`button[data-session]`, chromedp.ByQuery))
	c.confirm()
	c.waitFor("session ended", `document.getElementById("toast").textContent.includes("Session ended")`)
	var sessions admin.List[admin.Session]
	w.mustCall("GET", "/api/v1/admin/users/"+ivy+"/sessions", w.root, nil, 200, &sessions)
	for _, s := range sessions.Items {
		if s.Active {
			t.Fatalf("ivy's session %s is still active", s.ID)
		}
	}

	// Instance: health, signing keys (rotated after confirmation), clients.
	c.run("instance",
		chromedp.Navigate(c.url+"/admin/#/instance"),
		chromedp.WaitVisible("#rotate-key", chromedp.ByID),
		chromedp.Poll(`document.body.textContent.includes("not available in this version") || document.body.textContent.includes("gatehouse-admin-console")`, nil),
		chromedp.Click("#rotate-key", chromedp.ByID),
	)
	c.confirm()
	c.waitFor("rotated", `document.querySelectorAll("#view table")[1]?.tBodies[0].rows.length === 2`)
	c.shot("instance")

	// Clients: the administrator creates one; a refused field shows the
	// API's words under the form; the secret is shown once and works; a
	// change, a rotation (both secrets work during the overlap) and the
	// deletion each reach the API. A client of the file is read-only.
	c.run("new client",
		// The rotation's notification (fixed at the bottom right) would
		// cover the button once it is scrolled into view.
		chromedp.Evaluate(`document.getElementById("toast").hidden = true`, nil),
		chromedp.Click("#new-client", chromedp.ByID),
		chromedp.WaitVisible(`input[name="client_id"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="client_id"]`, "reports", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "Reports", chromedp.ByQuery),
		chromedp.SendKeys(`textarea[name="redirect_uris"]`, "reports/callback", chromedp.ByQuery),
		chromedp.Click(`input[value="client_credentials"]`, chromedp.ByQuery),
		chromedp.Click(`form.client-form button[type="submit"]`, chromedp.ByQuery),
	)
	c.waitFor("refused redirect URI", `[...document.querySelectorAll("form .error")].some((e) => !e.hidden && e.textContent.includes("is not an absolute URL")) &&
		document.querySelector('textarea[name="redirect_uris"]').getAttribute("aria-invalid") === "true"`)
	if _, ok := w.s.OAuth.Client("reports"); ok {
		t.Fatal("a refused client exists")
	}
	var secret string
	c.run("create client",
		chromedp.SetValue(`textarea[name="redirect_uris"]`, "http://127.0.0.1:9/reports/callback", chromedp.ByQuery),
		chromedp.Click(`form.client-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#client-secret", chromedp.ByID),
		chromedp.Text("#client-secret", &secret, chromedp.ByID),
	)
	if cl, ok := w.s.OAuth.Client("reports"); !ok || cl.Name != "Reports" || !cl.AllowsGrant("client_credentials") {
		t.Fatalf("the created client = %+v, %v", cl, ok)
	}
	if st := clientCredentials(t, w, "reports", secret); st != 200 {
		t.Fatalf("the secret shown = %d at the token endpoint", st)
	}
	// Shown, not kept: not in the tab's storage, the URL or the history.
	var kept bool
	c.run("secret not kept", chromedp.Evaluate(fmt.Sprintf(`((s) => JSON.stringify({...sessionStorage, ...localStorage}).includes(s) ||
		location.href.includes(s) || JSON.stringify(history.state ?? "").includes(s))(%q)`, secret), &kept))
	if kept {
		t.Fatal("the client secret is kept in the browser's storage or URL")
	}
	c.run("edit client",
		chromedp.SetValue(`input[name="name"]`, "Monthly reports", chromedp.ByQuery),
		chromedp.SetValue(`input[name="audience"]`, "reports-api", chromedp.ByQuery),
		chromedp.Click(`form.client-form button[type="submit"]`, chromedp.ByQuery),
	)
	c.waitFor("saved", `document.querySelector("h1")?.textContent.includes("Monthly reports") && document.getElementById("client-secret") === null`)
	if cl, _ := w.s.OAuth.Client("reports"); cl == nil || cl.Name != "Monthly reports" || strings.Join(cl.Client.Audience, " ") != "reports-api" {
		t.Fatalf("the changed client = %+v", cl)
	}
	var rotated, previous string
	c.run("rotate secret",
		chromedp.Click("#rotate-secret", chromedp.ByID),
		chromedp.WaitVisible("#rotate-overlap", chromedp.ByID),
		chromedp.SetValue("#rotate-overlap", "1h", chromedp.ByID),
	)
	c.confirm()
	c.run("new secret",
		chromedp.WaitVisible("#client-secret", chromedp.ByID),
		chromedp.Text("#client-secret", &rotated, chromedp.ByID),
		chromedp.Text("#previous-secret", &previous, chromedp.ByID),
	)
	if rotated == "" || rotated == secret || !strings.Contains(previous, "keeps working until") {
		t.Fatalf("after rotation the page shows %q, %q", rotated, previous)
	}
	for _, s := range []string{secret, rotated} {
		if st := clientCredentials(t, w, "reports", s); st != 200 {
			t.Errorf("a secret during the overlap = %d, want 200", st)
		}
	}
	c.shot("clients")
	// Made public, it would lose its secrets: asked first; the API refuses
	// (a public client cannot use client_credentials) and the dialog
	// stays open with its words.
	c.run("make public",
		chromedp.SetValue(`select[name="type"]`, "public", chromedp.ByQuery),
		chromedp.Click(`form.client-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-ok", chromedp.ByID),
		chromedp.Click("#confirm-ok", chromedp.ByID),
	)
	c.waitFor("refused in the dialog", `!document.getElementById("confirm-error").hidden &&
		document.getElementById("confirm-error").textContent.includes("a public client cannot use client_credentials")`)
	c.run("cancel", chromedp.Click("#confirm-cancel", chromedp.ByID), chromedp.WaitNotVisible("#confirm", chromedp.ByID))
	if cl, _ := w.s.OAuth.Client("reports"); cl == nil || cl.Public {
		t.Fatalf("the refused change reached the client: %+v", cl)
	}
	var question string
	c.run("delete client",
		chromedp.Click("#delete-client", chromedp.ByID),
		chromedp.WaitVisible("#confirm-text", chromedp.ByID),
		chromedp.Text("#confirm-text", &question, chromedp.ByID),
	)
	if !strings.Contains(question, "Every session of Monthly reports (reports) ends now") {
		t.Errorf("the deletion's question: %q", question)
	}
	c.confirm()
	c.waitFor("deleted", `document.getElementById("toast").textContent.includes("reports deleted: 0 session(s) ended") && document.getElementById("rotate-key") !== null`)
	if _, ok := w.s.OAuth.Client("reports"); ok {
		t.Fatal("the deleted client is still known")
	}
	w.mustCall("GET", "/api/v1/admin/clients/reports", w.root, nil, 404, nil)
	c.run("a file's client",
		chromedp.Navigate(c.url+"/admin/#/instance/clients/kb-backend"),
		chromedp.WaitVisible("#config-client", chromedp.ByID),
	)
	c.waitFor("read-only", `document.getElementById("delete-client") === null && document.getElementById("rotate-secret") === null && document.querySelector("form.client-form") === null`)

	// Activity: counted by the admin API, drawn by the console; a forged
	// callback is a failed sign-in.
	if resp, _ := newBrowser(t).get(w.s.URL + "/auth/callback/dev?state=forged"); resp.StatusCode < 400 {
		t.Fatalf("forged callback = %d", resp.StatusCode)
	}
	var signIns, failed string
	c.run("activity",
		chromedp.Navigate(c.url+"/admin/#/activity"),
		chromedp.WaitVisible("#stat-signins", chromedp.ByID),
		chromedp.Text("#stat-signins .stat-value", &signIns, chromedp.ByQuery),
		chromedp.Text("#stat-failed .stat-value", &failed, chromedp.ByQuery),
	)
	// root (three times), ivy at the console, ivy at an app.
	if signIns != "5" || failed != "1" {
		t.Errorf("activity shows %s sign-ins, %s failed; want 5 and 1", signIns, failed)
	}
	c.shot("activity")

	// Every action is in the audit page.
	c.run("audit", chromedp.Navigate(c.url+"/admin/#/audit"), chromedp.WaitVisible(`tr[data-type]`, chromedp.ByQuery))
	for _, typ := range []string{"invitation.created", "invitation.accepted", "membership.updated", "api_key.created", "session.revoked", "signing_key.rotated",
		"client.created", "client.updated", "client.secret_rotated", "client.deleted"} {
		c.waitFor("audit has "+typ, fmt.Sprintf(`document.querySelector('tr[data-type="%s"]') !== null`, typ))
	}
	c.run("details", chromedp.Click(`tr[data-type="api_key.created"] button`, chromedp.ByQuery))
	c.waitFor("event detail", `[...document.querySelectorAll("tr.detail")].some((r) => !r.hidden && r.textContent.includes("ci reader"))`)
	c.shot("audit")

	// Narrow: the navigation wraps and the table scrolls inside its frame.
	var overflow bool
	c.run("narrow",
		chromedp.EmulateViewport(390, 800),
		chromedp.Navigate(c.url+"/admin/"+acme+"/members"),
		chromedp.WaitVisible(`tr[data-member="ivy@example.com"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow),
	)
	if overflow {
		t.Errorf("the members page scrolls sideways at 390px")
	}
	c.shot("narrow")
}

// TestConsoleOrgAdminInChromium: an organization's admin (not a Gatehouse
// administrator) gets their organization's pages only: no users,
// activity or instance pages, and the audit page lists their
// organization's events.
func TestConsoleOrgAdminInChromium(t *testing.T) {
	ctx := browserContext(t)
	w := newWorldWith(t, false, consoleYAML)
	w.signIn("admin-console", "lea@example.com", "", "")
	w.mustCall("POST", "/api/v1/admin/orgs/"+w.acme+"/members", w.root, map[string]any{"email": "lea@example.com", "role": "admin"}, 201, nil)
	c := &console{t: t, ctx: ctx, url: w.s.URL}
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatal(err)
	}
	c.signIn("lea@example.com", "Lea Lead")
	var nav, who string
	c.run("org pages",
		chromedp.WaitVisible(`tr[data-member="lea@example.com"]`, chromedp.ByQuery),
		chromedp.Text("#nav", &nav, chromedp.ByID),
		chromedp.Text("#who-text", &who, chromedp.ByID),
	)
	if strings.Contains(nav, "Users") || strings.Contains(nav, "Instance") || strings.Contains(nav, "Activity") || !strings.Contains(nav, "API keys") {
		t.Errorf("an organization's admin sees the pages %q", nav)
	}
	if !strings.Contains(who, "Acme") {
		t.Errorf("acting in %q, want Acme", who)
	}
	// The instance pages are not offered even when asked for by URL.
	c.run("users by URL",
		chromedp.Navigate(c.url+"/admin/#/users"),
		chromedp.WaitVisible(`tr[data-member="lea@example.com"]`, chromedp.ByQuery),
	)
	c.run("audit",
		chromedp.Navigate(c.url+"/admin/#/audit"),
		chromedp.WaitVisible(`tr[data-type="membership.added"]`, chromedp.ByQuery),
	)
	c.waitFor("only acme's events", `[...document.querySelectorAll("tr[data-type]")].every((r) => r.cells[4].textContent === "Acme")`)
}
