package ratelimit_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-id/gatehouse/ratelimit"
	"github.com/gatehouse-id/gatehouse/ratelimit/redistest"
)

type limiter interface {
	Allow(ctx context.Context, key string) (bool, time.Duration, error)
}

// stores gives each test both stores; they must behave alike.
var stores = []struct {
	name string
	new  func(t *testing.T, perMinute int) limiter
}{
	{"memory", func(t *testing.T, perMinute int) limiter { return ratelimit.NewMemory(perMinute) }},
	{"redis", func(t *testing.T, perMinute int) limiter {
		return ratelimit.NewRedis(redistest.Client(t), ratelimit.RedisOptions{PerMinute: perMinute, Prefix: redistest.Prefix(t)})
	}},
}

func eachStore(t *testing.T, fn func(t *testing.T, newLimiter func(perMinute int) limiter)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, func(perMinute int) limiter { return s.new(t, perMinute) })
		})
	}
}

func allow(t *testing.T, l limiter, key string) (bool, time.Duration) {
	t.Helper()
	ok, wait, err := l.Allow(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok, wait
}

// TestBurstThenRefusal: a key gets perMinute requests at once, then waits
// one interval (a minute / perMinute) for the next; other keys are apart.
func TestBurstThenRefusal(t *testing.T) {
	eachStore(t, func(t *testing.T, newLimiter func(int) limiter) {
		l := newLimiter(3)
		for i := range 3 {
			if ok, _ := allow(t, l, "login:ip:203.0.113.7"); !ok {
				t.Fatalf("request %d refused within the burst", i+1)
			}
		}
		ok, wait := allow(t, l, "login:ip:203.0.113.7")
		if ok || wait <= 19*time.Second || wait > 20*time.Second {
			t.Fatalf("fourth request: allowed=%v wait=%s, want refused with 19s < wait <= 20s", ok, wait)
		}
		if ok, _ := allow(t, l, "login:ip:203.0.113.8"); !ok {
			t.Fatal("another key shares the bucket")
		}
	})
}

// TestRefill: a refused key is allowed again after the wait it was told,
// one request per interval.
func TestRefill(t *testing.T) {
	eachStore(t, func(t *testing.T, newLimiter func(int) limiter) {
		l := newLimiter(120) // one request per 500ms
		for i := range 120 {
			if ok, _ := allow(t, l, "k"); !ok {
				t.Fatalf("request %d refused within the burst", i+1)
			}
		}
		ok, wait := allow(t, l, "k")
		if ok || wait <= 0 || wait > 500*time.Millisecond {
			t.Fatalf("past the burst: allowed=%v wait=%s", ok, wait)
		}
		time.Sleep(wait + 20*time.Millisecond)
		if ok, wait := allow(t, l, "k"); !ok {
			t.Fatalf("refused after the wait it was told (now %s)", wait)
		}
		if ok, wait := allow(t, l, "k"); ok || wait < 400*time.Millisecond {
			t.Fatalf("one refill allowed two requests (wait %s)", wait)
		}
	})
}

// TestHugeRates: a rate so high that one interval is below Redis' time
// resolution still allows, and never fails.
func TestHugeRates(t *testing.T) {
	eachStore(t, func(t *testing.T, newLimiter func(int) limiter) {
		l := newLimiter(1 << 30)
		for i := range 100 {
			if ok, _ := allow(t, l, "k"); !ok {
				t.Fatalf("request %d refused at 2^30 per minute", i+1)
			}
		}
	})
}

// TestConcurrentCallersShareOneBucket: 40 callers at once (on two clients
// for Redis, as two replicas would be) get exactly the burst between them.
func TestConcurrentCallersShareOneBucket(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			var replicas []limiter
			if s.name == "redis" {
				prefix := redistest.Prefix(t)
				for range 2 {
					replicas = append(replicas, ratelimit.NewRedis(redistest.Client(t), ratelimit.RedisOptions{PerMinute: 10, Prefix: prefix}))
				}
			} else {
				replicas = []limiter{s.new(t, 10)}
			}
			var allowed atomic.Int32
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					if ok, _, err := replicas[i%len(replicas)].Allow(context.Background(), "token:client:backend"); err != nil {
						t.Error(err)
					} else if ok {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if n := allowed.Load(); n != 10 {
				t.Fatalf("%d of 40 concurrent requests allowed, want the burst of 10", n)
			}
		})
	}
}

