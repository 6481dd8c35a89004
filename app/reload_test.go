package app_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// reloadUpstreams are the fake upstreams of the reload tests: okta stays
// as it is, acme is reconfigured and gone is removed.
type reloadUpstreams struct {
	okta, acme, gone *providertest.Server
}

const reloadSecretA, reloadSecretB, reloadSecretC = "svc-a-secret-0123456789", "svc-b-secret-0123456789", "svc-c-secret-0123456789"

// reloadYAML is the file the server starts with (second false) or the
// one a reload applies (second true): svc-b removed and svc-c added, okta
// moved down and commented but otherwise the same, acme given another
// client id, gone removed, and the org-sync rule sending eng elsewhere.
func reloadYAML(up reloadUpstreams, second bool) string {
	provider := func(name string, f *providertest.Server, clientID string) string {
		return fmt.Sprintf("  - {name: %s, type: oidc, issuer: %s, client_id: %s, client_secret: %s, insecure_allow_http: true}\n",
			name, f.Issuer, clientID, f.ClientSecret)
	}
	client := func(id, secret string) string {
		return fmt.Sprintf("  - {id: %s, secret: %s, grant_types: [client_credentials]}\n", id, secret)
	}
	clients := `clients:
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1:9/callback]
    grant_types: [authorization_code, refresh_token, "urn:ietf:params:oauth:grant-type:token-exchange"]
` + client("svc-a", reloadSecretA)
	if !second {
		return clients + client("svc-b", reloadSecretB) + "providers:\n" +
			provider("okta", up.okta, up.okta.ClientID) + provider("acme", up.acme, up.acme.ClientID) + provider("gone", up.gone, up.gone.ClientID) +
			"org_sync:\n  rules:\n    - {match: eng, org: engineering, role: member}\n"
	}
	return clients + client("svc-c", reloadSecretC) + "providers:\n" +
		provider("acme", up.acme, "another-client-id") +
		"  # okta keeps its settings: its instance and caches stay.\n" + provider("okta", up.okta, up.okta.ClientID) +
		"org_sync:\n  rules:\n    - {match: eng, org: platform, role: member}\n"
}

func startReloadServer(t *testing.T, pg bool) (*apptest.Server, reloadUpstreams, *syncBuffer) {
	t.Helper()
	up := reloadUpstreams{
		okta: providertest.New(t, providertest.Options{}),
		acme: providertest.New(t, providertest.Options{}),
		gone: providertest.New(t, providertest.Options{}),
	}
	logs := &syncBuffer{}
	s := apptest.Start(t, apptest.Options{YAML: reloadYAML(up, false), Postgres: pg, Log: logs})
	t.Cleanup(func() {
		for _, secret := range []string{reloadSecretA, reloadSecretB, reloadSecretC, up.okta.ClientSecret, up.acme.ClientSecret} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("a secret reached the log")
			}
		}
	})
	waitReadyz(t, s, `"provider:okta":"ok"`, `"provider:acme":"ok"`, `"provider:gone":"ok"`)
	return s, up, logs
}

// writeConfig replaces the server's configuration file.
func writeConfig(t *testing.T, s *apptest.Server, body string) {
	t.Helper()
	if err := os.WriteFile(s.Config.ConfigFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReloaded waits until a SIGHUP sent has replaced before.
func waitReloaded(t *testing.T, s *apptest.Server, before *config.Config, logs *syncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); s.CurrentConfig() == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the configuration:\n%s", logs.String())
		}
	}
}

func reloadClientCredentials(t *testing.T, s *apptest.Server, id, secret string) (int, map[string]any) {
	t.Helper()
	return tokenPost(t, s, url.Values{"grant_type": {"client_credentials"}}, id, secret)
}

func metricLine(t *testing.T, s *apptest.Server, line string) bool {
	t.Helper()
	_, metrics := get(t, s.URL+"/metrics")
	return strings.Contains(metrics, line)
}

