package models_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestActivityCounts: events are counted per bucket and key in SQL, on
// both databases, within [since, until) only, and with the outcome asked.
func TestActivityCounts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		t0 := time.Date(2031, 3, 1, 10, 0, 0, 0, time.UTC)
		record := func(at time.Time, typ, outcome, provider string) {
			t.Helper()
			if err := s.RecordAudit(ctx, &models.AuditEvent{OccurredAt: at, Type: typ, Outcome: outcome, Provider: provider}, nil); err != nil {
				t.Fatal(err)
			}
		}
		record(t0.Add(-time.Nanosecond), "login.success", "", "dev") // before since
		record(t0, "login.success", "", "dev")                       // since is inclusive
		record(t0.Add(59*time.Minute+59*time.Second+999*time.Millisecond), "login.success", "", "dev")
		record(t0.Add(61*time.Minute), "login.success", "", "google")
		record(t0.Add(61*time.Minute), "login.success", "", "dev")
		record(t0.Add(25*time.Hour), "login.success", "", "dev")
		record(t0.Add(48*time.Hour), "login.success", "", "dev") // until is exclusive
		record(t0.Add(2*time.Minute), "login.failed", models.OutcomeFailure, "dev")
		record(t0.Add(3*time.Minute), "login.refused", models.OutcomeFailure, "dev")
		record(t0.Add(4*time.Minute), "login.refused", models.OutcomeFailure, "google")
		record(t0.Add(5*time.Minute), "user.created", "", "dev") // another type

		since, until := t0, t0.Add(48*time.Hour)
		got, err := s.ActivityCounts(ctx, models.ActivityQuery{Types: []string{"login.success"}, Since: since, Until: until, Bucket: models.BucketHour})
		if err != nil {
			t.Fatal(err)
		}
		want := []models.ActivityCount{
			{Bucket: t0, Key: "dev", Count: 2},
			{Bucket: t0.Add(time.Hour), Key: "dev", Count: 1},
			{Bucket: t0.Add(time.Hour), Key: "google", Count: 1},
			{Bucket: t0.Add(25 * time.Hour), Key: "dev", Count: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("by hour:\n got %+v\nwant %+v", got, want)
		}
		got, err = s.ActivityCounts(ctx, models.ActivityQuery{Types: []string{"login.success"}, Since: since, Until: until, Bucket: models.BucketDay})
		day := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
		want = []models.ActivityCount{
			{Bucket: day, Key: "dev", Count: 3},
			{Bucket: day, Key: "google", Count: 1},
			{Bucket: day.Add(24 * time.Hour), Key: "dev", Count: 1},
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("by day:\n got %+v, %v\nwant %+v", got, err, want)
		}
		got, err = s.ActivityCounts(ctx, models.ActivityQuery{Types: []string{"login.failed", "login.refused", "user.created"},
			Outcome: models.OutcomeFailure, ByType: true, Since: since, Until: until, Bucket: models.BucketDay})
		want = []models.ActivityCount{{Bucket: day, Key: "login.failed", Count: 1}, {Bucket: day, Key: "login.refused", Count: 2}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("failures by type:\n got %+v, %v\nwant %+v", got, err, want)
		}
		if _, err := s.ActivityCounts(ctx, models.ActivityQuery{Types: []string{"x"}, Since: since, Until: until, Bucket: "week"}); err == nil {
			t.Fatal("bucket week accepted")
		}
	})
}