// TestRedisKeysAreNamespacedAndExpire: the bucket lives under
// <prefix>rl:<key> and expires when it would be full again.
func TestRedisKeysAreNamespacedAndExpire(t *testing.T) {
	client := redistest.Client(t)
	prefix := redistest.Prefix(t)
	l := ratelimit.NewRedis(client, ratelimit.RedisOptions{PerMinute: 60, Prefix: prefix})
	for range 3 {
		allow(t, l, "token:ip:2001:db8::1")
	}
	ttl, err := client.PTTL(context.Background(), prefix+"rl:token:ip:2001:db8::1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 2*time.Second || ttl > 3*time.Second {
		t.Fatalf("TTL after 3 requests at 60/min = %s, want just under 3s", ttl)
	}
}

// TestRedisFailuresAreErrorsWithinTheTimeout: a Redis that refuses
// connections, or accepts and never answers, yields an error promptly,
// never a decision.
func TestRedisFailuresAreErrorsWithinTheTimeout(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	refused, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedAddr := refused.Addr().String()
	refused.Close()

	for name, addr := range map[string]string{"silent": silent.Addr().String(), "refused": refusedAddr} {
		t.Run(name, func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
			defer client.Close()
			l := ratelimit.NewRedis(client, ratelimit.RedisOptions{PerMinute: 5, Timeout: 100 * time.Millisecond})
			start := time.Now()
			ok, _, err := l.Allow(context.Background(), "k")
			if err == nil || ok {
				t.Fatalf("allowed=%v err=%v, want an error", ok, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("took %s with a 100ms timeout", d)
			}
		})
	}
}

func TestParseRedisURL(t *testing.T) {
	for _, good := range []string{"redis://127.0.0.1:6379/0", "rediss://:secret@redis.internal:6380/2", "redis://user:pw@localhost", "unix:///run/redis.sock?db=1"} {
		if _, err := ratelimit.ParseRedisURL(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for bad, want := range map[string]string{
		"http://redis.internal:6379":            `the scheme must be redis, rediss or unix, not "http"`,
		"redis.internal:6379":                   `the scheme must be`,
		"redis://:p%zzassword@redis.internal/0": "not a valid URL",
		"redis://:hunter2@redis.internal/abc":   `invalid database number: "abc"`,
		"redis://:hunter2@redis.internal/0?x=1": "unexpected option: x",
	} {
		_, err := ratelimit.ParseRedisURL(bad)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "zzassword") {
			t.Errorf("%s: error %v, want %q without the password", bad, err, want)
		}
	}
}

// BenchmarkAllow is one rate-limit decision per request, in memory and in
// Redis (one round trip on loopback), on one goroutine and on all cores.
//
//	GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:6379/15 go test -run '^$' -bench 'Allow|RedisPing' -benchtime 20000x -count 5 ./ratelimit/
func BenchmarkAllow(b *testing.B) {
	for _, s := range []string{"memory", "redis"} {
		newLimiter := func(b *testing.B) limiter {
			if s == "memory" {
				return ratelimit.NewMemory(1_000_000)
			}
			return ratelimit.NewRedis(redistest.Client(b), ratelimit.RedisOptions{PerMinute: 1_000_000, Prefix: redistest.Prefix(b)})
		}
		keys := make([]string, 1024)
		for i := range keys {
			keys[i] = "login:ip:198.51." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		}
		b.Run(s+"/sequential", func(b *testing.B) {
			l := newLimiter(b)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, err := l.Allow(ctx, keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(s+"/parallel", func(b *testing.B) {
			l := newLimiter(b)
			ctx := context.Background()
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := l.Allow(ctx, keys[next.Add(1)%int64(len(keys))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRedisPing is the floor for BenchmarkAllow/redis: one bare
// round trip on the same client.
func BenchmarkRedisPing(b *testing.B) {
	client := redistest.Client(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
