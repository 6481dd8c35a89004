package models

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements of the hot path, one per query
// text, for the life of the pool. database/sql prepares each on a
// connection the first time it runs there and re-prepares it on a new
// one after a reconnect. What it saves is GORM's statement building and
// database/sql's per-call look-ups; neither driver keeps a compiled
// statement from it (the SQLite driver compiles the text at every
// execution of a prepared statement, and pgx caches statements by text on
// its own: docs/performance.md counts the same instructions either way),
// so a driver that does would save parsing and planning too.
type stmtCache struct {
	db *sql.DB
	m  sync.Map // query text → *sql.Stmt
}

// stmt returns the prepared statement of q; nil when c is nil or the
// statement cannot be prepared now (the caller then runs q directly).
func (c *stmtCache) stmt(ctx context.Context, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if v, ok := c.m.Load(q); ok {
		return v.(*sql.Stmt)
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	if v, loaded := c.m.LoadOrStore(q, st); loaded {
		_ = st.Close()
		return v.(*sql.Stmt)
	}
	return st
}
