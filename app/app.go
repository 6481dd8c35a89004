// Package app assembles Gatehouse from its parts: it opens the database,
// applies migrations, builds the services and the HTTP router, and runs
// the server until it is told to stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/backchannel"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/handlers"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/ratelimit"
	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/signin"
	"github.com/gatehouse-id/gatehouse/tokens"
	"github.com/gatehouse-id/gatehouse/web"
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
	// Keys are the token signing keys; Sessions the sessions, refresh
	// tokens and codes; OAuth the authorization server; SignIn browser
	// sign-in.
	Keys     *tokens.KeyManager
	Sessions *tokens.SessionService
	OAuth    *oauth.Service
	SignIn   *signin.Service
	// Provisioning creates users, links identities, syncs organizations
	// and manages invitations.
	Provisioning *provisioning.Service
	// APIKeys checks API keys and batches their last-used times; Admin
	// runs the admin API.
	APIKeys *tokens.APIKeyService
	Admin   *admin.Service
	// Backchannel delivers back-channel logouts from the outbox; Serve
	// runs it.
	Backchannel *backchannel.Dispatcher

	migrator  *migrations.Migrator
	providers []providers.Provider
	// limits counts requests for the rate limits (nil: none); redis is
	// its client when they are shared.
	limits handlers.Limiter
	redis  *redis.Client
	// stopClientSync ends the stored clients' poll; clientSyncDone
	// closes when it has.
	stopClientSync context.CancelFunc
	clientSyncDone chan struct{}
	// reloads applies the configuration file again on SIGHUP (reload.go).
	reloads *reloader
}

// OpenDatabase connects to the configured database and prepares its
// migrator; it applies nothing.
func OpenDatabase(ctx context.Context, cfg *config.Config) (*models.DB, *migrations.Migrator, error) {
	target, err := dburl.Parse(cfg.DatabaseURL)
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
	return NewWithDatabase(ctx, cfg, log, nil)
}

// NewWithDatabase is New on a database the caller opened instead of the
// configured one (models.OpenWrapped, to instrument its connections); the
// App takes it over and closes it. A nil db is New.
func NewWithDatabase(ctx context.Context, cfg *config.Config, log *slog.Logger, db *models.DB) (*App, error) {
	a := &App{Config: cfg, Log: log, DB: db}
	if err := a.open(ctx); err != nil {
		if a.stopClientSync != nil {
			a.stopClientSync()
			<-a.clientSyncDone
		}
		closeProviders(a.providers)
		a.closeRedis()
		if a.DB != nil {
			_ = a.DB.Close()
		}
		return nil, err
	}
	return a, nil
}

// open reaches Redis, then the database (so a start-up that stops on
// Redis has written nothing), prepares the schema and builds the parts.
func (a *App) open(ctx context.Context) error {
	if err := a.openRateLimits(ctx); err != nil {
		return err
	}
	if a.DB == nil {
		db, m, err := OpenDatabase(ctx, a.Config)
		if err != nil {
			return err
		}
		a.DB, a.migrator = db, m
	} else {
		m, err := migrations.New(a.DB.SQL, a.DB.Dialect)
		if err != nil {
			return err
		}
		a.migrator = m
	}
	a.Store = models.NewStore(a.DB)
	if err := a.prepareSchema(ctx); err != nil {
		return err
	}
	return a.build(ctx)
}

// openRateLimits picks the store for GATEHOUSE_RATE_LIMIT: Redis when
// GATEHOUSE_REDIS_URL is set (a Redis that does not answer stops
// start-up), otherwise this replica's memory; none when limits are off.
func (a *App) openRateLimits(ctx context.Context) error {
	cfg := a.Config
	switch {
	case cfg.RateLimit == 0:
		if cfg.RedisURL != "" {
			a.Log.Info("GATEHOUSE_REDIS_URL is not used: rate limits are off (GATEHOUSE_RATE_LIMIT=0)")
		}
		return nil
	case cfg.RedisURL == "":
		a.limits = ratelimit.NewMemory(cfg.RateLimit)
		return nil
	}
	client, err := ratelimit.Connect(ctx, cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("GATEHOUSE_REDIS_URL: %w", err)
	}
	a.redis = client
	a.limits = ratelimit.NewRedis(client, ratelimit.RedisOptions{PerMinute: cfg.RateLimit, Prefix: cfg.RedisKeyPrefix})
	return nil
}

