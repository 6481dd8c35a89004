package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/backchannel"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// backchannelYAML is rbacYAML with two more public clients: told-app,
// whose back-channel logout endpoint is uri, and quiet-app, which
// registered none.
func backchannelYAML(uri string) string {
	return strings.Replace(rbacYAML, "clients:\n", fmt.Sprintf(`clients:
  - id: told-app
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
    backchannel_logout_uri: %s
    backchannel_logout_session_required: true
  - id: quiet-app
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/]
`, uri), 1)
}

// rpListener is a relying party's back-channel logout endpoint. It
// verifies every logout token as a client would, with go-jose against
// Gatehouse's published JWKS (fetched over HTTP once, when Gatehouse
// runs, and again only for an unknown key id, as a client caches them:
// the dispatcher's timeout then covers the listener's answer alone), and
// answers as its mode says.
type rpListener struct {
	*httptest.Server
	t      *testing.T
	issuer atomic.Value // string, set once Gatehouse runs
	keys   atomic.Value // jose.JSONWebKeySet, fetched by setIssuer
	mode   atomic.Value // func(call int, w http.ResponseWriter, r *http.Request) bool: true = answered
	calls  atomic.Int32

	mu  sync.Mutex
	got []map[string]any
	raw []string
}

func newRPListener(t *testing.T) *rpListener {
	l := &rpListener{t: t}
	l.Server = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.Close)
	return l
}

// setIssuer names the running Gatehouse and fetches its JWKS.
func (l *rpListener) setIssuer(iss string) {
	l.t.Helper()
	l.issuer.Store(iss)
	set, err := fetchJWKS(iss)
	if err != nil {
		l.t.Fatal(err)
	}
	l.keys.Store(set)
}

func fetchJWKS(iss string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	resp, err := http.Get(iss + "/.well-known/jwks.json")
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&set)
	return set, err
}

// answer sets how the following calls are answered (nil: 200).
func (l *rpListener) answer(f func(call int, w http.ResponseWriter, r *http.Request) bool) {
	l.mode.Store(f)
}

