package models

import (
	"context"
	"encoding/json"
	"time"

	"gorm.io/gorm"
)

// Queries for API keys (consumed by tokens.APIKeyService and the admin
// service). A key is found by its visible prefix; the caller compares
// the stored hash in constant time.

// CreateAPIKey inserts a key; a prefix or hash already taken is ErrConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey) error {
	if k.ID == "" {
		k.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(k).Error, "create API key")
}

// FindAPIKeyByPrefix returns the key with the given visible prefix.
func (s *Store) FindAPIKeyByPrefix(ctx context.Context, prefix string) (*APIKey, error) {
	var k APIKey
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("prefix = ?", prefix).Take(&k).Error })
	return &k, mapErr(err, "find API key")
}

// FindAPIKey returns an organization's key.
func (s *Store) FindAPIKey(ctx context.Context, orgID, id string) (*APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("id = ? AND organization_id = ?", id, orgID).Take(&k).Error
	return &k, mapErr(err, "find API key")
}

// ListAPIKeys returns a page of an organization's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, orgID string, p Page) ([]APIKey, error) {
	var out []APIKey
	err := keyset(s.db.WithContext(ctx).Model(&APIKey{}).Where("organization_id = ?", orgID), "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list API keys")
}

// SetAPIKeyDisabled disables or enables an organization's key.
func (s *Store) SetAPIKeyDisabled(ctx context.Context, orgID, id string, disabled bool, now time.Time) error {
	res := s.db.WithContext(ctx).Model(&APIKey{}).Where("id = ? AND organization_id = ?", id, orgID).
		Updates(map[string]any{"disabled": disabled, "updated_at": now})
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "update API key")
	}
	return mapErr(res.Error, "update API key")
}

// DeleteAPIKey deletes an organization's key.
func (s *Store) DeleteAPIKey(ctx context.Context, orgID, id string) error {
	res := s.db.WithContext(ctx).Where("id = ? AND organization_id = ?", id, orgID).Delete(&APIKey{})
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "delete API key")
	}
	return mapErr(res.Error, "delete API key")
}

// TouchAPIKeys records when keys were last used, one statement per key,
// never moving a time backwards (another replica may have written a
// later one).
func (s *Store) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	for id, at := range used {
		err := s.db.WithContext(ctx).Model(&APIKey{}).
			Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, at).
			Update("last_used_at", at).Error
		if err != nil {
			return mapErr(err, "record API key use")
		}
	}
	return nil
}

// PermissionList decodes the key's grants (a JSON array); a damaged
// column grants nothing.
func (k *APIKey) PermissionList() []string {
	out := []string{}
	_ = json.Unmarshal([]byte(k.Permissions), &out)
	return out
}
