package models

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Queries for sessions, their refresh-token families and authorization
// codes (consumed by tokens.SessionService).
//
// Every method that changes a family first updates the session row inside
// its transaction (the rotation, one statement, inside its statement: see
// RotateRefreshToken in refresh.go). On PostgreSQL that row lock
// serialises all writers of one family (rotation, re-issue, revocation),
// so a revocation can never miss a successor inserted concurrently; on
// SQLite `_txlock=immediate` serialises every write transaction anyway,
// and a single statement is a write transaction of its own. Times are passed in by the caller (UTC) so
// that tests can move the clock; they are compared in SQL, which on SQLite
// relies on every stored time being UTC text in the driver's one format.

// ErrSessionInactive reports that a session was revoked, has passed its
// absolute expiry, or belongs to a disabled user, so its family may not grow
// or change.
var ErrSessionInactive = errors.New("session revoked or expired")

// AMRValues returns the session's authentication method references
// (RFC 8176), stored space-separated.
func (s *Session) AMRValues() []string { return strings.Fields(s.AMR) }

// CreateSession inserts a session. A session opened under a browser
// session is inserted only while that browser session is live at
// sess.CreatedAt (ErrSessionInactive otherwise), and its row is locked
// first: a concurrent RevokeBrowserSession either sees the new session
// and ends it, or ends the browser session before it is inserted.
func (s *Store) CreateSession(ctx context.Context, sess *Session) error {
	if sess.ID == "" {
		sess.ID = NewID()
	}
	if sess.BrowserSessionID == nil {
		return mapErr(s.db.WithContext(ctx).Create(sess).Error, "create session")
	}
	return s.InTx(ctx, func(tx *Store) error {
		// A no-op UPDATE takes the row lock on PostgreSQL the way
		// RevokeBrowserSession's does; SQLite serialises writers anyway.
		res := tx.db.Model(&BrowserSession{}).
			Where("id = ? AND revoked_at IS NULL AND expires_at > ?", *sess.BrowserSessionID, sess.CreatedAt).
			Update("last_used_at", gorm.Expr("last_used_at"))
		if res.Error != nil {
			return mapErr(res.Error, "lock browser session")
		}
		if res.RowsAffected != 1 {
			return ErrSessionInactive
		}
		return mapErr(tx.db.Create(sess).Error, "create session")
	})
}

// FindSession returns the session with the given id, revoked or not.
func (s *Store) FindSession(ctx context.Context, id string) (*Session, error) {
	var sess Session
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&sess).Error })
	return &sess, mapErr(err, "find session")
}

// ListUserSessions returns every stored session of a user (revoked and
// expired ones too, until pruned), newest first.
func (s *Store) ListUserSessions(ctx context.Context, userID string) ([]Session, error) {
	var out []Session
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).
		Order("created_at DESC, id").Find(&out).Error
	return out, mapErr(err, "list sessions")
}

// SessionActive reports whether the session exists, is not revoked, has not
// reached its absolute expiry at now, and its user is not disabled.
func (s *Store) SessionActive(ctx context.Context, id string, now time.Time) (bool, error) {
	var n int64
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("sessions").
			Joins("JOIN users ON users.id = sessions.user_id").
			Where("sessions.id = ? AND sessions.revoked_at IS NULL AND sessions.expires_at > ? AND users.disabled = ?", id, now, false).
			Count(&n).Error
	})
	return n == 1, mapErr(err, "check session")
}

// SetSessionActiveOrg sets (or, with nil, clears) the active organization
// of a live session. It returns ErrNotFound for an unknown session and
// ErrSessionInactive for a revoked or expired one.
func (s *Store) SetSessionActiveOrg(ctx context.Context, id string, orgID *string, now time.Time) error {
	return s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Session{}).
			Where("id = ? AND revoked_at IS NULL AND expires_at > ?", id, now).
			Update("active_org_id", orgID)
		if res.Error != nil {
			return mapErr(res.Error, "set active organization")
		}
		if res.RowsAffected == 1 {
			return nil
		}
		if _, err := tx.FindSession(ctx, id); err != nil {
			return err
		}
		return ErrSessionInactive
	})
}

// RevokeSession revokes a session and every refresh token of its family in
// one transaction. It reports whether this call revoked the session (false
// when it was already revoked: the first reason is kept), and ErrNotFound
// for an unknown session.
func (s *Store) RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	var revoked bool
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Session{}).Where("id = ? AND revoked_at IS NULL", id).
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke session")
		}
		revoked = res.RowsAffected == 1
		if !revoked {
			if _, err := tx.FindSession(ctx, id); err != nil {
				return err
			}
		}
		// Always sweep the family: idempotent, and it repairs any token that
		// escaped an earlier revocation.
		err := tx.db.Model(&RefreshToken{}).Where("session_id = ? AND revoked_at IS NULL", id).
			Update("revoked_at", now).Error
		return mapErr(err, "revoke refresh tokens")
	})
	return revoked, err
}

