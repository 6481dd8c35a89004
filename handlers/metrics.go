package handlers

import (
	"database/sql"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds Gatehouse's Prometheus collectors on a registry of its
// own, so several servers can live in one process (tests).
type Metrics struct {
	Registry        *prometheus.Registry
	requestDuration *prometheus.HistogramVec
	// Logins counts completed sign-ins by provider and outcome.
	Logins *prometheus.CounterVec
	// TokensIssued counts minted tokens by grant type.
	TokensIssued *prometheus.CounterVec
	// RefreshReuse counts refresh-token reuse detections.
	RefreshReuse prometheus.Counter
	// JWKSFetches counts upstream JWKS fetches by provider and outcome.
	JWKSFetches *prometheus.CounterVec
	// UpstreamRechecks counts upstream re-checks by provider and outcome
	// (success, gone, unavailable, busy, no_data, error).
	UpstreamRechecks *prometheus.CounterVec
	// RateLimitFailOpen counts requests let through because the rate-limit
	// store (Redis) could not decide.
	RateLimitFailOpen prometheus.Counter
	// BackchannelLogouts counts back-channel logout attempts by client and
	// outcome (delivered, failed, gave_up); BackchannelPending is how many
	// wait in the outbox.
	BackchannelLogouts *prometheus.CounterVec
	BackchannelPending prometheus.Gauge
	// observers caches requestDuration's children by their labels
	// (methods, route patterns and statuses: a bounded set), so a request
	// does not hash and look up its labels again.
	observers sync.Map // observerKey → prometheus.Observer
}

type observerKey struct {
	method, route string
	status        int
}

// NewMetrics registers the collectors, with Go runtime and process metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "HTTP request latency by route (the route pattern, never the raw path).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route", "status"}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total", Help: "Completed upstream sign-ins.",
		}, []string{"provider", "outcome"}),
		TokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_tokens_issued_total", Help: "Token responses by grant type.",
		}, []string{"grant_type"}),
		RefreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_refresh_token_reuse_total", Help: "Refresh tokens presented again after rotation (sessions revoked).",
		}),
		JWKSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_jwks_fetches_total", Help: "Fetches of upstream JWKS.",
		}, []string{"provider", "outcome"}),
		UpstreamRechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_rechecks_total", Help: "Re-checks of signed-in people at their upstream, at refreshes and forced by an administrator.",
		}, []string{"provider", "outcome"}),
		RateLimitFailOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_rate_limit_fail_open_total", Help: "Requests let through without a rate-limit decision because the shared store (Redis) did not answer.",
		}),
		BackchannelLogouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_backchannel_logout_total", Help: "Back-channel logout deliveries by client and outcome (delivered, failed: retried later, gave_up).",
		}, []string{"client", "outcome"}),
		BackchannelPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_backchannel_logout_pending", Help: "Back-channel logouts waiting in the outbox (all replicas), as last counted.",
		}),
	}
	reg.MustRegister(m.requestDuration, m.Logins, m.TokensIssued, m.RefreshReuse, m.JWKSFetches, m.UpstreamRechecks, m.RateLimitFailOpen,
		m.BackchannelLogouts, m.BackchannelPending,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// WatchDB adds the database pool's statistics (go_sql_open_connections,
// go_sql_in_use_connections, go_sql_wait_count_total, ... labelled
// db_name="gatehouse"): what a soak watches for leaked connections.
func (m *Metrics) WatchDB(db *sql.DB) {
	m.Registry.MustRegister(collectors.NewDBStatsCollector(db, "gatehouse"))
}

func (m *Metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.observer(methodLabel(c.Request.Method), route, c.Writer.Status()).Observe(time.Since(start).Seconds())
	}
}

// observer returns requestDuration's child of the labels.
func (m *Metrics) observer(method, route string, status int) prometheus.Observer {
	k := observerKey{method, route, status}
	if o, ok := m.observers.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o, _ := m.observers.LoadOrStore(k, m.requestDuration.WithLabelValues(method, route, strconv.Itoa(status)))
	return o.(prometheus.Observer)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// methodLabel keeps the method label to a fixed set: any token is a valid
// HTTP method, and each new label value would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
