package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// recheckUpstreams are two fake OpenID Connect upstreams: keep re-checks
// at every refresh and keeps the session when it cannot reach the
// upstream, deny refuses the refresh then; lazy re-checks once an hour.
type recheckUpstreams struct {
	keep, deny, lazy *providertest.Server
}

func (u recheckUpstreams) byName(name string) *providertest.Server {
	return map[string]*providertest.Server{"keep": u.keep, "deny": u.deny, "lazy": u.lazy}[name]
}

// startRecheckServer starts the fakes and a Gatehouse re-checking them.
func startRecheckServer(t testing.TB, pg bool, st *dbtest.Statements) (*apptest.Server, recheckUpstreams) {
	t.Helper()
	return startRecheckServerEnv(t, pg, st, nil)
}

// startRecheckServerEnv is startRecheckServer with settings env.
func startRecheckServerEnv(t testing.TB, pg bool, st *dbtest.Statements, env map[string]string) (*apptest.Server, recheckUpstreams) {
	t.Helper()
	up := recheckUpstreams{
		keep: providertest.New(t, providertest.Options{}),
		deny: providertest.New(t, providertest.Options{}),
		lazy: providertest.New(t, providertest.Options{}),
	}
	creds := func(f *providertest.Server) string {
		return fmt.Sprintf("issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true", f.Issuer, f.ClientID, f.ClientSecret)
	}
	logs := &syncBuffer{}
	s := apptest.Start(t, apptest.Options{Postgres: pg, Statements: st, Log: logs, Env: env, YAML: upstreamClients + fmt.Sprintf(`providers:
  - {name: keep, type: oidc, %s, recheck_interval: 0, recheck_max_staleness: 24h}
  - {name: deny, type: oidc, %s, recheck_interval: 0s, on_recheck_unavailable: deny}
  - {name: lazy, type: oidc, %s, recheck_interval: 1h}
`, creds(up.keep), creds(up.deny), creds(up.lazy))})
	for _, name := range []string{"keep", "deny", "lazy"} {
		up.byName(name).SetRedirectURIs(s.URL + "/auth/callback/" + name)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), "eyJ") {
			t.Errorf("a token reached the log:\n%s", grepLines(logs.String(), "eyJ"))
		}
	})
	return s, up
}

// recheckSignIn signs the fake's person in through provider and returns
// the downstream tokens of the spa client.
func recheckSignIn(t *testing.T, s *apptest.Server, provider string) *oauth2.Token {
	t.Helper()
	_, conf := spaOIDC(t, s.URL)
	verifier := oauth2.GenerateVerifier()
	target := newBrowser(t).followToClient(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n"),
		oauth2.SetAuthURLParam("provider", provider)))
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return tok
}

