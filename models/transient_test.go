package models_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestIsTransient is the classifier's table: what a database can fail
// with, and whether a request that met it may succeed when tried again
// (503 with Retry-After) or not (the error it was).
func TestIsTransient(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("find session: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: "x"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", fmt.Errorf("find user: %w", models.ErrNotFound), false},
		{"gorm record not found", gorm.ErrRecordNotFound, false},
		{"conflict", fmt.Errorf("create user: %w", models.ErrConflict), false},
		{"plain error", errors.New("boom"), false},
		{"client went away", context.Canceled, false},

		{"57P01 admin_shutdown (pg_terminate_backend, restart)", pg("57P01"), true},
		{"57P02 crash_shutdown", pg("57P02"), true},
		{"57P03 cannot_connect_now (starting up)", pg("57P03"), true},
		{"08000 connection_exception", pg("08000"), true},
		{"08003 connection_does_not_exist", pg("08003"), true},
		{"08006 connection_failure", pg("08006"), true},
		{"08001 unable to connect", pg("08001"), true},
		{"08P01 protocol_violation", pg("08P01"), true},
		{"40001 serialization_failure", pg("40001"), true},
		{"40P01 deadlock_detected", pg("40P01"), true},
		{"53300 too_many_connections", pg("53300"), true},
		{"55P03 lock_not_available", pg("55P03"), true},
		{"57014 query_canceled (statement timeout)", pg("57014"), true},

		{"23505 unique_violation", pg("23505"), false},
		{"23503 foreign_key_violation", pg("23503"), false},
		{"42P01 undefined_table", pg("42P01"), false},
		{"42601 syntax_error", pg("42601"), false},
		{"42501 insufficient_privilege", pg("42501"), false},
		{"28P01 invalid_password", pg("28P01"), false},
		{"3D000 invalid_catalog_name", pg("3D000"), false},
		{"22001 string_data_right_truncation", pg("22001"), false},

		{"driver.ErrBadConn", driver.ErrBadConn, true},
		{"sql.ErrConnDone", fmt.Errorf("rotate: %w", sql.ErrConnDone), true},
		{"pgconn.ErrConnClosed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{"unexpected EOF", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"EOF", io.EOF, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"pool exhausted: deadline waiting for a connection", fmt.Errorf("find user: %w", context.DeadlineExceeded), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := models.IsTransient(tc.err); got != tc.want {
				t.Fatalf("IsTransient(%v) = %t, want %t", tc.err, got, tc.want)
			}
		})
	}
}

