package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/gatehouse-id/gatehouse/dburl"
)

// Dialect names a supported database family: the families
// GATEHOUSE_DATABASE_URL may name (dburl), each with its migrations.
type Dialect = dburl.Dialect

// Supported dialects.
const (
	SQLite   = dburl.SQLite
	Postgres = dburl.Postgres
)

// ErrSchemaTooNew reports a database migrated by a newer Gatehouse than this
// binary: nothing is applied to it.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// ErrPending reports migrations the database has not applied yet.
var ErrPending = errors.New("database migrations are pending")

// Migrator applies the embedded migrations to one database.
type Migrator struct {
	provider *goose.Provider
	dialect  Dialect
	db       *sql.DB
}

// New prepares a Migrator for db. On PostgreSQL every run holds a session
// advisory lock, so replicas starting together migrate one after another.
func New(db *sql.DB, dialect Dialect) (*Migrator, error) {
	sub, err := fs.Sub(files, string(dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", dialect, err)
	}
	var opts []goose.ProviderOption
	gooseDialect := goose.DialectSQLite3
	if dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gooseDialect, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{provider: p, dialect: dialect, db: db}, nil
}

// Latest is the highest migration version this binary knows.
func (m *Migrator) Latest() int64 {
	sources := m.provider.ListSources()
	if len(sources) == 0 {
		return 0
	}
	return sources[len(sources)-1].Version
}

// Current is the version the database is at (0 when nothing is applied).
// It only reads: no lock, no version table created, so readiness probes
// and refusals leave the database as it was.
func (m *Migrator) Current(ctx context.Context) (int64, error) {
	var exists bool
	var err error
	if m.dialect == Postgres {
		err = m.db.QueryRowContext(ctx, "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&exists)
	} else {
		err = m.db.QueryRowContext(ctx, "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'").Scan(&exists)
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v sql.NullInt64
	if err := m.db.QueryRowContext(ctx, "SELECT MAX(version_id) FROM goose_db_version WHERE is_applied").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v.Int64, nil
}

// checkNotNewer refuses databases migrated past what this binary knows.
func (m *Migrator) checkNotNewer(ctx context.Context) error {
	cur, err := m.Current(ctx)
	if err != nil {
		return err
	}
	if cur > m.Latest() {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade Gatehouse", ErrSchemaTooNew, cur, m.Latest())
	}
	return nil
}

// Up applies every pending migration and returns the versions applied.
func (m *Migrator) Up(ctx context.Context) ([]int64, error) {
	if err := m.checkNotNewer(ctx); err != nil {
		return nil, err
	}
	results, err := m.provider.Up(ctx)
	applied := make([]int64, 0, len(results))
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, r.Source.Version)
		}
	}
	if err != nil {
		return applied, fmt.Errorf("apply migrations: %w", err)
	}
	return applied, nil
}

// Down rolls back the most recent migration and returns its version.
func (m *Migrator) Down(ctx context.Context) (int64, error) {
	if err := m.checkNotNewer(ctx); err != nil {
		return 0, err
	}
	r, err := m.provider.Down(ctx)
	if err != nil {
		if errors.Is(err, goose.ErrNoNextVersion) {
			return 0, nil
		}
		return 0, fmt.Errorf("roll back migration: %w", err)
	}
	return r.Source.Version, nil
}

// Status describes one migration and whether the database has it.
type Status struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt string
}

// Status lists every known migration with its state in the database.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		row := Status{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied}
		if row.Applied {
			row.AppliedAt = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		out = append(out, row)
	}
	return out, nil
}

// CheckCurrent returns nil when the database is exactly at the latest
// version, ErrPending when migrations are missing, ErrSchemaTooNew when
// the database is ahead.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	if err := m.checkNotNewer(ctx); err != nil {
		return err
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return err
	}
	if cur < m.Latest() {
		return fmt.Errorf("%w: database is at version %d, latest is %d; run `gatehouse migrate up`", ErrPending, cur, m.Latest())
	}
	return nil
}