func countOf(t *testing.T, s *apptest.Server, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.DB.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRecheckForgottenGrantEndsSession: an upstream that forgets the
// grant (its refresh answers invalid_grant) ends the downstream session
// at the next refresh, with a clear invalid_grant, an audit event, the
// back-channel logout queued and the metric counted. Until then every
// refresh re-checks (recheck_interval: 0) with the upstream refresh token
// as the upstream last rotated it.
func TestRecheckForgottenGrantEndsSession(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startRecheckServer(t, pg, nil)
			tok := recheckSignIn(t, s, "keep")
			// recheck_interval set: offline_access was asked for.
			if scope := up.keep.LastAuthorize().Get("scope"); !strings.Contains(scope, "offline_access") {
				t.Fatalf("upstream scope = %q", scope)
			}
			var saved string
			s.DB.Raw("SELECT saved FROM upstream_checks").Scan(&saved)
			if saved == "" {
				t.Fatal("no upstream data kept")
			}
			for _, rt := range up.keep.RefreshTokens() {
				if strings.Contains(saved, rt) {
					t.Fatal("the upstream refresh token is stored in the clear")
				}
			}
			for i := range 3 {
				if status, out := refresh(t, s, tok, ""); status != 200 {
					t.Fatalf("refresh %d = %d %v", i, status, out)
				}
			}
			// Each refresh used the token the previous one rotated.
			if n := up.keep.RefreshGrants(); n != 3 {
				t.Fatalf("upstream refresh grants = %d", n)
			}

			up.keep.ForgetGrants()
			status, out := refresh(t, s, tok, "")
			if status != 400 || out["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(out["error_description"]), "no longer vouches") {
				t.Fatalf("refresh after the upstream forgot = %d %v", status, out)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", "upstream_recheck"); n != 1 {
				t.Fatalf("sessions ended by the re-check = %d", n)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM logout_deliveries WHERE reason = ?", "upstream_recheck"); n != 1 {
				t.Fatalf("back-channel logouts queued = %d", n)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ? AND provider = ? AND details LIKE ?",
				"identity.recheck_gone", "keep", "%invalid_grant%"); n != 1 {
				t.Fatalf("audit events = %d", n)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM upstream_checks WHERE saved <> ''"); n != 0 {
				t.Fatalf("the spent upstream token is still kept (%d rows)", n)
			}
			// The access token is dead too, and the refresh stays refused.
			if info := introspect(t, s, tok.AccessToken); info["active"] != false {
				t.Fatalf("access token still active: %v", info)
			}
			if status, _ := refresh(t, s, tok, ""); status != 400 {
				t.Fatalf("second refresh = %d", status)
			}
			_, metrics := get(t, s.URL+"/metrics")
			for _, want := range []string{`gatehouse_upstream_rechecks_total{outcome="gone",provider="keep"} 1`,
				`gatehouse_upstream_rechecks_total{outcome="success",provider="keep"} 3`} {
				if !strings.Contains(metrics, want) {
					t.Fatalf("metrics lack %s:\n%s", want, grepLines(metrics, "recheck"))
				}
			}
			// A new sign-in keeps a fresh upstream token and works again.
			tok = recheckSignIn(t, s, "keep")
			if status, out := refresh(t, s, tok, ""); status != 200 {
				t.Fatalf("refresh after signing in again = %d %v", status, out)
			}
		})
	}
}

// TestRecheckUnavailableUpstream: an unreachable upstream is not a
// person gone. keep lets refreshes through until the last successful
// check is older than recheck_max_staleness, then ends the session;
// deny answers 503 and leaves the refresh token usable for a retry once
// the upstream is back.
func TestRecheckUnavailableUpstream(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startRecheckServer(t, pg, nil)
			releaseClaims := func() { s.DB.Exec("UPDATE upstream_checks SET claimed_at = NULL") }

			t.Run("keep", func(t *testing.T) {
				tok := recheckSignIn(t, s, "keep")
				up.keep.SetTokenDown(true)
				defer up.keep.SetTokenDown(false)
				if status, out := refresh(t, s, tok, ""); status != 200 {
					t.Fatalf("refresh with the upstream down = %d %v", status, out)
				}
				// Past recheck_max_staleness (24h) the refresh is refused.
				releaseClaims()
				s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-25*time.Hour))
				status, out := refresh(t, s, tok, "")
				if status != 400 || out["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(out["error_description"]), "recheck_max_staleness") {
					t.Fatalf("stale refresh = %d %v", status, out)
				}
				if n := countOf(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ?", "session.recheck_stale"); n != 1 {
					t.Fatalf("stale audit events = %d", n)
				}
				if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", "upstream_recheck_stale"); n != 1 {
					t.Fatalf("stale sessions ended = %d", n)
				}
			})

			t.Run("deny", func(t *testing.T) {
				tok := recheckSignIn(t, s, "deny")
				up.deny.SetTokenDown(true)
				// The answer says why, and to retry once the lease that
				// keeps other attempts from the upstream is over.
				resp, err := http.PostForm(s.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"},
					"refresh_token": {tok.RefreshToken}, "client_id": {"spa"}})
				if err != nil {
					t.Fatal(err)
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 503 || out["error"] != "temporarily_unavailable" || resp.Header.Get("Retry-After") != "30" ||
					!strings.Contains(fmt.Sprint(out["error_description"]), "identity provider cannot be reached") {
					t.Fatalf("refresh with the upstream down = %d %v (Retry-After %q)", resp.StatusCode, out, resp.Header.Get("Retry-After"))
				}
				// Within the lease another attempt is refused too, without
				// asking the upstream again.
				calls := up.deny.RefreshGrants()
				if status, _ := refresh(t, s, tok, ""); status != 503 || up.deny.RefreshGrants() != calls {
					t.Fatalf("refresh within the lease = %d, upstream asked %d more times", status, up.deny.RefreshGrants()-calls)
				}
				up.deny.SetTokenDown(false)
				releaseClaims()
				if status, out := refresh(t, s, tok, ""); status != 200 {
					t.Fatalf("retry with the same refresh token = %d %v", status, out)
				}
			})
		})
	}
}

