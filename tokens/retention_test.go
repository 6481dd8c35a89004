package tokens

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestRetainAtLeast: a longer retention applies to the keys retired
// afterwards; a shorter one never shortens it.
func TestRetainAtLeast(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		m, clock := ktFresh(t, store, "ES256")
		m.RetainAtLeast(3 * ktRetain)
		m.RetainAtLeast(ktRetain / 2)
		clock.Add(time.Minute)
		next, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		infos, err := m.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 2 || infos[1].DeleteAfter == nil || !infos[1].DeleteAfter.Equal(next.ActivatesAt.Add(3*ktRetain)) {
			t.Fatalf("retired key = %+v, want deleted after %s", infos[1], next.ActivatesAt.Add(3*ktRetain))
		}
	})
}
