package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// TestDoctorDatabaseTimeout: a database that accepts the connection but
// does not answer the checks' queries (here the migrations' table is
// locked, as by a migration in progress) fails the migrations and keys
// checks once DBTimeout has passed, instead of hanging the command.
func TestDoctorDatabaseTimeout(t *testing.T) {
	s := apptest.Start(t, apptest.Options{Postgres: true})
	ctx := context.Background()
	tx, err := s.App.DB.SQL.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE goose_db_version IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	cfg := *s.App.Config
	done := make(chan []app.DoctorCheck, 1)
	go func() { done <- app.Doctor(ctx, &cfg, app.DoctorOptions{DBTimeout: time.Second}) }()
	select {
	case checks := <-done:
		out := doctorLines(checks)
		wantLine(t, out, "ok", "database postgres 127.0.0.1:5432/")
		wantLine(t, out, "fail", "migrations: ")
	case <-time.After(2 * time.Minute):
		t.Fatal("doctor hangs on a database that does not answer")
	}
}
