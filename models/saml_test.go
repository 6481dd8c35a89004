package models_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

func TestSAMLStoreContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		now := time.Now().UTC().Truncate(time.Second)

		t.Run("assertion ids are accepted once, even concurrently", func(t *testing.T) {
			var fresh atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.RememberAssertion(ctx, "corp", "id-1", now.Add(time.Minute), now)
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
				t.Fatalf("%d callers saw the assertion as new, want 1", fresh.Load())
			}
			// The same id at another provider is another assertion.
			if ok, err := s.RememberAssertion(ctx, "other", "id-1", now.Add(time.Minute), now); !ok || err != nil {
				t.Fatalf("other provider = %v, %v", ok, err)
			}
		})

		t.Run("a pending login is consumed once, by its first answer", func(t *testing.T) {
			p := &models.PendingLogin{ID: "h1", Provider: "corp", ClientID: "spa", Saved: "id-req", ExpiresAt: now.Add(time.Minute), CreatedAt: now}
			if err := s.CreatePendingLogin(ctx, p); err != nil {
				t.Fatal(err)
			}
			got, err := s.ConsumePendingLogin(ctx, "h1", now)
			if err != nil || got.Saved != "id-req" || got.ClientID != "spa" || got.Provider != "corp" || got.ConsumedAt == nil {
				t.Fatalf("consume = %+v, %v", got, err)
			}
			if _, err := s.ConsumePendingLogin(ctx, "h1", now); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("second consume: %v", err)
			}
			if _, err := s.ConsumePendingLogin(ctx, "unknown", now); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("unknown: %v", err)
			}
			late := &models.PendingLogin{ID: "h2", Provider: "corp", ExpiresAt: now.Add(time.Second), CreatedAt: now}
			_ = s.CreatePendingLogin(ctx, late)
			if _, err := s.ConsumePendingLogin(ctx, "h2", now.Add(2*time.Second)); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("an expired pending login was consumed: %v", err)
			}
			_ = s.CreatePendingLogin(ctx, &models.PendingLogin{ID: "h3", Provider: "corp", ExpiresAt: now.Add(time.Minute), CreatedAt: now})
			var won atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.ConsumePendingLogin(ctx, "h3", now)
					switch {
					case err == nil:
						won.Add(1)
					case !errors.Is(err, models.ErrNotFound):
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if won.Load() != 1 {
				t.Fatalf("%d concurrent answers consumed one pending login, want 1", won.Load())
			}
		})

		t.Run("prune removes only expired records", func(t *testing.T) {
			_, _ = s.RememberAssertion(ctx, "corp", "old", now.Add(-time.Minute), now.Add(-2*time.Minute))
			_ = s.CreatePendingLogin(ctx, &models.PendingLogin{ID: "old", Provider: "corp", ExpiresAt: now.Add(-time.Minute), CreatedAt: now})
			n, err := s.PruneSAML(ctx, now)
			if err != nil || n != 2 {
				t.Fatalf("prune = %d, %v; want 2", n, err)
			}
			if ok, _ := s.RememberAssertion(ctx, "corp", "id-1", now.Add(time.Minute), now); ok {
				t.Fatal("a live replay record was pruned")
			}
			if _, err := s.FindPendingLogin(ctx, "h1"); err != nil {
				t.Fatalf("a live pending login was pruned: %v", err)
			}
		})

		t.Run("provider secrets: first value wins", func(t *testing.T) {
			calls := 0
			mk := func(v string) func() ([]byte, error) {
				return func() ([]byte, error) { calls++; return []byte(v), nil }
			}
			a, err := s.LoadOrCreateProviderSecret(ctx, "corp", "sp", mk("first"), now)
			if err != nil || string(a) != "first" {
				t.Fatalf("create = %q, %v", a, err)
			}
			b, err := s.LoadOrCreateProviderSecret(ctx, "corp", "sp", mk("second"), now)
			if err != nil || string(b) != "first" || calls != 1 {
				t.Fatalf("load = %q, %v (create called %d times)", b, err, calls)
			}
			boom := errors.New("boom")
			if _, err := s.LoadOrCreateProviderSecret(ctx, "corp", "other", func() ([]byte, error) { return nil, boom }, now); !errors.Is(err, boom) {
				t.Fatalf("create error = %v", err)
			}
		})
	})
}
