// Package dbtest gives tests real, migrated databases: a SQLite file in a
// temporary folder, and a private schema on the PostgreSQL server named by
// GATEHOUSE_TEST_POSTGRES_DSN when that variable is set.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
)

// PostgresEnv names the variable holding the test server's DSN.
const PostgresEnv = "GATEHOUSE_TEST_POSTGRES_DSN"

// Each runs fn once per available dialect as subtests "sqlite" and
// "postgres", each on a fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *models.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLiteTarget returns a target for a fresh SQLite file (not migrated).
func SQLiteTarget(t testing.TB) dburl.Target {
	t.Helper()
	target, err := dburl.Parse(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// SQLite opens a fresh, migrated SQLite database closed at cleanup.
func SQLite(t testing.TB) *models.DB {
	t.Helper()
	return openMigrated(t, SQLiteTarget(t))
}

// PostgresTarget returns a target for a new private schema on the test
// server (not migrated), dropped at cleanup; it skips the test, saying so,
// when no server is configured.
func PostgresTarget(t testing.TB) dburl.Target {
	t.Helper()
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		t.Skipf("PostgreSQL tests skipped: set %s to run them (.ci/run does)", PostgresEnv)
	}
	base, err := dburl.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin, err := models.Open(context.Background(), base, models.PoolSettings{MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.Exec("DROP SCHEMA " + schema + " CASCADE").Error
		_ = admin.Close()
	})
	target := base
	target.DSN = withSearchPath(dsn, schema)
	return target
}

// Postgres opens a fresh, migrated private schema on the test server.
func Postgres(t testing.TB) *models.DB {
	t.Helper()
	return openMigrated(t, PostgresTarget(t))
}

func withSearchPath(dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

func openMigrated(t testing.TB, target dburl.Target) *models.DB {
	t.Helper()
	db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 10})
	return migrated(t, db, err)
}

// migrated closes db at cleanup and applies every migration to it,
// failing t on err or on any error on the way.
func migrated(t testing.TB, db *models.DB, err error) *models.DB {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	m, err := migrations.New(db.SQL, db.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}