// TestRecheckNotDue: a session whose identity was checked less than
// recheck_interval ago refreshes with the two statements of every refresh
// and no upstream call; once due, the refresh asks the upstream.
func TestRecheckNotDue(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			st := &dbtest.Statements{}
			s, up := startRecheckServer(t, pg, st)
			tok := recheckSignIn(t, s, "lazy")
			for round := range 2 { // the first warms the pool
				st.Reset()
				if status, out := refresh(t, s, tok, ""); status != 200 {
					t.Fatalf("refresh = %d %v", status, out)
				}
				if round == 1 {
					if log := executed(st); len(log) > maxRefreshStatements {
						t.Fatalf("a refresh without a due re-check sent %d statements:\n%s", len(log), strings.Join(log, "\n"))
					}
				}
			}
			if n := up.lazy.RefreshGrants(); n != 0 {
				t.Fatalf("upstream refresh grants = %d, want none", n)
			}
			s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-2*time.Hour))
			st.Reset()
			if status, out := refresh(t, s, tok, ""); status != 200 || up.lazy.RefreshGrants() != 1 {
				t.Fatalf("due refresh = %d %v, upstream refresh grants %d", status, out, up.lazy.RefreshGrants())
			}
			t.Logf("a refresh with a due re-check sent %d statements", len(st.Log()))
		})
	}
}

// TestRecheckRace: refreshes of one session racing a due re-check call
// the upstream once (its refresh token rotates: a second use would be
// invalid_grant and end the session), and all succeed. The reuse grace
// is generous: racing refreshes that read the token after another
// rotated it are served by it, however slow the machine.
func TestRecheckRace(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startRecheckServerEnv(t, pg, nil, map[string]string{"GATEHOUSE_REFRESH_REUSE_GRACE": "30s"})
			tok := recheckSignIn(t, s, "keep")
			up.keep.SetTokenDelay(300 * time.Millisecond)
			const n = 4
			var wg sync.WaitGroup
			statuses := make([]int, n)
			for i := range n {
				wg.Go(func() {
					resp, err := http.PostForm(s.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"},
						"refresh_token": {tok.RefreshToken}, "client_id": {"spa"}})
					if err == nil {
						statuses[i] = resp.StatusCode
						resp.Body.Close()
					}
				})
			}
			wg.Wait()
			for i, st := range statuses {
				if st != 200 {
					t.Fatalf("refresh %d = %d (all: %v)", i, st, statuses)
				}
			}
			if calls := up.keep.RefreshGrants(); calls != 1 {
				t.Fatalf("upstream refresh grants = %d, want 1", calls)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL"); n != 0 {
				t.Fatalf("%d sessions ended", n)
			}
		})
	}
}