// deviceCodeLimits counts the user codes entered at /device per client
// IP (GATEHOUSE_DEVICE_CODE_ATTEMPTS a minute, independent of
// GATEHOUSE_RATE_LIMIT): in Redis when the rate limits are shared
// there, else in this replica's memory; nil when the setting is 0.
func (a *App) deviceCodeLimits() handlers.Limiter {
	n := a.Config.DeviceCodeAttempts
	switch {
	case n == 0:
		return nil
	case a.redis != nil:
		return ratelimit.NewRedis(a.redis, ratelimit.RedisOptions{PerMinute: n, Prefix: a.Config.RedisKeyPrefix})
	}
	return ratelimit.NewMemory(n)
}

// readiness lists what /readyz checks. Redis is informative: it fails
// open, so a replica without it still serves, and every replica shares
// it, so failing readiness would take all of them out at once.
func (a *App) readiness() []handlers.ReadinessCheck {
	checks := []handlers.ReadinessCheck{
		{Name: "database", Check: func(ctx context.Context) error { return a.DB.SQL.PingContext(ctx) }},
		{Name: "migrations", Check: a.migrator.CheckCurrent},
		{Name: "signing_keys", Check: func(context.Context) error { return a.Keys.Ready() }},
	}
	if a.redis != nil {
		checks = append(checks, handlers.ReadinessCheck{Name: "redis", Informative: true,
			Check: func(ctx context.Context) error { return a.redis.Ping(ctx).Err() }})
	}
	return checks
}

// rateLimitsDisplay says where the rate limits are counted.
func (a *App) rateLimitsDisplay() string {
	switch {
	case a.Config.RateLimit == 0:
		return "off"
	case a.redis != nil:
		return fmt.Sprintf("%d/min, shared in redis", a.Config.RateLimit)
	}
	return fmt.Sprintf("%d/min, per replica", a.Config.RateLimit)
}

