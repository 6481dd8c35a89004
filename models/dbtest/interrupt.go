package dbtest

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Interrupt arranges a fault beside the next statement whose text
// contains pattern, executed or queried, prepared or not, on a database
// whose statements st records (SQLiteCounted, PostgresCounted,
// EachCounted): fault is called once, on that statement's way to the
// driver, with the PostgreSQL backend's process id of the statement's
// connection (0 on SQLite). When fault returns an error the statement
// does not reach the driver, fails with that error, and the pool discards
// the connection, as it does one whose server went away; when it returns
// nil the statement runs, and what fault started beside it (a lock that
// makes it wait, a pg_terminate_backend of its backend while it waits)
// cuts it for real. Being at the driver, it sees what GORM's callbacks do
// not: statements run straight through the pool or prepared once per
// connection. A later Interrupt replaces one not yet met.
func (s *Statements) Interrupt(pattern string, fault func(ctx context.Context, pid uint32) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interrupt = &interrupt{pattern: pattern, fault: fault}
}

type interrupt struct {
	pattern string
	fault   func(ctx context.Context, pid uint32) error
}

// interrupted runs the pending interrupt if query matches it, and marks
// c broken when the interrupt fails the statement.
func (s *Statements) interrupted(ctx context.Context, c *countConn, query string) error {
	s.mu.Lock()
	in := s.interrupt
	if in == nil || !strings.Contains(query, in.pattern) {
		s.mu.Unlock()
		return nil
	}
	s.interrupt = nil
	s.mu.Unlock()
	var pid uint32
	if pc, ok := c.Conn.(interface{ Conn() *pgx.Conn }); ok {
		pid = pc.Conn().PgConn().PID()
	}
	if err := in.fault(ctx, pid); err != nil {
		c.broken.Store(true)
		return err
	}
	return nil
}
