// Package provisioning turns an upstream identity into a Gatehouse user:
// it owns the policy of creating, updating and refusing users.
package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// ErrUserDisabled reports a login of a disabled user.
var ErrUserDisabled = errors.New("user is disabled")

// Store is what provisioning needs from storage.
type Store interface {
	FindIdentity(ctx context.Context, provider, subject string) (*models.Identity, error)
	FindUser(ctx context.Context, id string) (*models.User, error)
	CreateUserWithIdentity(ctx context.Context, u *models.User, id *models.Identity) error
	UpdateLogin(ctx context.Context, identityID string, fields models.Identity, now time.Time) error
}

// Service provisions users just in time.
type Service struct {
	store Store
	now   func() time.Time
}

// New returns a provisioning service.
func New(store Store, now func() time.Time) *Service {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Service{store: store, now: now}
}

// Provision finds the user of (provider, subject), refreshing their
// profile, or creates the user and identity in one transaction. Concurrent
// first logins of one person yield one user. A disabled user gets
// ErrUserDisabled (with the user, for auditing).
func (s *Service) Provision(ctx context.Context, id *providers.Identity) (*models.User, error) {
	claims, err := json.Marshal(id.Claims)
	if err != nil || id.Claims == nil {
		claims = []byte("{}")
	}
	now := s.now()
	fields := models.Identity{
		Provider: id.Provider, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified,
		Name: id.Name, AvatarURL: id.AvatarURL, RawClaims: string(claims), LastLoginAt: &now,
	}
	for attempt := 0; attempt < 3; attempt++ {
		existing, err := s.store.FindIdentity(ctx, id.Provider, id.Subject)
		switch {
		case err == nil:
			user, err := s.store.FindUser(ctx, existing.UserID)
			if err != nil {
				return nil, err
			}
			if user.Disabled {
				return user, ErrUserDisabled
			}
			fields.UserID = user.ID
			if err := s.store.UpdateLogin(ctx, existing.ID, fields, now); err != nil {
				return nil, err
			}
			return s.store.FindUser(ctx, user.ID)
		case !errors.Is(err, models.ErrNotFound):
			return nil, err
		}
		user := &models.User{Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name, AvatarURL: id.AvatarURL, LastLoginAt: &now}
		identity := fields
		err = s.store.CreateUserWithIdentity(ctx, user, &identity)
		if err == nil {
			return user, nil
		}
		if !errors.Is(err, models.ErrConflict) {
			return nil, err
		}
		// Another login of the same person won the race: use theirs.
	}
	return nil, fmt.Errorf("provision %s identity: lost the creation race repeatedly", id.Provider)
}
