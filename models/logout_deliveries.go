package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Queries for the back-channel logout outbox (logout_deliveries, filled by
// the trigger of migration 00007 whenever an app session ends). Several
// replicas may deliver from one database: a replica claims a row by
// moving its next_attempt_at into the future (the lease) in one
// conditional UPDATE, which succeeds for exactly one of concurrent
// claimers; a replica that dies mid-delivery leaves a row that becomes
// due again when its lease runs out, so a delivery is made at least once.

// DueLogoutDeliveries returns up to limit rows of the given clients that
// are due at now (next_attempt_at not after now), oldest due first. It
// only reads: a row is a replica's to deliver once ClaimLogoutDelivery
// says so. No clients: no rows.
func (s *Store) DueLogoutDeliveries(ctx context.Context, clientIDs []string, now time.Time, limit int) ([]LogoutDelivery, error) {
	if len(clientIDs) == 0 || limit <= 0 {
		return nil, nil
	}
	var out []LogoutDelivery
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Where("next_attempt_at <= ? AND client_id IN (?)", now, clientIDs).
			Order("next_attempt_at, session_id").Limit(limit).Find(&out).Error
	})
	return out, mapErr(err, "list due logout deliveries")
}

// ClaimLogoutDelivery leases the row of sessionID to the caller until
// leaseUntil when it is still due at now and still has the attempts the
// caller read, and reports whether it did. Of concurrent claimers
// (replicas or goroutines) of one due row exactly one gets true: the
// UPDATE's condition no longer holds for the others once the first has
// moved next_attempt_at past now (PostgreSQL re-checks it after the row
// lock; SQLite serialises writers). A delivered (deleted) row is not
// claimed, nor a row another replica rescheduled after the caller read
// it: even when its new next_attempt_at is already due, its attempts
// changed, so the caller's later reschedule (conditional on the attempts
// it read) cannot silently fail and leave the row leased, nor the other
// replica's attempt be counted twice.
func (s *Store) ClaimLogoutDelivery(ctx context.Context, sessionID string, attempts int, now, leaseUntil time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&LogoutDelivery{}).
		Where("session_id = ? AND attempts = ? AND next_attempt_at <= ?", sessionID, attempts, now).
		Update("next_attempt_at", leaseUntil)
	return res.RowsAffected == 1, mapErr(res.Error, "claim logout delivery")
}

// DeleteLogoutDelivery removes the row of sessionID (delivered, or given
// up); a row already gone is not an error.
func (s *Store) DeleteLogoutDelivery(ctx context.Context, sessionID string) error {
	return mapErr(s.db.WithContext(ctx).Where("session_id = ?", sessionID).Delete(&LogoutDelivery{}).Error,
		"delete logout delivery")
}

// RescheduleLogoutDelivery records a failed attempt of the row of
// sessionID: attempts becomes attempts+1, next_attempt_at next and
// last_error lastError (which must not hold a token). attempts is the
// count the caller claimed the row with; when it changed meanwhile
// (another replica took over after the lease ran out and recorded its
// own attempt) nothing is written and it reports false.
func (s *Store) RescheduleLogoutDelivery(ctx context.Context, sessionID string, attempts int, next time.Time, lastError string) (bool, error) {
	res := s.db.WithContext(ctx).Model(&LogoutDelivery{}).
		Where("session_id = ? AND attempts = ?", sessionID, attempts).
		Updates(map[string]any{"attempts": attempts + 1, "next_attempt_at": next, "last_error": lastError})
	return res.RowsAffected == 1, mapErr(res.Error, "reschedule logout delivery")
}

// DropLogoutDeliveries deletes, in one statement, the rows of every
// client not in keep (the clients that registered a
// backchannel_logout_uri: nobody else is told) and returns how many it
// deleted. An empty keep deletes every row.
func (s *Store) DropLogoutDeliveries(ctx context.Context, keep []string) (int64, error) {
	q := s.db.WithContext(ctx)
	if len(keep) > 0 {
		q = q.Where("client_id NOT IN (?)", keep)
	} else {
		q = q.Where("1 = 1")
	}
	res := q.Delete(&LogoutDelivery{})
	return res.RowsAffected, mapErr(res.Error, "drop logout deliveries")
}

// CountLogoutDeliveries returns how many logouts are waiting to be
// delivered (due or not).
func (s *Store) CountLogoutDeliveries(ctx context.Context) (int64, error) {
	var n int64
	err := s.read(ctx, func(db *gorm.DB) error { return db.Model(&LogoutDelivery{}).Count(&n).Error })
	return n, mapErr(err, "count logout deliveries")
}