// RevokeUserSessions revokes every live session of a user and all their
// refresh tokens in one transaction, returning how many sessions it revoked.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, reason string, now time.Time) (int64, error) {
	return s.revokeSessions(ctx, reason, now, "user_id = ?", userID)
}

// RevokeUserProviderSessions revokes the live sessions a user opened
// through the named provider, with all their refresh tokens, in one
// transaction, returning how many sessions it revoked.
func (s *Store) RevokeUserProviderSessions(ctx context.Context, userID, provider, reason string, now time.Time) (int64, error) {
	return s.revokeSessions(ctx, reason, now, "user_id = ? AND provider = ?", userID, provider)
}

// revokeSessions revokes the unrevoked sessions matching the condition and
// sweeps the refresh tokens of every session matching it (an earlier
// revocation's stragglers too).
func (s *Store) revokeSessions(ctx context.Context, reason string, now time.Time, cond string, args ...any) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Session{}).Where(cond, args...).Where("revoked_at IS NULL").
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke sessions")
		}
		n = res.RowsAffected
		err := tx.db.Model(&RefreshToken{}).
			Where("revoked_at IS NULL AND session_id IN (?)", tx.db.Model(&Session{}).Select("id").Where(cond, args...)).
			Update("revoked_at", now).Error
		return mapErr(err, "revoke refresh tokens")
	})
	return n, err
}

// touchLiveSession bumps last_used_at of a live session (which also takes
// its row lock on PostgreSQL) and returns the fresh row, or
// ErrSessionInactive.
func (s *Store) touchLiveSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	res := s.db.Model(&Session{}).
		Where("id = ? AND revoked_at IS NULL AND expires_at > ?", id, now).
		Where("NOT EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND users.disabled = ?)", true).
		Update("last_used_at", now)
	if res.Error != nil {
		return nil, mapErr(res.Error, "touch session")
	}
	if res.RowsAffected != 1 {
		return nil, ErrSessionInactive
	}
	return s.FindSession(ctx, id)
}

// AddRefreshToken inserts a refresh token into the family of a live
// session, bumping the session's last_used_at, and returns the session. It
// returns ErrSessionInactive when the session is revoked, expired or its
// user disabled.
func (s *Store) AddRefreshToken(ctx context.Context, t *RefreshToken, now time.Time) (*Session, error) {
	if t.ID == "" {
		t.ID = NewID()
	}
	var sess *Session
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		if sess, err = tx.touchLiveSession(ctx, t.SessionID, now); err != nil {
			return err
		}
		return mapErr(tx.db.Create(t).Error, "create refresh token")
	})
	return sess, err
}

// FindRefreshTokenByHash returns the refresh token with the given hash.
func (s *Store) FindRefreshTokenByHash(ctx context.Context, hash string) (*RefreshToken, error) {
	var t RefreshToken
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("token_hash = ?", hash).Take(&t).Error })
	return &t, mapErr(err, "find refresh token")
}

// CreateAuthorizationCode inserts an authorization code.
func (s *Store) CreateAuthorizationCode(ctx context.Context, c *AuthorizationCode) error {
	if c.ID == "" {
		c.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(c).Error, "create authorization code")
}

// FindAuthorizationCodeByHash returns the authorization code with the given
// hash, used or not.
func (s *Store) FindAuthorizationCodeByHash(ctx context.Context, hash string) (*AuthorizationCode, error) {
	var c AuthorizationCode
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("code_hash = ?", hash).Take(&c).Error })
	return &c, mapErr(err, "find authorization code")
}

// MarkAuthorizationCodeUsed sets used_at on an unused code and reports
// whether this call did; of concurrent callers exactly one gets true.
func (s *Store) MarkAuthorizationCodeUsed(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&AuthorizationCode{}).
		Where("id = ? AND used_at IS NULL", id).Update("used_at", now)
	return res.RowsAffected == 1, mapErr(res.Error, "use authorization code")
}

// PruneSessions deletes authorization codes expired at now, and refresh
// tokens and sessions whose expiry is before cutoff (deleting a session
// cascades to its tokens and codes). It returns the rows it deleted directly.
func (s *Store) PruneSessions(ctx context.Context, now, cutoff time.Time) (int64, error) {
	var total int64
	steps := []struct {
		what  string
		model any
		where string
		arg   time.Time
	}{
		{"prune authorization codes", &AuthorizationCode{}, "expires_at <= ?", now},
		{"prune refresh tokens", &RefreshToken{}, "expires_at < ?", cutoff},
		{"prune sessions", &Session{}, "expires_at < ?", cutoff},
		{"prune browser sessions", &BrowserSession{}, "expires_at < ?", cutoff},
	}
	// Separate statements, not one transaction: each is correct on its own
	// and short locks matter more than atomicity for garbage collection.
	for _, st := range steps {
		res := s.db.WithContext(ctx).Where(st.where, st.arg).Delete(st.model)
		if err := res.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return total, mapErr(err, st.what)
		}
		total += res.RowsAffected
	}
	return total, nil
}
