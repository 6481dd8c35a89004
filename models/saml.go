package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Queries for SAML sign-in: assertion replay records, pending logins and
// provider-generated secrets. Times are passed in by the caller (UTC).

// RememberAssertion records that provider accepted assertion id, kept
// until expiresAt. It reports false, changing nothing, when the id was
// already recorded: the assertion is a replay. Concurrent callers with the
// same id see exactly one true (the primary key decides).
func (s *Store) RememberAssertion(ctx context.Context, provider, id string, expiresAt, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&SAMLReplay{
		Provider: provider, AssertionID: id, ExpiresAt: expiresAt, CreatedAt: now})
	if res.Error != nil {
		return false, mapErr(res.Error, "remember assertion")
	}
	return res.RowsAffected == 1, nil
}

// CreatePendingLogin inserts a pending login.
func (s *Store) CreatePendingLogin(ctx context.Context, p *PendingLogin) error {
	return mapErr(s.db.WithContext(ctx).Create(p).Error, "create pending login")
}

// FindPendingLogin returns the pending login with the given id, whatever
// its state; callers check expiry and provider.
func (s *Store) FindPendingLogin(ctx context.Context, id string) (*PendingLogin, error) {
	var p PendingLogin
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&p).Error
	return &p, mapErr(err, "find pending login")
}

// ConsumePendingLogin marks a live pending login used and returns it: the
// first answer to a sign-in consumes it, whether it is then accepted or
// not. Of concurrent callers exactly one succeeds; the others, and any
// caller for an unknown, used or expired login, get ErrNotFound.
func (s *Store) ConsumePendingLogin(ctx context.Context, id string, now time.Time) (*PendingLogin, error) {
	var p *PendingLogin
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&PendingLogin{}).
			Where("id = ? AND consumed_at IS NULL AND expires_at > ?", id, now).
			Update("consumed_at", now)
		if res.Error != nil {
			return mapErr(res.Error, "consume pending login")
		}
		if res.RowsAffected != 1 {
			return mapErr(gorm.ErrRecordNotFound, "consume pending login")
		}
		var err error
		p, err = tx.FindPendingLogin(ctx, id)
		return err
	})
	return p, err
}

// PruneSAML deletes pending logins and assertion replay records that
// expired before now, returning how many rows it deleted. A replay record
// is only needed while its assertion could still be accepted.
func (s *Store) PruneSAML(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for _, m := range []any{&PendingLogin{}, &SAMLReplay{}} {
		res := s.db.WithContext(ctx).Where("expires_at < ?", now).Delete(m)
		if err := res.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return total, mapErr(err, "prune saml records")
		}
		total += res.RowsAffected
	}
	return total, nil
}

// LoadOrCreateProviderSecret returns the encrypted value stored under
// (provider, name), storing create's value first when there is none. When
// replicas race, the first insert wins and every caller gets its value.
func (s *Store) LoadOrCreateProviderSecret(ctx context.Context, provider, name string, create func() ([]byte, error), now time.Time) ([]byte, error) {
	var row ProviderSecret
	err := s.db.WithContext(ctx).Where("provider = ? AND name = ?", provider, name).Take(&row).Error
	if err == nil {
		return row.ValueEncrypted, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, mapErr(err, "load provider secret")
	}
	value, err := create()
	if err != nil {
		return nil, err
	}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&ProviderSecret{
		Provider: provider, Name: name, ValueEncrypted: value, CreatedAt: now}).Error
	if err != nil {
		return nil, mapErr(err, "store provider secret")
	}
	err = s.db.WithContext(ctx).Where("provider = ? AND name = ?", provider, name).Take(&row).Error
	return row.ValueEncrypted, mapErr(err, "load provider secret")
}
