// Package config reads Gatehouse's settings from the environment, an
// optional .env file (development) and an optional YAML file, and checks
// them: every problem is reported at once, each naming its field.
//
// It checks each setting with the parser of the package that will use it,
// so a value it accepts is one that package accepts: dburl for
// GATEHOUSE_DATABASE_URL (no storage or driver code), ratelimit for
// GATEHOUSE_REDIS_URL (go-redis's own URL parser) and rbac for the grants
// and role names of the YAML file (the grammar backends enforce).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/ratelimit"
)

// Environments.
const (
	Development = "development"
	Production  = "production"
)

// DevSecretKey is the publicly known key used when GATEHOUSE_SECRET_KEY is
// unset in development. It protects nothing; production refuses it.
const DevSecretKey = "gatehouse-development-secret-key-do-not-use-in-production"

// Config is every server setting. Durations are positive, lists are
// trimmed, and Validate has accepted the whole of it.
type Config struct {
	Env         string
	Issuer      string
	Addr        string
	DatabaseURL string
	DBPool      Pool
	// MetricsAddr, when set, is the only listener that serves /metrics
	// (the main one answers 404 for it); empty serves it on Addr.
	MetricsAddr string
	// SecretKey derives the keys that encrypt private keys at rest and seal
	// login state. SecretKeyDefaulted is true when the development key is in use.
	SecretKey          string
	SecretKeyDefaulted bool
	ConfigFile         string
	SigningAlg         string
	AccessTokenTTL     time.Duration
	IDTokenTTL         time.Duration
	RefreshIdleTTL     time.Duration
	RefreshAbsoluteTTL time.Duration
	RefreshReuseGrace  time.Duration
	AuthCodeTTL        time.Duration
	LoginStateTTL      time.Duration
	// DeviceCodeTTL is how long a device authorization (RFC 8628) waits
	// for its person; DevicePollInterval is the polling interval it
	// answers; DeviceCodeAttempts caps user-code entries per client IP
	// and minute at /device (0: no cap).
	DeviceCodeTTL      time.Duration
	DevicePollInterval time.Duration
	DeviceCodeAttempts int
	// SSOIdleTTL ends a browser session not used for this long;
	// SSOAbsoluteTTL ends it this long after the upstream sign-in
	// (single sign-on, docs/oidc-provider.md).
	SSOIdleTTL        time.Duration
	SSOAbsoluteTTL    time.Duration
	KeyRotationPeriod time.Duration
	KeyPublishLead    time.Duration
	JWKSMaxAge        time.Duration
	AutoMigrate       bool
	TrustedProxies    []string
	CORSOrigins       []string
	LogLevel          string
	// LogFormat is json, text, or empty: text when stderr is a terminal,
	// JSON otherwise (GATEHOUSE_LOG_FORMAT).
	LogFormat string
	// AdminAudience is the aud an access token needs for the admin API.
	AdminAudience string
	// DevLogin enables the built-in dev provider.
	DevLogin        bool
	RateLimit       int
	MaxBodyBytes    int64
	ShutdownTimeout time.Duration

	// APIKeyTokenTTL caps the lifetime of an access token exchanged for
	// an API key: backends that verify it locally accept it this long
	// after the key is disabled or deleted.
	APIKeyTokenTTL time.Duration

	// BackchannelLogoutTimeout bounds one POST of a logout token to a
	// client's backchannel_logout_uri; BackchannelLogoutGiveUp is how long
	// after the session ended Gatehouse stops retrying a client that does
	// not answer (docs/oidc-provider.md, "Back-channel logout").
	BackchannelLogoutTimeout time.Duration
	BackchannelLogoutGiveUp  time.Duration

	// ClientsPollInterval is how often each replica checks whether the
	// clients stored in the database changed (GATEHOUSE_CLIENTS_POLL_INTERVAL).
	ClientsPollInterval time.Duration
	// Registration is Dynamic Client Registration (GATEHOUSE_DCR_*).
	Registration Registration

	// RedisURL, when set, keeps rate limits in Redis, shared by every
	// replica; empty keeps them in each replica's memory.
	RedisURL string
	// RedisKeyPrefix starts every key Gatehouse writes to Redis.
	RedisKeyPrefix string

	// File is the YAML configuration (empty when GATEHOUSE_CONFIG is unset).
	File File
	// Warnings are the unsafe development defaults in effect.
	Warnings []string

	// source is where Load read this configuration, for Reload.
	source Options
}

// Pool bounds the database connection pool.
type Pool struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// Production reports whether unsafe defaults are fatal.
func (c *Config) Production() bool { return c.Env == Production }

