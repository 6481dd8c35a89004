package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// AuditConfigReloaded records each reload of the configuration file,
// applied (outcome success) or refused (failure), with what changed.
const AuditConfigReloaded = "config.reloaded"

// providerRetireDelay is how long a provider instance a reload replaced
// or removed keeps running before it is closed: longer than any request
// may take (the server's write timeout is 60 s), so a sign-in or token
// exchange that picked it up before the reload finishes with it.
const providerRetireDelay = 2 * time.Minute

// reloader holds what a reload replaces, one reload at a time.
type reloader struct {
	mu sync.Mutex
	// cfg is the configuration in effect: the start-up one, then each
	// reload's.
	cfg atomic.Pointer[config.Config]
	// gen is the providers in effect; retiring those replaced, until
	// their delay is over or the App closes.
	gen      *providerGeneration
	retiring []*retiredProviders
	set      *providers.Set
	// closed: the App is closing; a reload would start providers no one
	// stops.
	closed bool

	outcomes    *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	successful  prometheus.Gauge
}

// retiredProviders are closed when timer fires, or at Close if it has
// not yet.
type retiredProviders struct {
	timer *time.Timer
	list  []providers.Provider
}

// providerGeneration is the provider instances one configuration runs,
// with the settings each was built from.
type providerGeneration struct {
	list []providers.Provider
	// configs are the file's entries by name; the built-in dev provider
	// (GATEHOUSE_DEV_LOGIN) has none.
	configs map[string]config.Provider
}

func newProviderGeneration(cfg *config.Config, list []providers.Provider) *providerGeneration {
	g := &providerGeneration{list: list, configs: map[string]config.Provider{}}
	for _, pc := range cfg.File.Providers {
		g.configs[pc.Name] = pc
	}
	return g
}

// reusable returns the running instance of pc when its kind settings
// are the same, so its caches live on; nil: build a new one.
func (g *providerGeneration) reusable(pc *config.Provider) providers.Provider {
	if g == nil {
		return nil
	}
	old, ok := g.configs[pc.Name]
	if !ok || !old.SameKindSettings(pc) {
		return nil
	}
	return g.named(pc.Name)
}

// builtInDev returns the running built-in dev provider, if any.
func (g *providerGeneration) builtInDev() providers.Provider {
	if g == nil {
		return nil
	}
	if _, configured := g.configs[DevProviderName]; configured {
		return nil
	}
	return g.named(DevProviderName)
}

func (g *providerGeneration) named(name string) providers.Provider {
	for _, p := range g.list {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// newReloader registers the reload metrics and records the start-up
// configuration as the last successful load.
func (a *App) newReloader(provs []providers.Provider, set *providers.Set) {
	r := &reloader{
		gen: newProviderGeneration(a.Config, provs), set: set,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Reloads of the configuration file (SIGHUP) by outcome: success (applied) or failure (refused, the running configuration stays).",
		}, []string{"outcome"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in effect was loaded (start-up or the last successful reload), in seconds since the Unix epoch.",
		}),
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_successful",
			Help: "1 when the last reload of the configuration file was applied (or none was tried), 0 when it was refused.",
		}),
	}
	r.outcomes.WithLabelValues(models.OutcomeSuccess)
	r.outcomes.WithLabelValues(models.OutcomeFailure)
	r.lastSuccess.Set(float64(nowUTC().Unix()))
	r.successful.Set(1)
	a.Metrics.Registry.MustRegister(r.outcomes, r.lastSuccess, r.successful)
	r.cfg.Store(a.Config)
	a.reloads = r
}

// CurrentConfig is the configuration in effect: Config until a reload
// applies another file, then that one (with Config's settings from the
// environment, which only a restart changes).
func (a *App) CurrentConfig() *config.Config { return a.reloads.cfg.Load() }

