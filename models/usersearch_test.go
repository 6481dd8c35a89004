package models_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestListUsersSearch: the search matches email or name, whatever the
// ASCII case, literally (% and _ are no wildcards), and a name with
// letters beyond ASCII is found when typed as it is written, on both
// databases (SQLite's LOWER folds ASCII only).
func TestListUsersSearch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx, s := context.Background(), models.NewStore(db)
		for _, u := range []struct{ email, name string }{
			{"ada@example.com", "Ada Lovelace"},
			{"emilie@example.com", "Émilie du Châtelet"},
			{"x_y@example.com", "Xavier"},
			{"xzy@example.com", "Xena 100% Zed"},
		} {
			if err := s.CreateUserWithIdentity(ctx, &models.User{Email: u.email, Name: u.name},
				&models.Identity{Provider: "dev", Subject: models.NewID()}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			search string
			want   []string
		}{
			{"ADA", []string{"ada@example.com"}},
			{"lovelace", []string{"ada@example.com"}},
			{"Émilie", []string{"emilie@example.com"}},
			{"Châtelet", []string{"emilie@example.com"}},
			{"x_y", []string{"x_y@example.com"}},
			{"_", []string{"x_y@example.com"}},
			{"%", []string{"xzy@example.com"}},
			{"nobody", nil},
		} {
			rows, err := s.ListUsers(ctx, models.UserFilter{Search: tc.search}, models.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range rows {
				got = append(got, u.Email)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("search %q = %q, want %q", tc.search, got, tc.want)
			}
		}
	})
}