func (a *App) closeRedis() {
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

func (a *App) prepareSchema(ctx context.Context) error {
	if !a.Config.AutoMigrate {
		if err := a.migrator.CheckCurrent(ctx); err != nil {
			return err
		}
	} else {
		applied, err := a.migrator.Up(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			a.Log.Info("applied migrations", slog.Any("versions", applied))
		}
	}
	// A newer release migrated the database (a rolling upgrade): this
	// binary runs beside it because those migrations are marked
	// compatible, but should be replaced.
	if ahead, err := a.migrator.Ahead(ctx); err == nil && len(ahead) > 0 {
		a.Log.Warn("the database has migrations of a newer Gatehouse, marked compatible with this one: finish the upgrade",
			slog.Any("versions", ahead))
	}
	return nil
}

func (a *App) build(ctx context.Context) error {
	cfg := a.Config
	a.Metrics = handlers.NewMetrics()
	a.Metrics.WatchDB(a.DB.SQL)
	keys, err := OpenKeys(ctx, cfg, a.Store)
	if err != nil {
		return err
	}
	a.Keys = keys
	a.Sessions = tokens.NewSessionService(a.Store, tokens.SessionOptions{
		IdleTTL: cfg.RefreshIdleTTL, AbsoluteTTL: cfg.RefreshAbsoluteTTL, ReuseGrace: cfg.RefreshReuseGrace,
		CodeTTL: cfg.AuthCodeTTL, Now: nowUTC,
		Audit: func(ctx context.Context, e *models.AuditEvent, details map[string]any) {
			if m, ok := oauth.RequestMetaFrom(ctx); ok && e.IP == "" && e.RequestID == "" {
				e.IP, e.RequestID = m.IP, m.RequestID
			}
			if err := a.Store.RecordAudit(ctx, e, details); err != nil {
				a.Log.ErrorContext(ctx, "audit event not recorded", slog.String("type", e.Type), slog.String("error", err.Error()))
			}
		},
	})
	addDemoClient(cfg)
	addConsoleClient(cfg)
	provs, err := buildProviders(cfg, a.Store, a.Log, a.Metrics)
	if err != nil {
		return err
	}
	a.providers = provs
	provSet := providers.NewSet(provs)
	a.newReloader(provs, provSet)
	a.Provisioning = NewProvisioner(cfg, a.Store, func(o *provisioning.Options) {
		o.Providers, o.RecheckKey, o.Log = provSet, tokens.DeriveKey(cfg.SecretKey, "upstream-rechecks"), a.Log
		o.OnRecheck = func(p, outcome string) { a.Metrics.UpstreamRechecks.WithLabelValues(p, outcome).Inc() }
	})
	a.APIKeys = tokens.NewAPIKeyService(a.Store, nowUTC)
	a.Admin = admin.New(admin.NewStore(a.Store), a.Provisioning, nowUTC)
	a.Admin.SetBrowserSessionIdleTTL(cfg.SSOIdleTTL)
	a.Admin.SetKeyRing(keyRing{keys})
	// Before the authorization server: its clients tell the dispatcher
	// their back-channel logout URIs whenever they change.
	a.Backchannel = NewBackchannel(cfg, a.Store, keys, a.Metrics, a.Log)
	a.OAuth = oauth.New(oauth.Options{
		Config: cfg, Providers: provSet, Keys: keys, Sessions: a.Sessions,
		Provisioner: a.Provisioning, Store: a.Store, APIKeys: a.APIKeys, Rechecks: a.Provisioning, Clients: a.Store,
		AssertionJTIs: a.Store, Devices: a.Store, Log: a.Log, Now: nowUTC,
		Hooks: oauth.Hooks{
			TokenIssued:    func(g string) { a.Metrics.TokensIssued.WithLabelValues(g).Inc() },
			RefreshReuse:   func() { a.Metrics.RefreshReuse.Inc() },
			ClientsChanged: a.Backchannel.SetEndpoints,
			// A stored client's token lifetime was bounded by the file
			// in force when it was saved; keys outlive it even if the
			// file has changed since.
			ClientsLoaded: func(longest time.Duration) { keys.RetainAtLeast(longest + time.Minute) },
		},
	})
	if err := a.startClientSync(ctx); err != nil {
		return err
	}
	a.SignIn = signin.New(signin.Options{
		Issuer: cfg.Issuer, SecretKey: cfg.SecretKey, LoginStateTTL: cfg.LoginStateTTL, SSOIdleTTL: cfg.SSOIdleTTL, SSOAbsoluteTTL: cfg.SSOAbsoluteTTL,
		Providers: provSet,
		Server:    a.OAuth, Provisioner: a.Provisioning, Rechecks: a.Provisioning, Store: a.Store, Log: a.Log, Now: nowUTC,
		Hooks: signin.Hooks{Login: func(p, o string) { a.Metrics.Logins.WithLabelValues(p, o).Inc() }},
	})
	pages, err := web.Load()
	if err != nil {
		return err
	}
	issuer, _ := url.Parse(a.Config.Issuer)
	engine, err := handlers.NewRouter(handlers.RouterOptions{
		Log:            a.Log,
		Metrics:        a.Metrics,
		TrustedProxies: a.Config.TrustedProxies,
		CORSOrigins:    a.Config.CORSOrigins,
		MaxBodyBytes:   a.Config.MaxBodyBytes,
		HSTS:           issuer.Scheme == "https",
		Ready:          a.readiness(),
		// The providers' checks follow reloads of the configuration file.
		MoreReady: func() []handlers.ReadinessCheck { return providerReadiness(provSet.All()) },
		// GATEHOUSE_METRICS_ADDR moves /metrics off the public listener.
		MetricsElsewhere: a.Config.MetricsAddr != "",
	})
	if err != nil {
		return err
	}
	limiter := handlers.NewRateLimiter(a.limits, a.Log, a.Metrics)
	(&handlers.OAuth{
		Svc: a.OAuth, Keys: keys, SigningAlg: cfg.SigningAlg, JWKSMaxAge: cfg.JWKSMaxAge,
		Pages: pages, Log: a.Log, Limiter: limiter,
	}).Register(engine)
	(&handlers.SignIn{Svc: a.SignIn, Pages: pages, Log: a.Log, Limiter: limiter,
		CodeLimiter: handlers.NewRateLimiter(a.deviceCodeLimits(), a.Log, a.Metrics)}).Register(engine)
	guard := admin.NewGuard(a.Store, a.Sessions)
	adminRBAC, err := a.adminGuard(ctx, guard)
	if err != nil {
		return err
	}
	(&handlers.Admin{Svc: a.Admin, Guard: guard, RBAC: adminRBAC, Log: a.Log}).Register(engine)
	(&handlers.Registration{Svc: a.Admin, Issuer: cfg.Issuer, Log: a.Log, Limiter: limiter}).Register(engine)
	_, demo := a.OAuth.Client(DemoClientID)
	(&handlers.Pages{Svc: a.SignIn, Pages: pages, Log: a.Log, Demo: demo && !cfg.Production()}).Register(engine)
	handlers.RegisterConsole(engine)
	a.Engine = engine
	return nil
}

func nowUTC() time.Time { return time.Now().UTC() }

// adminGuard protects the admin API with the rbac package, the code any
// backend runs, fed Gatehouse's own keys in process instead of fetching
// its JWKS over HTTP, and with the admin API's own checks of the
// credential and the organization (admin.Guard: the rule lives there).
func (a *App) adminGuard(ctx context.Context, guard *admin.Guard) (*rbac.Middleware, error) {
	return rbac.New(ctx, rbac.Options{
		Issuer: a.Config.Issuer, Audience: a.Config.AdminAudience, Logger: a.Log, Now: nowUTC,
		Keys:            func(context.Context) (jose.JSONWebKeySet, error) { return a.Keys.JWKS(), nil },
		RefetchInterval: time.Second,
		OrgCheck:        guard.MayActOn,
		Check: func(ctx context.Context, p *rbac.Principal) error {
			err := guard.CheckCredential(ctx, p)
			if errors.Is(err, rbac.ErrUnavailable) {
				// rbac answers 503 and logs nothing: the detail goes here.
				a.Log.WarnContext(ctx, "admin session check could not decide", slog.String("error", err.Error()),
					slog.String("request_id", handlers.RequestID(ctx)))
			}
			return err
		},
	})
}

// NewProvisioner builds the provisioning service from the configuration:
// which providers are trusted for email and link by verified email, and
// the org-sync rules. tweak, when given, changes the options before the
// service is built (the providers and sealing key of upstream re-checks).
func NewProvisioner(cfg *config.Config, store *models.Store, tweak ...func(*provisioning.Options)) *provisioning.Service {
	pol := provisioningPolicy(cfg)
	opts := provisioning.Options{LinkByEmail: pol.LinkByEmail, TrustedEmail: pol.TrustedEmail, Sync: pol.Sync, Now: nowUTC}
	for _, t := range tweak {
		t(&opts)
	}
	return provisioning.New(store, opts)
}

// NewBackchannel builds the back-channel logout dispatcher: the clients
// with a backchannel_logout_uri, logout tokens signed with keys, outcomes
// as metrics. tweak, when given, changes the options before it is built
// (tests shorten waits).
func NewBackchannel(cfg *config.Config, store *models.Store, keys *tokens.KeyManager, m *handlers.Metrics, log *slog.Logger,
	tweak ...func(*backchannel.Options)) *backchannel.Dispatcher {
	opts := backchannel.Options{
		Store: store, Signer: keys, Issuer: cfg.Issuer, Endpoints: backchannelEndpoints(cfg), Log: log, Now: nowUTC,
		Timeout: cfg.BackchannelLogoutTimeout, GiveUpAfter: cfg.BackchannelLogoutGiveUp,
		Hooks: backchannel.Hooks{
			Outcome: func(client, outcome string) { m.BackchannelLogouts.WithLabelValues(client, outcome).Inc() },
			Pending: func(n int64) { m.BackchannelPending.Set(float64(n)) },
		},
	}
	for _, t := range tweak {
		t(&opts)
	}
	return backchannel.New(opts)
}

// OpenKeys loads the signing keys, creating the first one on a new
// database. A secret key that cannot decrypt them stops start-up.
func OpenKeys(ctx context.Context, cfg *config.Config, store *models.Store) (*tokens.KeyManager, error) {
	keys, err := newKeyManager(cfg, store)
	if err != nil {
		return nil, err
	}
	if err := keys.Init(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return keys, nil
}

// newKeyManager prepares the signing keys without touching the database.
func newKeyManager(cfg *config.Config, store *models.Store) (*tokens.KeyManager, error) {
	return tokens.NewKeyManager(store, cfg.SecretKey, tokens.KeyOptions{
		Algorithm: cfg.SigningAlg, RotationPeriod: cfg.KeyRotationPeriod, PublishLead: cfg.KeyPublishLead,
		RetainAfterRetire: keyRetention(cfg), Now: nowUTC,
	})
}

// Serve answers requests on ln until ctx is cancelled, reloading the
// configuration file on SIGHUP (Reload), then stops accepting, lets
// in-flight requests finish (up to ShutdownTimeout) and returns. With GATEHOUSE_METRICS_ADDR it also opens that address and
// serves /metrics there (and only there), stopping it the same way; a
// listener that fails stops both.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	// SIGHUP reloads the configuration file while the server runs
	// (reload.go); registered before a listener answers, so a SIGHUP
	// sent to a server that answers never ends it.
	defer a.ReloadOnSignal(context.Background())()
	servers := []*listener{{name: "main", ln: ln, srv: a.httpServer(a.Engine)}}
	if a.Config.MetricsAddr != "" {
		mln, err := listen("GATEHOUSE_METRICS_ADDR", a.Config.MetricsAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics.Handler())
		servers = append(servers, &listener{name: "metrics", ln: mln, srv: a.httpServer(mux)})
		a.Log.Info("metrics listening", slog.String("addr", mln.Addr().String()))
	}
	errc := make(chan error, len(servers))
	for _, l := range servers {
		go func() {
			err := l.srv.Serve(l.ln)
			switch {
			case errors.Is(err, http.ErrServerClosed):
				err = nil // Shutdown was called
			case err != nil:
				err = fmt.Errorf("serve %s listener: %w", l.name, err)
			}
			errc <- err
		}()
	}
	maintCtx, stopMaint := context.WithCancel(context.Background())
	defer stopMaint()
	go a.maintain(maintCtx)
	// The dispatcher stops with the listeners; Serve returns only once
	// its deliveries in flight are done, before Close closes the database.
	backchannelDone := make(chan struct{})
	go func() { a.Backchannel.Run(maintCtx); close(backchannelDone) }()
	defer func() { stopMaint(); <-backchannelDone }()
	a.Log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("issuer", a.Config.Issuer))
	a.banner(ln.Addr())
	var failed error
	pending := len(servers)
	select {
	case failed = <-errc:
		pending--
		a.Log.Error("a listener stopped: shutting down", slog.String("error", fmt.Sprint(failed)))
	case <-ctx.Done():
		a.Log.Info("shutting down: finishing in-flight requests", slog.Duration("timeout", a.Config.ShutdownTimeout))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	shut := make(chan error, len(servers))
	for _, l := range servers {
		go func() {
			if err := l.srv.Shutdown(shutdownCtx); err != nil {
				shut <- fmt.Errorf("shutdown %s listener: %w", l.name, err)
				return
			}
			shut <- nil
		}()
	}
	errs := []error{failed}
	for range servers {
		errs = append(errs, <-shut)
	}
	for ; pending > 0; pending-- {
		errs = append(errs, <-errc)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.Log.Info("stopped")
	return nil
}

// listener is one address Serve answers on.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

func (a *App) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}
}

