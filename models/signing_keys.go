package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// signingKeysLockID is the PostgreSQL advisory lock that serializes changes
// to signing_keys across replicas (an arbitrary constant: "gh-keys!").
const signingKeysLockID int64 = 0x67682d6b65797321

// SigningKeyChange is what UpdateSigningKeys applies in one transaction.
type SigningKeyChange struct {
	// Insert, when set, is added as a new key.
	Insert *SigningKey
	// Retire sets retired_at and delete_after on existing keys.
	Retire []SigningKeyRetirement
	// Delete removes keys by id.
	Delete []string
}

// SigningKeyRetirement schedules the retirement of one key.
type SigningKeyRetirement struct {
	ID          string
	RetiredAt   time.Time
	DeleteAfter time.Time
}

// ListSigningKeys returns every signing key, newest activation first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	var out []SigningKey
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Order("activates_at DESC, created_at DESC, id DESC").Find(&out).Error
	})
	return out, mapErr(err, "list signing keys")
}

// UpdateSigningKeys reads the signing keys and applies the change decide
// returns for them, in one transaction that excludes every other
// UpdateSigningKeys on the database: on PostgreSQL through a transaction-
// scoped advisory lock, on SQLite because write transactions begin
// IMMEDIATE (the _txlock pragma dburl.Parse sets). So decide sees the
// rows as they are when the change is written, and two replicas deciding at
// once cannot both insert. decide's error aborts the transaction.
func (s *Store) UpdateSigningKeys(ctx context.Context, decide func(current []SigningKey) (SigningKeyChange, error)) error {
	return s.InTx(ctx, func(tx *Store) error {
		if tx.db.Dialector.Name() == "postgres" {
			if err := tx.db.Exec("SELECT pg_advisory_xact_lock(?)", signingKeysLockID).Error; err != nil {
				return mapErr(err, "lock signing keys")
			}
		}
		current, err := tx.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		change, err := decide(current)
		if err != nil {
			return err
		}
		for _, r := range change.Retire {
			err := tx.db.Model(&SigningKey{}).Where("id = ?", r.ID).
				Updates(map[string]any{"retired_at": r.RetiredAt, "delete_after": r.DeleteAfter}).Error
			if err != nil {
				return mapErr(err, "retire signing key")
			}
		}
		if len(change.Delete) > 0 {
			if err := tx.db.Where("id IN ?", change.Delete).Delete(&SigningKey{}).Error; err != nil {
				return mapErr(err, "delete signing keys")
			}
		}
		if change.Insert != nil {
			return mapErr(tx.db.Create(change.Insert).Error, "create signing key")
		}
		return nil
	})
}