// TestRecheckSlowUpstreamRace: a refresh that claims a due re-check
// waits on the upstream longer than the refresh-token reuse grace (2 s by
// default) while a second refresh of the same token, which finds the
// re-check busy, rotates the token. The first then loses the rotation
// race: it read the token before the rotation, so it is a second tab, not
// a replay. Both succeed and the session lives (it used to be revoked as
// refresh_token_reuse).
func TestRecheckSlowUpstreamRace(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up := startRecheckServer(t, pg, nil)
			tok := recheckSignIn(t, s, "keep")
			up.keep.SetTokenDelay(3 * time.Second)
			post := func() int {
				resp, err := http.PostForm(s.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"},
					"refresh_token": {tok.RefreshToken}, "client_id": {"spa"}})
				if err != nil {
					t.Error(err)
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			statuses := make([]int, 2)
			var wg sync.WaitGroup
			wg.Go(func() { statuses[0] = post() })
			// The second refresh starts once the first has claimed the
			// re-check (it is waiting on the upstream then).
			for deadline := time.Now().Add(10 * time.Second); countOf(t, s,
				"SELECT COUNT(*) FROM upstream_checks WHERE claimed_at IS NOT NULL") == 0; {
				if time.Now().After(deadline) {
					t.Fatal("the first refresh never claimed the re-check")
				}
				time.Sleep(10 * time.Millisecond)
			}
			statuses[1] = post()
			wg.Wait()
			if statuses[0] != 200 || statuses[1] != 200 {
				t.Fatalf("statuses %v, want both 200", statuses)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NOT NULL"); n != 0 {
				var reasons []string
				s.DB.Raw("SELECT revoke_reason FROM sessions WHERE revoked_at IS NOT NULL").Scan(&reasons)
				t.Fatalf("%d sessions ended: %v", n, reasons)
			}
			if calls := up.keep.RefreshGrants(); calls != 1 {
				t.Fatalf("upstream refresh grants = %d, want 1", calls)
			}
		})
	}
}

// TestRecheckGitHubTeamRemoval: a person removed from a GitHub team loses
// the role org sync gave them for it at the next re-check; removed from
// the allowed organization, or with the app's authorization revoked
// (401), their session ends.
func TestRecheckGitHubTeamRemoval(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			gh := githubtest.New(t)
			s := apptest.Start(t, apptest.Options{Postgres: pg, Env: map[string]string{"GATEHOUSE_DEV_LOGIN": "false"},
				YAML: upstreamClients + githubProviderYAML(gh, "allowed_organizations: [acme]\n    recheck_interval: 0") + `
org_sync:
  auto_create_orgs: true
  rules:
    - {match: "github:org:acme", org: acme, role: member}
    - {match: "github:team:acme/compilers", org: acme, role: admin}
`})
			_, conf := spaOIDC(t, s.URL)
			signIn := func(t *testing.T, u githubtest.User) *oauth2.Token {
				t.Helper()
				gh.SignIn(u)
				verifier := oauth2.GenerateVerifier()
				resp, body := githubBrowserSignIn(t, s, gh, conf, verifier)
				loc, err := resp.Location()
				if err != nil {
					t.Fatalf("sign-in = %d %s", resp.StatusCode, body)
				}
				tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			rolesAfterRefresh := func(t *testing.T, tok *oauth2.Token) []string {
				t.Helper()
				if status, out := refresh(t, s, tok, ""); status != 200 {
					t.Fatalf("refresh = %d %v", status, out)
				}
				_, roles, _ := grants(t, s, tok.AccessToken)
				return roles
			}

			grace := githubtest.User{ID: 7001, Login: "grace", Orgs: []string{"acme"},
				Teams:  []githubtest.Team{{Org: "acme", Slug: "compilers"}},
				Emails: []githubtest.Email{{Address: "grace@acme.example", Primary: true, Verified: true}}}
			tok := signIn(t, grace)
			if _, roles, _ := grants(t, s, tok.AccessToken); strings.Join(roles, ",") != "admin" {
				t.Fatalf("roles at sign-in = %v", roles)
			}
			gh.UpdateUser(7001, func(u *githubtest.User) { u.Teams = nil; u.Name = "Grace B. Hopper" })
			if roles := rolesAfterRefresh(t, tok); strings.Join(roles, ",") != "member" {
				t.Fatalf("roles after the team removal = %v", roles)
			}
			var name string
			s.DB.Raw("SELECT name FROM users WHERE email = ?", "grace@acme.example").Scan(&name)
			if name != "Grace B. Hopper" {
				t.Fatalf("profile not refreshed: %q", name)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ?", "membership.role_changed"); n != 1 {
				t.Fatalf("role change audit events = %d", n)
			}

			// Out of the allowed organization: gone.
			gh.UpdateUser(7001, func(u *githubtest.User) { u.Orgs = []string{"elsewhere"} })
			if status, out := refresh(t, s, tok, ""); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh after leaving the organization = %d %v", status, out)
			}

			// The authorization revoked at GitHub (401): gone.
			linus := githubtest.User{ID: 7002, Login: "linus", Orgs: []string{"acme"},
				Emails: []githubtest.Email{{Address: "linus@acme.example", Primary: true, Verified: true}}}
			tok = signIn(t, linus)
			gh.RevokeTokens()
			if status, out := refresh(t, s, tok, ""); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("refresh after the token was revoked = %d %v", status, out)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", "upstream_recheck"); n != 2 {
				t.Fatalf("sessions ended by re-checks = %d", n)
			}
			// GitHub failing is not the person gone (keep by default).
			tok = signIn(t, linus)
			gh.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasPrefix(r.URL.Path, "/api/") {
					githubtest.ServerError(w)
					return true
				}
				return false
			})
			defer gh.SetIntercept(nil)
			if status, out := refresh(t, s, tok, ""); status != 200 {
				t.Fatalf("refresh with GitHub failing = %d %v", status, out)
			}
		})
	}
}