// banner tells a newcomer where to go and what is on; no secret (the
// database is named by dialect and place, never its DSN).
func (a *App) banner(addr net.Addr) {
	// Each provider with the address to register upstream.
	var names []string
	for _, m := range a.SignIn.Methods() {
		names = append(names, m.Name+" ("+m.Type+") callback "+m.CallbackURL)
	}
	mode := "development"
	if a.Config.Production() {
		mode = "production"
	}
	metrics := "/metrics on this listener"
	if a.Config.MetricsAddr != "" {
		metrics = "/metrics on " + a.Config.MetricsAddr + " only"
	}
	attrs := []any{
		slog.String("issuer", strings.TrimSuffix(a.Config.Issuer, "/")+"/"),
		slog.String("listen", addr.String()),
		slog.String("mode", mode),
		slog.String("database", DatabaseSummary(a.Config.DatabaseURL)),
		slog.Any("providers", names),
		slog.Int("clients", len(a.Config.File.Clients)),
		slog.String("metrics", metrics),
		slog.String("rate_limits", a.rateLimitsDisplay()),
	}
	if _, demo := a.OAuth.Client(DemoClientID); demo && !a.Config.Production() {
		attrs = append(attrs, slog.String("demo", strings.TrimSuffix(a.Config.Issuer, "/")+"/demo/"))
	}
	if len(a.Config.Warnings) > 0 {
		attrs = append(attrs, slog.Any("unsafe_development_defaults", a.Config.Warnings))
	}
	a.Log.Info("Gatehouse is ready", attrs...)
}

