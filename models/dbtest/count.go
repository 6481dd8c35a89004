package dbtest

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/models"
)

// Statements records what a database's connection pool sends to its
// driver: every statement executed or queried, every BEGIN, COMMIT and
// ROLLBACK, every PREPARE and PING. Its Wrap is the wrapper
// models.OpenWrapped takes. What it counts is what reaches the driver:
// on PostgreSQL each is one round trip to the server once pgx has
// prepared the statement's text on that connection (the first use of a
// text on a connection costs one more, Parse/Describe, and is not seen
// here), and the pool's health ping of a connection idle for over a
// second happens inside the driver, unseen too; on SQLite each is one
// call into the library.
type Statements struct {
	mu  sync.Mutex
	log []string
	// interrupt, when set, runs beside the next statement it matches
	// (Interrupt).
	interrupt *interrupt
}

// Reset forgets what was recorded so far.
func (s *Statements) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// Log returns what was recorded since the last Reset, in order: the
// statement text with white space collapsed, or BEGIN, COMMIT,
// ROLLBACK, PING, or "PREPARE " and the text.
func (s *Statements) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func (s *Statements) add(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, strings.Join(strings.Fields(what), " "))
}

// Wrap returns a connector whose connections record their calls here.
func (s *Statements) Wrap(c driver.Connector) driver.Connector { return &countConnector{c, s} }

// SQLiteCounted opens a fresh, migrated SQLite database whose statements
// are recorded (after the migrations: the log starts empty).
func SQLiteCounted(t testing.TB) (*models.DB, *Statements) {
	t.Helper()
	return openCounted(t, SQLiteTarget(t))
}

// PostgresCounted is SQLiteCounted on a private schema of the test
// PostgreSQL server; it skips without one.
func PostgresCounted(t testing.TB) (*models.DB, *Statements) {
	t.Helper()
	return openCounted(t, PostgresTarget(t))
}

// EachCounted runs fn as subtests "sqlite" and "postgres", each on a
// fresh migrated database whose statements are recorded.
func EachCounted(t *testing.T, fn func(t *testing.T, db *models.DB, st *Statements)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { db, st := SQLiteCounted(t); fn(t, db, st) })
	t.Run("postgres", func(t *testing.T) { db, st := PostgresCounted(t); fn(t, db, st) })
}

func openCounted(t testing.TB, target dburl.Target) (*models.DB, *Statements) {
	t.Helper()
	st := &Statements{}
	db, err := models.OpenWrapped(context.Background(), target, models.PoolSettings{MaxOpenConns: 10}, st.Wrap)
	db = migrated(t, db, err)
	st.Reset()
	return db, st
}

type countConnector struct {
	driver.Connector
	st *Statements
}

func (c *countConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countConn{Conn: conn, st: c.st}, nil
}

// countConn records and forwards every call database/sql makes; where
// the driver's connection lacks an optional interface it answers as
// database/sql expects of one without it (driver.ErrSkip, or nothing to
// do).
type countConn struct {
	driver.Conn
	st *Statements
	// broken: an interrupt failed a statement here; the pool discards
	// the connection instead of reusing it.
	broken atomic.Bool
}

func (c *countConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.st.add("PREPARE " + query)
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countStmt{st, query, c}, nil
}

func (c *countConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.st.add("BEGIN")
	var tx driver.Tx
	var err error
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin() //nolint:staticcheck // the fallback database/sql uses too
	}
	if err != nil {
		return nil, err
	}
	return &countTx{tx, c.st}, nil
}

func (c *countConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if err := c.st.interrupted(ctx, c, query); err != nil {
		return nil, err
	}
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip {
		c.st.add(query)
	}
	return res, err
}

func (c *countConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	if err := c.st.interrupted(ctx, c, query); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != driver.ErrSkip {
		c.st.add(query)
	}
	return rows, err
}

func (c *countConn) Ping(ctx context.Context) error {
	p, ok := c.Conn.(driver.Pinger)
	if !ok {
		return nil
	}
	c.st.add("PING")
	return p.Ping(ctx)
}

func (c *countConn) ResetSession(ctx context.Context) error {
	if c.broken.Load() {
		return driver.ErrBadConn
	}
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countConn) IsValid() bool {
	if c.broken.Load() {
		return false
	}
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countConn) CheckNamedValue(v *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

type countTx struct {
	driver.Tx
	st *Statements
}

func (t *countTx) Commit() error   { t.st.add("COMMIT"); return t.Tx.Commit() }
func (t *countTx) Rollback() error { t.st.add("ROLLBACK"); return t.Tx.Rollback() }

type countStmt struct {
	driver.Stmt
	query string
	conn  *countConn
}

func (s *countStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.conn.st.interrupted(ctx, s.conn, s.query); err != nil {
		return nil, err
	}
	s.conn.st.add(s.query)
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := values(args)
	if err != nil {
		return nil, err
	}
	return s.Stmt.Exec(vals) //nolint:staticcheck // the fallback database/sql uses too
}

func (s *countStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.conn.st.interrupted(ctx, s.conn, s.query); err != nil {
		return nil, err
	}
	s.conn.st.add(s.query)
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := values(args)
	if err != nil {
		return nil, err
	}
	return s.Stmt.Query(vals) //nolint:staticcheck // the fallback database/sql uses too
}

func (s *countStmt) CheckNamedValue(v *driver.NamedValue) error {
	if n, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func values(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, driver.ErrSkip
		}
		out[i] = a.Value
	}
	return out, nil
}