// TestRecheckSAMLMaxSessionAge: SAML cannot re-check; a session through
// it refreshes until the last sign-in through the identity is older than
// max_session_age, then ends with a clear invalid_grant.
func TestRecheckSAMLMaxSessionAge(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, "    max_session_age: 8h\n")
			_, tok := samlMaxAgeSignIn(t, idp, conf)
			if status, out := refresh(t, s, tok, ""); status != 200 {
				t.Fatalf("refresh = %d %v", status, out)
			}
			s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-9*time.Hour))
			status, out := refresh(t, s, tok, "")
			if status != 400 || out["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(out["error_description"]), "max_session_age") {
				t.Fatalf("refresh past max_session_age = %d %v", status, out)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM sessions WHERE revoke_reason = ?", "max_session_age"); n != 1 {
				t.Fatalf("sessions ended = %d", n)
			}
		})
	}
}

// samlMaxAgeSignIn signs Ada in through the SAML IdP in a new browser,
// which keeps its single sign-on session, and returns it with the
// client's tokens.
func samlMaxAgeSignIn(t *testing.T, idp *samltest.IdP, conf *oauth2.Config) (*browser, *oauth2.Token) {
	t.Helper()
	idp.SetDefault(samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true})
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t)
	resp, _ := b.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "corp")))
	_, page := b.get(resp.Header.Get("Location"))
	form, err := samltest.ParseFormPage(page)
	if err != nil {
		t.Fatal(err)
	}
	_, page = b.crossSitePost(form.URL, form.Values())
	action, fields := autoPost(t, page)
	resp, body := b.post(action, fields)
	target, _ := url.Parse(resp.Header.Get("Location"))
	if target == nil || target.Query().Get("code") == "" {
		t.Fatalf("callback = %d %s", resp.StatusCode, body)
	}
	tok, err := conf.Exchange(context.Background(), target.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return b, tok
}

