package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// dbProxy is a TCP proxy between Gatehouse and the test PostgreSQL server
// that can cut the way to the database: every open connection is closed
// and new ones are closed as soon as they arrive, as a database host that
// went down looks from the application.
type dbProxy struct {
	ln       net.Listener
	upstream string
	cut      atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func startDBProxy(t *testing.T, upstream string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dbProxy) serve(c net.Conn) {
	if p.cut.Load() {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
	up.Close()
}

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *dbProxy) Cut() {
	p.cut.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *dbProxy) Restore() { p.cut.Store(false) }

// TestDatabaseDownAnswers503: with the database unreachable, every kind
// of endpoint that needs it answers 503 with Retry-After — the OAuth
// token endpoint {"error":"temporarily_unavailable"}, the bearer
// endpoints (/auth/me, /auth/userinfo) and the admin API the same JSON,
// the browser sign-in a page asking to try again — never a 500 and never
// the database's error text; and once
// the database is back, the refresh token the client held all along
// still works.
func TestDatabaseDownAnswers503(t *testing.T) {
	target := dbtest.PostgresTarget(t)
	u, err := url.Parse(target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	s := apptest.Start(t, apptest.Options{YAML: rbacYAML, DatabaseURL: u.String()})
	w := &world{t: t, s: s}
	if _, err := s.Admin.GrantAdmin(context.Background(), "root@example.com"); err != nil {
		t.Fatal(err)
	}
	w.root = w.signIn("admin-console", "root@example.com", "", models.AdminOrgID).AccessToken
	ada := w.signIn("kb-web", "ada@example.com", "eng", "")
	refresh := func() (int, http.Header, map[string]any) {
		resp, err := http.PostForm(s.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {ada.RefreshToken}, "client_id": {"kb-web"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, resp.Header, out
	}
	bearer := func(method, path string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+map[bool]string{true: w.root, false: ada.AccessToken}[strings.HasPrefix(path, "/api/")])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	proxy.Cut()
	for _, tc := range []struct {
		name string
		call func() (int, http.Header, string)
		want string // in the body
	}{
		{"token endpoint (refresh)", func() (int, http.Header, string) {
			status, h, out := refresh()
			b, _ := json.Marshal(out)
			return status, h, string(b)
		}, `"error":"temporarily_unavailable"`},
		{"/auth/me", func() (int, http.Header, string) { return bearer("GET", "/auth/me") }, `"error":"temporarily_unavailable"`},
		{"/auth/userinfo", func() (int, http.Header, string) { return bearer("GET", "/auth/userinfo") }, `"error":"temporarily_unavailable"`},
		{"admin API", func() (int, http.Header, string) { return bearer("GET", "/api/v1/admin/users") }, `"error":"temporarily_unavailable"`},
		{"browser sign-in", func() (int, http.Header, string) {
			conf := &oauth2.Config{ClientID: "kb-web", RedirectURL: "http://127.0.0.1:9/callback", Scopes: []string{"openid"},
				Endpoint: oauth2.Endpoint{AuthURL: s.URL + "/auth/login", TokenURL: s.URL + "/auth/token"}}
			authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
				oauth2.SetAuthURLParam("provider", "dev"))
			resp, body := newBrowser(t).devSignIn(authURL, "bob@example.com", "")
			return resp.StatusCode, resp.Header, body
		}, "Temporarily unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := tc.call()
			if status != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) {
				t.Fatalf("with the database down: %d %.300s; want 503 with %s", status, body, tc.want)
			}
			if secs, err := strconv.Atoi(h.Get("Retry-After")); err != nil || secs < 1 {
				t.Fatalf("Retry-After = %q", h.Get("Retry-After"))
			}
			// The database's error stays in the log.
			for _, leak := range []string{"SQLSTATE", "EOF", "postgres", "pgconn", proxy.ln.Addr().String()} {
				if strings.Contains(body, leak) {
					t.Fatalf("the answer shows the database error (%q): %.300s", leak, body)
				}
			}
		})
	}

	proxy.Restore()
	status, _, out := refresh()
	if status != http.StatusOK || out["refresh_token"] == nil {
		t.Fatalf("refresh with the held token once the database is back = %d %v", status, out)
	}
	if status, _, body := bearer("GET", "/auth/me"); status != http.StatusOK {
		t.Fatalf("/auth/me once the database is back = %d %s", status, body)
	}
}

// TestRefreshChainsSurviveTerminatedConnections runs refresh chains
// against the HTTP server while another goroutine repeatedly terminates
// every PostgreSQL connection of the server (pg_terminate_backend, as a
// restart or failover does; only this test's connections, found by their
// application_name). No answer is ever a 500: each is 200 or 503 with
// Retry-After and temporarily_unavailable; a chain that got a 503 retries
// after Retry-After with the very token it holds and goes on; every chain
// ends healthy.
func TestRefreshChainsSurviveTerminatedConnections(t *testing.T) {
	f := dbtest.PostgresFaults(t)
	s := apptest.Start(t, apptest.Options{YAML: flowYAML, DatabaseURL: f.Target.DSN,
		// A client retries a 503 after Retry-After (1 s) with the token it
		// holds; if its failed request had rotated, the retry is served by
		// the reuse grace window (2 s by default). On a slow machine (the
		// race detector, two cores) the retry itself can take over a second,
		// so the window here leaves room for it: what this test checks is
		// that faults never lose a session, not how fast a machine is.
		Env: map[string]string{"GATEHOUSE_DB_MAX_OPEN_CONNS": "8", "GATEHOUSE_DB_MAX_IDLE_CONNS": "8",
			"GATEHOUSE_REFRESH_REUSE_GRACE": "5s"}})
	ctx := context.Background()
	store := models.NewStore(s.DB)
	// Load for this long, cutting every connection at each tick.
	const chains, load, cutEvery = 6, 6 * time.Second, 250 * time.Millisecond
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: chains}, Timeout: 30 * time.Second}

	// refresh answers 200 with the next token, or 503 (token unchanged).
	refresh := func(token string) (string, bool, error) {
		resp, err := client.PostForm(s.URL+"/auth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {token}, "client_id": {"spa"}})
		if err != nil {
			return "", false, err
		}
		defer resp.Body.Close()
		var out struct {
			Error        string `json:"error"`
			RefreshToken string `json:"refresh_token"`
			AccessToken  string `json:"access_token"`
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &out)
		switch {
		case resp.StatusCode == http.StatusOK && out.RefreshToken != "" && out.AccessToken != "":
			return out.RefreshToken, false, nil
		case resp.StatusCode == http.StatusServiceUnavailable && out.Error == "temporarily_unavailable" &&
			resp.Header.Get("Retry-After") == "1":
			return token, true, nil
		}
		return "", false, fmt.Errorf("refresh = %d %s (Retry-After %q)", resp.StatusCode, raw, resp.Header.Get("Retry-After"))
	}

	heads := make([]string, chains)
	for i := range heads {
		u := &models.User{Email: fmt.Sprintf("chain%d@example.com", i), EmailVerified: true}
		if err := store.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: u.Email}); err != nil {
			t.Fatal(err)
		}
		sess, err := s.Sessions.CreateSession(ctx, tokens.NewSession{UserID: u.ID, ClientID: "spa", Provider: "dev",
			Scope: "openid email profile", AMR: []string{"pwd"}})
		if err != nil {
			t.Fatal(err)
		}
		if heads[i], err = s.Sessions.IssueRefreshToken(ctx, sess.ID, "spa"); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var kills, terminated atomic.Int64
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		tick := time.NewTicker(cutEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				terminated.Add(int64(f.Terminate(t)))
				kills.Add(1)
			}
		}
	}()

	var unavailable, ok atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(load)
	for i := range chains {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				// A 503 is retried with the same token until it passes.
				for attempt := 0; ; attempt++ {
					next, retry, err := refresh(heads[i])
					if err != nil {
						t.Errorf("chain %d: %v", i, err)
						return
					}
					if !retry {
						heads[i] = next
						ok.Add(1)
						break
					}
					unavailable.Add(1)
					if attempt == 20 {
						t.Errorf("chain %d: still 503 after %d retries", i, attempt)
						return
					}
					time.Sleep(time.Second) // Retry-After
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-killerDone

	// Every chain ends healthy: its token refreshes with the database calm.
	for i, tok := range heads {
		if tok == "" {
			continue // reported above
		}
		if _, retry, err := refresh(tok); err != nil || retry {
			t.Errorf("chain %d after the faults: retry %t, %v", i, retry, err)
		}
	}
	t.Logf("%d refreshes answered 200 and %d answered 503 while %d rounds of pg_terminate_backend ended %d connections",
		ok.Load(), unavailable.Load(), kills.Load(), terminated.Load())
	if terminated.Load() == 0 {
		t.Fatal("no connection was ever terminated: the test did not test anything")
	}
}