// TestReloadOnSIGHUP sends the process a real SIGHUP with a valid new
// file: the new client works and the removed one is refused, the
// unchanged provider keeps its instance and JWKS cache (the fake upstream
// sees no second fetch), the changed one applies its new settings, the
// removed one's sign-in in flight ends on an error page, and the org-sync
// rules are the new ones. The reload is logged, counted and audited.
func TestReloadOnSIGHUP(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up, logs := startReloadServer(t, pg)
			for _, c := range [][2]string{{"svc-a", reloadSecretA}, {"svc-b", reloadSecretB}} {
				if status, out := reloadClientCredentials(t, s, c[0], c[1]); status != 200 {
					t.Fatalf("%s before the reload = %d %v", c[0], status, out)
				}
			}
			if status, _ := reloadClientCredentials(t, s, "svc-c", reloadSecretC); status != 401 {
				t.Fatalf("svc-c before the reload = %d", status)
			}
			for _, p := range []string{"okta", "acme"} {
				f := map[string]*providertest.Server{"okta": up.okta, "acme": up.acme}[p]
				if status, out := tokenPost(t, s, exchangeForm(p, f.IDToken(nil), idTokenType), "", ""); status != 200 {
					t.Fatalf("exchange through %s before the reload = %d %v", p, status, out)
				}
			}
			oktaFetches := up.okta.JWKSFetches()
			if oktaFetches == 0 {
				t.Fatal("okta's JWKS was never fetched")
			}
			// A sign-in through gone, in flight across the reload: the
			// browser is back from the upstream with a code.
			_, conf := spaOIDC(t, s.URL)
			b := newBrowser(t)
			resp, _ := b.get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oidc.Nonce("n"),
				oauth2.SetAuthURLParam("provider", "gone")))
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("authorize through gone = %d", resp.StatusCode)
			}
			resp, _ = b.get(resp.Header.Get("Location"))
			callback := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(callback, s.URL+"/auth/callback/gone") {
				t.Fatalf("upstream answer = %d %s", resp.StatusCode, callback)
			}

			writeConfig(t, s, reloadYAML(up, true))
			before := s.CurrentConfig()
			stop := s.ReloadOnSignal(t.Context())
			defer stop()
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitReloaded(t, s, before, logs)

			if status, out := reloadClientCredentials(t, s, "svc-c", reloadSecretC); status != 200 {
				t.Fatalf("added svc-c = %d %v", status, out)
			}
			if status, out := reloadClientCredentials(t, s, "svc-a", reloadSecretA); status != 200 {
				t.Fatalf("kept svc-a = %d %v", status, out)
			}
			if status, out := reloadClientCredentials(t, s, "svc-b", reloadSecretB); status != 401 || out["error"] != "invalid_client" {
				t.Fatalf("removed svc-b = %d %v", status, out)
			}
			// okta: the same instance, whose cached keys verify at once.
			if status, out := tokenPost(t, s, exchangeForm("okta", up.okta.IDToken(nil), idTokenType), "", ""); status != 200 {
				t.Fatalf("exchange through okta after the reload = %d %v", status, out)
			}
			if n := up.okta.JWKSFetches(); n != oktaFetches {
				t.Fatalf("okta's JWKS fetched %d times after the reload, %d before: its cache was lost", n, oktaFetches)
			}
			// acme: rebuilt with its new client id, so a token for the old
			// one no longer passes.
			waitReadyz(t, s, `"provider:acme":"ok"`)
			if status, out := tokenPost(t, s, exchangeForm("acme", up.acme.IDToken(nil), idTokenType), "", ""); status != 400 || out["error"] != "invalid_grant" {
				t.Fatalf("exchange through acme for its old client id = %d %v", status, out)
			}
			// gone: no longer offered; its sign-in in flight ends on a page.
			resp, body := b.get(callback)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("callback of a removed provider = %d %s", resp.StatusCode, body)
			}
			if status, out := tokenPost(t, s, exchangeForm("gone", up.gone.IDToken(nil), idTokenType), "", ""); status != 400 {
				t.Fatalf("exchange through a removed provider = %d %v", status, out)
			}
			_, ready := get(t, s.URL+"/readyz")
			if strings.Contains(ready, "provider:gone") || !strings.Contains(ready, `"provider:okta":"ok"`) {
				t.Fatalf("/readyz after the reload = %s", ready)
			}
			if _, ok := s.Provisioning.SyncRuleTargeting("platform"); !ok {
				t.Fatal("the new org-sync rule is not in effect")
			}
			if _, ok := s.Provisioning.SyncRuleTargeting("engineering"); ok {
				t.Fatal("the old org-sync rule is still in effect")
			}

			if !metricLine(t, s, `gatehouse_config_reloads_total{outcome="success"} 1`) ||
				!metricLine(t, s, `gatehouse_config_reloads_total{outcome="failure"} 0`) ||
				!metricLine(t, s, "gatehouse_config_last_reload_successful 1") {
				_, m := get(t, s.URL+"/metrics")
				t.Fatalf("reload metrics:\n%s", grepLines(m, "gatehouse_config"))
			}
			line := grepLines(logs.String(), `"configuration reloaded"`)
			for _, want := range []string{`"clients_added":["svc-c"]`, `"clients_removed":["svc-b"]`, `"clients_changed":[]`,
				`"providers_removed":["gone"]`, `"providers_changed":["acme"]`, `"providers_added":[]`, `"org_sync_changed":true`} {
				if !strings.Contains(line, want) {
					t.Fatalf("reload log lacks %s: %s", want, line)
				}
			}
			if strings.Contains(logs.String(), "needs_restart") {
				t.Fatalf("a restart was asked for: %s", grepLines(logs.String(), "needs_restart"))
			}
			var details string
			s.DB.Raw("SELECT details FROM audit_events WHERE type = ? AND outcome = ?", "config.reloaded", "success").Scan(&details)
			if !strings.Contains(details, `"clients_added":["svc-c"]`) || !strings.Contains(details, `"providers_removed":["gone"]`) {
				t.Fatalf("audit details = %q", details)
			}
		})
	}
}

