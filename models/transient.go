package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"

	"github.com/gatehouse-id/gatehouse/fault"
)

// Transient database faults: the one place that decides which database
// errors may pass by themselves. Callers answer them with 503 and
// Retry-After instead of an internal error (handlers/errors.go); the read
// helpers below retry read-only look-ups once on a live connection.

func init() {
	fault.RegisterClassifier(func(err error) (fault.Kind, bool) {
		return fault.Unavailable, IsTransient(err)
	})
}

// IsTransient reports whether err is a fault of the database, or of the
// way to it, that may pass by itself, so the same request can succeed
// when tried again:
//   - the connection was lost or refused (PostgreSQL restarting or failing
//     over, pg_terminate_backend, a network cut): network errors, EOF, a
//     closed or bad connection, a failed connection attempt, and pgx errors
//     that never reached the server (pgconn.SafeToRetry);
//   - PostgreSQL SQLSTATEs: class 08 (connection exception), 57P01
//     admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
//     53300 too_many_connections, 40001 serialization_failure and 40P01
//     deadlock_detected (the transaction was rolled back), 55P03
//     lock_not_available and 57014 query_canceled (lock or statement
//     timeout);
//   - a deadline that passed while waiting for a pooled connection (the
//     pool exhausted) or for an answer;
//   - SQLite busy or locked (SQLITE_BUSY, SQLITE_LOCKED and their extended
//     codes) after its busy timeout.
//
// Any other error — a constraint, a missing row, a syntax or permission
// error, authentication refused by the server — is not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, gorm.ErrRecordNotFound) {
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return transientSQLState(pe.Code)
	}
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return sqliteBusy(se)
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}

// transientSQLState lists the PostgreSQL error codes IsTransient accepts.
func transientSQLState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03", "57014":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// SQLite primary result codes (sqlite3.h); extended codes keep them in
// their low byte.
const (
	sqliteBusyCode   = 5
	sqliteLockedCode = 6
)

func sqliteBusy(se *sqlite.Error) bool {
	switch se.Code() & 0xff {
	case sqliteBusyCode, sqliteLockedCode:
		return true
	}
	return false
}

// worthRetry reports whether a failed read-only look-up is worth one
// more try: a lost connection or a server that cut it is (the retry gets
// another connection), SQLite busy (which already waited its busy
// timeout) is not.
func worthRetry(err error) bool {
	if se, ok := errors.AsType[*sqlite.Error](err); ok && sqliteBusy(se) {
		return false
	}
	return IsTransient(err)
}

// connHealth remembers when this process last saw a transient fault on a
// database, so that every pooled connection last used before it is
// checked with a ping before its next use (PostgreSQL, through pgx's
// ShouldPing): after a restart or pg_terminate_backend the pool holds
// dead connections that only a round trip reveals, and a dead one found
// at check-out is discarded and replaced instead of failing a request.
// Without faults, pgx's default holds: ping only after a second idle.
type connHealth struct {
	lastFault atomic.Int64 // UnixNano; 0: none yet
}

// note records err's time if it is a transient fault. Nil-safe.
func (h *connHealth) note(err error) {
	if h != nil && IsTransient(err) {
		h.lastFault.Store(time.Now().UnixNano())
	}
}

// shouldPing is pgx's OptionShouldPing: idle for over a second (pgx's
// default), or last checked out before the latest fault.
func (h *connHealth) shouldPing(_ context.Context, p stdlib.ShouldPingParams) bool {
	if p.IdleDuration > time.Second {
		return true
	}
	last := h.lastFault.Load()
	return last != 0 && time.Now().Add(-p.IdleDuration).UnixNano() <= last
}

// watch notes the transient faults of every statement run through g.
func (h *connHealth) watch(g *gorm.DB) error {
	note := func(tx *gorm.DB) { h.note(tx.Error) }
	cb := g.Callback()
	for _, err := range []error{
		cb.Create().Register("gatehouse:note_fault", note),
		cb.Query().Register("gatehouse:note_fault", note),
		cb.Update().Register("gatehouse:note_fault", note),
		cb.Delete().Register("gatehouse:note_fault", note),
		cb.Row().Register("gatehouse:note_fault", note),
		cb.Raw().Register("gatehouse:note_fault", note),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// read runs a read-only look-up. If it fails with a transient fault and
// the store is not inside a transaction (whose connection is gone with
// it), it runs once more: the fault has been noted, so the pool checks
// the connections it hands out with a ping and the retry runs on a live
// one (pgx discards dead ones; database/sql then opens a new one). Only
// reads come here: a write whose answer was lost may have committed, and
// running it again is not safe.
func (s *Store) read(ctx context.Context, query func(db *gorm.DB) error) error {
	err := query(s.db.WithContext(ctx))
	if err == nil || s.inTx || ctx.Err() != nil || !worthRetry(err) {
		return err
	}
	s.health.note(err)
	return query(s.db.WithContext(ctx))
}
