package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/backchannel"
)

// kbIntrospect asks Gatehouse about a token or API key as the kb backend.
func kbIntrospect(t *testing.T, w *world, token string) map[string]any {
	t.Helper()
	status, out := formPost(t, w.s.URL+"/auth/introspect", url.Values{"token": {token}}, "kb-backend", "kb-backend-secret-0123456789")
	if status != 200 {
		t.Fatalf("introspection = %d %v", status, out)
	}
	return out
}

// signInIn signs email in at client through the dev form in browser b
// (which keeps the single sign-on cookie) and returns the tokens.
func (w *world) signInIn(b *browser, client, email, groups string) *oauth2.Token {
	w.t.Helper()
	conf := &oauth2.Config{ClientID: client, RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: w.s.URL + "/auth/login", TokenURL: w.s.URL + "/auth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	resp, body := b.devSignIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")), email, groups)
	if resp.StatusCode != http.StatusSeeOther {
		w.t.Fatalf("sign-in of %s = %d %s", email, resp.StatusCode, body)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		w.t.Fatalf("exchange for %s: %v", email, err)
	}
	return tok
}

// silentAt asks for a code at told-app with prompt=none in browser b and
// returns the client redirect.
func (w *world) silentAt(b *browser) *url.URL {
	w.t.Helper()
	u := w.s.URL + "/auth/login?" + url.Values{"client_id": {"told-app"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"http://127.0.0.1:9/callback"}, "state": {"silent"}, "prompt": {"none"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode()
	resp, body := b.get(u)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), "http://127.0.0.1:9/callback?") {
		w.t.Fatalf("prompt=none = %d %s %s", resp.StatusCode, loc, body)
	}
	return loc
}

// TestUserDeactivation: deactivating (disabling) a person ends every
// session at once with a back-channel logout, refuses their refresh and
// their sign-in (the "Account disabled" page), and leaves the API keys
// they created working (they belong to the organization; the audit event
// lists them). Reactivating lets them sign in again.
func TestUserDeactivation(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			rp := newRPListener(t)
			w := newWorldWith(t, pg, backchannelYAML(rp.URL+"/backchannel"))
			rp.issuer.Store(w.s.URL)
			runDispatcher(t, w.s.Backchannel)

			told := w.signIn("told-app", "ada@example.com", "leads", "")
			_, id := idTokenOf(t, told)
			ada := w.userID("ada@example.com")
			console := w.signIn("admin-console", "ada@example.com", "leads", w.acme)
			var key admin.NewAPIKey
			w.mustCall("POST", "/api/v1/admin/orgs/"+w.acme+"/api-keys", console.AccessToken,
				map[string]any{"name": "ada's ci", "permissions": []string{"kb:read"}}, 201, &key)

			var u admin.User
			w.mustCall("POST", "/api/v1/admin/users/"+ada+"/disable", w.root, nil, 200, &u)
			if !u.Disabled {
				t.Fatalf("disable = %+v", u)
			}
			if lt := rp.told(id["sid"].(string)); lt["sub"] != ada {
				t.Errorf("logout token sub %v, want %s", lt["sub"], ada)
			}
			if status, out := refreshAt(t, w, told.RefreshToken, "told-app"); status != 400 || out["error"] != "invalid_grant" {
				t.Errorf("refresh of a deactivated user = %d %v", status, out)
			}
			authURL := w.s.URL + "/auth/login?" + url.Values{"client_id": {"told-app"}, "response_type": {"code"}, "provider": {"dev"},
				"redirect_uri": {"http://127.0.0.1:9/callback"}, "state": {"s"},
				"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode()
			if resp, body := newBrowser(t).devSignIn(authURL, "ada@example.com", "leads"); resp.StatusCode != http.StatusForbidden ||
				!strings.Contains(body, "Account disabled") || resp.Header.Get("Location") != "" {
				t.Errorf("a deactivated user's sign-in = %d %s", resp.StatusCode, body)
			}
			if info := kbIntrospect(t, w, key.Key); info["active"] != true {
				t.Errorf("the API key a deactivated user created = %v, want active", info)
			}
			ev := auditEvents(t, w.s, admin.AuditUserDisabled)
			if len(ev) != 1 || !strings.Contains(ev[0].Details, key.ID) {
				t.Errorf("user.disabled events = %+v, want the key %s listed", ev, key.ID)
			}

			w.mustCall("POST", "/api/v1/admin/users/"+ada+"/enable", w.root, nil, 200, &u)
			if u.Disabled {
				t.Fatalf("enable = %+v", u)
			}
			again := w.signIn("told-app", "ada@example.com", "leads", "")
			if status, out := refreshAt(t, w, again.RefreshToken, "told-app"); status != 200 {
				t.Fatalf("refresh after reactivation = %d %v", status, out)
			}
		})
	}
}

