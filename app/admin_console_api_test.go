package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/models"
)

// TestAdminConsoleAPI runs the routes the admin console added to the
// admin API, on SQLite and PostgreSQL: user search, sign-in activity
// aggregated by the database, the signing keys and their confirmed
// rotation, the audit filter by client; each for Gatehouse
// administrators only.
func TestAdminConsoleAPI(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			w := newWorld(t, pg)
			member := w.signIn("admin-console", "mia@example.com", "eng", "")
			lead := w.signIn("admin-console", "lea@example.com", "leads", "").AccessToken

			// Search by a part of the email or the name, any case; % is literal.
			var found admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?q=MIA%40", w.root, nil, 200, &found)
			if len(found.Items) != 1 || found.Items[0].Email != "mia@example.com" {
				t.Fatalf("q=MIA@ = %+v", found.Items)
			}
			var all admin.List[admin.User]
			w.mustCall("GET", "/api/v1/admin/users?q=lovelace", w.root, nil, 200, &all)
			if len(all.Items) < 3 {
				t.Fatalf("q=lovelace = %+v", all.Items)
			}
			// Pages of two give them all, each once.
			seen := map[string]bool{}
			for cursor, pages := "", 0; pages == 0 || cursor != ""; pages++ {
				if pages > len(all.Items) {
					t.Fatal("paging does not end")
				}
				found = admin.List[admin.User]{}
				w.mustCall("GET", "/api/v1/admin/users?q=lovelace&limit=2&cursor="+cursor, w.root, nil, 200, &found)
				for _, u := range found.Items {
					seen[u.ID] = true
				}
				cursor = found.NextCursor
			}
			if len(seen) != len(all.Items) {
				t.Fatalf("paged search saw %d users of %d", len(seen), len(all.Items))
			}
			w.mustCall("GET", "/api/v1/admin/users?q=%25", w.root, nil, 200, &found)
			if len(found.Items) != 0 {
				t.Fatalf("q=%% matched %+v", found.Items)
			}

			// Activity: three sign-ins, one rejected callback, one refresh-token reuse.
			b := newBrowser(t)
			if resp, _ := b.get(w.s.URL + "/auth/callback/dev?state=forged"); resp.StatusCode < 400 {
				t.Fatalf("forged callback = %d", resp.StatusCode)
			}
			if status, _ := refreshAt(t, w, member.RefreshToken, "admin-console"); status != 200 {
				t.Fatalf("refresh = %d", status)
			}
			if status, _ := refreshAt(t, w, member.RefreshToken, "admin-console"); status != 400 {
				t.Fatalf("reused refresh = %d", status)
			}
			var act admin.Activity
			w.mustCall("GET", "/api/v1/admin/activity?bucket=hour", w.root, nil, 200, &act)
			sum := func(ps []admin.ActivityPoint, match func(admin.ActivityPoint) bool) (n int64) {
				for _, p := range ps {
					if match(p) {
						n += p.Count
					}
				}
				return n
			}
			if n := sum(act.SignIns, func(p admin.ActivityPoint) bool { return p.Provider == "dev" }); n != 3 {
				t.Errorf("sign-ins through dev = %d, want 3 (%+v)", n, act.SignIns)
			}
			if n := sum(act.FailedSignIns, func(p admin.ActivityPoint) bool { return p.Reason == "login.state_rejected" }); n != 1 {
				t.Errorf("rejected sign-ins = %d, want 1 (%+v)", n, act.FailedSignIns)
			}
			if n := sum(act.RefreshTokenReuse, func(admin.ActivityPoint) bool { return true }); n != 1 {
				t.Errorf("refresh reuse = %d, want 1", n)
			}
			// root and lea are signed in; mia's session ended with the reuse.
			if act.ActiveSessions != 2 || len(act.Buckets) < 24 || len(act.Buckets) > 25 || act.Bucket != "hour" {
				t.Errorf("active sessions %d, %d buckets of %s", act.ActiveSessions, len(act.Buckets), act.Bucket)
			}
			w.mustCall("GET", "/api/v1/admin/activity?bucket=day&since="+url.QueryEscape(time.Now().Add(-72*time.Hour).Format(time.RFC3339)), w.root, nil, 200, &act)
			if len(act.Buckets) < 3 || len(act.Buckets) > 4 || sum(act.SignIns, func(admin.ActivityPoint) bool { return true }) != 3 {
				t.Errorf("by day: %d buckets, sign-ins %+v", len(act.Buckets), act.SignIns)
			}
			for _, tc := range []struct{ query, field string }{
				{"bucket=week", `"field":"bucket"`},
				{"since=yesterday", `"field":"since"`},
				{"until=2031-01-01T00:00:00Z&since=2031-01-02T00:00:00Z", "before until"},
				{"since=2020-01-01T00:00:00Z&bucket=hour", "buckets"},
			} {
				if status, body := w.call("GET", "/api/v1/admin/activity?"+tc.query, w.root, nil, nil); status != 400 || !strings.Contains(body, tc.field) {
					t.Errorf("activity?%s = %d %s", tc.query, status, body)
				}
			}

			// Signing keys: one active; a rotation publishes a pending one and is audited.
			var keys admin.List[admin.SigningKey]
			w.mustCall("GET", "/api/v1/admin/signing-keys", w.root, nil, 200, &keys)
			if len(keys.Items) != 1 || keys.Items[0].State != "active" {
				t.Fatalf("keys = %+v", keys.Items)
			}
			var rotated admin.SigningKey
			w.mustCall("POST", "/api/v1/admin/signing-keys/rotate", w.root, nil, 201, &rotated)
			w.mustCall("GET", "/api/v1/admin/signing-keys", w.root, nil, 200, &keys)
			if len(keys.Items) != 2 || keys.Items[0].KID != rotated.KID {
				t.Fatalf("keys after rotation = %+v", keys.Items)
			}
			var events admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?client_id=admin-console&type=signing_key.rotated", w.root, nil, 200, &events)
			if len(events.Items) != 1 || !strings.Contains(string(events.Items[0].Details), rotated.KID) {
				t.Fatalf("rotation events = %+v", events.Items)
			}
			w.mustCall("GET", "/api/v1/admin/audit-events?client_id=kb-web&type=signing_key.rotated", w.root, nil, 200, &events)
			if len(events.Items) != 0 {
				t.Fatalf("events of another client = %+v", events.Items)
			}

			// Only Gatehouse administrators (mia's first session ended with the reuse).
			member = w.signIn("admin-console", "mia@example.com", "eng", "")
			for _, tc := range []struct{ method, path, token, has string }{
				{"GET", "/api/v1/admin/activity", member.AccessToken, "insufficient_permission"},
				{"GET", "/api/v1/admin/activity?org_id=" + w.acme, lead, "insufficient_permission"},
				{"GET", "/api/v1/admin/signing-keys", lead, "insufficient_permission"},
				{"POST", "/api/v1/admin/signing-keys/rotate", lead, "insufficient_permission"},
				{"GET", "/api/v1/admin/users?q=a", lead, "insufficient_permission"},
			} {
				if status, body := w.call(tc.method, tc.path, tc.token, nil, nil); status != 403 || !strings.Contains(body, tc.has) {
					t.Errorf("%s %s = %d %s", tc.method, tc.path, status, body)
				}
			}
			if status, _ := w.call("POST", "/api/v1/admin/signing-keys/rotate", "", nil, nil); status != 401 {
				t.Errorf("rotate without a token = %d", status)
			}
			w.mustCall("GET", "/api/v1/admin/signing-keys", w.root, nil, 200, &keys)
			if len(keys.Items) != 2 {
				t.Fatalf("refused rotations changed the keys: %+v", keys.Items)
			}
		})
	}
}

