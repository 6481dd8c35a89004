package migrations

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// CompatibleMark, a line of its own in a migration file, says the release
// before the one that adds the migration may keep running against a
// database that has it: the migration only adds (tables, nullable or
// defaulted columns, indexes) and changes nothing the previous release
// reads or writes. An unmarked migration makes older binaries refuse the
// database (ErrSchemaTooNew). Rules: docs/production.md, "Upgrades".
const CompatibleMark = "-- gatehouse: compatible-with-previous-release"

// compatTable records, for every migration a Gatehouse applied, whether
// older releases may run against it: an older binary cannot read that
// from files it does not have. Like goose's version table it is
// bookkeeping of the migrator, not part of the schema the models use.
const compatTable = "gatehouse_schema_compat"

// readMarks returns the versions whose files carry CompatibleMark.
func readMarks(fsys fs.FS) (map[int64]bool, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	marks := map[int64]bool{}
	for _, name := range names {
		prefix, _, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.ParseInt(prefix, 10, 64)
		if !ok || err != nil {
			continue // goose refuses it with a better message
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == CompatibleMark {
				marks[v] = true
				break
			}
		}
	}
	return marks, nil
}

// Compatible reports whether this binary's migration v is marked
// compatible with the previous release.
func (m *Migrator) Compatible(v int64) bool { return m.compatible[v] }

func (m *Migrator) param(n int) string {
	if m.dialect == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// recordCompatibility writes the mark of every known migration the
// database has applied, so that older binaries can decide. It runs after
// goose released its advisory lock, so replicas starting together may
// create the table at once: PostgreSQL's CREATE TABLE IF NOT EXISTS then
// fails in one of them (a unique violation in its catalog, or "already
// exists"), which is fine when the table is there afterwards. The
// upserts are safe side by side.
func (m *Migrator) recordCompatibility(ctx context.Context) error {
	if _, err := m.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+compatTable+
		" (version_id BIGINT PRIMARY KEY, compatible BOOLEAN NOT NULL)"); err != nil {
		if ok, _ := m.hasCompatTable(ctx); !ok {
			return fmt.Errorf("record migration compatibility: %w", err)
		}
	}
	applied, err := m.appliedAfter(ctx, 0)
	if err != nil {
		return err
	}
	known := map[int64]bool{}
	for _, s := range m.provider.ListSources() {
		known[s.Version] = true
	}
	stmt := "INSERT INTO " + compatTable + " (version_id, compatible) VALUES (" + m.param(1) + ", " + m.param(2) +
		") ON CONFLICT (version_id) DO UPDATE SET compatible = excluded.compatible"
	for _, v := range applied {
		if !known[v] {
			continue // a newer binary's migration keeps its own record
		}
		if _, err := m.db.ExecContext(ctx, stmt, v, m.compatible[v]); err != nil {
			return fmt.Errorf("record migration compatibility: %w", err)
		}
	}
	return nil
}

// forgetCompatibility drops the record of a rolled-back migration.
func (m *Migrator) forgetCompatibility(ctx context.Context, v int64) error {
	if ok, err := m.hasCompatTable(ctx); err != nil || !ok {
		return err
	}
	if _, err := m.db.ExecContext(ctx, "DELETE FROM "+compatTable+" WHERE version_id = "+m.param(1), v); err != nil {
		return fmt.Errorf("record migration compatibility: %w", err)
	}
	return nil
}

// recordedCompatible returns the versions recorded as compatible with
// older releases; a database without records has none.
func (m *Migrator) recordedCompatible(ctx context.Context) (map[int64]bool, error) {
	out := map[int64]bool{}
	if ok, err := m.hasCompatTable(ctx); err != nil || !ok {
		return out, err
	}
	rows, err := m.db.QueryContext(ctx, "SELECT version_id FROM "+compatTable+" WHERE compatible")
	if err != nil {
		return nil, fmt.Errorf("read migration compatibility: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read migration compatibility: %w", err)
		}
		out[v] = true
	}
	return out, rows.Err()
}

func (m *Migrator) hasCompatTable(ctx context.Context) (bool, error) {
	var exists bool
	var err error
	if m.dialect == Postgres {
		err = m.db.QueryRowContext(ctx, "SELECT to_regclass('"+compatTable+"') IS NOT NULL").Scan(&exists)
	} else {
		err = m.db.QueryRowContext(ctx, "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '"+compatTable+"'").Scan(&exists)
	}
	if err != nil {
		return false, fmt.Errorf("read migration compatibility: %w", err)
	}
	return exists, nil
}

// pending counts the migrations this binary knows that the database has
// not applied.
func (m *Migrator) pending(ctx context.Context) (int, error) {
	cur, err := m.Current(ctx)
	if err != nil || cur == 0 {
		return len(m.provider.ListSources()), err
	}
	applied, err := m.appliedAfter(ctx, 0)
	if err != nil {
		return 0, err
	}
	have := map[int64]bool{}
	for _, v := range applied {
		have[v] = true
	}
	n := 0
	for _, s := range m.provider.ListSources() {
		if !have[s.Version] {
			n++
		}
	}
	return n, nil
}
