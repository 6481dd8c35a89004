package rbac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// Backoff of the background start while the issuer cannot be reached:
// the first retry after about retryMin, each next one twice as late, at
// most retryMax (each wait is jittered down to half of it, so backends
// started together do not retry together).
var (
	retryMin = time.Second
	retryMax = time.Minute
)

// devWarnInterval is how often InsecureDevPrincipal's warning repeats.
var devWarnInterval = time.Minute

// start is what the middleware loads from the issuer before it can
// verify: the discovery document (unless the keys and the introspection
// endpoint are given) and the keys, fetched in the background while the
// issuer cannot be reached.
type start struct {
	client            *http.Client
	needDiscovery     bool // for the JWKS or the introspection endpoint
	wantJWKS          bool // the keys come from the issuer's jwks_uri
	wantIntrospection bool // the introspection endpoint comes from discovery

	disc       atomic.Pointer[discovery]
	jwksFetch  atomic.Pointer[jwks.Fetcher]
	keysLoaded atomic.Bool
	readyCh    chan struct{} // closed once everything is loaded
	readyOnce  sync.Once

	mu      sync.Mutex
	lastErr error // the latest failed attempt, for Ready

	retryMin, retryMax time.Duration // the backoff's bounds

	ctx    context.Context // done once Close is called
	cancel context.CancelFunc
	wg     sync.WaitGroup // the background goroutines
}

func (m *Middleware) initStart(client *http.Client, wantJWKS, wantIntrospection bool) {
	m.client, m.wantJWKS, m.wantIntrospection = client, wantJWKS, wantIntrospection
	m.needDiscovery = wantJWKS || wantIntrospection
	m.retryMin, m.retryMax = retryMin, retryMax
	m.readyCh = make(chan struct{})
	m.ctx, m.cancel = context.WithCancel(context.Background())
}

// begin makes the first attempt within ctx; on failure it goes on in the
// background, unless the issuer said the options do not fit it.
func (m *Middleware) begin(ctx context.Context) error {
	err := m.attempt(ctx)
	switch {
	case err == nil:
		m.markReady()
		return nil
	case errors.Is(err, errMisconfigured):
		return err
	}
	m.failed(err, m.retryMin)
	m.wg.Add(1)
	go m.loadInBackground()
	return nil
}

// attempt loads what is still missing: the discovery document, then the
// keys.
func (m *Middleware) attempt(ctx context.Context) error {
	if m.needDiscovery && m.disc.Load() == nil {
		d, err := discover(ctx, m.client, m.issuer, m.wantJWKS, m.wantIntrospection)
		if err != nil {
			return err
		}
		if m.wantJWKS {
			f := jwks.HTTPFetcher(m.client, d.JWKSURI, keysFreshness)
			m.jwksFetch.Store(&f)
		}
		m.disc.Store(d)
	}
	if !m.keysLoaded.Load() {
		if err := m.keys.Load(ctx); err != nil {
			return fmt.Errorf("rbac: load the issuer's keys: %w", err)
		}
		m.keysLoaded.Store(true)
	}
	return nil
}

// loadInBackground retries with backoff until everything is loaded or
// the middleware is closed.
func (m *Middleware) loadInBackground() {
	defer m.wg.Done()
	wait := m.retryMin
	for {
		t := time.NewTimer(jittered(wait))
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, keysFetchTimeout)
		err := m.attempt(ctx)
		cancel()
		switch {
		case err == nil:
			m.markReady()
			m.log.Info("rbac: the issuer's keys are loaded; credentials are verified from now on", slog.String("issuer", m.issuer))
			return
		case m.ctx.Err() != nil:
			return
		}
		wait = min(2*wait, m.retryMax)
		m.failed(err, wait)
	}
}

// jittered is d less up to half of it.
func jittered(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d - rand.N(d/2)
}

func (m *Middleware) failed(err error, next time.Duration) {
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
	m.log.Warn("rbac: the issuer cannot be reached yet; requests with a credential are answered 503 until it can",
		slog.String("issuer", m.issuer), slog.String("error", err.Error()), slog.Duration("retry_in", next))
}

func (m *Middleware) markReady() {
	m.readyOnce.Do(func() { close(m.readyCh) })
}

func (m *Middleware) isReady() bool {
	select {
	case <-m.readyCh:
		return true
	default:
		return false
	}
}