// TestAdminConsoleClient: the console is registered as a public client
// whose only redirect URI is /admin/ on the issuer and whose tokens are
// for the admin API; its files are served under a strict CSP.
func TestAdminConsoleClient(t *testing.T) {
	w := newWorld(t, false)
	if _, err := w.s.Admin.GrantAdmin(context.Background(), "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	redirect := w.s.URL + "/admin/"
	conf := &oauth2.Config{ClientID: app.ConsoleClientID, RedirectURL: redirect, Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: w.s.URL + "/auth/login", TokenURL: w.s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	resp, body := newBrowser(t).devSignIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("organization", models.AdminOrgID), oauth2.SetAuthURLParam("provider", "dev")), "ada@example.com", "")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), redirect+"?") {
		t.Fatalf("sign-in = %d %s %s", resp.StatusCode, loc, body)
	}
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v %+v", err, tok)
	}
	w.mustCall("GET", "/api/v1/admin/users?q=ada", tok.AccessToken, nil, 200, nil)

	// Another redirect URI is refused: no code leaves for another page.
	evil := *conf
	evil.RedirectURL = w.s.URL + "/admin/evil"
	resp, _ = newBrowser(t).get(evil.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if resp.StatusCode == http.StatusFound && strings.Contains(resp.Header.Get("Location"), "/admin/evil") {
		t.Fatalf("unregistered redirect URI accepted: %s", resp.Header.Get("Location"))
	}

	for _, path := range []string{"/admin/", "/admin/console.js", "/admin/console.css"} {
		resp, _ := newBrowser(t).get(w.s.URL + path)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") ||
			!strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s = %d, CSP %q", path, resp.StatusCode, csp)
		}
	}
	if resp, _ := newBrowser(t).get(w.s.URL + "/admin"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/admin/" {
		t.Errorf("/admin = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
