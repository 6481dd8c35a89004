package models_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestClientAssertionJTIs: a client's jti is accepted once, even by
// concurrent callers (one winner), per client; prune removes expired
// records only.
func TestClientAssertionJTIs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		now := time.Now().UTC().Truncate(time.Second)

		var fresh atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.UseClientAssertionJTI(ctx, "svc", "h1", now.Add(time.Minute), now)
				if err != nil {
					t.Error(err)
				}
				if ok {
					fresh.Add(1)
				}
			}()
		}
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("%d concurrent uses of one jti were accepted, want 1", fresh.Load())
		}
		if ok, err := s.UseClientAssertionJTI(ctx, "svc", "h1", now.Add(time.Minute), now); ok || err != nil {
			t.Fatalf("replay = %v, %v; want refused", ok, err)
		}
		if ok, err := s.UseClientAssertionJTI(ctx, "other", "h1", now.Add(time.Minute), now); !ok || err != nil {
			t.Fatalf("the same jti of another client = %v, %v; want accepted", ok, err)
		}
		if ok, _ := s.UseClientAssertionJTI(ctx, "svc", "old", now.Add(-time.Second), now.Add(-time.Minute)); !ok {
			t.Fatal("old jti refused")
		}
		n, err := s.PruneClientAssertionJTIs(ctx, now)
		if err != nil || n != 1 {
			t.Fatalf("prune = %d, %v; want 1", n, err)
		}
		if ok, _ := s.UseClientAssertionJTI(ctx, "svc", "h1", now.Add(time.Minute), now); ok {
			t.Fatal("a live jti record was pruned")
		}
	})
}
