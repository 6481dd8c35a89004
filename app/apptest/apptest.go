// Package apptest starts complete Gatehouse servers for tests: real
// configuration, a real migrated database and the real router, served by
// httptest.
package apptest

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// Options describe the server to start.
type Options struct {
	// Env holds settings as environment variables; GATEHOUSE_ISSUER is set
	// to the test server's URL unless given.
	Env map[string]string
	// YAML, when set, is written to a file and named by GATEHOUSE_CONFIG.
	YAML string
	// Postgres runs on the test PostgreSQL server (skipping without one).
	Postgres bool
	// DatabaseURL, when set, is used instead (e.g. another server's, to
	// run two replicas on one database).
	DatabaseURL string
	// Log receives the server's log; nil discards it.
	Log io.Writer
	// Statements, when set, records what the server sends its database
	// (see dbtest.Statements).
	Statements *dbtest.Statements
}

// Server is a running Gatehouse.
type Server struct {
	*app.App
	HTTP *httptest.Server
	URL  string
}

// Start builds and serves a Gatehouse, stopped at cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := start(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartErr builds a Gatehouse expected not to start and returns why.
func StartErr(t testing.TB, opts Options) error {
	t.Helper()
	_, err := start(t, opts)
	return err
}

func start(t testing.TB, opts Options) (*Server, error) {
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	env := map[string]string{
		"GATEHOUSE_ISSUER":     url,
		"GATEHOUSE_SECRET_KEY": "test-secret-key-0123456789abcdef-0123456789",
		"GATEHOUSE_RATE_LIMIT": "0",
	}
	switch {
	case opts.DatabaseURL != "":
		env["GATEHOUSE_DATABASE_URL"] = opts.DatabaseURL
	case opts.Postgres:
		env["GATEHOUSE_DATABASE_URL"] = dbtest.PostgresTarget(t).DSN
	default:
		env["GATEHOUSE_DATABASE_URL"] = filepath.Join(t.TempDir(), "gatehouse.db")
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	if opts.YAML != "" {
		p := filepath.Join(t.TempDir(), "gatehouse.yaml")
		if err := os.WriteFile(p, []byte(opts.YAML), 0o600); err != nil {
			t.Fatal(err)
		}
		env["GATEHOUSE_CONFIG"] = p
	}
	cfg, _, err := config.Load(config.Options{
		Lookup:     func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		DotenvPath: filepath.Join(t.TempDir(), "absent.env"),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := opts.Log
	if w == nil {
		w = io.Discard
	}
	var db *models.DB
	if opts.Statements != nil {
		target, err := dburl.Parse(cfg.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		if db, err = models.OpenWrapped(context.Background(), target, models.PoolSettings{MaxOpenConns: cfg.DBPool.MaxOpenConns,
			MaxIdleConns: cfg.DBPool.MaxIdleConns, ConnMaxLifetime: cfg.DBPool.ConnMaxLifetime}, opts.Statements.Wrap); err != nil {
			t.Fatal(err)
		}
	}
	a, err := app.NewWithDatabase(context.Background(), cfg, app.NewLogger(w, "debug"), db)
	if err != nil {
		return nil, err
	}
	srv.Config.Handler = a.Engine
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	return &Server{App: a, HTTP: srv, URL: url}, nil
}
