package app_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// What one refresh grant costs Gatehouse's process, measured without the
// noise of a shared machine: the refreshes of the load tool
// (scripts/load.sh: client_secret_basic, a session whose organization
// gives its user a role with 20 permissions, openid email profile),
// one after the other through the real router (Gin and every middleware,
// client authentication, the two statements, minting, the JSON answer),
// in process: no socket and no HTTP client, whose costs are not
// Gatehouse's. Counts — allocations here, instructions under callgrind
// (scripts/refresh-cost.sh) — repeat on a busy machine where durations
// do not.

// refreshChain is one session of the load tool's kind, refreshed again
// and again through the router.
type refreshChain struct {
	s       *apptest.Server
	refresh string
	rec     *httptest.ResponseRecorder
}

// newRefreshChain starts Gatehouse (SQLite or PostgreSQL, signing with
// alg) and opens one session to refresh.
func newRefreshChain(tb testing.TB, pg bool, alg string) *refreshChain {
	tb.Helper()
	s := apptest.Start(tb, apptest.Options{YAML: statementsYAML, Postgres: pg,
		Env: map[string]string{"GATEHOUSE_SIGNING_ALG": alg}})
	ctx := context.Background()
	store := models.NewStore(s.DB)
	org := refreshOrgWithPermissions(tb, s, 20)
	u := &models.User{Email: models.NewID() + "@example.com", EmailVerified: true, Name: "Ada"}
	ident := &models.Identity{Provider: "dev", Subject: u.Email, Email: u.Email, EmailVerified: true, Username: "ada"}
	if err := store.CreateUserWithIdentity(ctx, u, ident); err != nil {
		tb.Fatal(err)
	}
	if err := store.UpsertMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org, RoleID: "role-load-20"}); err != nil {
		tb.Fatal(err)
	}
	sess, err := s.Sessions.CreateSession(ctx, tokens.NewSession{UserID: u.ID, ClientID: "backend", Provider: "dev",
		ActiveOrgID: &org, Scope: "openid email profile", AMR: []string{"pwd"}, IdentityID: ident.ID, AuthTime: time.Now().UTC()})
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := s.Sessions.IssueRefreshToken(ctx, sess.ID, "backend")
	if err != nil {
		tb.Fatal(err)
	}
	return &refreshChain{s: s, refresh: rt, rec: httptest.NewRecorder()}
}

var refreshTokenField = []byte(`"refresh_token":"`)

// next sends one refresh grant and keeps the refresh token it answers.
func (c *refreshChain) next(tb testing.TB) {
	body := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(c.refresh)
	req := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("backend", "backend-secret-0123456789")
	c.rec.Body.Reset()
	c.rec.Code = 200
	clear(c.rec.Header())
	c.s.Engine.ServeHTTP(c.rec, req)
	out := c.rec.Body.Bytes()
	i := bytes.Index(out, refreshTokenField)
	if c.rec.Code != 200 || i < 0 {
		tb.Fatalf("refresh = %d %s", c.rec.Code, out)
	}
	out = out[i+len(refreshTokenField):]
	c.refresh = string(out[:bytes.IndexByte(out, '"')])
}

// BenchmarkRefreshGrantHandler is one refresh chain of the load tool's
// kind through the router, one refresh after the other, on each database
// with each signing algorithm: the CPU of a refresh in Gatehouse's
// process (the database server's is PostgreSQL's own), without a socket
// or an HTTP client.
//
//	go test -run '^$' -bench RefreshGrantHandler -benchmem ./app/
func BenchmarkRefreshGrantHandler(b *testing.B) {
	benchEachSetup(b, func(b *testing.B, pg bool, alg string) {
		c := newRefreshChain(b, pg, alg)
		c.next(b)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			c.next(b)
		}
	})
}

// TestRefreshCostWindow runs refreshes between two marks for an outside
// meter; scripts/refresh-cost.sh runs it under callgrind with
// instrumentation off, turns it on at "ready", and dumps the counts at
// "done", so only the refreshes are counted. Skipped unless
// GATEHOUSE_COST_SYNC names the folder of the marks. GATEHOUSE_COST_DB
// (sqlite, postgres), GATEHOUSE_COST_ALG (RS256, ES256, EdDSA) and
// GATEHOUSE_COST_N (refreshes counted, 200 by default) choose the run.
func TestRefreshCostWindow(t *testing.T) {
	dir := os.Getenv("GATEHOUSE_COST_SYNC")
	if dir == "" {
		t.Skip("GATEHOUSE_COST_SYNC is not set (scripts/refresh-cost.sh sets it)")
	}
	n, err := strconv.Atoi(os.Getenv("GATEHOUSE_COST_N"))
	if err != nil || n <= 0 {
		n = 200
	}
	alg := os.Getenv("GATEHOUSE_COST_ALG")
	if alg == "" {
		alg = "ES256"
	}
	c := newRefreshChain(t, os.Getenv("GATEHOUSE_COST_DB") == "postgres", alg)
	// Warm: the pool's connection, its prepared statements, the key's signers.
	for range 20 {
		c.next(t)
	}
	mark := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(name string) {
		for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s mark in %s", name, dir)
			}
		}
	}
	mark("ready")
	wait("go")
	for range n {
		c.next(t)
	}
	mark("done")
	wait("exit")
}

// maxRefreshAllocs bounds the heap allocations of one refresh grant of
// the load tool's kind through the router (TestRefreshAllocations), by
// signing algorithm, harness included (the request, the recorder,
// reading the answer). On 2026-12-06, SQLite: ES256 571 before compact
// signing and the shared response headers, 436 after; RS256 441 before,
// 312 after; PostgreSQL about 20 fewer. ES256's two signatures alone make
// about 120 (crypto/ecdsa's hedged nonces).
var maxRefreshAllocs = map[string]float64{"ES256": 470, "RS256": 345, "EdDSA": 345}

// TestRefreshAllocations counts the heap allocations of a refresh grant
// on SQLite and PostgreSQL with each signing algorithm and fails above
// maxRefreshAllocs: a count, which a slow or busy machine does not move,
// unlike a duration.
func TestRefreshAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts (sync.Pool drops items)")
	}
	for _, pg := range []bool{false, true} {
		for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
			t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg]+"/"+alg, func(t *testing.T) {
				c := newRefreshChain(t, pg, alg)
				for range 5 {
					c.next(t)
				}
				n := testing.AllocsPerRun(100, func() { c.next(t) })
				t.Logf("%.0f allocations per refresh", n)
				if n > maxRefreshAllocs[alg] {
					t.Errorf("a refresh grant made %.0f heap allocations, more than %.0f", n, maxRefreshAllocs[alg])
				}
			})
		}
	}
}