// TestIsTransientRealFaults classifies errors the real drivers return:
// a connection the server terminated, a server that refuses connections,
// SQLite busy; and, as not transient, real constraint and syntax errors.
func TestIsTransientRealFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("postgres", func(t *testing.T) {
		f := dbtest.PostgresFaults(t)
		db, err := models.Open(ctx, f.Target, models.PoolSettings{MaxOpenConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()

		// A held connection whose server process is terminated.
		conn, err := db.SQL.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if n := f.Terminate(t); n == 0 {
			t.Fatal("no connection to terminate")
		}
		_, err = conn.ExecContext(ctx, "SELECT 1")
		if err == nil || !models.IsTransient(err) {
			t.Fatalf("query on a terminated connection: err = %v (%T), want transient", err, err)
		}

		// A server that refuses connections (nothing listens on port 1).
		_, err = pgconn.Connect(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
		if err == nil || !models.IsTransient(err) {
			t.Fatalf("connect to a closed port: err = %v, want transient", err)
		}

		// Errors of the request itself are not transient.
		if err := db.Exec("CREATE TABLE t (id int PRIMARY KEY)").Error; err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)", "SELEC 1", "SELECT * FROM absent"} {
			if err := db.Exec(q).Error; err != nil && models.IsTransient(err) {
				t.Fatalf("%s: %v classified transient", q, err)
			}
		}
	})
	t.Run("sqlite busy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "busy.db") + "?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_txlock=immediate"
		target, err := dburl.Parse(path)
		if err != nil {
			t.Fatal(err)
		}
		a, err := models.Open(ctx, target, models.PoolSettings{MaxOpenConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := models.Open(ctx, target, models.PoolSettings{MaxOpenConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := a.Exec("CREATE TABLE t (id int PRIMARY KEY)").Error; err != nil {
			t.Fatal(err)
		}
		tx, err := a.SQL.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		err = b.Exec("INSERT INTO t VALUES (1)").Error
		if err == nil || !models.IsTransient(err) {
			t.Fatalf("write while another holds the lock: err = %v, want transient (SQLITE_BUSY)", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := b.Exec("INSERT INTO t VALUES (1)").Error; err != nil {
			t.Fatal(err)
		}
		if err := b.Exec("INSERT INTO t VALUES (1)").Error; err == nil || models.IsTransient(err) {
			t.Fatalf("unique violation: err = %v, want a non-transient error", err)
		}
	})
}

// TestReadsSurviveCutConnections: after the server terminated every
// pooled connection (a PostgreSQL restart, failover or
// pg_terminate_backend), each read-only look-up on the hot paths still
// answers — it retries once on a live connection — and so does the next
// transaction, whose BEGIN would otherwise land on a dead connection.
// The connections were used within the last second, so the pool's own
// idle check would not have caught them.
func TestReadsSurviveCutConnections(t *testing.T) {
	ctx := context.Background()
	f := dbtest.PostgresFaults(t)
	open := func(t *testing.T) *models.DB {
		db, err := models.Open(ctx, f.Target, models.PoolSettings{MaxOpenConns: 4, MaxIdleConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	setup := open(t)
	m, err := migrations.New(setup.SQL, setup.Dialect)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	u := &models.User{Email: "ada@example.com", EmailVerified: true}
	if err := models.NewStore(setup).CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: "ada"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sess := &models.Session{UserID: u.ID, ClientID: "spa", Provider: "dev", AuthTime: now, LastUsedAt: now,
		ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	if err := models.NewStore(setup).CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}

	answered := func(err error) bool { return err == nil || errors.Is(err, models.ErrNotFound) }
	for _, tc := range []struct {
		name string
		read func(store *models.Store) error
	}{
		{"FindUser", func(store *models.Store) error {
			got, err := store.FindUser(ctx, u.ID)
			if err == nil && got.Email != u.Email {
				return fmt.Errorf("wrong user %+v", got)
			}
			return err
		}},
		{"FindSession", func(store *models.Store) error { _, err := store.FindSession(ctx, sess.ID); return err }},
		{"SessionActive", func(store *models.Store) error {
			ok, err := store.SessionActive(ctx, sess.ID, time.Now().UTC())
			if err == nil && !ok {
				return errors.New("live session reported inactive")
			}
			return err
		}},
		{"FindRefreshTokenByHash", func(store *models.Store) error { _, err := store.FindRefreshTokenByHash(ctx, "absent"); return err }},
		{"FindRefreshGrant", func(store *models.Store) error {
			_, err := store.FindRefreshGrant(ctx, "absent", models.RefreshRead{TrustedEmail: []string{"dev"}})
			return err
		}},
		{"FindAuthorizationCodeByHash", func(store *models.Store) error {
			_, err := store.FindAuthorizationCodeByHash(ctx, "absent")
			return err
		}},
		{"ActiveGrants", func(store *models.Store) error { _, err := store.ActiveGrants(ctx, u.ID, "no-org"); return err }},
		{"FindAPIKeyByPrefix", func(store *models.Store) error { _, err := store.FindAPIKeyByPrefix(ctx, "ghk_absent"); return err }},
		{"ListSigningKeys", func(store *models.Store) error { _, err := store.ListSigningKeys(ctx); return err }},
		{"ListIdentities", func(store *models.Store) error {
			ids, err := store.ListIdentities(ctx, u.ID)
			if err == nil && len(ids) != 1 {
				return fmt.Errorf("%d identities", len(ids))
			}
			return err
		}},
		{"ListUserMemberships", func(store *models.Store) error { _, err := store.ListUserMemberships(ctx, u.ID); return err }},
		{"transaction (RevokeSession on an unknown session)", func(store *models.Store) error {
			_, err := store.RevokeSession(ctx, "absent", "test", time.Now().UTC())
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh pool whose every connection is open, idle and was
			// just reused (pgx pings a connection at its first reuse, which
			// would hide the cut).
			db := open(t)
			for range 2 {
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						if err := db.Exec("SELECT pg_sleep(0.05)").Error; err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			if n := f.Terminate(t); n < 4 {
				t.Fatalf("terminated %d connections, want at least the pool's 4", n)
			}
			if err := tc.read(models.NewStore(db)); !answered(err) {
				t.Fatalf("after the connections were cut: %v (transient %t)", err, models.IsTransient(err))
			}
		})
	}
}