// DatabaseSummary names a database for people without anything secret:
// the dialect and, for PostgreSQL, host and database name only (a URL's
// password or query parameters such as sslkey never appear).
func DatabaseSummary(raw string) string {
	t, err := dburl.Parse(raw)
	if err != nil {
		return "invalid"
	}
	if t.Dialect != dburl.Postgres {
		return string(t.Dialect) + " " + t.Display
	}
	u, err := url.Parse(t.DSN)
	if err != nil || u.Host == "" {
		return string(t.Dialect)
	}
	return string(t.Dialect) + " " + u.Host + u.EscapedPath()
}

// maintain reloads signing keys (scheduled rotation, retirement) and
// records API key use every minute, and prunes expired codes, sessions, pending logins, SAML
// replay records, client assertion jtis and device authorizations (an hour after
// they expire) every ten.
func (a *App) maintain(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := a.Keys.Reload(ctx); err != nil {
			a.Log.Error("reload signing keys", slog.String("error", err.Error()))
		}
		if err := a.APIKeys.Flush(ctx); err != nil {
			a.Log.Error("record API key use", slog.String("error", err.Error()))
		}
		a.OAuth.FlushClientAuthFailures(ctx, false)
		if n%10 == 0 {
			if _, err := a.Sessions.PruneExpired(ctx); err != nil {
				a.Log.Error("prune expired sessions", slog.String("error", err.Error()))
			}
			if _, err := a.Store.PruneSAML(ctx, nowUTC()); err != nil {
				a.Log.Error("prune SAML replay records and pending logins", slog.String("error", err.Error()))
			}
			if _, err := a.Store.PruneClientAssertionJTIs(ctx, nowUTC()); err != nil {
				a.Log.Error("prune client assertion jti records", slog.String("error", err.Error()))
			}
			if _, err := a.Store.PruneDeviceAuthorizations(ctx, nowUTC().Add(-time.Hour)); err != nil {
				a.Log.Error("prune device authorizations", slog.String("error", err.Error()))
			}
		}
	}
}

// Close stops the providers' background work, writes the API key use
// and the failed client authentications not yet recorded and releases
// Redis and the database.
func (a *App) Close() error {
	if a.stopClientSync != nil {
		a.stopClientSync()
		<-a.clientSyncDone
	}
	a.reloads.close()
	a.closeRedis()
	if err := a.APIKeys.Flush(context.Background()); err != nil {
		a.Log.Error("record API key use", slog.String("error", err.Error()))
	}
	a.OAuth.FlushClientAuthFailures(context.Background(), true)
	return a.DB.Close()
}

// Listen opens the configured address.
func Listen(addr string) (net.Listener, error) { return listen("GATEHOUSE_ADDR", addr) }

// listen opens addr; an error names the setting it came from.
func listen(setting, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", setting, addr, errors.Unwrap(err))
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
