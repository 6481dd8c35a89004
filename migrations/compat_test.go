package migrations_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/migrations/migrationstest"
	"github.com/gatehouse-id/gatehouse/models"
)

func migrator(t *testing.T, db *models.DB, set migrationstest.Set) *migrations.Migrator {
	t.Helper()
	m, err := migrations.NewFrom(db.SQL, db.Dialect, set)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOlderBinaryAgainstNewerSchema: a binary whose migrations stop short
// of the database's runs beside the newer one only when every migration
// it does not know is marked compatible with older releases; otherwise
// it refuses to start (CheckCurrent, Up) and says which migrations and
// what to do. A roll-back forgets the record.
func TestOlderBinaryAgainstNewerSchema(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		current := migrationstest.UpTo(t, 0)
		newer := current.Plus(90001, "future_table", "CREATE TABLE future_feature (id TEXT PRIMARY KEY);",
			"DROP TABLE future_feature;", true)
		newest := newer.Plus(90002, "future_rename", "ALTER TABLE future_feature RENAME TO future_feature_v2;",
			"ALTER TABLE future_feature_v2 RENAME TO future_feature;", false)

		if _, err := migrator(t, db, newer).Up(ctx); err != nil {
			t.Fatal(err)
		}
		old := migrator(t, db, current)
		if err := old.CheckCurrent(ctx); err != nil {
			t.Fatalf("older binary, unknown migration marked compatible: CheckCurrent = %v", err)
		}
		if applied, err := old.Up(ctx); err != nil || len(applied) != 0 {
			t.Fatalf("older binary, Up = %v, %v", applied, err)
		}
		if ahead, err := old.Ahead(ctx); err != nil || !slices.Equal(ahead, []int64{90001}) {
			t.Fatalf("Ahead = %v, %v", ahead, err)
		}

		if _, err := migrator(t, db, newest).Up(ctx); err != nil {
			t.Fatal(err)
		}
		for name, check := range map[string]func() error{
			"CheckCurrent": func() error { return old.CheckCurrent(ctx) },
			"Up":           func() error { _, err := old.Up(ctx); return err },
			"Down":         func() error { _, err := old.Down(ctx); return err },
		} {
			err := check()
			if !errors.Is(err, migrations.ErrSchemaTooNew) || !strings.Contains(err.Error(), "90002 is not marked compatible") ||
				strings.Contains(err.Error(), "90001") {
				t.Fatalf("older binary, breaking unknown migration: %s = %v", name, err)
			}
		}
		// The binary one release back (knows 90001) refuses too.
		if err := migrator(t, db, newer).CheckCurrent(ctx); !errors.Is(err, migrations.ErrSchemaTooNew) {
			t.Fatalf("previous release against 90002: %v", err)
		}

		// Rolled back by the newest binary, the older one runs again.
		if v, err := migrator(t, db, newest).Down(ctx); err != nil || v != 90002 {
			t.Fatalf("Down = %d, %v", v, err)
		}
		if err := old.CheckCurrent(ctx); err != nil {
			t.Fatalf("after the roll-back: %v", err)
		}
	})
}

// TestRollingUpgradeAcrossMigration: the release before 00011 (indexes
// only, marked compatible) keeps running once the next release applied
// it; the release before 00010 (a table the re-checks depend on, not
// marked) is refused by the next one's schema. A newer binary against
// an older schema migrates (Up) or, without it, reports pending.
func TestRollingUpgradeAcrossMigration(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		if !migrator(t, db, migrationstest.UpTo(t, 0)).Compatible(11) {
			t.Fatal("00011 is not marked compatible")
		}
		v9, v10, v11 := migrator(t, db, migrationstest.UpTo(t, 9)), migrator(t, db, migrationstest.UpTo(t, 10)), migrator(t, db, migrationstest.UpTo(t, 11))
		if _, err := v9.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if err := v10.CheckCurrent(ctx); !errors.Is(err, migrations.ErrPending) {
			t.Fatalf("newer binary before migrating: %v", err)
		}
		if applied, err := v10.Up(ctx); err != nil || !slices.Equal(applied, []int64{10}) {
			t.Fatalf("Up = %v, %v", applied, err)
		}
		if err := v9.CheckCurrent(ctx); !errors.Is(err, migrations.ErrSchemaTooNew) || !strings.Contains(err.Error(), "00010") {
			t.Fatalf("release before 00010 against it: %v", err)
		}
		if _, err := v11.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if err := v10.CheckCurrent(ctx); err != nil {
			t.Fatalf("release before 00011 against it: %v", err)
		}
		if err := v11.CheckCurrent(ctx); err != nil {
			t.Fatalf("newest: %v", err)
		}
	})
}
