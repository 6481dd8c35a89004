package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// UseClientAssertionJTI records that client used an assertion whose jti
// hashes to jtiHash, kept until expiresAt. It reports false, changing
// nothing, when the pair is already recorded: the assertion is a replay.
// Of concurrent callers with the same pair exactly one sees true (the
// primary key decides, on SQLite and PostgreSQL alike).
func (s *Store) UseClientAssertionJTI(ctx context.Context, clientID, jtiHash string, expiresAt, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&ClientAssertionJTI{
		ClientID: clientID, JTIHash: jtiHash, ExpiresAt: expiresAt, CreatedAt: now})
	if res.Error != nil {
		return false, mapErr(res.Error, "record client assertion jti")
	}
	return res.RowsAffected == 1, nil
}

// PruneClientAssertionJTIs deletes the jti records that expired before
// now (their assertions are refused as expired anyway) and returns how
// many it deleted.
func (s *Store) PruneClientAssertionJTIs(ctx context.Context, now time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", now).Delete(&ClientAssertionJTI{})
	if err := res.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, mapErr(err, "prune client assertion jtis")
	}
	return res.RowsAffected, nil
}
