// Command loadtest sends a bounded load of token requests to a running
// Gatehouse on this machine and prints throughput and latency percentiles.
// scripts/load.sh starts a Gatehouse and runs it; see docs/performance.md.
//
//	loadtest -url http://127.0.0.1:8090 -client load -secret ... -duration 20s -concurrency 16
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8090", "Gatehouse base URL (loopback only)")
	client := flag.String("client", "load", "confidential client id")
	secret := flag.String("secret", "", "client secret")
	path := flag.String("path", "/auth/token", "endpoint: /auth/token (client_credentials) or any GET path such as /.well-known/jwks.json")
	duration := flag.Duration("duration", 15*time.Second, "how long to send")
	concurrency := flag.Int("concurrency", 16, "concurrent workers")
	maxRequests := flag.Int("max-requests", 1_000_000, "stop after this many requests")
	flag.Parse()

	u, err := url.Parse(*base)
	if err != nil || !loopback(u.Hostname()) {
		fmt.Fprintln(os.Stderr, "loadtest: -url must be a loopback address on this machine")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	transport := &http.Transport{MaxIdleConnsPerHost: *concurrency}
	httpClient := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  = map[int]int{}
		sent      int
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if sent >= *maxRequests {
			return false
		}
		sent++
		return true
	}
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && take() {
				var req *http.Request
				if *path == "/auth/token" {
					req, _ = http.NewRequestWithContext(ctx, http.MethodPost, *base+*path, strings.NewReader(form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(*client, *secret)
				} else {
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, *base+*path, nil)
				}
				t0 := time.Now()
				resp, err := httpClient.Do(req)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				elapsed := time.Since(t0)
				mu.Lock()
				if status == http.StatusOK {
					latencies = append(latencies, elapsed)
				} else if ctx.Err() == nil {
					failures[status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	fmt.Printf("endpoint %s, %d workers, %s\n", *path, *concurrency, wall.Round(time.Millisecond))
	fmt.Printf("ok %d (%.0f/s)  p50 %s  p90 %s  p99 %s  max %s\n", len(latencies), float64(len(latencies))/wall.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	if len(failures) > 0 {
		fmt.Printf("failures by status (0 = transport error): %v\n", failures)
		os.Exit(1)
	}
}

func loopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}
