package tokens

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// APIKeyPrefix starts every API key (rbac.APIKeyPrefix says the same, so
// backends recognise keys without importing this package).
const APIKeyPrefix = "ghk_"

// apiKeyVisibleLen is how much of a key is stored in clear and shown in
// lists: the prefix and 8 random characters (48 bits), enough to tell
// keys apart and to find one without its secret part.
const apiKeyVisibleLen = len(APIKeyPrefix) + 8

// ErrAPIKeyInvalid is every refusal of an API key: unknown, malformed,
// disabled or expired. Callers do not learn which.
var ErrAPIKeyInvalid = errors.New("API key unknown, disabled or expired")

// APIKeyStore is the storage APIKeyService needs; *models.Store
// implements it.
type APIKeyStore interface {
	FindAPIKeyByPrefix(ctx context.Context, prefix string) (*models.APIKey, error)
	FindAPIKey(ctx context.Context, orgID, id string) (*models.APIKey, error)
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error
}

var _ APIKeyStore = (*models.Store)(nil)

// APIKeyService checks API keys and records their use. Use is batched
// in memory and written by Flush, so a busy key costs no write per
// request; last_used_at is as fresh as the flush interval.
type APIKeyService struct {
	store APIKeyStore
	now   func() time.Time

	mu   sync.Mutex
	used map[string]time.Time
}

// NewAPIKeyService returns the service; now nil means time.Now.
func NewAPIKeyService(store APIKeyStore, now func() time.Time) *APIKeyService {
	if now == nil {
		now = time.Now
	}
	return &APIKeyService{store: store, now: now, used: map[string]time.Time{}}
}

// NewAPIKey generates a key: the secret to show once, the visible prefix
// and the hash to store.
func NewAPIKey() (secret, prefix, hash string, err error) {
	secret, hash, err = opaqueNew(APIKeyPrefix)
	if err != nil {
		return "", "", "", err
	}
	return secret, secret[:apiKeyVisibleLen], hash, nil
}

// IsAPIKey reports whether s has the shape of an API key.
func IsAPIKey(s string) bool { return opaqueWellFormed(APIKeyPrefix, s) }

// Resolve returns the live key behind secret (not disabled, not expired)
// and notes its use. The stored hash is compared in constant time.
func (s *APIKeyService) Resolve(ctx context.Context, secret string) (*models.APIKey, error) {
	if !IsAPIKey(secret) {
		return nil, ErrAPIKeyInvalid
	}
	k, err := s.store.FindAPIKeyByPrefix(ctx, secret[:apiKeyVisibleLen])
	if errors.Is(err, models.ErrNotFound) {
		return nil, ErrAPIKeyInvalid
	}
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	want := opaqueHash(secret)
	switch {
	case subtle.ConstantTimeCompare([]byte(want), []byte(k.KeyHash)) != 1:
		return nil, ErrAPIKeyInvalid
	case !keyLive(k, now):
		return nil, ErrAPIKeyInvalid
	}
	s.mu.Lock()
	s.used[k.ID] = now
	s.mu.Unlock()
	return k, nil
}

// Live reports whether the key id of organization orgID still exists
// and is neither disabled nor expired: what a credential derived from it
// (an access token exchanged for it) depends on. It notes no use.
func (s *APIKeyService) Live(ctx context.Context, orgID, id string) (bool, error) {
	k, err := s.store.FindAPIKey(ctx, orgID, id)
	if errors.Is(err, models.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return keyLive(k, s.now().UTC().Truncate(time.Microsecond)), nil
}

// keyLive: not disabled, not expired at now.
func keyLive(k *models.APIKey, now time.Time) bool {
	return !k.Disabled && (k.ExpiresAt == nil || k.ExpiresAt.After(now))
}

// Flush writes the use noted since the last flush. The app calls it every
// minute and at shutdown.
func (s *APIKeyService) Flush(ctx context.Context) error {
	s.mu.Lock()
	used := s.used
	s.used = map[string]time.Time{}
	s.mu.Unlock()
	if len(used) == 0 {
		return nil
	}
	return s.store.TouchAPIKeys(ctx, used)
}
