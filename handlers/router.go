package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/fault"
)

// ReadinessCheck is one condition /readyz reports; Check returns nil when
// it holds.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Informative checks are reported ("failing", status "degraded")
	// without making the replica unready (an upstream identity provider
	// every replica shares).
	Informative bool
}

// RouterOptions configure the engine and its middleware.
type RouterOptions struct {
	Log            *slog.Logger
	Metrics        *Metrics
	TrustedProxies []string
	CORSOrigins    []string
	MaxBodyBytes   int64
	// HSTS adds Strict-Transport-Security (an https issuer).
	HSTS  bool
	Ready []ReadinessCheck
	// MoreReady, when set, adds checks that change at run time (one per
	// provider of a reloaded configuration file), asked at each request.
	MoreReady func() []ReadinessCheck
	// MetricsElsewhere leaves /metrics off this router (it answers 404):
	// another listener serves Metrics.Handler (GATEHOUSE_METRICS_ADDR).
	MetricsElsewhere bool
}

func init() { gin.SetMode(gin.ReleaseMode) }

// NewRouter returns the engine with middleware and the operational
// routes (/healthz, /readyz and, unless MetricsElsewhere, /metrics);
// feature handlers add their routes.
func NewRouter(opts RouterOptions) (*gin.Engine, error) {
	r := gin.New()
	// Only configured proxies may set the client IP (Gin trusts all by default).
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		return nil, fmt.Errorf("GATEHOUSE_TRUSTED_PROXIES: %w", err)
	}
	r.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	r.HandleMethodNotAllowed = true
	r.Use(requestID(), recovery(opts.Log), accessLog(opts.Log), opts.Metrics.middleware(),
		securityHeaders(opts.HSTS), bodyLimit(opts.MaxBodyBytes))
	if len(opts.CORSOrigins) > 0 {
		r.Use(corsFor(opts.CORSOrigins))
	}
	r.NoRoute(func(c *gin.Context) { writeAnswer(c, lookup(fault.NoSuchEndpoint), nil) })
	r.NoMethod(func(c *gin.Context) { writeAnswer(c, lookup(fault.MethodNotAllowed), nil) })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", readyz(opts.Log, opts.Ready, opts.MoreReady))
	if !opts.MetricsElsewhere {
		h := opts.Metrics.Handler()
		r.GET("/metrics", func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
	}
	return r, nil
}

// corsFor answers CORS for the registered origins only. A request from
// another origin gets no CORS headers, so the browser keeps the answer
// from the page that sent it; it is not refused, since browsers send an
// Origin with every form POST, and the upstream's cross-site POST to the
// SAML ACS or a client's logout form must reach Gatehouse. A preflight
// from another origin is refused (403).
// Origins are compared as browsers send them: lowercase, and without the
// trailing slash GATEHOUSE_CORS_ORIGINS accepts.
func corsFor(origins []string) gin.HandlerFunc {
	registered := map[string]bool{}
	var allow []string
	for _, o := range origins {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		registered[o] = true
		allow = append(allow, o)
	}
	handle := cors.New(cors.Config{
		AllowOrigins:  allow,
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowHeaders:  []string{"Authorization", "Content-Type", RequestIDHeader},
		ExposeHeaders: []string{RequestIDHeader, "WWW-Authenticate"},
		MaxAge:        10 * time.Minute,
	})
	return func(c *gin.Context) {
		if o := c.GetHeader("Origin"); o != "" && c.Request.Method != http.MethodOptions && !registered[strings.ToLower(o)] {
			return
		}
		handle(c)
	}
}

// readyz runs every check with a deadline; failures are named in the body
// (details go to the log, not to the caller).
func readyz(log *slog.Logger, fixed []ReadinessCheck, more func() []ReadinessCheck) gin.HandlerFunc {
	return func(c *gin.Context) {
		checks := fixed
		if more != nil {
			checks = append(slices.Clip(fixed), more()...)
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		results := gin.H{}
		ready, degraded := true, false
		for _, chk := range checks {
			if err := chk.Check(ctx); err != nil {
				if chk.Informative {
					degraded = true
				} else {
					ready = false
				}
				results[chk.Name] = "failing"
				log.WarnContext(ctx, "readiness check failing", slog.String("check", chk.Name),
					slog.String("error", err.Error()), slog.String("request_id", RequestID(c.Request.Context())))
				continue
			}
			results[chk.Name] = "ok"
		}
		switch {
		case !ready:
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": results})
		case degraded:
			c.JSON(http.StatusOK, gin.H{"status": "degraded", "checks": results})
		default:
			c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": results})
		}
	}
}