// ReloadOnSignal reloads the configuration file (Reload) each time the
// process receives SIGHUP, until ctx ends or stop is called. It returns
// once the signal is registered: a SIGHUP sent after that is handled,
// never the default (which ends the process). stop waits for a reload in
// progress.
func (a *App) ReloadOnSignal(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Log.Info("SIGHUP received: reloading the configuration file")
				_ = a.Reload(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// Reload reads the configuration again (config.Reload: environment,
// .env outside production, and the YAML file) and applies the file's
// clients, providers and org-sync rules without dropping requests: a
// request finishes with the client, provider and rules it looked up, and
// every later one sees the new ones. Providers whose kind settings did
// not change keep running (their JWKS, discovery and SAML metadata
// caches with them); a changed one is built again, a removed one is no
// longer offered. Settings outside the file that differ are logged as
// needing a restart and keep their running values.
//
// An invalid file is refused with the start-up's one-line-per-field
// problems, each logged, and the running configuration stays. Either
// way the outcome is counted (gatehouse_config_reloads_total), logged
// and audited (config.reloaded), naming what changed, never a secret.
func (a *App) Reload(ctx context.Context) error {
	r := a.reloads
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("the server is closing: configuration not reloaded")
	}
	cur := r.cfg.Load()
	next, warnings, err := config.Reload(cur)
	if err != nil {
		return a.refuseReload(ctx, cur, err)
	}
	// The file applies; every other setting keeps its running value.
	applied := *cur
	applied.File, applied.Warnings = next.File, warnings
	addDemoClient(&applied)
	addConsoleClient(&applied)
	restart := config.RestartNeeded(cur, next)
	provs, err := rebuildProviders(&applied, a.Store, a.Log, a.Metrics, r.gen)
	if err != nil {
		return a.refuseReload(ctx, cur, err)
	}
	gen := newProviderGeneration(&applied, provs)
	// The clients go first because only their swap can still refuse the
	// file, and then nothing has changed. Each part swaps in one step; a
	// request running across the swaps meets at worst a provider its
	// client no longer names, or one no longer offered, and is refused
	// as for any unknown provider (an error page, invalid_request).
	if err := a.OAuth.SetConfiguredClients(&applied); err != nil {
		closeProviders(built(provs, r.gen))
		return a.refuseReload(ctx, cur, err)
	}
	// The stored clients are checked again against the new file (the
	// providers they name); should the database not answer, the next
	// poll does it.
	if err := a.OAuth.SyncClients(ctx); err != nil {
		a.Log.WarnContext(ctx, "stored clients not checked against the reloaded file yet; the next poll retries", slog.String("error", err.Error()))
	}
	// Keys retired from now on outlive the longest token the new
	// lifetimes allow (never less than before: tokens already signed).
	a.Keys.RetainAtLeast(keyRetention(&applied))
	r.set.Replace(provs)
	a.Provisioning.SetPolicy(provisioningPolicy(&applied))
	r.cfg.Store(&applied)
	retired := built(r.gen.list, gen)
	r.gen = gen
	if len(retired) > 0 {
		rp := &retiredProviders{list: retired}
		rp.timer = time.AfterFunc(providerRetireDelay, func() { closeProviders(retired) })
		r.retiring = append(r.retiring, rp)
	}

	d := diffConfigs(cur, &applied)
	r.outcomes.WithLabelValues(models.OutcomeSuccess).Inc()
	r.lastSuccess.Set(float64(nowUTC().Unix()))
	r.successful.Set(1)
	a.Log.InfoContext(ctx, "configuration reloaded", append([]any{slog.String("file", cur.ConfigFile)}, d.attrs()...)...)
	for _, w := range warnings {
		a.Log.WarnContext(ctx, "unsafe development default", "setting", w)
	}
	if len(restart) > 0 {
		a.Log.WarnContext(ctx, "configuration reload: settings changed that need a restart; they keep their running values",
			slog.Any("needs_restart", restart))
	}
	a.recordReload(ctx, models.OutcomeSuccess, d.details(restart))
	return nil
}

// refuseReload logs why the file was refused, one line per problem as
// at start-up, counts and audits it; the running configuration stays.
func (a *App) refuseReload(ctx context.Context, cur *config.Config, err error) error {
	r := a.reloads
	r.outcomes.WithLabelValues(models.OutcomeFailure).Inc()
	r.successful.Set(0)
	a.Log.ErrorContext(ctx, "configuration reload refused: the running configuration stays", slog.String("file", cur.ConfigFile))
	var fields []string
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			a.Log.ErrorContext(ctx, "invalid configuration", slog.String("field", p.Field), slog.String("problem", p.Field+": "+p.Message))
			fields = append(fields, p.Field)
		}
	} else {
		a.Log.ErrorContext(ctx, "invalid configuration", slog.String("problem", OneLine(err)))
	}
	details := map[string]any{}
	if len(fields) > 0 {
		details["invalid_fields"] = fields
	}
	a.recordReload(ctx, models.OutcomeFailure, details)
	return err
}

func (a *App) recordReload(ctx context.Context, outcome string, details map[string]any) {
	e := &models.AuditEvent{OccurredAt: nowUTC(), Type: AuditConfigReloaded, Outcome: outcome}
	if err := a.Store.RecordAudit(context.WithoutCancel(ctx), e, details); err != nil {
		a.Log.ErrorContext(ctx, "audit event not recorded", slog.String("type", e.Type), slog.String("error", err.Error()))
	}
}

