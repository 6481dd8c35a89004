package models_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestRevokeSessionsByUserAndProvider: revoking a user's sessions, all
// of them or those opened through one provider, ends exactly those with
// their refresh tokens, keeps an earlier revocation's reason, and sweeps
// a token that escaped it.
func TestRevokeSessionsByUserAndProvider(t *testing.T) {
	cases := []struct {
		name   string
		revoke func(ctx context.Context, s *models.Store, userID string, now time.Time) (int64, error)
		n      int64
		want   map[string]string // session → "live" or its revoke reason, and whether its token is revoked
	}{
		{
			name: "all of a user's sessions",
			revoke: func(ctx context.Context, s *models.Store, userID string, now time.Time) (int64, error) {
				return s.RevokeUserSessions(ctx, userID, "test", now)
			},
			n:    2,
			want: map[string]string{"ada-dev": "test, token revoked", "ada-dev-old": "logout, token revoked", "ada-github": "test, token revoked", "bob-dev": "live"},
		},
		{
			name: "a user's sessions through one provider",
			revoke: func(ctx context.Context, s *models.Store, userID string, now time.Time) (int64, error) {
				return s.RevokeUserProviderSessions(ctx, userID, "dev", "test", now)
			},
			n:    1,
			want: map[string]string{"ada-dev": "test, token revoked", "ada-dev-old": "logout, token revoked", "ada-github": "live", "bob-dev": "live"},
		},
		{
			name: "a provider the user never signed in with",
			revoke: func(ctx context.Context, s *models.Store, userID string, now time.Time) (int64, error) {
				return s.RevokeUserProviderSessions(ctx, userID, "saml", "test", now)
			},
			want: map[string]string{"ada-dev": "live", "ada-dev-old": "logout", "ada-github": "live", "bob-dev": "live"},
		},
	}
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ctx, s := context.Background(), models.NewStore(db)
				now := time.Now().UTC().Truncate(time.Microsecond)
				users := map[string]string{}
				for _, name := range []string{"ada", "bob"} {
					u := &models.User{}
					if err := s.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: name + "-" + models.NewID()}); err != nil {
						t.Fatal(err)
					}
					users[name] = u.ID
				}
				sessions := map[string]string{} // name → id
				for _, sess := range []struct{ name, user, provider, revokedFor string }{
					{"ada-dev", "ada", "dev", ""}, {"ada-dev-old", "ada", "dev", "logout"},
					{"ada-github", "ada", "github", ""}, {"bob-dev", "bob", "dev", ""},
				} {
					row := &models.Session{UserID: users[sess.user], ClientID: "spa", Provider: sess.provider,
						AuthTime: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), RevokeReason: sess.revokedFor}
					if sess.revokedFor != "" {
						row.RevokedAt = &now
					}
					if err := s.CreateSession(ctx, row); err != nil {
						t.Fatal(err)
					}
					sessions[sess.name] = row.ID
					// Every session has an unrevoked token: for the revoked
					// one, a straggler the sweep must catch.
					tok := &models.RefreshToken{ID: models.NewID(), SessionID: row.ID, TokenHash: models.NewID(), ClientID: "spa",
						CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
					if err := db.Create(tok).Error; err != nil {
						t.Fatal(err)
					}
				}
				n, err := tc.revoke(ctx, s, users["ada"], now)
				if err != nil || n != tc.n {
					t.Fatalf("revoked %d sessions (%v), want %d", n, err, tc.n)
				}
				got := map[string]string{}
				for name, id := range sessions {
					sess, err := s.FindSession(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					state := "live"
					if sess.RevokedAt != nil {
						state = sess.RevokeReason
					}
					var live int64
					db.Model(&models.RefreshToken{}).Where("session_id = ? AND revoked_at IS NULL", id).Count(&live)
					if live == 0 {
						state += ", token revoked"
					}
					got[name] = state
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("sessions %v, want %v", got, tc.want)
				}
			})
		}
	})
}