// TestUserDeletion runs an erasure request end to end: while the person
// refreshes in a loop, an administrator deletes them. Every refresh
// answers 200 or invalid_grant (never a server error) and the last one
// is invalid_grant; their app gets a back-channel logout whose sub is
// their old id, and the delivery's audit event names only the pseudonym;
// Gatehouse refuses their access token (UserInfo); single sign-on in
// their browser is over (prompt=none answers login_required); the API
// key they created keeps working. The refusals: no token, a member
// without the grant, an organization's admin, yourself, an unknown user,
// a second deletion. Signing in again makes a new user.
func TestUserDeletion(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			rp := newRPListener(t)
			w := newWorldWith(t, pg, backchannelYAML(rp.URL+"/backchannel"))
			rp.issuer.Store(w.s.URL)
			runDispatcher(t, w.s.Backchannel)

			b := newBrowser(t)
			told := w.signInIn(b, "told-app", "ada@example.com", "leads")
			_, id := idTokenOf(t, told)
			ada := w.userID("ada@example.com")
			console := w.signIn("admin-console", "ada@example.com", "leads", w.acme)
			var key admin.NewAPIKey
			w.mustCall("POST", "/api/v1/admin/orgs/"+w.acme+"/api-keys", console.AccessToken,
				map[string]any{"name": "ada's ci", "permissions": []string{"kb:read"}}, 201, &key)
			userinfo := func() int {
				t.Helper()
				resp, _ := get(t, w.s.URL+"/auth/userinfo", "Authorization", "Bearer "+told.AccessToken)
				return resp.StatusCode
			}
			if status := userinfo(); status != 200 {
				t.Fatalf("UserInfo with her access token before = %d", status)
			}
			// Single sign-on works in her browser before.
			if loc := w.silentAt(b); loc.Query().Get("code") == "" {
				t.Fatalf("silent sign-in before deletion = %s", loc)
			}

			// Refusals first: nothing is deleted by them.
			member := w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken
			lead := w.signIn("admin-console", "lea@example.com", "leads", w.acme).AccessToken
			rootID := w.userID("root@example.com")
			for _, tc := range []struct {
				name, path, token string
				want              int
				has               string
			}{
				{"no token", "/api/v1/admin/users/" + ada, "", 401, "invalid_token"},
				{"a member without the grant", "/api/v1/admin/users/" + ada, member, 403, "insufficient_permission"},
				{"an organization's admin", "/api/v1/admin/users/" + ada + "?org_id=" + w.acme, lead, 403, "administrators"},
				{"yourself", "/api/v1/admin/users/" + rootID, w.root, 403, "yourself"},
				{"an unknown user", "/api/v1/admin/users/no-such-user", w.root, 404, "not_found"},
			} {
				if status, body := w.call("DELETE", tc.path, tc.token, nil, nil); status != tc.want || !strings.Contains(body, tc.has) {
					t.Errorf("%s: DELETE = %d %s, want %d with %q", tc.name, status, body, tc.want, tc.has)
				}
			}

			// She refreshes in a loop while she is deleted.
			var wg sync.WaitGroup
			var statuses []int
			var last map[string]any
			stop, warm := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { close(stop); wg.Wait() }) // should the deletion fail
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt := told.RefreshToken
				for {
					status, out := tokenPost(t, w.s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"told-app"}}, "", "")
					statuses, last = append(statuses, status), out
					if len(statuses) == 5 {
						close(warm) // the deletion starts while she refreshes
					}
					if status != 200 {
						if len(statuses) < 5 {
							close(warm)
						}
						return
					}
					rt, _ = out["refresh_token"].(string)
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
			<-warm
			var res admin.DeletedUser
			w.mustCall("DELETE", "/api/v1/admin/users/"+ada, w.root, nil, 200, &res)
			wg.Wait()
			for _, s := range statuses[:len(statuses)-1] {
				if s != 200 {
					t.Errorf("a refresh during the deletion answered %d", s)
				}
			}
			if statuses[len(statuses)-1] != 400 || last["error"] != "invalid_grant" {
				t.Errorf("her refresh after deletion = %d %v (after %d refreshes)", statuses[len(statuses)-1], last, len(statuses))
			}
			t.Logf("%d refreshes, the last after the deletion", len(statuses))
			if !strings.HasPrefix(res.Reference, admin.DeletedPrefix) || res.SessionsEnded < 3 || len(res.APIKeysKept) != 1 || res.APIKeysKept[0] != key.ID {
				t.Errorf("deletion answer = %+v", res)
			}

			// Her app is told, with her old id as sub.
			if lt := rp.told(id["sid"].(string)); lt["sub"] != ada || lt["sid"] != id["sid"] {
				t.Errorf("logout token = %v, want sub %s", lt, ada)
			}
			// The rows of clients without a back-channel endpoint are
			// dropped at housekeeping; run it now.
			if err := w.s.Backchannel.DeliverDue(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitOutboxEmpty(t, w)
			for _, e := range auditEvents(t, w.s, backchannel.AuditDelivered) {
				if details(t, e)["session_id"] == id["sid"] && (e.SubjectUserID == nil || *e.SubjectUserID != res.Reference) {
					t.Errorf("the delivery's audit event names %v, want %s", e.SubjectUserID, res.Reference)
				}
			}
			if status := userinfo(); status != 401 {
				t.Errorf("UserInfo with her access token after deletion = %d", status)
			}
			if info := kbIntrospect(t, w, key.Key); info["active"] != true {
				t.Errorf("the API key she created = %v, want active", info)
			}
			checkError(t, w.s, w.silentAt(b), "login_required")

			// Gone, and twice is 404.
			for _, path := range []string{"/api/v1/admin/users/" + ada, "/api/v1/admin/users/" + ada + "/sessions"} {
				if status, body := w.call("GET", path, w.root, nil, nil); status != 404 {
					t.Errorf("GET %s = %d %s", path, status, body)
				}
			}
			if status, body := w.call("DELETE", "/api/v1/admin/users/"+ada, w.root, nil, nil); status != 404 {
				t.Errorf("second deletion = %d %s", status, body)
			}
			// Nothing in the audit trail names her id or email; the
			// pseudonym finds the deletion.
			if n := countRows(t, w.s, "SELECT COUNT(*) FROM audit_events WHERE actor_user_id = ? OR subject_user_id = ? OR details LIKE ? OR LOWER(details) LIKE ?",
				ada, ada, "%"+ada+"%", "%ada@example.com%"); n != 0 {
				t.Errorf("%d audit events still name her", n)
			}
			var trail admin.List[admin.AuditEvent]
			w.mustCall("GET", "/api/v1/admin/audit-events?type=user.deleted&subject_user_id="+res.Reference, w.root, nil, 200, &trail)
			if len(trail.Items) != 1 {
				t.Errorf("user.deleted by pseudonym = %+v", trail.Items)
			}

			// Signing in again is a new person, provisioned afresh.
			w.signIn("told-app", "ada@example.com", "leads", "")
			if again := w.userID("ada@example.com"); again == ada {
				t.Errorf("signing in again found the deleted user %s", ada)
			}
		})
	}
}
