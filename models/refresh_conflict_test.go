package models_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestRotateRefreshTokenUniqueViolation: a successor whose hash is
// already taken is ErrConflict (the unique violation translated, as
// through GORM), and the rotation changes nothing: the old token stays
// live and no row is added.
func TestRotateRefreshTokenUniqueViolation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, tc := range []struct {
			name string
			next func(f *refreshFixture, other *models.RefreshToken, at time.Time) *models.RefreshToken
		}{
			{"hash taken", func(f *refreshFixture, other *models.RefreshToken, at time.Time) *models.RefreshToken {
				n := f.successor(at)
				n.TokenHash = other.TokenHash
				return n
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newRefreshFixture(t, db, "ada@example.com")
				other := f.newToken(t)
				later := f.now.Add(time.Minute)
				_, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, tc.next(f, other, later), later)
				if !errors.Is(err, models.ErrConflict) {
					t.Fatalf("rotate with a taken successor: %v, want ErrConflict", err)
				}
				rows := f.family(t)
				if len(rows) != 2 {
					t.Fatalf("%d rows after a refused rotation, want 2", len(rows))
				}
				for _, r := range rows {
					if r.RotatedAt != nil || r.ReplacedBy != nil {
						t.Fatalf("row rotated by a refused rotation: %+v", r)
					}
				}
				// The old token still rotates.
				if _, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, f.successor(later), later); err != nil {
					t.Fatalf("rotation after a refused one: %v", err)
				}
			})
		}
	})
}
