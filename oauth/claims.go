package oauth

import (
	"context"

	"github.com/gatehouse-id/gatehouse/models"
)

// statedUser returns a copy of user as Gatehouse states it downstream
// (tokens, UserInfo, /auth/me): EmailVerified is the provisioner's
// EmailVerified, true only when a provider trusted for email verified
// the user's email, never the stored users.email_verified, which records
// the word of whichever provider supplied the address.
func (s *Service) statedUser(ctx context.Context, user *models.User) (*models.User, error) {
	verified, err := s.provisioner.EmailVerified(ctx, user)
	if err != nil {
		return nil, err
	}
	u := *user
	u.EmailVerified = verified
	return &u, nil
}
