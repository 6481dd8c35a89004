package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Activity aggregation for the admin console's charts: counts of audit
// events grouped by time bucket in SQL, so a chart costs one small answer
// however many events the window holds.

// Bucket sizes of ActivityCounts.
const (
	BucketHour = "hour"
	BucketDay  = "day"
)

// ActivityCount is the number of events of one kind (Key: a provider, or
// a failure's event type) that started in one bucket.
type ActivityCount struct {
	Bucket time.Time
	Key    string
	Count  int64
}

// ActivityQuery selects the events ActivityCounts groups: those of the
// given types (and outcome, when set) in [Since, Until), keyed by
// provider or by type.
type ActivityQuery struct {
	Types   []string
	Outcome string
	// ByType keys counts by the event's type; otherwise by its provider.
	ByType       bool
	Since, Until time.Time
	Bucket       string // BucketHour or BucketDay
}

// bucketExpr is the SQL text of an event's bucket start, as an RFC 3339
// UTC string, in the database's dialect.
func (s *Store) bucketExpr(bucket string) (string, error) {
	pg := s.db.Dialector.Name() == "postgres"
	switch {
	case bucket == BucketHour && pg:
		return `to_char(date_trunc('hour', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24":00:00Z"')`, nil
	case bucket == BucketDay && pg:
		return `to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T00:00:00Z"')`, nil
	case bucket == BucketHour:
		return `strftime('%Y-%m-%dT%H:00:00Z', occurred_at)`, nil
	case bucket == BucketDay:
		return `strftime('%Y-%m-%dT00:00:00Z', occurred_at)`, nil
	}
	return "", fmt.Errorf("activity bucket %q: want hour or day", bucket)
}

// ActivityCounts counts the audit events q selects per bucket and key,
// oldest bucket first. Buckets without events are absent.
func (s *Store) ActivityCounts(ctx context.Context, q ActivityQuery) ([]ActivityCount, error) {
	expr, err := s.bucketExpr(q.Bucket)
	if err != nil {
		return nil, err
	}
	key := "provider"
	if q.ByType {
		key = "type"
	}
	var rows []struct {
		Bucket string
		Grp    string
		N      int64
	}
	err = s.read(ctx, func(db *gorm.DB) error {
		tx := db.Table("audit_events").
			Select(expr+" AS bucket, "+key+" AS grp, COUNT(*) AS n").
			Where("type IN ? AND occurred_at >= ? AND occurred_at < ?", q.Types, q.Since.UTC(), q.Until.UTC())
		if q.Outcome != "" {
			tx = tx.Where("outcome = ?", q.Outcome)
		}
		return tx.Group("bucket, grp").Order("bucket, grp").Scan(&rows).Error
	})
	if err != nil {
		return nil, mapErr(err, "count activity")
	}
	out := make([]ActivityCount, 0, len(rows))
	for _, r := range rows {
		t, err := time.Parse(time.RFC3339, r.Bucket)
		if err != nil {
			return nil, fmt.Errorf("count activity: bucket %q: %w", r.Bucket, err)
		}
		out = append(out, ActivityCount{Bucket: t, Key: r.Grp, Count: r.N})
	}
	return out, nil
}

// CountActiveSessions counts the app sessions live at now: not revoked,
// not expired, of a user who is not disabled.
func (s *Store) CountActiveSessions(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("sessions").
			Joins("JOIN users ON users.id = sessions.user_id").
			Where("sessions.revoked_at IS NULL AND sessions.expires_at > ? AND users.disabled = ?", now, false).
			Count(&n).Error
	})
	return n, mapErr(err, "count active sessions")
}
