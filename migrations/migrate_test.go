package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

func targets(t *testing.T, fn func(t *testing.T, db *models.DB)) {
	open := func(t *testing.T, target dburl.Target) *models.DB {
		db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, dbtest.SQLiteTarget(t))) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, dbtest.PostgresTarget(t))) })
}

func TestUpDownUp(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		m, err := migrations.New(db.SQL, db.Dialect)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CheckCurrent(ctx); !errors.Is(err, migrations.ErrPending) {
			t.Fatalf("fresh database: CheckCurrent = %v, want ErrPending", err)
		}
		applied, err := m.Up(ctx)
		if err != nil || len(applied) == 0 {
			t.Fatalf("Up = %v, %v", applied, err)
		}
		if err := m.CheckCurrent(ctx); err != nil {
			t.Fatalf("after Up: %v", err)
		}
		if again, err := m.Up(ctx); err != nil || len(again) != 0 {
			t.Fatalf("second Up = %v, %v; want nothing to do", again, err)
		}
		for cur := m.Latest(); cur > 0; {
			v, err := m.Down(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v != cur {
				t.Fatalf("Down rolled back %d, want %d", v, cur)
			}
			if cur, err = m.Current(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if db.Migrator().HasTable("users") {
			t.Fatal("users table survives a full roll-back")
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatalf("Up after Down: %v", err)
		}
		if !db.Migrator().HasTable("users") {
			t.Fatal("users table missing after Up")
		}
		st, err := m.Status(ctx)
		if err != nil || len(st) == 0 || !st[len(st)-1].Applied {
			t.Fatalf("Status = %+v, %v", st, err)
		}
	})
}

// migrateUp applies every migration to db and returns its migrator.
func migrateUp(t *testing.T, db *models.DB) *migrations.Migrator {
	t.Helper()
	m, err := migrations.New(db.SQL, db.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNewerSchemaIsRefused(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		m := migrateUp(t, db)
		future := m.Latest() + 100
		if err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)", future, true).Error; err != nil {
			t.Fatal(err)
		}
		var before int64
		db.Raw("SELECT COUNT(*) FROM goose_db_version").Scan(&before)
		for name, run := range map[string]func() error{
			"up":    func() error { _, err := m.Up(ctx); return err },
			"down":  func() error { _, err := m.Down(ctx); return err },
			"check": func() error { return m.CheckCurrent(ctx) },
		} {
			if err := run(); !errors.Is(err, migrations.ErrSchemaTooNew) {
				t.Errorf("%s: err = %v, want ErrSchemaTooNew", name, err)
			}
		}
		var after int64
		db.Raw("SELECT COUNT(*) FROM goose_db_version").Scan(&after)
		if after != before || !db.Migrator().HasTable("users") {
			t.Fatal("a refused run changed the database")
		}
	})
}

// TestSystemRolesDownRefusedWhileUsed: rolling back the seeded roles fails,
// deleting nothing, while a membership still holds one.
func TestSystemRolesDownRefusedWhileUsed(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		m := migrateUp(t, db)
		s := models.NewStore(db)
		u, org := &models.User{}, &models.Organization{Slug: "acme"}
		if err := s.InsertUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: models.RoleMemberID}); err != nil {
			t.Fatal(err)
		}
		// Later migrations roll back first; then 00002 must refuse.
		for cur, _ := m.Current(ctx); cur > 2; cur, _ = m.Current(ctx) {
			if _, err := m.Down(ctx); err != nil {
				t.Fatalf("roll back %d: %v", cur, err)
			}
		}
		if _, err := m.Down(ctx); err == nil {
			t.Fatal("roles in use were rolled back")
		}
		if cur, _ := m.Current(ctx); cur != 2 {
			t.Fatalf("version after a refused roll-back = %d", cur)
		}
		if _, err := s.FindRole(ctx, models.RoleMemberID); err != nil {
			t.Fatalf("a refused roll-back deleted a role: %v", err)
		}
	})
}

// TestIdentityIndexes: migration 00011 indexes the identity sessions and
// browser sessions came through (re-checks and unlinking end them by
// it), and rolls back cleanly.
func TestIdentityIndexes(t *testing.T) {
	targets(t, func(t *testing.T, db *models.DB) {
		m := migrateUp(t, db)
		for _, ix := range []struct{ table, name string }{
			{"sessions", "idx_sessions_identity"}, {"browser_sessions", "idx_browser_sessions_identity"},
		} {
			if !db.Migrator().HasIndex(ix.table, ix.name) {
				t.Fatalf("index %s on %s missing", ix.name, ix.table)
			}
		}
		for v := m.Latest(); v >= 11; v-- {
			if _, err := m.Down(context.Background()); err != nil {
				t.Fatalf("Down: %v", err)
			}
		}
		if db.Migrator().HasIndex("sessions", "idx_sessions_identity") {
			t.Fatal("index survives its roll-back")
		}
	})
}
