// Package app assembles Gatehouse from its parts: it opens the database,
// applies migrations, builds the services and the HTTP router, and runs
// the server until it is told to stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/handlers"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
)

// App is a running Gatehouse: its database, services and HTTP handler.
type App struct {
	Config  *config.Config
	Log     *slog.Logger
	DB      *models.DB
	Store   *models.Store
	Metrics *handlers.Metrics
	// Engine is the router; tests may add routes before serving.
	Engine *gin.Engine

	migrator *migrations.Migrator
}

// NewLogger returns the JSON logger at the configured level.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// OpenDatabase connects to the configured database and prepares its
// migrator; it applies nothing.
func OpenDatabase(ctx context.Context, cfg *config.Config) (*models.DB, *migrations.Migrator, error) {
	target, err := models.ParseDatabaseURL(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("GATEHOUSE_DATABASE_URL: %w", err)
	}
	db, err := models.Open(ctx, target, models.PoolSettings{
		MaxOpenConns: cfg.DBPool.MaxOpenConns, MaxIdleConns: cfg.DBPool.MaxIdleConns,
		ConnMaxLifetime: cfg.DBPool.ConnMaxLifetime,
	})
	if err != nil {
		return nil, nil, err
	}
	m, err := migrations.New(db.SQL, db.Dialect)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return db, m, nil
}

// New builds a Gatehouse from a validated configuration. With AutoMigrate
// it applies pending migrations; otherwise it refuses a database that is
// not current. A database newer than this binary is always refused.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	db, m, err := OpenDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: db, Store: models.NewStore(db), migrator: m}
	if err := a.prepareSchema(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := a.build(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) prepareSchema(ctx context.Context) error {
	if !a.Config.AutoMigrate {
		return a.migrator.CheckCurrent(ctx)
	}
	applied, err := a.migrator.Up(ctx)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		a.Log.Info("applied migrations", slog.Any("versions", applied))
	}
	return nil
}

func (a *App) build() error {
	a.Metrics = handlers.NewMetrics()
	issuer, _ := url.Parse(a.Config.Issuer)
	engine, err := handlers.NewRouter(handlers.RouterOptions{
		Log:            a.Log,
		Metrics:        a.Metrics,
		TrustedProxies: a.Config.TrustedProxies,
		CORSOrigins:    a.Config.CORSOrigins,
		MaxBodyBytes:   a.Config.MaxBodyBytes,
		HSTS:           issuer.Scheme == "https",
		Ready: []handlers.ReadinessCheck{
			{Name: "database", Check: func(ctx context.Context) error { return a.DB.SQL.PingContext(ctx) }},
			{Name: "migrations", Check: a.migrator.CheckCurrent},
		},
	})
	if err != nil {
		return err
	}
	a.Engine = engine
	return nil
}

// Serve answers requests on ln until ctx is cancelled, then stops
// accepting, lets in-flight requests finish (up to ShutdownTimeout) and
// returns.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("issuer", a.Config.Issuer))
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.Log.Info("shutting down: finishing in-flight requests", slog.Duration("timeout", a.Config.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	a.Log.Info("stopped")
	return nil
}

// Close releases the database.
func (a *App) Close() error { return a.DB.Close() }

// Listen opens the configured address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_ADDR %s: %w", addr, errors.Unwrap(err))
	}
	return ln, nil
}

// OneLine flattens an error for a start-up message; multi-line
// configuration errors keep their lines.
func OneLine(err error) string {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