// TestSAMLMaxSessionAgeEndsBrowserSession: a refresh refused by SAML's
// max_session_age ends the browser sessions signed in through the
// identity too: single sign-on cannot answer again from them, even once
// the upstream's word is renewed elsewhere (TestSAMLMaxSessionAgeAppliesToSingleSignOn
// shows single sign-on refusing on its own).
func TestSAMLMaxSessionAgeEndsBrowserSession(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, "    max_session_age: 8h\n")
			b, tok := samlMaxAgeSignIn(t, idp, conf)
			s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC().Add(-9*time.Hour))
			if status, out := refresh(t, s, tok, ""); status != 400 || !strings.Contains(fmt.Sprint(out["error_description"]), "max_session_age") {
				t.Fatalf("refresh past max_session_age = %d %v", status, out)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM browser_sessions WHERE revoke_reason = ?", "max_session_age"); n != 1 {
				t.Fatalf("browser sessions ended by max_session_age = %d", n)
			}
			s.DB.Exec("UPDATE upstream_checks SET checked_at = ?", time.Now().UTC())
			resp, body := b.get(conf.AuthCodeURL("st2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oidc.Nonce("n"),
				oauth2.SetAuthURLParam("prompt", "none")))
			if loc, err := resp.Location(); err != nil || loc.Query().Get("error") != "login_required" {
				t.Fatalf("prompt=none after the browser session ended = %d %v %s", resp.StatusCode, loc, body)
			}
		})
	}
}

// TestAdminForcesRecheck: POST /api/v1/admin/users/{id}/recheck re-checks
// the user's identities now, whatever recheck_interval says; an upstream
// that forgot the grant ends the sessions at once. Only administrators.
func TestAdminForcesRecheck(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			lazy := providertest.New(t, providertest.Options{})
			yaml := strings.Replace(rbacYAML, "  - {name: lax, type: dev, trusted_email: false}\n",
				"  - {name: lax, type: dev, trusted_email: false}\n"+fmt.Sprintf(
					"  - {name: lazy, type: oidc, issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true, recheck_interval: 1h}\n",
					lazy.Issuer, lazy.ClientID, lazy.ClientSecret), 1)
			yaml = strings.Replace(yaml, "clients:\n", "clients:\n  - {id: spa, public: true, redirect_uris: [\"http://127.0.0.1:9/callback\"]}\n", 1)
			w := newWorldWith(t, pg, yaml)
			s, up, root := w.s, recheckUpstreams{lazy: lazy}, w.root
			tok := recheckSignIn(t, s, "lazy")
			var userID string
			s.DB.Raw("SELECT user_id FROM sessions WHERE provider = ?", "lazy").Scan(&userID)
			call := func(token string) (int, string) {
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v1/admin/users/"+userID+"/recheck", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, body := newBrowser(t).do(req)
				return resp.StatusCode, body
			}
			if status, body := call(tok.AccessToken); status != 401 {
				t.Fatalf("recheck with a token of another audience = %d %s", status, body)
			}
			if status, body := call(w.signIn("admin-console", "someone@example.com", "", "").AccessToken); status != 403 {
				t.Fatalf("recheck by a person who is no administrator = %d %s", status, body)
			}
			status, body := call(root)
			if status != 200 || !strings.Contains(body, `"outcome":"success"`) || up.lazy.RefreshGrants() != 1 {
				t.Fatalf("forced recheck = %d %s (upstream asked %d times)", status, body, up.lazy.RefreshGrants())
			}
			up.lazy.ForgetGrants()
			if status, body := call(root); status != 200 || !strings.Contains(body, `"outcome":"gone"`) {
				t.Fatalf("forced recheck after the upstream forgot = %d %s", status, body)
			}
			if status, out := refresh(t, s, tok, ""); status != 400 {
				t.Fatalf("refresh after the forced recheck = %d %v", status, out)
			}
			if n := countOf(t, s, "SELECT COUNT(*) FROM audit_events WHERE type = ?", "identity.recheck_forced"); n != 2 {
				t.Fatalf("forced recheck audit events = %d", n)
			}
		})
	}
}
