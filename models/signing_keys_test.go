package models_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

func TestSigningKeysContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		t0 := time.Date(2031, 3, 1, 12, 0, 0, 123456000, time.UTC)
		key := func(id string, activates time.Time) *models.SigningKey {
			return &models.SigningKey{ID: id, Algorithm: "EdDSA", PublicJWK: "{}",
				PrivateKeyEncrypted: []byte{0, 1, 2, 0xff}, CreatedAt: t0, ActivatesAt: activates}
		}
		insert := func(k *models.SigningKey) error {
			return s.UpdateSigningKeys(ctx, func([]models.SigningKey) (models.SigningKeyChange, error) {
				return models.SigningKeyChange{Insert: k}, nil
			})
		}
		if err := insert(key("a", t0)); err != nil {
			t.Fatal(err)
		}
		if err := insert(key("a", t0)); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate kid: %v", err)
		}

		var seen []string
		err := s.UpdateSigningKeys(ctx, func(cur []models.SigningKey) (models.SigningKeyChange, error) {
			for _, k := range cur {
				seen = append(seen, k.ID)
			}
			return models.SigningKeyChange{
				Insert: key("b", t0.Add(time.Hour)),
				Retire: []models.SigningKeyRetirement{{ID: "a", RetiredAt: t0.Add(time.Hour), DeleteAfter: t0.Add(2 * time.Hour)}},
			}, nil
		})
		if err != nil || len(seen) != 1 || seen[0] != "a" {
			t.Fatalf("decide saw %v, err %v", seen, err)
		}
		rows, err := s.ListSigningKeys(ctx)
		if err != nil || len(rows) != 2 || rows[0].ID != "b" || rows[1].ID != "a" {
			t.Fatalf("ListSigningKeys = %+v, %v", rows, err)
		}
		a := rows[1]
		if !a.ActivatesAt.Equal(t0) || a.RetiredAt == nil || !a.RetiredAt.Equal(t0.Add(time.Hour)) ||
			a.DeleteAfter == nil || !a.DeleteAfter.Equal(t0.Add(2*time.Hour)) || string(a.PrivateKeyEncrypted) != "\x00\x01\x02\xff" {
			t.Fatalf("row a = %+v", a)
		}

		// decide's error rolls the whole change back.
		boom := errors.New("boom")
		err = s.UpdateSigningKeys(ctx, func([]models.SigningKey) (models.SigningKeyChange, error) {
			return models.SigningKeyChange{}, boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		err = s.UpdateSigningKeys(ctx, func([]models.SigningKey) (models.SigningKeyChange, error) {
			return models.SigningKeyChange{Insert: key("a", t0), Delete: []string{"b"}}, nil
		})
		if !errors.Is(err, models.ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		if rows, _ := s.ListSigningKeys(ctx); len(rows) != 2 {
			t.Fatalf("failed change left %d rows", len(rows))
		}

		err = s.UpdateSigningKeys(ctx, func([]models.SigningKey) (models.SigningKeyChange, error) {
			return models.SigningKeyChange{Delete: []string{"a"}}, nil
		})
		if rows, _ := s.ListSigningKeys(ctx); err != nil || len(rows) != 1 || rows[0].ID != "b" {
			t.Fatalf("after delete: %+v, %v", rows, err)
		}
	})
}