// TestReloadRefusesInvalidFile: a file start-up would refuse is refused
// with the same problems, one log line per field; the running
// configuration stays and the failure is counted and audited.
func TestReloadRefusesInvalidFile(t *testing.T) {
	s, up, logs := startReloadServer(t, false)
	// Two problems: a secret too short, an org-sync rule without a role.
	invalid := strings.Replace(reloadYAML(up, true), reloadSecretC, "short", 1)
	invalid = strings.Replace(invalid, "role: member", `role: ""`, 1)
	writeConfig(t, s, invalid)
	before := s.CurrentConfig()
	err := s.Reload(t.Context())
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Reload = %v, want a validation error", err)
	}
	// The same problems start-up reports for the same file.
	_, _, startErr := config.Load(config.Options{
		Lookup: func(k string) (string, bool) {
			v, ok := map[string]string{"GATEHOUSE_CONFIG": s.Config.ConfigFile, "GATEHOUSE_ISSUER": s.URL}[k]
			return v, ok
		},
		DotenvPath: t.TempDir() + "/absent.env",
	})
	if startErr == nil || startErr.Error() != err.Error() {
		t.Fatalf("start-up says %v, reload says %v", startErr, err)
	}
	if len(ve.Problems) != 2 {
		t.Fatalf("problems = %v", ve.Problems)
	}
	for _, p := range ve.Problems {
		if n := strings.Count(logs.String(), `"problem":"`+p.Field+": "); n != 1 {
			t.Fatalf("%d log lines for %s:\n%s", n, p.Field, grepLines(logs.String(), "invalid configuration"))
		}
	}
	if s.CurrentConfig() != before {
		t.Fatal("a refused file replaced the configuration")
	}
	if status, out := reloadClientCredentials(t, s, "svc-b", reloadSecretB); status != 200 {
		t.Fatalf("svc-b after a refused reload = %d %v", status, out)
	}
	if status, _ := reloadClientCredentials(t, s, "svc-c", reloadSecretC); status != 401 {
		t.Fatalf("svc-c after a refused reload = %d", status)
	}
	if _, ok := s.Provisioning.SyncRuleTargeting("engineering"); !ok {
		t.Fatal("the org-sync rules changed")
	}

	// Not YAML at all: refused in one line, as at start-up.
	writeConfig(t, s, "clients: [\n")
	if err := s.Reload(t.Context()); err == nil {
		t.Fatal("a broken file was applied")
	}
	if !metricLine(t, s, `gatehouse_config_reloads_total{outcome="failure"} 2`) ||
		!metricLine(t, s, "gatehouse_config_last_reload_successful 0") {
		_, m := get(t, s.URL+"/metrics")
		t.Fatalf("reload metrics:\n%s", grepLines(m, "gatehouse_config"))
	}
	var n int64
	s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND outcome = ?", "config.reloaded", "failure").Scan(&n)
	if n != 2 {
		t.Fatalf("failed reloads audited = %d", n)
	}

	// A valid file again applies.
	writeConfig(t, s, reloadYAML(up, true))
	if err := s.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if status, out := reloadClientCredentials(t, s, "svc-c", reloadSecretC); status != 200 {
		t.Fatalf("svc-c = %d %v", status, out)
	}
	if !metricLine(t, s, "gatehouse_config_last_reload_successful 1") {
		t.Fatal("the successful reload is not shown")
	}
}