func (l *rpListener) serve(w http.ResponseWriter, r *http.Request) {
	call := int(l.calls.Add(1))
	claims, raw, err := l.verify(r)
	if err != nil {
		l.t.Errorf("back-channel logout call %d: %v", call, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	l.got, l.raw = append(l.got, claims), append(l.raw, raw)
	l.mu.Unlock()
	if f, _ := l.mode.Load().(func(int, http.ResponseWriter, *http.Request) bool); f != nil && f(call, w, r) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (l *rpListener) verify(r *http.Request) (map[string]any, string, error) {
	iss, _ := l.issuer.Load().(string)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		return nil, "", fmt.Errorf("%s %q", r.Method, r.Header.Get("Content-Type"))
	}
	raw := r.PostFormValue("logout_token")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return nil, "", err
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, "", fmt.Errorf("typ %q", typ)
	}
	set, _ := l.keys.Load().(jose.JSONWebKeySet)
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		// An unknown key id: fetch the keys again, once.
		if set, err = fetchJWKS(iss); err != nil {
			return nil, "", err
		}
		l.keys.Store(set)
		keys = set.Key(h.KeyID)
	}
	if len(keys) != 1 {
		return nil, "", fmt.Errorf("kid %q not published", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, "", err
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, "", err
	}
	now := float64(time.Now().Unix())
	events, _ := c["events"].(map[string]any)
	_, hasEvent := events[backchannel.EventLogout]
	_, hasNonce := c["nonce"]
	switch {
	case c["iss"] != iss:
		return nil, "", fmt.Errorf("iss %v", c["iss"])
	case c["aud"] != "told-app":
		return nil, "", fmt.Errorf("aud %v", c["aud"])
	case c["iat"] == nil || c["iat"].(float64) > now+5 || c["exp"] == nil || c["exp"].(float64) <= now:
		return nil, "", fmt.Errorf("iat %v exp %v", c["iat"], c["exp"])
	case c["jti"] == nil || c["jti"] == "":
		return nil, "", fmt.Errorf("no jti")
	case c["sub"] == nil || c["sid"] == nil:
		return nil, "", fmt.Errorf("sub %v sid %v", c["sub"], c["sid"])
	case !hasEvent || len(events) != 1:
		return nil, "", fmt.Errorf("events %v", c["events"])
	case hasNonce:
		return nil, "", fmt.Errorf("a nonce")
	}
	return c, raw, nil
}

// told waits until a logout token for sid arrived and returns its claims.
func (l *rpListener) told(sid string) map[string]any {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l.mu.Lock()
		for _, c := range l.got {
			if c["sid"] == sid {
				l.mu.Unlock()
				return c
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			l.t.Fatalf("no back-channel logout for session %s", sid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timesTold counts the logout tokens received for sid.
func (l *rpListener) timesTold(sid string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.got {
		if c["sid"] == sid {
			n++
		}
	}
	return n
}

// runDispatcher runs d until the test ends (or the returned stop).
func runDispatcher(t *testing.T, d *backchannel.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// browserSession stores a live browser session of userID, as single
// sign-on opens one, with the given app sessions under it.
func (w *world) browserSession(userID string, appSessions ...string) string {
	w.t.Helper()
	now := time.Now().UTC()
	b := &models.BrowserSession{TokenHash: "test-hash-" + models.NewID(), UserID: userID, Provider: "dev", AuthTime: now,
		AMR: "ext", IP: "203.0.113.9", UserAgent: "test-browser", CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := w.s.Store.CreateBrowserSession(context.Background(), b); err != nil {
		w.t.Fatal(err)
	}
	for _, id := range appSessions {
		if err := w.s.DB.Exec("UPDATE sessions SET browser_session_id = ? WHERE id = ?", b.ID, id).Error; err != nil {
			w.t.Fatal(err)
		}
	}
	return b.ID
}

// idTokenOf returns the claims of a token response's ID token.
func idTokenOf(t *testing.T, tok interface{ Extra(string) any }) (string, map[string]any) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	return raw, jwtClaims(t, raw)
}

func outbox(t *testing.T, w *world, client string) int64 {
	t.Helper()
	return countRows(t, w.s, "SELECT COUNT(*) FROM logout_deliveries WHERE client_id = ?", client)
}

// waitOutboxEmpty waits until every queued logout was delivered or given up.
func waitOutboxEmpty(t *testing.T, w *world) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for countRows(t, w.s, "SELECT COUNT(*) FROM logout_deliveries") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the outbox did not empty")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBackchannelLogoutReachesTheApp runs the real server with a relying
// party listening for back-channel logouts: every way a session ends (RP
// logout, an administrator revoking it, an administrator ending the
// browser session it was opened under, refresh-token reuse, the user
// disabled) sends the client one logout token whose sid and sub are those
// of the ID token it got, verified with go-jose against the JWKS. A
// client without a backchannel_logout_uri is told nothing and its rows
// are dropped. Discovery advertises the feature; the outcomes are
// metrics and audit events.
func TestBackchannelLogoutReachesTheApp(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			rp := newRPListener(t)
			w := newWorldWith(t, pg, backchannelYAML(rp.URL+"/backchannel"))
			rp.setIssuer(w.s.URL)
			runDispatcher(t, w.s.Backchannel)

			_, disco := get(t, w.s.URL+"/.well-known/openid-configuration")
			for _, want := range []string{`"backchannel_logout_supported":true`, `"backchannel_logout_session_supported":true`} {
				if !strings.Contains(disco, want) {
					t.Errorf("discovery lacks %s", want)
				}
			}

			sameAsIDToken := func(how string, lt map[string]any, id map[string]any) {
				t.Helper()
				if lt["sid"] != id["sid"] || lt["sub"] != id["sub"] || lt["iss"] != id["iss"] {
					t.Errorf("%s: logout token sid %v sub %v iss %v; ID token sid %v sub %v iss %v", how,
						lt["sid"], lt["sub"], lt["iss"], id["sid"], id["sub"], id["iss"])
				}
			}

			// 1. RP-initiated logout; quiet-app's session ends too, unheard.
			raw, id := idTokenOf(t, w.signIn("told-app", "ada@example.com", "", ""))
			quietRaw, _ := idTokenOf(t, w.signIn("quiet-app", "ada@example.com", "", ""))
			if resp, body := get(t, w.s.URL+"/auth/logout?"+url.Values{"id_token_hint": {raw}}.Encode()); resp.StatusCode >= 400 {
				t.Fatalf("logout = %d %s", resp.StatusCode, body)
			}
			get(t, w.s.URL+"/auth/logout?"+url.Values{"id_token_hint": {quietRaw}}.Encode())
			sameAsIDToken("logout", rp.told(id["sid"].(string)), id)
			if err := w.s.Backchannel.DeliverDue(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := outbox(t, w, "quiet-app"); n != 0 {
				t.Errorf("quiet-app has %d rows in the outbox", n)
			}

			// 2. An administrator revokes the session.
			_, id = idTokenOf(t, w.signIn("told-app", "ada@example.com", "", ""))
			ada := w.userID("ada@example.com")
			w.mustCall("DELETE", "/api/v1/admin/users/"+ada+"/sessions/"+id["sid"].(string), w.root, nil, 204, nil)
			sameAsIDToken("admin revoke", rp.told(id["sid"].(string)), id)

			// 3. An administrator ends the browser session it was opened under.
			_, id = idTokenOf(t, w.signIn("told-app", "ada@example.com", "", ""))
			_, other := idTokenOf(t, w.signIn("told-app", "ada@example.com", "", ""))
			// The sign-in opened a browser session (single sign-on), with
			// the app session under it.
			sess, err := w.s.Store.FindSession(context.Background(), id["sid"].(string))
			if err != nil || sess.BrowserSessionID == nil {
				t.Fatalf("the app session has no browser session: %+v %v", sess, err)
			}
			bs := *sess.BrowserSessionID
			listed := func() admin.BrowserSession {
				t.Helper()
				var list admin.List[admin.BrowserSession]
				status, body := w.call("GET", "/api/v1/admin/users/"+ada+"/browser-sessions", w.root, nil, &list)
				stored, _ := w.s.Store.FindBrowserSession(context.Background(), bs)
				if status != 200 || strings.Contains(body, "token_hash") || strings.Contains(body, stored.TokenHash) {
					t.Fatalf("browser sessions = %d %s", status, body)
				}
				for _, b := range list.Items {
					if b.ID == bs {
						return b
					}
				}
				t.Fatalf("browser session %s not listed: %s", bs, body)
				return admin.BrowserSession{}
			}
			if b := listed(); !b.Active || b.Provider != "dev" || b.IdentityID == nil || len(b.AMR) == 0 {
				t.Fatalf("live browser session = %+v", b)
			}
			w.mustCall("DELETE", "/api/v1/admin/users/"+ada+"/browser-sessions/"+bs, w.root, nil, 204, nil)
			sameAsIDToken("browser session ended", rp.told(id["sid"].(string)), id)
			if b := listed(); b.Active || b.RevokeReason != "revoked_by_admin" || b.RevokedAt == nil {
				t.Fatalf("ended browser session = %+v", b)
			}
			if ev := auditEvents(t, w.s, admin.AuditBrowserSessionRevoked); len(ev) != 1 || details(t, ev[0])["browser_session_id"] != bs {
				t.Fatalf("browser_session.revoked events = %+v", ev)
			}
			// Ending it again changes nothing and is no error.
			w.mustCall("DELETE", "/api/v1/admin/users/"+ada+"/browser-sessions/"+bs, w.root, nil, 204, nil)

			// 4. Refresh-token reuse (the grace is 1ns in this world).
			tok := w.signIn("told-app", "ada@example.com", "", "")
			_, id = idTokenOf(t, tok)
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"told-app"}}
			if status, out := tokenPost(t, w.s, form, "", ""); status != 200 {
				t.Fatalf("refresh = %d %v", status, out)
			}
			time.Sleep(5 * time.Millisecond)
			if status, _ := tokenPost(t, w.s, form, "", ""); status != 400 {
				t.Fatalf("reuse = %d", status)
			}
			sameAsIDToken("refresh-token reuse", rp.told(id["sid"].(string)), id)

			// 5. The user is disabled.
			_, id = idTokenOf(t, w.signIn("told-app", "bob@example.com", "", ""))
			bobBrowser := w.browserSession(w.userID("bob@example.com"))
			w.mustCall("POST", "/api/v1/admin/users/"+w.userID("bob@example.com")+"/disable", w.root, nil, 200, nil)
			sameAsIDToken("user disabled", rp.told(id["sid"].(string)), id)
			// Disabling ends the browser sessions too: enabling again
			// revives no single sign-on.
			if b, err := w.s.Store.FindBrowserSession(context.Background(), bobBrowser); err != nil || b.RevokedAt == nil || b.RevokeReason != "user_disabled" {
				t.Fatalf("a disabled user's browser session = %+v %v", b, err)
			}

			// Every delivery done (the listener answers before Gatehouse records it).
			waitOutboxEmpty(t, w)
			// The other session of step 3 never ended: never told.
			if n := rp.timesTold(other["sid"].(string)); n != 0 {
				t.Fatalf("a live session was told %d times", n)
			}
			// Each ended session told once; reasons in the audit trail.
			reasons := map[string]bool{}
			for _, e := range auditEvents(t, w.s, backchannel.AuditDelivered) {
				d := details(t, e)
				reasons[d["reason"].(string)] = true
				if rp.timesTold(d["session_id"].(string)) != 1 || e.ClientID != "told-app" {
					t.Errorf("delivery %v of %s", d, e.ClientID)
				}
			}
			for _, r := range []string{"revoked_by_admin", "refresh_token_reuse", "user_disabled"} {
				if !reasons[r] {
					t.Errorf("no delivery with reason %s (have %v)", r, reasons)
				}
			}
			_, metrics := get(t, w.s.URL+"/metrics")
			if !strings.Contains(metrics, `gatehouse_backchannel_logout_total{client="told-app",outcome="delivered"} 5`) {
				t.Errorf("metrics lack five deliveries to told-app:\n%s", grepLines(metrics, "backchannel"))
			}
			if strings.Contains(metrics, `client="quiet-app"`) {
				t.Error("quiet-app has back-channel metrics")
			}

			// Admin API refusals: another user's browser session, an
			// unknown one, an unknown user, a person without the grant.
			bob := w.userID("bob@example.com")
			bs2 := w.browserSession(ada)
			for _, tc := range []struct {
				method, path, token string
				want                int
			}{
				{"DELETE", "/api/v1/admin/users/" + bob + "/browser-sessions/" + bs2, w.root, 404},
				{"DELETE", "/api/v1/admin/users/" + ada + "/browser-sessions/no-such-session", w.root, 404},
				{"GET", "/api/v1/admin/users/no-such-user/browser-sessions", w.root, 404},
				{"GET", "/api/v1/admin/users/" + ada + "/browser-sessions", "", 401},
				{"GET", "/api/v1/admin/users/" + ada + "/browser-sessions", w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken, 403},
				{"DELETE", "/api/v1/admin/users/" + ada + "/browser-sessions/" + bs2, w.signIn("admin-console", "mia@example.com", "eng", "").AccessToken, 403},
			} {
				if status, body := w.call(tc.method, tc.path, tc.token, nil, nil); status != tc.want {
					t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, status, body, tc.want)
				}
			}
			if b, err := w.s.Store.FindBrowserSession(context.Background(), bs2); err != nil || b.RevokedAt != nil {
				t.Fatalf("a refused request ended a browser session: %+v %v", b, err)
			}
		})
	}
}

// TestLogoutTokenIsNoOtherToken: a logout token, though signed by
// Gatehouse's key, is refused wherever Gatehouse takes an ID token or an
// access token (typ logout+jwt, no nonce, other claims): as the
// id_token_hint of a logout (which then ends nothing), as a bearer token
// at UserInfo and the admin API, and by introspection.
func TestLogoutTokenIsNoOtherToken(t *testing.T) {
	rp := newRPListener(t)
	w := newWorldWith(t, false, backchannelYAML(rp.URL))
	rp.setIssuer(w.s.URL)
	runDispatcher(t, w.s.Backchannel)
	// The administrator's own session, ended: its logout token is one
	// of told-app's, for the administrator.
	_, id := idTokenOf(t, w.signIn("told-app", "root@example.com", "", models.AdminOrgID))
	root := w.userID("root@example.com")
	w.mustCall("DELETE", "/api/v1/admin/users/"+root+"/sessions/"+id["sid"].(string), w.root, nil, 204, nil)
	rp.told(id["sid"].(string))
	rp.mu.Lock()
	lt := rp.raw[0]
	rp.mu.Unlock()

	if _, err := w.s.Keys.VerifyIDTokenHint(lt, w.s.URL); err == nil {
		t.Error("a logout token passes as an ID token hint")
	}
	if _, err := w.s.Keys.VerifyAccessToken(lt, w.s.URL, time.Now()); err == nil {
		t.Error("a logout token passes as an access token")
	}
	live := w.signIn("told-app", "root@example.com", "", "")
	if resp, _ := get(t, w.s.URL+"/auth/logout?"+url.Values{"id_token_hint": {lt}}.Encode()); resp.StatusCode < 400 {
		t.Errorf("logout with a logout token as hint = %d", resp.StatusCode)
	}
	if status, body := w.call("GET", "/auth/userinfo", live.AccessToken, nil, nil); status != 200 {
		t.Fatalf("a refused logout ended a session: userinfo = %d %s", status, body)
	}
	for _, path := range []string{"/auth/userinfo", "/auth/me", "/api/v1/admin/users"} {
		if status, _ := w.call("GET", path, lt, nil, nil); status != 401 {
			t.Errorf("GET %s with a logout token = %d, want 401", path, status)
		}
	}
	status, out := formPost(t, w.s.URL+"/auth/introspect", url.Values{"token": {lt}}, "kb-backend", "kb-backend-secret-0123456789")
	if status != 200 || out["active"] != false {
		t.Errorf("introspection of a logout token = %d %v", status, out)
	}

	// A Go backend verifies it with rbac (discovery and JWKS over HTTP),
	// for told-app only; its ID token is no logout token.
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: w.s.URL, Audience: "kb-api"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.VerifyLogoutToken(context.Background(), lt, "told-app")
	if err != nil || got.SessionID != id["sid"] || got.Subject != id["sub"] {
		t.Fatalf("rbac.VerifyLogoutToken = %+v, %v", got, err)
	}
	if _, err := m.VerifyLogoutToken(context.Background(), lt, "kb-web"); err == nil {
		t.Error("a logout token for told-app verified for kb-web")
	}
	idRaw, _ := idTokenOf(t, live)
	if _, err := m.VerifyLogoutToken(context.Background(), idRaw, "told-app"); err == nil {
		t.Error("an ID token verified as a logout token")
	}
	if _, err := m.VerifyLogoutToken(context.Background(), live.AccessToken, "told-app"); err == nil {
		t.Error("an access token verified as a logout token")
	}
}

// TestBackchannelRetriesAndRestarts, on the real server: a listener that
// fails once (500) is retried with backoff and told once; one that does
// not answer within GATEHOUSE_BACKCHANNEL_LOGOUT_TIMEOUT is retried;
// logouts queued while no dispatcher runs are delivered by the next one
// (a restart); past the limit a delivery is given up, audited and
// counted.
func TestBackchannelRetriesAndRestarts(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) { backchannelRetriesAndRestarts(t, pg) })
	}
}

