package models

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements of the hot path, one per query
// text, for the life of the pool. database/sql prepares each on a
// connection the first time it runs there and re-prepares it on a new
// one after a reconnect; SQLite then no longer parses and plans the
// refresh read at every refresh (PostgreSQL's driver caches statements
// by itself).
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
