package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultTimeout bounds one decision in Redis: past it the caller gets an
// error (and Gatehouse lets the request through) rather than a sign-in
// held up by a slow Redis.
const DefaultTimeout = 250 * time.Millisecond

// gcra is the generic cell rate algorithm, the token bucket kept as one
// number: the key holds the time (µs, Redis' clock) at which its bucket is
// full again. One script decides and records, so concurrent replicas
// cannot both take the last request, and Redis' clock is the only one that
// counts. The key expires when the bucket is full, so idle keys cost
// nothing (after at least 1 ms: at µs since 1970 a double is exact to
// 0.25 µs, so an interval below that can add nothing).
//
// KEYS[1] the bucket; ARGV[1] µs between requests at the sustained rate;
// ARGV[2] the burst. Returns {1, 0} when allowed, {0, µs to wait} when not.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local full = tonumber(redis.call('GET', KEYS[1]) or 0)
if full < now then full = now end
local wait = full + interval - burst * interval - now
if wait > 0 then
  return {0, math.ceil(wait)}
end
full = full + interval
redis.call('SET', KEYS[1], string.format('%.0f', full), 'PX', math.max(1, math.ceil((full - now) / 1000)))
return {1, 0}
`)

// Redis keeps each key's bucket in Redis, shared by every replica that
// uses the same Redis and prefix.
type Redis struct {
	client   redis.Scripter
	prefix   string
	interval string
	burst    int
	timeout  time.Duration
}

// RedisOptions configure a Redis limiter.
type RedisOptions struct {
	// PerMinute is the sustained rate and the burst (at least 1).
	PerMinute int
	// Prefix starts every key; the buckets are Prefix + "rl:" + key.
	Prefix string
	// Timeout bounds one decision; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewRedis returns a limiter on client.
func NewRedis(client redis.Scripter, opts RedisOptions) *Redis {
	perMinute := max(opts.PerMinute, 1)
	every := time.Minute / time.Duration(perMinute)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Redis{client: client, prefix: opts.Prefix + "rl:", burst: perMinute, timeout: timeout,
		interval: strconv.FormatFloat(float64(every.Nanoseconds())/1e3, 'f', -1, 64)}
}

// Allow takes one request for key in one round trip; when none is left it
// reports how long until one is. An error means Redis did not decide.
func (l *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := gcra.Run(ctx, l.client, []string{l.prefix + key}, l.interval, l.burst).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("redis rate limit: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redis rate limit: unexpected reply %v", res)
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}

var quietOnce sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// ParseRedisURL reads a GATEHOUSE_REDIS_URL:
// redis://[user:password@]host[:port][/db], rediss:// for TLS, or
// unix:///path/to/socket, and sets Gatehouse's client defaults. Its
// errors never repeat the password.
func ParseRedisURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL; use redis://[:password@]host:6379/0, or rediss:// for TLS")
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("the scheme must be redis, rediss or unix, not %q", u.Scheme)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	// The caller's deadline bounds every call, so a blocked socket cannot
	// outlast a decision's Timeout.
	opts.ContextTimeoutEnabled = true
	// One dial and one retry per call: a Redis that refuses does so at
	// once, and more attempts only spend the Timeout. The retry replaces a
	// pooled connection Redis closed (a restart).
	opts.DialerRetries = 1
	if !u.Query().Has("max_retries") {
		opts.MaxRetries = 1
	}
	// No maintenance-notification handshake: one round trip less per
	// connection, for a feature of managed clusters Gatehouse does not use.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opts, nil
}

// Connect opens a client for a GATEHOUSE_REDIS_URL and pings it, so a
// Redis that cannot be reached stops start-up as the database does.
func Connect(ctx context.Context, raw string) (*redis.Client, error) {
	opts, err := ParseRedisURL(raw)
	if err != nil {
		return nil, err
	}
	// go-redis prints a plain-text line on stderr for every failed dial;
	// Gatehouse's JSON log says it once a minute instead (the logger is
	// the library's only one, so this holds for the whole process).
	quietOnce.Do(func() { redis.SetLogger(discard{}) })
	client := redis.NewClient(opts)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close()
		where := opts.Addr
		if opts.Network == "tcp" {
			where += "/" + strconv.Itoa(opts.DB)
		}
		return nil, fmt.Errorf("cannot reach redis at %s: %w", where, err)
	}
	return client, nil
}