// ErrClosed is returned by Ready once the middleware is closed before it
// was ready.
var ErrClosed = errors.New("rbac: the middleware is closed")

// Ready waits until the middleware can verify credentials (the issuer's
// discovery document and keys are loaded; at once with Options.Keys or
// InsecureDevPrincipal) and returns nil, or returns an error wrapping
// ErrUnavailable, with the latest failure, once ctx is done (or
// ErrClosed, once Close was called). It returns at once when ready, and
// with a done ctx when not: a check that does not wait.
func (m *Middleware) Ready(ctx context.Context) error {
	if m.isReady() {
		return nil
	}
	var cause error
	select {
	case <-m.readyCh:
		return nil
	case <-ctx.Done():
		cause = ctx.Err()
	case <-m.ctx.Done():
		cause = ErrClosed
	}
	m.mu.Lock()
	last := m.lastErr
	m.mu.Unlock()
	if last == nil {
		return fmt.Errorf("%w: rbac: the issuer's keys are not loaded yet: %w", ErrUnavailable, cause)
	}
	return fmt.Errorf("%w: rbac: the issuer's keys are not loaded yet (latest attempt: %v): %w", ErrUnavailable, last, cause)
}

// ReadyHandler answers a readiness probe without waiting: 200
// {"status":"ready"} once the middleware can verify credentials, else
// 503 with Retry-After and {"error":"temporarily_unavailable",...}. Its
// answers say nothing about why (the latest failure goes to
// Options.Logger); mount it where the orchestrator probes, e.g.
// mux.Handle("GET /readyz", m.ReadyHandler()).
func (m *Middleware) ReadyHandler() http.Handler {
	notReady := prepared(Refusal{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable,
		Description: "the issuer's keys are not loaded yet", RetryAfter: RetryAfterSeconds})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.isReady() {
			WriteRefusal(w, notReady)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
}

// Close stops the middleware's background work (the start with backoff,
// key refreshes, InsecureDevPrincipal's warnings) and waits for its own
// goroutines. The middleware still answers afterwards with what it has:
// cached keys verify, a key it would have to fetch answers 503. Close is
// idempotent and returns nil.
func (m *Middleware) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}

// devPrincipal checks InsecureDevPrincipal and whether the process looks
// like production.
func devPrincipal(opts Options) (*Principal, error) {
	if opts.Production {
		return nil, errors.New("rbac: Options.InsecureDevPrincipal cannot be used with Options.Production: it lets every request in without a credential")
	}
	if env := strings.TrimSpace(os.Getenv("GATEHOUSE_ENV")); env != "" && !strings.EqualFold(env, "development") {
		return nil, fmt.Errorf("rbac: Options.InsecureDevPrincipal cannot be used with GATEHOUSE_ENV=%q: only in development (GATEHOUSE_ENV unset or development)", env)
	}
	d := *opts.InsecureDevPrincipal
	if d.Subject == "" {
		return nil, errors.New("rbac: Options.InsecureDevPrincipal.Subject is required")
	}
	for _, g := range d.Permissions {
		if err := ValidateGrant(g); err != nil {
			return nil, fmt.Errorf("rbac: Options.InsecureDevPrincipal.Permissions: %w", err)
		}
	}
	for _, r := range d.Roles {
		if err := ValidateRoleName(r); err != nil {
			return nil, fmt.Errorf("rbac: Options.InsecureDevPrincipal.Roles: %w", err)
		}
	}
	if d.Kind == "" {
		d.Kind = KindInsecureDev
	}
	d.Roles, d.Permissions = append([]string(nil), d.Roles...), append([]string(nil), d.Permissions...)
	return NewPrincipal(d), nil
}

// warnInsecure says, now and every devWarnInterval until Close, that
// every request acts as the development principal.
func (m *Middleware) warnInsecure(log *slog.Logger) {
	warn := func() {
		log.Warn("rbac: INSECURE: Options.InsecureDevPrincipal is set: every request acts as this principal without any credential; never run this in production",
			slog.String("subject", m.dev.Subject), slog.String("org_id", m.dev.OrgID), slog.Any("permissions", m.dev.Permissions))
	}
	warn()
	every := devWarnInterval
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return
			case <-t.C:
				warn()
			}
		}
	}()
}
