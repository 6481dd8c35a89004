// Package ratelimit holds the stores Gatehouse's rate limits run on: a
// token bucket per key in memory (one replica's own count) and the same
// bucket in Redis (one count shared by every replica). Both allow a key
// perMinute requests per minute with a burst of perMinute, and say how
// long to wait when a request is refused.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Memory keeps one token bucket per key in this process. Keys unused for
// ten minutes are forgotten.
type Memory struct {
	every     time.Duration
	burst     int
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewMemory allows perMinute requests per minute per key (at least 1).
func NewMemory(perMinute int) *Memory {
	perMinute = max(perMinute, 1)
	return &Memory{every: time.Minute / time.Duration(perMinute), burst: perMinute,
		buckets: map[string]*bucket{}, lastSweep: time.Now()}
}

// Allow takes one request for key; when none is left it reports how long
// until one is. It never fails.
func (m *Memory) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > time.Minute {
		for k, b := range m.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(m.buckets, k)
			}
		}
		m.lastSweep = now
	}
	b, ok := m.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Every(m.every), m.burst)}
		m.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}
