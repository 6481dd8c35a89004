package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/migrations/migrationstest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestRollingUpgradeReplicas: replicas of this release on one PostgreSQL
// database while a newer release migrates it. A compatible migration
// leaves the running replica ready and lets another of this release
// start beside the newer one; a migration not marked compatible makes
// the running replica unready (503, "migrations" failing: the load
// balancer stops sending it requests) and a replica of this release
// started then is refused, saying why.
func TestRollingUpgradeReplicas(t *testing.T) {
	target := dbtest.PostgresTarget(t)
	old := apptest.Start(t, apptest.Options{DatabaseURL: target.DSN})
	newer := migrationstest.UpTo(t, 0).Plus(90001, "future_table", "CREATE TABLE future_feature (id TEXT PRIMARY KEY);",
		"DROP TABLE future_feature;", true)
	upgrade(t, target, newer)

	if resp, body := get(t, old.URL+"/readyz"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"migrations":"ok"`) {
		t.Fatalf("running replica after a compatible migration: %d %s", resp.StatusCode, body)
	}
	beside := apptest.Start(t, apptest.Options{DatabaseURL: target.DSN})
	if resp, body := get(t, beside.URL+"/.well-known/openid-configuration"); resp.StatusCode != http.StatusOK {
		t.Fatalf("replica started beside the newer release: %d %s", resp.StatusCode, body)
	}

	upgrade(t, target, newer.Plus(90002, "future_breaking", "ALTER TABLE future_feature ADD COLUMN v INTEGER NOT NULL DEFAULT 0;",
		"ALTER TABLE future_feature DROP COLUMN v;", false))
	if resp, body := get(t, old.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"migrations":"failing"`) {
		t.Fatalf("running replica after a breaking migration: %d %s", resp.StatusCode, body)
	}
	err := apptest.StartErr(t, apptest.Options{DatabaseURL: target.DSN})
	if !errors.Is(err, migrations.ErrSchemaTooNew) || !strings.Contains(err.Error(), "90002 is not marked compatible") {
		t.Fatalf("replica of the older release started after a breaking migration: %v", err)
	}
}

// upgrade applies set to the database as a newer release would.
func upgrade(t *testing.T, target dburl.Target, set migrationstest.Set) {
	t.Helper()
	db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := migrations.NewFrom(db.SQL, db.Dialect, set)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
}