// close closes the providers reloads replaced and the running ones (at
// Close); later reloads are refused.
func (r *reloader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, rp := range r.retiring {
		if rp.timer.Stop() {
			closeProviders(rp.list)
		}
	}
	r.retiring = nil
	if r.gen != nil {
		closeProviders(r.gen.list)
		r.gen = nil
	}
}

// built lists the instances of list that gen does not run.
func built(list []providers.Provider, gen *providerGeneration) []providers.Provider {
	var out []providers.Provider
	for _, p := range list {
		if gen == nil || !slices.Contains(gen.list, p) {
			out = append(out, p)
		}
	}
	return out
}

// provisioningPolicy is the provisioning policy cfg's file sets
// (NewProvisioner at start).
func provisioningPolicy(cfg *config.Config) provisioning.Policy {
	link, trusted := map[string]bool{}, map[string]bool{}
	for _, p := range cfg.File.Providers {
		link[p.Name], trusted[p.Name] = p.LinkByEmail, p.TrustedEmail
	}
	if _, named := trusted[DevProviderName]; cfg.DevLogin && !named {
		// The built-in dev provider (development only) has its kind's default.
		trusted[DevProviderName] = config.DefaultTrustedEmail("dev")
	}
	return provisioning.Policy{LinkByEmail: link, TrustedEmail: trusted, Sync: provisioning.NewSyncPolicy(cfg.File.OrgSync)}
}

// backchannelEndpoints maps the clients with a backchannel_logout_uri to
// it (NewBackchannel at start).
func backchannelEndpoints(cfg *config.Config) map[string]string {
	endpoints := map[string]string{}
	for _, c := range cfg.File.Clients {
		if c.BackchannelLogoutURI != "" {
			endpoints[c.ID] = c.BackchannelLogoutURI
		}
	}
	return endpoints
}

// keyRetention is how long a retired signing key stays published under
// cfg: beyond the longest lifetime of a token Gatehouse signs.
func keyRetention(cfg *config.Config) time.Duration {
	return longestTokenTTL(cfg) + time.Minute
}

// configDiff is what a reload changed, by client id and provider name.
type configDiff struct {
	clientsAdded, clientsRemoved, clientsChanged       []string
	providersAdded, providersRemoved, providersChanged []string
	orgSyncChanged                                     bool
}

func diffConfigs(old, cur *config.Config) configDiff {
	var d configDiff
	d.clientsAdded, d.clientsRemoved, d.clientsChanged = diffByKey(old.File.Clients, cur.File.Clients,
		func(c config.Client) string { return c.ID }, func(a, b config.Client) bool { return reflect.DeepEqual(a, b) })
	d.providersAdded, d.providersRemoved, d.providersChanged = diffByKey(old.File.Providers, cur.File.Providers,
		func(p config.Provider) string { return p.Name }, func(a, b config.Provider) bool { return a.Equal(&b) })
	d.orgSyncChanged = !reflect.DeepEqual(old.File.OrgSync, cur.File.OrgSync)
	return d
}

// diffByKey compares two lists of entries named by key: the names only
// in cur, only in old, and in both but not equal, each sorted.
func diffByKey[T any](old, cur []T, key func(T) string, equal func(a, b T) bool) (added, removed, changed []string) {
	before := map[string]T{}
	for _, e := range old {
		before[key(e)] = e
	}
	for _, e := range cur {
		o, ok := before[key(e)]
		switch {
		case !ok:
			added = append(added, key(e))
		case !equal(o, e):
			changed = append(changed, key(e))
		}
		delete(before, key(e))
	}
	for k := range before {
		removed = append(removed, k)
	}
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed
}

func (d configDiff) attrs() []any {
	return []any{
		slog.Any("clients_added", nonNil(d.clientsAdded)), slog.Any("clients_removed", nonNil(d.clientsRemoved)),
		slog.Any("clients_changed", nonNil(d.clientsChanged)),
		slog.Any("providers_added", nonNil(d.providersAdded)), slog.Any("providers_removed", nonNil(d.providersRemoved)),
		slog.Any("providers_changed", nonNil(d.providersChanged)),
		slog.Bool("org_sync_changed", d.orgSyncChanged),
	}
}

func (d configDiff) details(restart []string) map[string]any {
	out := map[string]any{
		"clients_added": nonNil(d.clientsAdded), "clients_removed": nonNil(d.clientsRemoved), "clients_changed": nonNil(d.clientsChanged),
		"providers_added": nonNil(d.providersAdded), "providers_removed": nonNil(d.providersRemoved),
		"providers_changed": nonNil(d.providersChanged), "org_sync_changed": d.orgSyncChanged,
	}
	if len(restart) > 0 {
		out["needs_restart"] = restart
	}
	return out
}

// nonNil shows an empty list as [] rather than null.
func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
