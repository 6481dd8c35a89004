package models

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Queries for browser sessions (single sign-on, issue 14). Ending a
// browser session ends the app sessions opened under it in the same
// transaction; the trigger of migration 00007 then queues their
// back-channel logouts.

// AMRValues returns the browser session's authentication method
// references, stored space-separated.
func (b *BrowserSession) AMRValues() []string { return strings.Fields(b.AMR) }

// CreateBrowserSession inserts a browser session.
func (s *Store) CreateBrowserSession(ctx context.Context, b *BrowserSession) error {
	if b.ID == "" {
		b.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(b).Error, "create browser session")
}

// LiveBrowserSession returns the browser session whose cookie token
// hashes to tokenHash when it can still sign its user in at now: not
// revoked, before its absolute expiry, used after idleSince, and its user
// not disabled. Anything else is ErrNotFound.
func (s *Store) LiveBrowserSession(ctx context.Context, tokenHash string, now, idleSince time.Time) (*BrowserSession, error) {
	var b BrowserSession
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("browser_sessions").Select("browser_sessions.*").
			Joins("JOIN users ON users.id = browser_sessions.user_id").
			Where("browser_sessions.token_hash = ? AND browser_sessions.revoked_at IS NULL AND browser_sessions.expires_at > ? AND browser_sessions.last_used_at > ? AND users.disabled = ?",
				tokenHash, now, idleSince, false).
			Take(&b).Error
	})
	return &b, mapErr(err, "find browser session")
}

// FindBrowserSession returns the browser session with the given id,
// revoked or not.
func (s *Store) FindBrowserSession(ctx context.Context, id string) (*BrowserSession, error) {
	var b BrowserSession
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&b).Error })
	return &b, mapErr(err, "find browser session")
}

// TouchBrowserSession marks a live browser session used at now (its idle
// expiry starts again). It reports whether the session was live.
func (s *Store) TouchBrowserSession(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&BrowserSession{}).
		Where("id = ? AND revoked_at IS NULL AND expires_at > ?", id, now).
		Update("last_used_at", now)
	return res.RowsAffected == 1, mapErr(res.Error, "touch browser session")
}

// ListUserBrowserSessions returns every stored browser session of a user
// (revoked and expired ones too, until pruned), newest first.
func (s *Store) ListUserBrowserSessions(ctx context.Context, userID string) ([]BrowserSession, error) {
	var out []BrowserSession
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).
		Order("created_at DESC, id").Find(&out).Error
	return out, mapErr(err, "list browser sessions")
}

// RevokeBrowserSession ends a browser session and, in the same
// transaction, every app session opened under it with their refresh
// tokens. It reports whether this call ended the browser session (false
// when it had ended already: the first reason is kept; the app sessions
// are swept anyway), and ErrNotFound for an unknown id.
func (s *Store) RevokeBrowserSession(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	var ended bool
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&BrowserSession{}).Where("id = ? AND revoked_at IS NULL", id).
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke browser session")
		}
		ended = res.RowsAffected == 1
		if !ended {
			if _, err := tx.FindBrowserSession(ctx, id); err != nil {
				return err
			}
		}
		_, err := tx.revokeSessions(ctx, reason, now, "browser_session_id = ?", id)
		return err
	})
	return ended, err
}

// RevokeUserBrowserSessions ends every live browser session of a user
// with the app sessions opened under them, in one transaction, returning
// how many browser sessions it ended.
func (s *Store) RevokeUserBrowserSessions(ctx context.Context, userID, reason string, now time.Time) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&BrowserSession{}).Where("user_id = ? AND revoked_at IS NULL", userID).
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke browser sessions")
		}
		n = res.RowsAffected
		_, err := tx.revokeSessions(ctx, reason, now,
			"browser_session_id IN (?)", tx.db.Model(&BrowserSession{}).Select("id").Where("user_id = ?", userID))
		return err
	})
	return n, err
}

// RenewBrowserSession gives a live browser session a new cookie token
// (tokenHash) after its user authenticated upstream again, with that
// sign-in's facts (b's IdentityID, Provider, AuthTime, AMR, ACR,
// UpstreamLogout, IP, UserAgent, ExpiresAt). It reports whether the
// session was live for b.UserID; the old token stops working at once.
func (s *Store) RenewBrowserSession(ctx context.Context, b *BrowserSession, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&BrowserSession{}).
		Where("id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?", b.ID, b.UserID, now).
		Updates(map[string]any{
			"token_hash": b.TokenHash, "identity_id": b.IdentityID, "provider": b.Provider, "auth_time": b.AuthTime,
			"amr": b.AMR, "acr": b.ACR, "upstream_logout": b.UpstreamLogout, "ip": b.IP, "user_agent": b.UserAgent,
			"last_used_at": now, "expires_at": b.ExpiresAt,
		})
	return res.RowsAffected == 1, mapErr(res.Error, "renew browser session")
}