func backchannelRetriesAndRestarts(t *testing.T, pg bool) {
	rp := newRPListener(t)
	w := newWorldWith(t, pg, backchannelYAML(rp.URL))
	rp.setIssuer(w.s.URL)
	// The timeout covers only the listener's answer (it fetched the JWKS
	// beforehand), and is long for that on any machine; the silent answer
	// hangs until the test ends, so only the timeout ends it.
	fast := func(o *backchannel.Options) {
		o.RetryMin, o.Poll, o.Timeout = 50*time.Millisecond, 20*time.Millisecond, 2*time.Second
	}
	newDispatcher := func(tweak ...func(*backchannel.Options)) *backchannel.Dispatcher {
		return app.NewBackchannel(w.s.Config, w.s.Store, w.s.Keys, w.s.Metrics, w.s.Log, append([]func(*backchannel.Options){fast}, tweak...)...)
	}
	ada := w.userID("root@example.com")
	endSession := func() string {
		t.Helper()
		_, id := idTokenOf(t, w.signIn("told-app", "root@example.com", "", ""))
		w.mustCall("DELETE", "/api/v1/admin/users/"+ada+"/sessions/"+id["sid"].(string), w.root, nil, 204, nil)
		return id["sid"].(string)
	}

	// Stopped: the logout waits in the outbox.
	queued := endSession()
	time.Sleep(100 * time.Millisecond)
	if rp.calls.Load() != 0 || outbox(t, w, "told-app") != 1 {
		t.Fatalf("calls %d, outbox %d while no dispatcher runs", rp.calls.Load(), outbox(t, w, "told-app"))
	}
	// A failing listener (500 once, then a silence that lasts until the
	// dispatcher gives up waiting, then OK).
	silence := make(chan struct{})
	t.Cleanup(func() { close(silence) })
	rp.answer(func(call int, w http.ResponseWriter, r *http.Request) bool {
		switch call {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
			return true
		case 2:
			select {
			case <-r.Context().Done():
			case <-silence:
			}
			return true
		}
		return false
	})
	stop := runDispatcher(t, newDispatcher())
	rp.told(queued)
	waitOutboxEmpty(t, w)
	if n := rp.timesTold(queued); n != 3 {
		t.Fatalf("told %d times, want 3 (500, silence, 200)", n)
	}
	failed := auditEvents(t, w.s, backchannel.AuditFailed)
	if len(failed) != 2 || details(t, failed[0])["error"] != "HTTP 500" || details(t, failed[1])["error"] != "no answer within 2s" {
		t.Fatalf("failure events = %+v", failed)
	}
	if len(auditEvents(t, w.s, backchannel.AuditDelivered)) != 1 {
		t.Fatal("not delivered once")
	}
	stop()

	// Give-up after the limit.
	rp.answer(func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	doomed := endSession()
	runDispatcher(t, newDispatcher(func(o *backchannel.Options) { o.MaxAttempts = 2 }))
	deadline := time.Now().Add(30 * time.Second)
	for (len(auditEvents(t, w.s, backchannel.AuditAbandoned)) == 0 || outbox(t, w, "told-app") != 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ev := auditEvents(t, w.s, backchannel.AuditAbandoned)
	if len(ev) != 1 || details(t, ev[0])["session_id"] != doomed || ev[0].Outcome != models.OutcomeFailure || outbox(t, w, "told-app") != 0 {
		t.Fatalf("abandoned events %+v, outbox %d", ev, outbox(t, w, "told-app"))
	}
	_, metrics := get(t, w.s.URL+"/metrics")
	for _, want := range []string{
		`gatehouse_backchannel_logout_total{client="told-app",outcome="gave_up"} 1`,
		`gatehouse_backchannel_logout_total{client="told-app",outcome="failed"} 3`,
		`gatehouse_backchannel_logout_total{client="told-app",outcome="delivered"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "backchannel"))
		}
	}
	// Nothing in the log or the audit trail holds a logout token.
	rp.mu.Lock()
	tokens := append([]string(nil), rp.raw...)
	rp.mu.Unlock()
	var all []models.AuditEvent
	w.s.DB.Find(&all)
	for _, e := range all {
		for _, tok := range tokens {
			if strings.Contains(e.Details, tok[strings.LastIndex(tok, ".")+1:]) {
				t.Fatalf("audit event %s holds a logout token", e.Type)
			}
		}
	}
}

// TestServeRunsTheBackchannelDispatcher: Serve delivers back-channel
// logouts on its own, and on shutdown returns only once a delivery in
// flight has finished (so Close never pulls the database from under it).
func TestServeRunsTheBackchannelDispatcher(t *testing.T) {
	rp := newRPListener(t)
	s := apptest.Start(t, apptest.Options{YAML: backchannelYAML(rp.URL)})
	rp.setIssuer(s.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	endSession := func() string {
		t.Helper()
		bg, now := context.Background(), time.Now().UTC()
		u := &models.User{}
		if err := s.Store.CreateUserWithIdentity(bg, u, &models.Identity{Provider: "dev", Subject: models.NewID()}); err != nil {
			t.Fatal(err)
		}
		sess := &models.Session{UserID: u.ID, ClientID: "told-app", Provider: "dev", AuthTime: now, LastUsedAt: now,
			ExpiresAt: now.Add(time.Hour), CreatedAt: now}
		if err := s.Store.CreateSession(bg, sess); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Store.RevokeSession(bg, sess.ID, "logout", now); err != nil {
			t.Fatal(err)
		}
		return sess.ID
	}
	rp.told(endSession())

	inFlight, finished := make(chan struct{}), atomic.Bool{}
	rp.answer(func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		close(inFlight)
		time.Sleep(300 * time.Millisecond)
		finished.Store(true)
		w.WriteHeader(http.StatusNoContent)
		return true
	})
	endSession()
	<-inFlight
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if !finished.Load() || countRows(t, s, "SELECT COUNT(*) FROM logout_deliveries") != 0 {
		t.Fatal("Serve returned before the delivery in flight was done")
	}
}
