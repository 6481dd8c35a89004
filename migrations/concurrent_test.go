package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestReplicasMigrateTogether: replicas starting together (each its own
// pool) on PostgreSQL all migrate without an error — the advisory lock
// orders the migrations, and the compatibility record written after them
// does not trip over another replica's — and the database ends current.
// Half the rounds start from an empty database, half from one migrated
// by a release before the compatibility record (the table missing: every
// replica's Up is quick, and they all create it at once).
func TestReplicasMigrateTogether(t *testing.T) {
	for round := 0; round < 4; round++ {
		target := dbtest.PostgresTarget(t)
		if round%2 == 1 {
			db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			m, err := migrations.New(db.SQL, db.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Up(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("DROP TABLE gatehouse_schema_compat").Error; err != nil {
				t.Fatal(err)
			}
			_ = db.Close()
		}
		const replicas = 4
		dbs := make([]*models.DB, replicas)
		for i := range dbs {
			db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			dbs[i] = db
		}
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		start := make(chan struct{})
		for i, db := range dbs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := migrations.New(db.SQL, db.Dialect)
				if err != nil {
					errs[i] = err
					return
				}
				<-start
				_, errs[i] = m.Up(context.Background())
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, replica %d: Up = %v", round, i, err)
			}
		}
		m, err := migrations.New(dbs[0].SQL, dbs[0].Dialect)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CheckCurrent(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