// TestRequestsDuringReloads: requests loop while the file is reloaded
// again and again; none is dropped or answered with an error (run it
// with -race: the swaps are atomic).
func TestRequestsDuringReloads(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, up, _ := startReloadServer(t, pg)
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var ok, failed atomic.Int64
			var firstFailure atomic.Value
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						// svc-a and okta are in both files.
						status, out := reloadClientCredentials(t, s, "svc-a", reloadSecretA)
						if status == 200 {
							status, out = tokenPost(t, s, exchangeForm("okta", up.okta.IDToken(nil), idTokenType), "", "")
						}
						if status != 200 {
							failed.Add(1)
							firstFailure.CompareAndSwap(nil, fmt.Sprint(status, out))
							continue
						}
						ok.Add(1)
					}
				}()
			}
			for i := range 6 {
				writeConfig(t, s, reloadYAML(up, i%2 == 0))
				if err := s.Reload(ctx); err != nil {
					t.Errorf("reload %d: %v", i, err)
				}
				// Let requests run on each configuration.
				for n := ok.Load(); ok.Load() < n+3 && failed.Load() == 0; {
					time.Sleep(time.Millisecond)
				}
			}
			cancel()
			wg.Wait()
			if failed.Load() > 0 {
				t.Fatalf("%d requests failed during reloads (%d passed), the first: %v", failed.Load(), ok.Load(), firstFailure.Load())
			}
			if !metricLine(t, s, `gatehouse_config_reloads_total{outcome="success"} 6`) {
				t.Fatal("six reloads not counted")
			}
		})
	}
}

// TestServeReloadsOnSIGHUP: the server gatehouse serve runs reloads on
// SIGHUP by itself, and keeps serving.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	s, up, logs := startReloadServer(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Serve never answered")
		}
	}
	writeConfig(t, s, reloadYAML(up, true))
	before := s.CurrentConfig()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitReloaded(t, s, before, logs)
	status, out := formPost(t, base+"/auth/token", url.Values{"grant_type": {"client_credentials"}}, "svc-c", reloadSecretC)
	if status != 200 {
		t.Fatalf("the client the reload added, through Serve's listener = %d %v", status, out)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}
