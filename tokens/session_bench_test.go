package tokens_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// BenchmarkRedeemRefreshToken measures one refresh (lookup, checks,
// rotation transaction) with parallel clients, each rotating its own
// family, so the figure includes database write contention: SQLite
// serialises all write transactions, PostgreSQL only those of one session.
func BenchmarkRedeemRefreshToken(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchRedeemRefresh(b, dbtest.SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { benchRedeemRefresh(b, dbtest.Postgres(b)) })
}

func benchRedeemRefresh(b *testing.B, db *models.DB) {
	f := newSessFixture(b, db, func(o *tokens.SessionOptions) {
		o.Now = time.Now
		o.IdleTTL, o.AbsoluteTTL = time.Hour, 24*time.Hour
	})
	u := f.user("bench")
	// One family per parallel goroutine (RunParallel starts GOMAXPROCS).
	pool := make([]string, runtime.GOMAXPROCS(0))
	for i := range pool {
		pool[i] = f.refresh(f.session(u.ID, "spa").ID, "spa")
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) - 1)
		if i >= len(pool) {
			b.Error("more parallel goroutines than families")
			return
		}
		tok := pool[i]
		for pb.Next() {
			r, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
			if err != nil {
				b.Error(err)
				return
			}
			tok = r.RefreshToken
		}
	})
}
