package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/fault"
)

// Limiter decides whether key may make one more request now; when not,
// wait is how long until it may. An error means no decision (the shared
// store is unreachable). The ratelimit package has the in-memory and the
// Redis stores.
type Limiter interface {
	Allow(ctx context.Context, key string) (allowed bool, wait time.Duration, err error)
}

// failOpenWarnEvery spaces the warnings while the store fails: one line
// per minute says it, the counter says how often.
const failOpenWarnEvery = time.Minute

// maxKeyLen caps what a caller can make the store keep per key: a longer
// key (a made-up client id) is kept as its hash.
const maxKeyLen = 128

// RateLimiter answers 429 with Retry-After to a key over its limit. When
// the store cannot decide it lets the request through: a sign-in must not
// fail because Redis blinked. A nil RateLimiter limits nothing.
type RateLimiter struct {
	lim      Limiter
	log      *slog.Logger
	metrics  *Metrics
	lastWarn atomic.Int64
}

// NewRateLimiter applies lim; nil lim means no limit (a nil RateLimiter).
func NewRateLimiter(lim Limiter, log *slog.Logger, metrics *Metrics) *RateLimiter {
	if lim == nil {
		return nil
	}
	return &RateLimiter{lim: lim, log: log, metrics: metrics}
}

// PerIP limits by client IP (trusted proxies decide what that is).
func (l *RateLimiter) PerIP(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		if !l.check(c, scope, "ip", c.ClientIP()) {
			return
		}
		c.Next()
	}
}

// check answers 429 with Retry-After and returns false when scope:kind:id
// is over its limit.
func (l *RateLimiter) check(c *gin.Context, scope, kind, id string) bool {
	if l == nil {
		return true
	}
	if len(id) > maxKeyLen {
		sum := sha256.Sum256([]byte(id))
		id = "sha256-" + hex.EncodeToString(sum[:])
	}
	ok, wait, err := l.lim.Allow(c.Request.Context(), scope+":"+kind+":"+id)
	if err != nil {
		l.failedOpen(c, scope, err)
		return true
	}
	if ok {
		return true
	}
	c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeAnswer(c, lookup(fault.RateLimited), nil)
	return false
}

// failedOpen counts a request let through undecided and warns at most
// once per failOpenWarnEvery. The key (a client IP or id) is not logged.
func (l *RateLimiter) failedOpen(c *gin.Context, scope string, err error) {
	l.metrics.RateLimitFailOpen.Inc()
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if last != 0 && now-last < int64(failOpenWarnEvery) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.WarnContext(c.Request.Context(), "rate limit store unavailable: requests pass unlimited until it answers",
		slog.String("scope", scope), slog.String("error", err.Error()),
		slog.String("request_id", RequestID(c.Request.Context())),
		slog.String("next_warning_after", failOpenWarnEvery.String()),
		slog.String("counter", "gatehouse_rate_limit_fail_open_total"))
}
