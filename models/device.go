package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Statuses of a device authorization (RFC 8628).
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceRedeemed = "redeemed"
)

// DeviceAuthorization is one device authorization request: its codes
// are stored only as hashes. Status moves pending → approved | denied
// once, and approved → redeemed once.
type DeviceAuthorization struct {
	ID              string `gorm:"primaryKey"`
	DeviceCodeHash  string
	UserCodeHash    string
	ClientID        string
	Scope           string
	Status          string
	IntervalSeconds int
	LastPolledAt    *time.Time
	UserID          *string
	SessionID       *string
	IP              string `gorm:"column:ip"`
	CreatedAt       time.Time
	ExpiresAt       time.Time
	DecidedAt       *time.Time
}

// CreateDeviceAuthorization inserts a device authorization; a device or
// user code hash already taken is ErrConflict.
func (s *Store) CreateDeviceAuthorization(ctx context.Context, d *DeviceAuthorization) error {
	return mapErr(s.db.WithContext(ctx).Create(d).Error, "create device authorization")
}

// FindDeviceAuthorization returns the device authorization with id.
func (s *Store) FindDeviceAuthorization(ctx context.Context, id string) (*DeviceAuthorization, error) {
	return s.findDevice(ctx, "id = ?", id)
}

// FindDeviceAuthorizationByDeviceCode returns the device authorization
// whose device code hashes to hash.
func (s *Store) FindDeviceAuthorizationByDeviceCode(ctx context.Context, hash string) (*DeviceAuthorization, error) {
	return s.findDevice(ctx, "device_code_hash = ?", hash)
}

// FindDeviceAuthorizationByUserCode returns the device authorization
// whose user code hashes to hash.
func (s *Store) FindDeviceAuthorizationByUserCode(ctx context.Context, hash string) (*DeviceAuthorization, error) {
	return s.findDevice(ctx, "user_code_hash = ?", hash)
}

func (s *Store) findDevice(ctx context.Context, where string, arg string) (*DeviceAuthorization, error) {
	var d DeviceAuthorization
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where(where, arg).Take(&d).Error })
	return &d, mapErr(err, "find device authorization")
}

// PollDeviceAuthorization records a poll of a pending authorization at
// now, when the previous one was at or before notAfter (or there was
// none); it reports whether it did. Of concurrent polls, at most one
// within an interval counts.
func (s *Store) PollDeviceAuthorization(ctx context.Context, id string, now, notAfter time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&DeviceAuthorization{}).
		Where("id = ? AND status = ? AND (last_polled_at IS NULL OR last_polled_at <= ?)", id, DevicePending, notAfter).
		Update("last_polled_at", now)
	return res.RowsAffected == 1, mapErr(res.Error, "poll device authorization")
}

// SlowDownDeviceAuthorization adds step seconds to the polling interval
// of a device that polled too fast (RFC 8628 §3.5) and records its poll.
func (s *Store) SlowDownDeviceAuthorization(ctx context.Context, id string, now time.Time, step int) error {
	res := s.db.WithContext(ctx).Model(&DeviceAuthorization{}).Where("id = ?", id).
		Updates(map[string]any{"interval_seconds": gorm.Expr("interval_seconds + ?", step), "last_polled_at": now})
	return mapErr(res.Error, "slow down device authorization")
}

// DecideDeviceAuthorization moves a pending authorization that has not
// expired at now to status (approved with the session it opened, or
// denied), for userID; it reports whether this call did. Of concurrent
// decisions exactly one wins.
func (s *Store) DecideDeviceAuthorization(ctx context.Context, id, status, userID string, sessionID *string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&DeviceAuthorization{}).
		Where("id = ? AND status = ? AND expires_at > ?", id, DevicePending, now).
		Updates(map[string]any{"status": status, "user_id": userID, "session_id": sessionID, "decided_at": now})
	return res.RowsAffected == 1, mapErr(res.Error, "decide device authorization")
}

// RedeemDeviceAuthorization moves an approved authorization to redeemed
// and reports whether this call did: of concurrent polls exactly one
// takes the tokens.
func (s *Store) RedeemDeviceAuthorization(ctx context.Context, id string) (bool, error) {
	res := s.db.WithContext(ctx).Model(&DeviceAuthorization{}).
		Where("id = ? AND status = ?", id, DeviceApproved).Update("status", DeviceRedeemed)
	return res.RowsAffected == 1, mapErr(res.Error, "redeem device authorization")
}

// PruneDeviceAuthorizations deletes device authorizations that expired
// at or before cutoff.
func (s *Store) PruneDeviceAuthorizations(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", cutoff).Delete(&DeviceAuthorization{})
	return res.RowsAffected, mapErr(res.Error, "prune device authorizations")
}
