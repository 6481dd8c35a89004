package models_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// queueDelivery inserts an outbox row as the trigger would.
func queueDelivery(t *testing.T, db *models.DB, client string, due time.Time) *models.LogoutDelivery {
	t.Helper()
	d := &models.LogoutDelivery{SessionID: models.NewID(), ClientID: client, UserID: "u-" + client, Reason: "logout",
		CreatedAt: due, NextAttemptAt: due}
	if err := db.Create(d).Error; err != nil {
		t.Fatal(err)
	}
	return d
}

func sessionIDs(rows []models.LogoutDelivery) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.SessionID)
	}
	return out
}

// TestLogoutDeliveryLifecycle: due rows are listed per client, oldest
// first; a claim leases a row (it is no longer due, nor claimable) until
// the lease runs out; a failed attempt is rescheduled once per claim; a
// delivered row is deleted; rows of clients without a back-channel URI
// are dropped in one statement; the pending count follows.
func TestLogoutDeliveryLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s := context.Background(), models.NewStore(db)
		now := time.Now().UTC().Truncate(time.Microsecond)
		older := queueDelivery(t, db, "app-a", now.Add(-time.Minute))
		newer := queueDelivery(t, db, "app-a", now.Add(-time.Second))
		other := queueDelivery(t, db, "app-b", now.Add(-2*time.Minute))
		later := queueDelivery(t, db, "app-a", now.Add(time.Minute))
		silent := queueDelivery(t, db, "no-uri", now.Add(-time.Hour))

		due, err := s.DueLogoutDeliveries(ctx, []string{"app-a"}, now, 10)
		if err != nil || !slices.Equal(sessionIDs(due), []string{older.SessionID, newer.SessionID}) {
			t.Fatalf("due for app-a = %v, %v", sessionIDs(due), err)
		}
		if due, _ := s.DueLogoutDeliveries(ctx, []string{"app-a", "app-b"}, now, 1); !slices.Equal(sessionIDs(due), []string{other.SessionID}) {
			t.Fatalf("limit 1 = %v", sessionIDs(due))
		}
		if due, _ := s.DueLogoutDeliveries(ctx, nil, now, 10); len(due) != 0 {
			t.Fatalf("no clients, yet due = %v", sessionIDs(due))
		}

		lease := now.Add(time.Minute)
		if ok, err := s.ClaimLogoutDelivery(ctx, older.SessionID, 0, now, lease); !ok || err != nil {
			t.Fatalf("claim = %v %v", ok, err)
		}
		if ok, _ := s.ClaimLogoutDelivery(ctx, older.SessionID, 0, now, lease); ok {
			t.Fatal("a leased row was claimed again")
		}
		if ok, _ := s.ClaimLogoutDelivery(ctx, later.SessionID, 0, now, lease); ok {
			t.Fatal("a row not yet due was claimed")
		}
		if ok, _ := s.ClaimLogoutDelivery(ctx, "no-such-row", 0, now, lease); ok {
			t.Fatal("an unknown row was claimed")
		}
		if due, _ := s.DueLogoutDeliveries(ctx, []string{"app-a"}, now, 10); !slices.Equal(sessionIDs(due), []string{newer.SessionID}) {
			t.Fatalf("due while leased = %v", sessionIDs(due))
		}
		// The lease runs out (the replica died): due again, claimable again.
		if ok, _ := s.ClaimLogoutDelivery(ctx, older.SessionID, 0, lease, lease.Add(time.Minute)); !ok {
			t.Fatal("a row whose lease ran out was not claimable")
		}

		// Another replica rescheduled the row between this replica's read
		// and its claim, to a time already due: the claim, made with the
		// attempts read before, is refused; with the current count it holds.
		if ok, err := s.RescheduleLogoutDelivery(ctx, other.SessionID, 0, now.Add(-time.Second), "http 502"); !ok || err != nil {
			t.Fatalf("reschedule by another replica = %v %v", ok, err)
		}
		if ok, err := s.ClaimLogoutDelivery(ctx, other.SessionID, 0, now, lease); ok || err != nil {
			t.Fatalf("a claim with stale attempts = %v %v, want refused", ok, err)
		}
		if ok, err := s.ClaimLogoutDelivery(ctx, other.SessionID, 1, now, lease); !ok || err != nil {
			t.Fatalf("a claim with the current attempts = %v %v", ok, err)
		}

		next := now.Add(2 * time.Second)
		if ok, err := s.RescheduleLogoutDelivery(ctx, older.SessionID, 0, next, "http 500"); !ok || err != nil {
			t.Fatalf("reschedule = %v %v", ok, err)
		}
		if ok, _ := s.RescheduleLogoutDelivery(ctx, older.SessionID, 0, next, "http 500"); ok {
			t.Fatal("a second reschedule of one claim counted")
		}
		var row models.LogoutDelivery
		if err := db.Where("session_id = ?", older.SessionID).Take(&row).Error; err != nil ||
			row.Attempts != 1 || row.LastError != "http 500" || !row.NextAttemptAt.Equal(next) {
			t.Fatalf("rescheduled row = %+v %v", row, err)
		}

		if err := s.DeleteLogoutDelivery(ctx, newer.SessionID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteLogoutDelivery(ctx, newer.SessionID); err != nil {
			t.Fatalf("deleting a row twice: %v", err)
		}
		if ok, _ := s.ClaimLogoutDelivery(ctx, newer.SessionID, 0, now, lease); ok {
			t.Fatal("a delivered row was claimed")
		}

		if n, err := s.CountLogoutDeliveries(ctx); n != 4 || err != nil {
			t.Fatalf("pending = %d %v", n, err)
		}
		if n, err := s.DropLogoutDeliveries(ctx, []string{"app-a", "app-b"}); n != 1 || err != nil {
			t.Fatalf("dropped %d, %v", n, err)
		}
		if err := db.Where("session_id = ?", silent.SessionID).Take(&row).Error; err == nil {
			t.Fatal("the row of a client without a back-channel URI stayed")
		}
		if n, _ := s.DropLogoutDeliveries(ctx, nil); n != 3 {
			t.Fatalf("no client with a URI: dropped %d, want every row", n)
		}
		if n, _ := s.CountLogoutDeliveries(ctx); n != 0 {
			t.Fatalf("pending after dropping all = %d", n)
		}
	})
}

// TestLogoutDeliveryClaimIsExclusive: many claimers (as several replicas
// would) race for the same due rows; every row is claimed exactly once.
func TestLogoutDeliveryClaimIsExclusive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s := context.Background(), models.NewStore(db)
		now := time.Now().UTC().Truncate(time.Microsecond)
		const rows, claimers = 20, 8
		for range rows {
			queueDelivery(t, db, "app-a", now.Add(-time.Second))
		}
		var mu sync.Mutex
		won := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, claimers)
		for c := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				due, err := s.DueLogoutDeliveries(ctx, []string{"app-a"}, now, rows)
				if err != nil {
					errs <- err
					return
				}
				// Each claimer walks the rows from its own starting point.
				for i := range due {
					d := due[(i+c*3)%len(due)]
					ok, err := s.ClaimLogoutDelivery(ctx, d.SessionID, 0, now, now.Add(time.Minute))
					if err != nil {
						errs <- fmt.Errorf("claimer %d: %w", c, err)
						return
					}
					if ok {
						mu.Lock()
						won[d.SessionID]++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(won) != rows {
			t.Fatalf("%d of %d rows claimed", len(won), rows)
		}
		for id, n := range won {
			if n != 1 {
				t.Fatalf("row %s claimed %d times", id, n)
			}
		}
	})
}
