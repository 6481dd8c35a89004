package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"

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
	// compatible holds the versions this binary knows whose files say
	// the previous release may run against them (CompatibleMark).
	compatible map[int64]bool
}

// New prepares a Migrator for db with the migrations embedded in this
// binary. On PostgreSQL every run holds a session advisory lock, so
// replicas starting together migrate one after another.
func New(db *sql.DB, dialect Dialect) (*Migrator, error) {
	return NewFrom(db, dialect, files)
}

// Files returns the migrations embedded in this binary: one folder per
// dialect ("sqlite", "postgres") of NNNNN_name.sql files.
func Files() fs.FS { return files }

// NewFrom is New with the migrations read from fsys (laid out as Files):
// tests stand in an older or newer Gatehouse with fewer or more of them.
func NewFrom(db *sql.DB, dialect Dialect, fsys fs.FS) (*Migrator, error) {
	sub, err := fs.Sub(fsys, string(dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", dialect, err)
	}
	compatible, err := readMarks(sub)
	if err != nil {
		return nil, err
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
	return &Migrator{provider: p, dialect: dialect, db: db, compatible: compatible}, nil
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

// checkNotNewer refuses databases migrated past what this binary knows,
// unless every migration it does not know is recorded as compatible with
// the previous release (a rolling upgrade: docs/production.md).
func (m *Migrator) checkNotNewer(ctx context.Context) error {
	_, err := m.ahead(ctx)
	return err
}

// ahead returns the applied versions this binary does not know, all of
// them compatible, or ErrSchemaTooNew naming those that are not.
func (m *Migrator) ahead(ctx context.Context) ([]int64, error) {
	cur, err := m.Current(ctx)
	if err != nil {
		return nil, err
	}
	if cur <= m.Latest() {
		return nil, nil
	}
	unknown, err := m.appliedAfter(ctx, m.Latest())
	if err != nil {
		return nil, err
	}
	marked, err := m.recordedCompatible(ctx)
	if err != nil {
		return nil, err
	}
	var breaking []string
	for _, v := range unknown {
		if !marked[v] {
			breaking = append(breaking, fmt.Sprintf("%05d", v))
		}
	}
	if len(breaking) > 0 {
		return nil, fmt.Errorf("%w: database is at version %d, this binary knows up to %d, and %s %s not marked compatible with older releases; run the newer Gatehouse (or roll the database back with it)",
			ErrSchemaTooNew, cur, m.Latest(), strings.Join(breaking, ", "), plural(len(breaking), "is", "are"))
	}
	return unknown, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Ahead returns the migrations the database has that this binary does
// not know (nil when it knows them all). They are all compatible with
// this binary: otherwise the error is ErrSchemaTooNew.
func (m *Migrator) Ahead(ctx context.Context) ([]int64, error) { return m.ahead(ctx) }

func (m *Migrator) appliedAfter(ctx context.Context, v int64) ([]int64, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT DISTINCT version_id FROM goose_db_version WHERE is_applied AND version_id > "+m.param(1)+" ORDER BY version_id", v)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
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
	if err := m.recordCompatibility(ctx); err != nil {
		return applied, err
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
	if err := m.forgetCompatibility(ctx, r.Source.Version); err != nil {
		return r.Source.Version, err
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

// CheckCurrent returns nil when the database has every migration this
// binary knows and nothing else but migrations marked compatible with
// older releases (a newer replica migrated it during a rolling upgrade),
// ErrPending when migrations are missing, ErrSchemaTooNew when the
// database is ahead by a migration not marked compatible.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	if err := m.checkNotNewer(ctx); err != nil {
		return err
	}
	pending, err := m.pending(ctx)
	if err != nil {
		return err
	}
	cur, err := m.Current(ctx)
	if err != nil {
		return err
	}
	if pending > 0 {
		return fmt.Errorf("%w: database is at version %d, latest is %d; run `gatehouse migrate up`", ErrPending, cur, m.Latest())
	}
	return nil
}
