package provisioning_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// statementCounter is a GORM logger that counts the SQL statements run
// through it (transaction BEGIN and COMMIT are not statements GORM traces),
// and with keep, records them.
type statementCounter struct {
	keep bool
	n    atomic.Int64
	mu   sync.Mutex
	sql  []string
}

func (c *statementCounter) LogMode(logger.LogLevel) logger.Interface { return c }
func (c *statementCounter) Info(context.Context, string, ...any)     {}
func (c *statementCounter) Warn(context.Context, string, ...any)     {}
func (c *statementCounter) Error(context.Context, string, ...any)    {}
func (c *statementCounter) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	c.n.Add(1)
	if !c.keep {
		return // rendering the SQL would dominate a benchmark
	}
	sql, _ := fc()
	c.mu.Lock()
	c.sql = append(c.sql, sql)
	c.mu.Unlock()
}

func (c *statementCounter) reset() {
	c.n.Store(0)
	c.mu.Lock()
	c.sql = nil
	c.mu.Unlock()
}

// countingStore is a store on db whose statements c counts.
func countingStore(db *models.DB, c *statementCounter) *models.Store {
	return models.NewStore(&models.DB{DB: db.Session(&gorm.Session{Logger: c}), Dialect: db.Dialect, SQL: db.SQL})
}

// The benchmark's world: five rules (one auto-creating an organization
// per upstream org) and a person in 20 upstream groups, which give them
// five memberships.
var benchPolicy = provisioning.SyncPolicy{AutoCreateOrgs: true, OnLeave: provisioning.LeaveRemove, Rules: []provisioning.Rule{
	{Index: 0, Match: "github:org:acme", Org: "acme", Role: "member"},
	{Index: 1, Match: "github:team:acme/t0*", Org: "acme", Role: "admin"},
	{Index: 2, Match: "github:org:*", Org: "gh-{org}", Role: "viewer"},
	{Index: 3, Match: "github:team:acme/t1*", Org: "eng", Role: "member"},
	{Index: 4, Match: "github:org:beta", Org: "beta", Role: "viewer"},
}}

func benchGroups(n int) []string {
	groups := []string{"github:org:acme", "github:org:beta"}
	for i := 0; len(groups) < n; i++ {
		groups = append(groups, fmt.Sprintf("github:team:acme/t%02d", i))
	}
	return groups[:n]
}

func benchIdentity(subject string, groups []string) *providers.Identity {
	return &providers.Identity{Provider: "github", Subject: subject, Email: subject + "@example.com", EmailVerified: true,
		Name: "Person " + subject, AvatarURL: "https://example.com/a.png", Groups: groups,
		Claims: map[string]any{"login": subject, "id": 42}}
}

// TestReturningLoginStatements: a returning user's login runs a small,
// constant number of SQL statements, however many groups and rules match.
func TestReturningLoginStatements(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		counter := &statementCounter{keep: true}
		svc := provisioning.New(countingStore(db, counter), provisioning.Options{Sync: benchPolicy})
		counts := map[int]int64{}
		for _, n := range []int{1, 20} {
			id := benchIdentity(fmt.Sprintf("u%d", n), benchGroups(n))
			res, err := svc.Provision(ctx, provisioning.Login{Identity: id})
			if err != nil {
				t.Fatal(err)
			}
			counter.reset()
			again, err := svc.Provision(ctx, provisioning.Login{Identity: id})
			if err != nil || len(again.Memberships) != len(res.Memberships) {
				t.Fatalf("returning login = %+v, %v", again, err)
			}
			counts[n] = counter.n.Load()
			t.Logf("%d groups, %d memberships: %d statements:\n  %s", n, len(res.Memberships), counts[n], strings.Join(counter.sql, "\n  "))
		}
		const budget = 7
		if counts[1] != counts[20] || counts[20] > budget {
			t.Fatalf("statements per returning login: %d with 1 group, %d with 20; want equal and at most %d", counts[1], counts[20], budget)
		}
	})
}

// BenchmarkReturningLogin measures Provision for a user who exists, in 20
// upstream groups matched by 5 sync rules, with nothing to change (the
// common login): sequentially, and in parallel for distinct users.
//
//	GATEHOUSE_TEST_POSTGRES_DSN=... go test -run '^$' -bench ReturningLogin -benchtime 2000x ./provisioning/
func BenchmarkReturningLogin(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			db := map[string]func(testing.TB) *models.DB{"sqlite": dbtest.SQLite, "postgres": dbtest.Postgres}[dialect](b)
			ctx := context.Background()
			counter := &statementCounter{}
			svc := provisioning.New(countingStore(db, counter), provisioning.Options{Sync: benchPolicy})
			groups := benchGroups(20)
			login := func(subject string) {
				if _, err := svc.Provision(ctx, provisioning.Login{Identity: benchIdentity(subject, groups)}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("sequential", func(b *testing.B) {
				login("bench")
				counter.reset()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					login("bench")
				}
				b.ReportMetric(float64(counter.n.Load())/float64(b.N), "stmts/op")
			})
			b.Run("parallel", func(b *testing.B) {
				var next atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					subject := fmt.Sprintf("p%d", next.Add(1))
					login(subject)
					for pb.Next() {
						login(subject)
					}
				})
			})
		})
	}
}

// BenchmarkEmailVerified measures what stating email_verified adds to
// each token minted and each UserInfo or /auth/me answer: one query on
// the user's identities (here three, one of them of a trusted provider).
//
//	GATEHOUSE_TEST_POSTGRES_DSN=... go test -run '^$' -bench EmailVerified -benchtime 5000x ./provisioning/
func BenchmarkEmailVerified(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) {
			db := map[string]func(testing.TB) *models.DB{"sqlite": dbtest.SQLite, "postgres": dbtest.Postgres}[dialect](b)
			ctx := context.Background()
			all := map[string]bool{"github": true, "google": true, "okta": true}
			// Linked while all three were trusted; okta and google are not now.
			setup := provisioning.New(models.NewStore(db), provisioning.Options{TrustedEmail: all, LinkByEmail: all})
			var user *models.User
			for _, provider := range []string{"github", "google", "okta"} {
				res, err := setup.Provision(ctx, provisioning.Login{Identity: &providers.Identity{Provider: provider, Subject: provider,
					Email: "ada@example.com", EmailVerified: true}})
				if err != nil || (user != nil && res.User.ID != user.ID) {
					b.Fatalf("sign-in through %s: %v (linked %v)", provider, err, res != nil && res.Linked)
				}
				user = res.User
			}
			svc := provisioning.New(models.NewStore(db), provisioning.Options{TrustedEmail: map[string]bool{"github": true}})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if ok, err := svc.EmailVerified(ctx, user); err != nil || !ok {
					b.Fatalf("EmailVerified = %v, %v", ok, err)
				}
			}
		})
	}
}
