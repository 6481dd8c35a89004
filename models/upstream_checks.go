package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// UpstreamCheck is what re-checking one identity at its upstream needs
// (migration 00009): the provider's saved data, sealed by the caller, and
// when the upstream last vouched for the person.
type UpstreamCheck struct {
	IdentityID string `gorm:"primaryKey"`
	// Saved is the provider's re-check data, sealed and encoded by the
	// caller; empty when the kind keeps none.
	Saved string
	// CheckedAt is the last time the upstream vouched for the person: a
	// sign-in, or a re-check that succeeded.
	CheckedAt time.Time
	// ClaimedAt is when a re-check was last started (nil: none since the
	// last success or sign-in).
	ClaimedAt *time.Time
	UpdatedAt time.Time
}

// SaveUpstreamCheck records that the upstream vouched for the identity
// at now (a sign-in or a successful re-check): checked_at becomes now and
// any claim is released. A non-empty saved replaces the stored data; an
// empty one keeps it (an upstream that issues a refresh token only at the
// first consent, as Google does, sends none at later sign-ins).
func (s *Store) SaveUpstreamCheck(ctx context.Context, identityID, saved string, now time.Time) error {
	updates := []string{"checked_at", "claimed_at", "updated_at"}
	if saved != "" {
		updates = append(updates, "saved")
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "identity_id"}},
		DoUpdates: clause.AssignmentColumns(updates),
	}).Create(&UpstreamCheck{IdentityID: identityID, Saved: saved, CheckedAt: now, UpdatedAt: now}).Error
	return mapErr(err, "save upstream check")
}

// FindUpstreamCheck returns the identity's re-check row; ErrNotFound when
// it has none (it never signed in since re-checks exist).
func (s *Store) FindUpstreamCheck(ctx context.Context, identityID string) (*UpstreamCheck, error) {
	var c UpstreamCheck
	err := s.db.WithContext(ctx).Where("identity_id = ?", identityID).Take(&c).Error
	return &c, mapErr(err, "find upstream check")
}

// ClaimUpstreamCheck starts a re-check of the identity with one
// conditional UPDATE: it succeeds only when the last check is older than
// checkedBefore and no re-check was started since claimedBefore, and then
// returns the row (with its saved data). Of concurrent claims exactly one
// succeeds (on PostgreSQL the second waits for the first's row lock and
// then finds the claim; SQLite serialises writers); the others, and a
// claim of an identity checked meanwhile, get ErrConflict with the row
// as it is (checked_at and claimed_at say which). ErrNotFound: no row.
func (s *Store) ClaimUpstreamCheck(ctx context.Context, identityID string, checkedBefore, claimedBefore, now time.Time) (*UpstreamCheck, error) {
	var c UpstreamCheck
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&UpstreamCheck{}).
			Where("identity_id = ? AND checked_at < ? AND (claimed_at IS NULL OR claimed_at < ?)", identityID, checkedBefore, claimedBefore).
			Updates(map[string]any{"claimed_at": now, "updated_at": now})
		if res.Error != nil {
			return mapErr(res.Error, "claim upstream check")
		}
		if err := tx.db.Where("identity_id = ?", identityID).Take(&c).Error; err != nil {
			return mapErr(err, "claim upstream check")
		}
		if res.RowsAffected != 1 {
			return ErrConflict
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrConflict):
		return &c, err
	case err != nil:
		return nil, err
	}
	return &c, nil
}

// KeepUpstreamSaved replaces the identity's saved data without counting
// as a check (an upstream refresh token rotated by a re-check that then
// failed: the old one is spent).
func (s *Store) KeepUpstreamSaved(ctx context.Context, identityID, saved string, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&UpstreamCheck{}).Where("identity_id = ?", identityID).
		Updates(map[string]any{"saved": saved, "updated_at": now}).Error
	return mapErr(err, "keep upstream saved data")
}

// EndIdentitySessions ends, in one transaction, every live app session
// that came through the identity and every live browser session signed in
// with it (with the app sessions opened under those), and forgets the
// identity's saved re-check data, which the upstream no longer honours.
// It returns how many app sessions it ended; ending them queues their
// back-channel logouts (migration 00007's trigger).
func (s *Store) EndIdentitySessions(ctx context.Context, identityID, reason string, now time.Time) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&BrowserSession{}).Where("identity_id = ? AND revoked_at IS NULL", identityID).
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke browser sessions")
		}
		var err error
		if n, err = tx.revokeSessions(ctx, reason, now, "identity_id = ? OR browser_session_id IN (?)", identityID,
			tx.db.Model(&BrowserSession{}).Select("id").Where("identity_id = ?", identityID)); err != nil {
			return err
		}
		err = tx.db.Model(&UpstreamCheck{}).Where("identity_id = ?", identityID).
			Updates(map[string]any{"saved": "", "claimed_at": gorm.Expr("NULL"), "updated_at": now}).Error
		return mapErr(err, "forget upstream saved data")
	})
	return n, err
}

// EndSessionAndSignIns ends the session sessionID (as RevokeSession:
// with its refresh tokens) and every live browser session signed in with
// identityID, with the app sessions opened under those, in one
// transaction: a session refused because the upstream's last word on the
// person is too old (max_session_age, recheck_max_staleness) must not
// come back through single sign-on. It reports whether this call ended
// sessionID (false when it had ended already); ErrNotFound when there is
// no such session.
func (s *Store) EndSessionAndSignIns(ctx context.Context, sessionID, identityID, reason string, now time.Time) (bool, error) {
	var ended bool
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		if ended, err = tx.RevokeSession(ctx, sessionID, reason, now); err != nil {
			return err
		}
		res := tx.db.Model(&BrowserSession{}).Where("identity_id = ? AND revoked_at IS NULL", identityID).
			Updates(map[string]any{"revoked_at": now, "revoke_reason": reason})
		if res.Error != nil {
			return mapErr(res.Error, "revoke browser sessions")
		}
		if res.RowsAffected == 0 {
			return nil
		}
		_, err = tx.revokeSessions(ctx, reason, now, "browser_session_id IN (?)",
			tx.db.Model(&BrowserSession{}).Select("id").Where("identity_id = ?", identityID))
		return err
	})
	return ended, err
}

// UpdateIdentityRecheck writes what an upstream re-check read about an
// identity (the columns UpdateIdentityLogin writes, but not
// last_login_at: a re-check is not a sign-in).
func (s *Store) UpdateIdentityRecheck(ctx context.Context, identityID string, fields Identity, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&Identity{}).Where("id = ?", identityID).Updates(map[string]any{
		"email": fields.Email, "email_verified": fields.EmailVerified, "name": fields.Name,
		"avatar_url": fields.AvatarURL, "raw_claims": fields.RawClaims, "upstream_groups": fields.UpstreamGroups,
		"username": fields.Username, "updated_at": now,
	}).Error
	return mapErr(err, "update identity")
}

// UpdateUserProfile sets the given profile columns of a user, leaving
// last_login_at alone.
func (s *Store) UpdateUserProfile(ctx context.Context, userID string, profile map[string]any, now time.Time) error {
	updates := map[string]any{"updated_at": now}
	for k, v := range profile {
		updates[k] = v
	}
	return mapErr(s.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).Updates(updates).Error, "update user")
}
