package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is what the workers saw.
type result struct {
	wall      time.Duration
	ok        int
	latencies []time.Duration // of successful requests, sorted
	errors    map[string]int  // by kind
}

// drive runs do from o.concurrency workers until o.duration passes or
// o.maxRequests were sent, printing a progress line every
// o.progressEvery.
func drive(o options, do func(ctx context.Context, worker int) string) *result {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var (
		mu     sync.Mutex
		lat    = make([]time.Duration, 0, 1<<16)
		errs   = map[string]int{}
		sent   atomic.Int64
		okN    atomic.Int64
		failN  atomic.Int64
		wg     sync.WaitGroup
		start  = time.Now()
		ticker = time.NewTicker(o.progressEvery)
	)
	defer ticker.Stop()
	go func() {
		last, lastAt := int64(0), start
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-ticker.C:
				n := okN.Load()
				fmt.Printf("  %5.1fs  ok %7d  %6.0f/s now  %6.0f/s overall  errors %d\n", now.Sub(start).Seconds(), n,
					float64(n-last)/now.Sub(lastAt).Seconds(), float64(n)/now.Sub(start).Seconds(), failN.Load())
				last, lastAt = n, now
			}
		}
	}()
	for i := range o.concurrency {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && sent.Add(1) <= int64(o.maxRequests) {
				t0 := time.Now()
				kind := do(ctx, i)
				elapsed := time.Since(t0)
				if ctx.Err() != nil && kind != "" {
					break // cut short by the end of the run, not a failure
				}
				if kind == "" {
					okN.Add(1)
					mine = append(mine, elapsed)
					continue
				}
				failN.Add(1)
				mu.Lock()
				errs[kind]++
				mu.Unlock()
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	return &result{wall: wall, ok: len(lat), latencies: lat, errors: errs}
}

func (r *result) rate() float64 { return float64(r.ok) / r.wall.Seconds() }

func (r *result) errorCount() int {
	n := 0
	for _, v := range r.errors {
		n += v
	}
	return n
}

func (r *result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

func (r *result) print(o options, alg, describe string) {
	round := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Printf("-- %s, signing %s, %d workers, %s\n", o.mode, alg, o.concurrency, r.wall.Round(time.Millisecond))
	fmt.Printf("   ok %d (%.0f/s)  p50 %s  p95 %s  p99 %s  max %s\n", r.ok, r.rate(),
		round(r.pct(0.50)), round(r.pct(0.95)), round(r.pct(0.99)), round(r.pct(1)))
	if len(r.errors) == 0 {
		fmt.Println("   errors: none")
		return
	}
	fmt.Println("   errors by kind:")
	for _, k := range slices.Sorted(maps.Keys(r.errors)) {
		fmt.Printf("     %6d  %s\n", r.errors[k], k)
	}
}