// Problem is one invalid setting.
type Problem struct {
	Field   string
	Message string
}

// ValidationError lists every invalid setting; Error prints one line each.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, one line each.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Field + ": " + p.Message
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// Lookup reads one variable, like os.LookupEnv.
type Lookup func(name string) (string, bool)

// Options tell Load where to read from; zero values mean the process
// environment and ".env" in the working directory.
type Options struct {
	Lookup     Lookup
	DotenvPath string
}

// Load reads and validates the configuration. Warnings are unsafe
// development defaults in effect; production turns them into problems.
func Load(opts Options) (*Config, []string, error) {
	lookup := opts.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	path := opts.DotenvPath
	if path == "" {
		path = ".env"
	}
	if env, _ := lookup("GATEHOUSE_ENV"); env != Production {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			vars, err := parseDotenv(path, data)
			if err != nil {
				return nil, nil, err
			}
			process := lookup
			lookup = func(name string) (string, bool) {
				if v, ok := process(name); ok {
					return v, true
				}
				v, ok := vars[name]
				return v, ok
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	r := &reader{lookup: lookup}
	c := r.read()
	if c.ConfigFile != "" {
		f, err := readFile(c.ConfigFile, lookup)
		if err != nil {
			return nil, nil, err
		}
		c.File = *f
	}
	warnings := validate(c, r)
	if len(r.problems) > 0 {
		return nil, warnings, &ValidationError{Problems: r.problems}
	}
	c.Warnings = warnings
	c.source = opts
	return c, warnings, nil
}

// reader parses variables and collects one problem per bad field.
type reader struct {
	lookup   Lookup
	problems []Problem
}

func (r *reader) fail(field, format string, args ...any) {
	r.problems = append(r.problems, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (r *reader) str(name, def string) string {
	if v, ok := r.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func (r *reader) set(name string) bool {
	v, ok := r.lookup(name)
	return ok && strings.TrimSpace(v) != ""
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	if !r.set(name) {
		return def
	}
	d, err := time.ParseDuration(r.str(name, ""))
	if err != nil || d <= 0 {
		r.fail(name, "must be a positive duration such as 90s, 15m or 720h")
		return def
	}
	return d
}

func (r *reader) integer(name string, def, min int) int {
	if !r.set(name) {
		return def
	}
	n, err := strconv.Atoi(r.str(name, ""))
	if err != nil || n < min {
		r.fail(name, "must be a whole number of at least %d", min)
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	if !r.set(name) {
		return def
	}
	b, err := strconv.ParseBool(r.str(name, ""))
	if err != nil {
		r.fail(name, "must be true or false")
		return def
	}
	return b
}

func (r *reader) list(name string) []string {
	var out []string
	for _, part := range strings.Split(r.str(name, ""), ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) read() *Config {
	// Idle connections default to the open ones: a pool that may keep
	// fewer idle than it opens closes connections as soon as a burst of
	// requests ends and opens new ones at the next, and a new PostgreSQL
	// connection costs a server process and the planning of every
	// statement again (docs/performance.md#refresh-grant).
	maxOpen := r.integer("GATEHOUSE_DB_MAX_OPEN_CONNS", 20, 1)
	c := &Config{
		Env:         strings.ToLower(r.str("GATEHOUSE_ENV", Development)),
		Issuer:      r.str("GATEHOUSE_ISSUER", "http://localhost:8080"),
		Addr:        r.str("GATEHOUSE_ADDR", ":8080"),
		MetricsAddr: r.str("GATEHOUSE_METRICS_ADDR", ""),
		DatabaseURL: r.str("GATEHOUSE_DATABASE_URL", "./gatehouse.db"),
		DBPool: Pool{
			MaxOpenConns:    maxOpen,
			MaxIdleConns:    r.integer("GATEHOUSE_DB_MAX_IDLE_CONNS", maxOpen, 0),
			ConnMaxLifetime: r.duration("GATEHOUSE_DB_CONN_MAX_LIFETIME", 30*time.Minute),
		},
		SecretKey:          r.str("GATEHOUSE_SECRET_KEY", ""),
		ConfigFile:         r.str("GATEHOUSE_CONFIG", ""),
		SigningAlg:         r.str("GATEHOUSE_SIGNING_ALG", "RS256"),
		AccessTokenTTL:     r.duration("GATEHOUSE_ACCESS_TOKEN_TTL", 15*time.Minute),
		IDTokenTTL:         r.duration("GATEHOUSE_ID_TOKEN_TTL", time.Hour),
		RefreshIdleTTL:     r.duration("GATEHOUSE_REFRESH_IDLE_TTL", 7*24*time.Hour),
		RefreshAbsoluteTTL: r.duration("GATEHOUSE_REFRESH_ABSOLUTE_TTL", 30*24*time.Hour),
		RefreshReuseGrace:  r.duration("GATEHOUSE_REFRESH_REUSE_GRACE", 2*time.Second),
		AuthCodeTTL:        r.duration("GATEHOUSE_AUTH_CODE_TTL", 60*time.Second),
		LoginStateTTL:      r.duration("GATEHOUSE_LOGIN_STATE_TTL", 10*time.Minute),
		DeviceCodeTTL:      r.duration("GATEHOUSE_DEVICE_CODE_TTL", 10*time.Minute),
		DevicePollInterval: r.duration("GATEHOUSE_DEVICE_POLL_INTERVAL", 5*time.Second),
		DeviceCodeAttempts: r.integer("GATEHOUSE_DEVICE_CODE_ATTEMPTS", 10, 0),
		SSOIdleTTL:         r.duration("GATEHOUSE_SSO_IDLE_TTL", 12*time.Hour),
		SSOAbsoluteTTL:     r.duration("GATEHOUSE_SSO_ABSOLUTE_TTL", 7*24*time.Hour),
		APIKeyTokenTTL:     r.duration("GATEHOUSE_API_KEY_TOKEN_TTL", 5*time.Minute),
		KeyRotationPeriod:  r.duration("GATEHOUSE_KEY_ROTATION_PERIOD", 30*24*time.Hour),
		KeyPublishLead:     r.duration("GATEHOUSE_KEY_PUBLISH_LEAD", time.Hour),
		JWKSMaxAge:         r.duration("GATEHOUSE_JWKS_MAX_AGE", 5*time.Minute),
		AutoMigrate:        r.boolean("GATEHOUSE_AUTO_MIGRATE", true),
		TrustedProxies:     r.list("GATEHOUSE_TRUSTED_PROXIES"),
		CORSOrigins:        r.list("GATEHOUSE_CORS_ORIGINS"),
		LogLevel:           strings.ToLower(r.str("GATEHOUSE_LOG_LEVEL", "info")),
		LogFormat:          strings.ToLower(r.str("GATEHOUSE_LOG_FORMAT", "")),
		AdminAudience:      r.str("GATEHOUSE_ADMIN_AUDIENCE", "gatehouse-admin"),
		RateLimit:          r.integer("GATEHOUSE_RATE_LIMIT", 120, 0),
		RedisURL:           r.str("GATEHOUSE_REDIS_URL", ""),
		RedisKeyPrefix:     r.str("GATEHOUSE_REDIS_KEY_PREFIX", "gatehouse:"),
		MaxBodyBytes:       int64(r.integer("GATEHOUSE_MAX_BODY_BYTES", 1<<20, 1024)),
		ShutdownTimeout:    r.duration("GATEHOUSE_SHUTDOWN_TIMEOUT", 20*time.Second),

		BackchannelLogoutTimeout: r.duration("GATEHOUSE_BACKCHANNEL_LOGOUT_TIMEOUT", 5*time.Second),
		BackchannelLogoutGiveUp:  r.duration("GATEHOUSE_BACKCHANNEL_LOGOUT_GIVE_UP", 24*time.Hour),
		ClientsPollInterval:      r.duration("GATEHOUSE_CLIENTS_POLL_INTERVAL", 2*time.Second),
		Registration:             r.readRegistration(),
	}
	// Without GATEHOUSE_ISSUER, the issuer follows the listen port, so
	// GATEHOUSE_ADDR=:9000 alone gives http://localhost:9000.
	if !r.set("GATEHOUSE_ISSUER") {
		if _, port, err := net.SplitHostPort(c.Addr); err == nil && port != "" && port != "0" {
			c.Issuer = "http://localhost:" + port
		}
	}
	// GATEHOUSE_DEV_LOGIN unset means on only in development on a
	// localhost issuer: a reachable server that merely forgot
	// GATEHOUSE_ENV=production must not let anyone sign in as anyone.
	c.DevLogin = r.boolean("GATEHOUSE_DEV_LOGIN", c.Env != Production && issuerIsLoopback(c.Issuer))
	return c
}

// validate checks cross-field rules and returns the warnings for unsafe
// development defaults (problems in production).
func validate(c *Config, r *reader) []string {
	var warnings []string
	unsafe := func(field, msg string) {
		if c.Production() {
			r.fail(field, "%s: not allowed with GATEHOUSE_ENV=production", msg)
		} else {
			warnings = append(warnings, field+": "+msg)
		}
	}
	if c.Env != Development && c.Env != Production {
		r.fail("GATEHOUSE_ENV", "must be development or production, not %q", c.Env)
	}
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		r.fail("GATEHOUSE_ISSUER", "must be an absolute http(s) URL without query or fragment, such as https://auth.example.com")
	} else if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		unsafe("GATEHOUSE_ISSUER", "plain-HTTP issuer "+c.Issuer+" outside localhost")
	}
	if d := c.DevicePollInterval; d%time.Second != 0 || d > time.Minute {
		// RFC 8628 states the interval in whole seconds.
		r.fail("GATEHOUSE_DEVICE_POLL_INTERVAL", "must be whole seconds between 1s and 60s, such as 5s")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		r.fail("GATEHOUSE_ADDR", "must be host:port or :port, such as :8080")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			r.fail("GATEHOUSE_METRICS_ADDR", "must be host:port or :port, such as 127.0.0.1:9090")
		} else if _, port, _ := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr == c.Addr && port != "0" {
			r.fail("GATEHOUSE_METRICS_ADDR", "must differ from GATEHOUSE_ADDR (leave it empty to serve /metrics on the main listener)")
		}
	}
	switch {
	case c.SecretKey == "":
		unsafe("GATEHOUSE_SECRET_KEY", "unset (the public development key is used)")
		c.SecretKey, c.SecretKeyDefaulted = DevSecretKey, true
	case len(c.SecretKey) < 32:
		r.fail("GATEHOUSE_SECRET_KEY", "must be at least 32 bytes (it is %d); generate one with `openssl rand -base64 48`", len(c.SecretKey))
	case c.SecretKey == DevSecretKey:
		unsafe("GATEHOUSE_SECRET_KEY", "is the public development key")
	}
	switch c.SigningAlg {
	case "RS256", "ES256", "EdDSA":
	default:
		r.fail("GATEHOUSE_SIGNING_ALG", "must be RS256, ES256 or EdDSA, not %q", c.SigningAlg)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		r.fail("GATEHOUSE_LOG_LEVEL", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		r.fail("GATEHOUSE_LOG_FORMAT", "must be json or text (or unset: text on a terminal, JSON otherwise), not %q", c.LogFormat)
	}
	for _, p := range c.TrustedProxies {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				r.fail("GATEHOUSE_TRUSTED_PROXIES", "%q is neither an IP address nor a CIDR range", p)
			}
		}
	}
	for _, o := range c.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			r.fail("GATEHOUSE_CORS_ORIGINS", "%q must be an origin such as https://app.example.com", o)
		}
	}
	if _, err := dburl.Parse(c.DatabaseURL); err != nil {
		r.fail("GATEHOUSE_DATABASE_URL", "%v", err)
	}
	if c.RedisURL != "" {
		if _, err := ratelimit.ParseRedisURL(c.RedisURL); err != nil {
			r.fail("GATEHOUSE_REDIS_URL", "%v", err)
		}
	}
	if c.SSOAbsoluteTTL < c.SSOIdleTTL {
		r.fail("GATEHOUSE_SSO_ABSOLUTE_TTL", "must not be shorter than GATEHOUSE_SSO_IDLE_TTL (%s)", c.SSOIdleTTL)
	}
	if c.RefreshAbsoluteTTL < c.RefreshIdleTTL {
		r.fail("GATEHOUSE_REFRESH_ABSOLUTE_TTL", "must not be shorter than GATEHOUSE_REFRESH_IDLE_TTL (%s)", c.RefreshIdleTTL)
	}
	if c.KeyRotationPeriod <= c.KeyPublishLead {
		r.fail("GATEHOUSE_KEY_ROTATION_PERIOD", "must be longer than GATEHOUSE_KEY_PUBLISH_LEAD (%s)", c.KeyPublishLead)
	}
	if c.KeyPublishLead < c.JWKSMaxAge {
		r.fail("GATEHOUSE_KEY_PUBLISH_LEAD", "must be at least GATEHOUSE_JWKS_MAX_AGE (%s) so verifiers see a new key before it signs", c.JWKSMaxAge)
	}
	if c.DevLogin {
		unsafe("GATEHOUSE_DEV_LOGIN", "the dev sign-in form is enabled: anyone can sign in as anyone")
	}
	validateFile(c, r, unsafe)
	return warnings
}

func issuerIsLoopback(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && IsLoopbackHost(u.Hostname())
}

// IsLoopbackHost reports whether host names this machine only.
func IsLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
