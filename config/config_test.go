package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/rbac"
)

func env(vars map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func load(t *testing.T, vars map[string]string) (*Config, []string, error) {
	t.Helper()
	return Load(Options{Lookup: env(vars), DotenvPath: filepath.Join(t.TempDir(), "none.env")})
}

const goodKey = "0123456789abcdef0123456789abcdef"

func TestDefaults(t *testing.T) {
	c, warnings, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "http://localhost:8080" || c.Addr != ":8080" || c.MetricsAddr != "" || c.DatabaseURL != "./gatehouse.db" ||
		c.SigningAlg != "RS256" || !c.AutoMigrate || !c.DevLogin || c.AccessTokenTTL.Minutes() != 15 || c.APIKeyTokenTTL.Minutes() != 5 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if !c.SecretKeyDefaulted || c.SecretKey != DevSecretKey {
		t.Fatal("development default secret key not applied")
	}
	joined := strings.Join(warnings, "\n")
	for _, want := range []string{"GATEHOUSE_SECRET_KEY", "GATEHOUSE_DEV_LOGIN"} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings %q lack %s", joined, want)
		}
	}
}

func TestDevLoginDefaultsOffOutsideLocalhost(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		want bool
	}{
		{map[string]string{}, true},
		{map[string]string{"GATEHOUSE_ISSUER": "http://127.0.0.1:8080"}, true},
		{map[string]string{"GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey}, false},
		{map[string]string{"GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey, "GATEHOUSE_DEV_LOGIN": "true"}, true},
	} {
		c, _, err := load(t, tc.vars)
		if err != nil || c.DevLogin != tc.want {
			t.Errorf("%v: DevLogin = %v, %v; want %v", tc.vars, c != nil && c.DevLogin, err, tc.want)
		}
	}
}

func TestIssuerFollowsListenPort(t *testing.T) {
	for addr, want := range map[string]string{":9000": "http://localhost:9000", "127.0.0.1:8181": "http://localhost:8181", "127.0.0.1:0": "http://localhost:8080"} {
		c, _, err := load(t, map[string]string{"GATEHOUSE_ADDR": addr})
		if err != nil || c.Issuer != want {
			t.Errorf("GATEHOUSE_ADDR=%s: issuer %q, %v; want %q", addr, c.Issuer, err, want)
		}
	}
	c, _, _ := load(t, map[string]string{"GATEHOUSE_ADDR": ":9000", "GATEHOUSE_ISSUER": "https://auth.example.com"})
	if c.Issuer != "https://auth.example.com" {
		t.Fatalf("explicit issuer overridden: %q", c.Issuer)
	}
}

func TestValidationRules(t *testing.T) {
	cases := []struct {
		name  string
		vars  map[string]string
		field string
		msg   string
	}{
		{"non-URL issuer", map[string]string{"GATEHOUSE_ISSUER": "auth.example.com"}, "GATEHOUSE_ISSUER", "absolute http(s) URL"},
		{"issuer with query", map[string]string{"GATEHOUSE_ISSUER": "https://a.example.com/?x=1"}, "GATEHOUSE_ISSUER", "without query"},
		{"short secret", map[string]string{"GATEHOUSE_SECRET_KEY": "short"}, "GATEHOUSE_SECRET_KEY", "at least 32 bytes (it is 5)"},
		{"unknown alg", map[string]string{"GATEHOUSE_SIGNING_ALG": "HS256"}, "GATEHOUSE_SIGNING_ALG", `must be RS256, ES256 or EdDSA, not "HS256"`},
		{"bad env", map[string]string{"GATEHOUSE_ENV": "staging"}, "GATEHOUSE_ENV", "development or production"},
		{"bad addr", map[string]string{"GATEHOUSE_ADDR": "8080"}, "GATEHOUSE_ADDR", "host:port"},
		{"bad metrics addr", map[string]string{"GATEHOUSE_METRICS_ADDR": "9090"}, "GATEHOUSE_METRICS_ADDR", "host:port"},
		{"metrics addr is the main one", map[string]string{"GATEHOUSE_ADDR": ":8080", "GATEHOUSE_METRICS_ADDR": ":8080"}, "GATEHOUSE_METRICS_ADDR", "must differ from GATEHOUSE_ADDR"},
		{"bad duration", map[string]string{"GATEHOUSE_ACCESS_TOKEN_TTL": "soon"}, "GATEHOUSE_ACCESS_TOKEN_TTL", "positive duration"},
		{"negative duration", map[string]string{"GATEHOUSE_AUTH_CODE_TTL": "-1s"}, "GATEHOUSE_AUTH_CODE_TTL", "positive duration"},
		{"bad bool", map[string]string{"GATEHOUSE_AUTO_MIGRATE": "maybe"}, "GATEHOUSE_AUTO_MIGRATE", "true or false"},
		{"bad rate", map[string]string{"GATEHOUSE_RATE_LIMIT": "-5"}, "GATEHOUSE_RATE_LIMIT", "at least 0"},
		{"redis URL scheme", map[string]string{"GATEHOUSE_REDIS_URL": "http://redis.internal:6379"}, "GATEHOUSE_REDIS_URL", `scheme must be redis, rediss or unix, not "http"`},
		{"redis database number", map[string]string{"GATEHOUSE_REDIS_URL": "redis://redis.internal:6379/zero"}, "GATEHOUSE_REDIS_URL", "invalid database number"},
		{"bad proxy", map[string]string{"GATEHOUSE_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, "GATEHOUSE_TRUSTED_PROXIES", `"proxy.local" is neither`},
		{"bad origin", map[string]string{"GATEHOUSE_CORS_ORIGINS": "https://app.example.com/path"}, "GATEHOUSE_CORS_ORIGINS", "must be an origin"},
		{"wildcard origin", map[string]string{"GATEHOUSE_CORS_ORIGINS": "*"}, "GATEHOUSE_CORS_ORIGINS", "must be an origin"},
		{"bad log level", map[string]string{"GATEHOUSE_LOG_LEVEL": "loud"}, "GATEHOUSE_LOG_LEVEL", "debug, info, warn or error"},
		{"bad log format", map[string]string{"GATEHOUSE_LOG_FORMAT": "pretty"}, "GATEHOUSE_LOG_FORMAT", "must be json or text"},
		{"absolute below idle", map[string]string{"GATEHOUSE_REFRESH_IDLE_TTL": "48h", "GATEHOUSE_REFRESH_ABSOLUTE_TTL": "24h"}, "GATEHOUSE_REFRESH_ABSOLUTE_TTL", "not be shorter"},
		{"lead below jwks age", map[string]string{"GATEHOUSE_KEY_PUBLISH_LEAD": "1m"}, "GATEHOUSE_KEY_PUBLISH_LEAD", "at least GATEHOUSE_JWKS_MAX_AGE"},
		{"production without secret", map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com"}, "GATEHOUSE_SECRET_KEY", "not allowed with GATEHOUSE_ENV=production"},
		{"production with dev login", map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey, "GATEHOUSE_DEV_LOGIN": "true"}, "GATEHOUSE_DEV_LOGIN", "not allowed"},
		{"production plain-HTTP issuer", map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "http://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey}, "GATEHOUSE_ISSUER", "plain-HTTP issuer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := load(t, tc.vars)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tc.field && strings.Contains(p.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no problem %s containing %q in:\n%v", tc.field, tc.msg, err)
		})
	}
}

// TestRedisURL: unset means limits in memory; a URL is checked at start
// and its password never shows in the message.
func TestRedisURL(t *testing.T) {
	c, _, err := load(t, nil)
	if err != nil || c.RedisURL != "" || c.RedisKeyPrefix != "gatehouse:" {
		t.Fatalf("defaults: url %q prefix %q err %v", c.RedisURL, c.RedisKeyPrefix, err)
	}
	c, _, err = load(t, map[string]string{"GATEHOUSE_REDIS_URL": "rediss://:s3cret@redis.internal:6380/2", "GATEHOUSE_REDIS_KEY_PREFIX": "staging:"})
	if err != nil || c.RedisURL != "rediss://:s3cret@redis.internal:6380/2" || c.RedisKeyPrefix != "staging:" {
		t.Fatalf("url %q prefix %q err %v", c.RedisURL, c.RedisKeyPrefix, err)
	}
	for _, bad := range []string{"redis://:s3cret@redis.internal/zero", "redis://:s3cret%zz@redis.internal/0", "redis://:s3cret@redis.internal/0?pool=9"} {
		_, _, err := load(t, map[string]string{"GATEHOUSE_REDIS_URL": bad})
		if err == nil || !strings.Contains(err.Error(), "GATEHOUSE_REDIS_URL: ") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, _, err := load(t, map[string]string{"GATEHOUSE_ISSUER": "nope", "GATEHOUSE_SIGNING_ALG": "none", "GATEHOUSE_SECRET_KEY": "x"})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	if lines := strings.Count(err.Error(), "\n"); lines != 3 {
		t.Fatalf("want one line per problem:\n%s", err)
	}
}

func TestProductionAcceptsSafeSettings(t *testing.T) {
	c, warnings, err := load(t, map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey})
	if err != nil || len(warnings) != 0 || c.DevLogin {
		t.Fatalf("c=%+v warnings=%v err=%v", c, warnings, err)
	}
}

func TestDotenv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	write := func(s string) { t.Helper(); os.WriteFile(path, []byte(s), 0o600) }

	write("# comment\nexport GATEHOUSE_ADDR=':9090'\nGATEHOUSE_LOG_LEVEL=debug # trailing\nGATEHOUSE_ISSUER=\"http://localhost:9090\"\n")
	c, _, err := Load(Options{Lookup: env(map[string]string{"GATEHOUSE_LOG_LEVEL": "warn"}), DotenvPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9090" || c.Issuer != "http://localhost:9090" || c.LogLevel != "warn" {
		t.Fatalf(".env not applied or overrode the environment: %+v", c)
	}

	for _, bad := range []struct{ text, want string }{
		{"GATEHOUSE_ADDR=:1\nthis is not a setting\n", "line 2: expected NAME=value"},
		{"GATEHOUSE_ISSUER='http://x\n", "line 1: GATEHOUSE_ISSUER has an unterminated quote"},
		{"1BAD=x\n", "line 1: expected NAME=value"},
	} {
		write(bad.text)
		_, _, err := Load(Options{Lookup: env(nil), DotenvPath: path})
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: err = %v, want one line containing %q", bad.text, err, bad.want)
		}
	}

	// Production ignores .env entirely.
	write("this is not a setting\n")
	if _, _, err := Load(Options{Lookup: env(map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://a.example.com", "GATEHOUSE_SECRET_KEY": goodKey}), DotenvPath: path}); err != nil {
		t.Fatalf("production read .env: %v", err)
	}
}

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestYAMLFile(t *testing.T) {
	p := writeYAML(t, `
clients:
  - id: spa
    public: true
    redirect_uris: [http://localhost:3000/callback]
  - id: reports-api
    secret: ${REPORTS_SECRET}
    redirect_uris: [https://reports.example.com/cb]
    grant_types: [authorization_code, client_credentials]
    access_token_ttl: 5m
    introspect_any: true
    permissions: [api_key:rotate, "report_runs:*"]
providers:
  - {name: corp, type: oidc, issuer: https://idp.example.com, client_id: abc, link_by_email: true, trusted_email: true}
org_sync:
  rules:
    - {match: "github:team:acme/*", org: acme, role: member}
    - {match: "github:org:*", org: "gh-{org}", role: viewer, provider: corp}
`)
	c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": p, "REPORTS_SECRET": "a-very-long-client-secret"})
	if err != nil {
		t.Fatal(err)
	}
	f := c.File
	if len(f.Clients) != 2 || f.Clients[1].Secret != "" || f.Clients[1].SecretHash == [32]byte{} {
		t.Fatalf("clients = %+v", f.Clients)
	}
	if got := f.Clients[1].Permissions; len(got) != 2 || got[0] != "api_key:rotate" {
		t.Fatalf("permissions with underscores = %v", got)
	}
	if f.Clients[1].AccessTokenTTL.String() != "5m0s" || !f.Clients[1].IntrospectAny || f.Clients[0].IntrospectAny || f.OrgSync.OnLeave != "remove" {
		t.Fatalf("file = %+v", f)
	}
	var oidc struct {
		Issuer   string `yaml:"issuer"`
		ClientID string `yaml:"client_id"`
	}
	// link_by_email and trusted_email are common to every kind: read
	// here, hidden from the kind.
	if err := f.Providers[0].Decode(&oidc); err != nil || oidc.Issuer != "https://idp.example.com" ||
		!f.Providers[0].LinkByEmail || !f.Providers[0].TrustedEmail {
		t.Fatalf("Decode = %+v, %v (link_by_email %v, trusted_email %v)", oidc, err, f.Providers[0].LinkByEmail, f.Providers[0].TrustedEmail)
	}
	if r := f.OrgSync.Rules[1]; r.Org != "gh-{org}" || r.Provider != "corp" {
		t.Fatalf("rule = %+v", r)
	}
	var narrow struct {
		Issuer string `yaml:"issuer"`
	}
	if err := f.Providers[0].Decode(&narrow); err == nil || !strings.Contains(err.Error(), "client_id") {
		t.Fatalf("unknown provider field accepted: %v", err)
	}
}

func TestYAMLProblems(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unset variable", "clients:\n  - id: a\n    secret: ${NOPE_NOT_SET}\n", "unset environment variables: NOPE_NOT_SET"},
		{"unknown field", "clients:\n  - id: a\n    redirect_url: [x]\n", "field redirect_url not found"},
		{"not yaml", "clients: [\n", "is not valid"},
		{"public with secret", "clients:\n  - {id: a, public: true, secret: abcdefghijklmnopq, redirect_uris: [https://a.example.com/cb]}\n", "clients[0].secret: a public client has no secret"},
		{"client id naming an API key", "clients:\n  - {id: \"apikey:x\", secret: 0123456789abcdef, grant_types: [client_credentials]}\n", "clients[0].id: must not start with \"apikey:\""},
		{"public introspect_any", "clients:\n  - {id: a, public: true, introspect_any: true, redirect_uris: [https://a.example.com/cb]}\n", "clients[0].introspect_any: a public client cannot introspect"},
		{"short secret", "clients:\n  - {id: a, secret: short, redirect_uris: [https://a.example.com/cb]}\n", "clients[0].secret: a confidential client needs a secret"},
		{"duplicate client", "clients:\n  - {id: a, public: true, redirect_uris: [https://a.example.com/cb]}\n  - {id: a, public: true, redirect_uris: [https://a.example.com/cb]}\n", `clients[1].id: "a" is used by another client`},
		{"relative redirect", "clients:\n  - {id: a, public: true, redirect_uris: [/cb]}\n", `clients[0].redirect_uris: "/cb" is not an absolute URL`},
		{"fragment redirect", "clients:\n  - {id: a, public: true, redirect_uris: ['https://a.example.com/cb#x']}\n", "must not contain a fragment"},
		{"unknown grant", "clients:\n  - {id: a, public: true, grant_types: [password]}\n", `unknown grant type "password"`},
		{"public client credentials", "clients:\n  - {id: a, public: true, grant_types: [client_credentials]}\n", "a public client cannot use client_credentials"},
		{"bad provider name", "providers:\n  - {name: My IdP, type: oidc}\n", `providers[0].name: "My IdP" must be lowercase`},
		{"missing provider type", "providers:\n  - {name: x}\n", "providers[0].type: is required"},
		{"duplicate provider", "providers:\n  - {name: x, type: oidc}\n  - {name: x, type: saml}\n", `providers[1].name: "x" is used by another provider`},
		{"bad on_leave", "org_sync:\n  on_leave: forget\n", "org_sync.on_leave: must be remove or suspend"},
		{"bad glob", "org_sync:\n  rules:\n    - {match: 'github:[', org: a, role: member}\n", "not a valid glob pattern"},
		{"rule without role", "org_sync:\n  rules:\n    - {match: 'x', org: a}\n", "org_sync.rules[0].role: is required"},
		{"rule org not a slug", "org_sync:\n  rules:\n    - {match: 'x', org: Acme Corp, role: member}\n", `org_sync.rules[0].org: "Acme Corp" must be an organization slug`},
		{"rule org bad pattern", "org_sync:\n  rules:\n    - {match: 'x', org: '{team}', role: member}\n", "or a pattern with {org}"},
		{"rule role malformed", "org_sync:\n  rules:\n    - {match: 'x', org: a, role: Admin}\n", `org_sync.rules[0].role: role name "Admin": has the uppercase letter "A"`},
		{"rule unknown provider", "org_sync:\n  rules:\n    - {match: 'x', org: a, role: member, provider: okta}\n", `org_sync.rules[0].provider: "okta" is not a configured provider`},
		{"bad client permission", "clients:\n  - {id: a, secret: abcdefghijklmnopq, grant_types: [client_credentials], permissions: ['KB:read']}\n", `clients[0].permissions: grant "KB:read": resource "KB" has the uppercase letter "K"`},
		{"client permission starting with an underscore", "clients:\n  - {id: a, secret: abcdefghijklmnopq, grant_types: [client_credentials], permissions: ['_api:read']}\n", `clients[0].permissions: grant "_api:read": resource "_api" starts with an underscore`},
		{"bad ttl", "clients:\n  - {id: a, public: true, redirect_uris: [https://a.example.com/cb], access_token_ttl: forever}\n", "not a positive duration"},
		{"link_by_email on oidc", "providers:\n  - {name: corp, type: oidc, link_by_email: true}\n", "providers[0].link_by_email: needs trusted_email: true"},
		{"link_by_email on saml", "providers:\n  - {name: corp, type: saml, link_by_email: true}\n", "providers[0].link_by_email: needs trusted_email: true"},
		{"link_by_email on auth0", "providers:\n  - {name: a0, type: auth0, link_by_email: true}\n", "providers[0].link_by_email: needs trusted_email: true"},
		{"link_by_email on distrusted google", "providers:\n  - {name: google, type: google, link_by_email: true, trusted_email: false}\n", "providers[0].link_by_email: needs trusted_email: true"},
		{"trusted_email not a bool", "providers:\n  - {name: corp, type: oidc, trusted_email: maybe}\n", "is not valid"},
		{"unknown allowed provider", "clients:\n  - {id: a, public: true, redirect_uris: [https://a.example.com/cb], allowed_providers: [okta]}\n", `"okta" is not a configured provider`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, tc.body)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	_, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": filepath.Join(t.TempDir(), "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "cannot read") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestTrustedEmail: trusted_email defaults by kind, can be set either
// way, and is hidden from the kind's strict decoder.
func TestTrustedEmail(t *testing.T) {
	cases := []struct {
		kind, extra string
		want        bool
	}{
		{"google", "", true},
		{"github", "", true},
		{"dev", "", true},
		{"oidc", "", false},
		{"auth0", "", false},
		{"saml", "", false},
		{"oidc", ", trusted_email: true", true},
		{"saml", ", trusted_email: true, link_by_email: true", true},
		{"google", ", trusted_email: false", false},
		{"github", ", trusted_email: false", false},
	}
	for _, tc := range cases {
		t.Run(tc.kind+tc.extra, func(t *testing.T) {
			body := "providers:\n  - {name: p, type: " + tc.kind + tc.extra + "}\n"
			c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, body)})
			if err != nil {
				t.Fatal(err)
			}
			p := c.File.Providers[0]
			if p.TrustedEmail != tc.want {
				t.Fatalf("trusted_email = %v, want %v", p.TrustedEmail, tc.want)
			}
			var kind struct{}
			if err := p.Decode(&kind); err != nil {
				t.Fatalf("the kind saw a common field: %v", err)
			}
		})
	}
}

// TestEnvExampleDocumentsEverySetting keeps .env.example complete.
func TestEnvExampleDocumentsEverySetting(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"(GATEHOUSE_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		if !regexp.MustCompile(`(?m)^#?\s*` + m[1] + `=`).Match(example) {
			t.Errorf(".env.example does not document %s", m[1])
		}
	}
}

// TestAPIKeyPrefixMatchesRBAC keeps the client-id rule in step with the
// subject prefix backends read as an API key.
func TestAPIKeyPrefixMatchesRBAC(t *testing.T) {
	if apiKeySubjectPrefix != rbac.APIKeySubjectPrefix {
		t.Fatalf("config refuses client ids starting with %q, but rbac reads %q as an API key", apiKeySubjectPrefix, rbac.APIKeySubjectPrefix)
	}
}

// TestIDTokenOnRefresh: id_token_on_refresh defaults to true, may be set
// false, and is refused on a client that cannot refresh.
func TestIDTokenOnRefresh(t *testing.T) {
	p := writeYAML(t, `
clients:
  - {id: a, public: true, redirect_uris: [https://a.example.com/cb]}
  - {id: b, public: true, redirect_uris: [https://b.example.com/cb], id_token_on_refresh: false}
  - {id: c, public: true, redirect_uris: [https://c.example.com/cb], id_token_on_refresh: true}
`)
	c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": p})
	if err != nil {
		t.Fatal(err)
	}
	if cl := c.File.Clients; !cl[0].RefreshIDToken() || cl[1].RefreshIDToken() || !cl[2].RefreshIDToken() {
		t.Fatalf("RefreshIDToken = %v %v %v, want true false true", cl[0].RefreshIDToken(), cl[1].RefreshIDToken(), cl[2].RefreshIDToken())
	}
	body := "clients:\n  - {id: a, secret: abcdefghijklmnopq, grant_types: [client_credentials], id_token_on_refresh: false}\n"
	_, _, err = load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, body)})
	if err == nil || !strings.Contains(err.Error(), "clients[0].id_token_on_refresh: the client may not use refresh_token") {
		t.Fatalf("id_token_on_refresh without refresh_token: %v", err)
	}
}

// TestPoolIdleFollowsOpen: the pool keeps as many idle connections as it
// may open, unless GATEHOUSE_DB_MAX_IDLE_CONNS says otherwise.
func TestPoolIdleFollowsOpen(t *testing.T) {
	for _, tc := range []struct {
		vars       map[string]string
		open, idle int
	}{
		{nil, 20, 20},
		{map[string]string{"GATEHOUSE_DB_MAX_OPEN_CONNS": "50"}, 50, 50},
		{map[string]string{"GATEHOUSE_DB_MAX_OPEN_CONNS": "50", "GATEHOUSE_DB_MAX_IDLE_CONNS": "5"}, 50, 5},
	} {
		c, _, err := load(t, tc.vars)
		if err != nil {
			t.Fatal(err)
		}
		if c.DBPool.MaxOpenConns != tc.open || c.DBPool.MaxIdleConns != tc.idle {
			t.Errorf("%v: pool %+v, want %d open and %d idle", tc.vars, c.DBPool, tc.open, tc.idle)
		}
	}
}
