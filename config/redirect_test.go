package config

import (
	"strings"
	"testing"
)

// TestPlainHTTPRedirectURIs: in production a redirect URI must use https
// unless it is a loopback address (RFC 8252 §7.3 native apps, local
// development); a plain-HTTP URI elsewhere stops start-up naming the
// client and the URI. Look-alikes of loopback names are not loopback.
// Outside production the same URI is a warning.
func TestPlainHTTPRedirectURIs(t *testing.T) {
	prod := map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey}
	dev := map[string]string{}
	for _, tc := range []struct {
		uri     string
		refused bool
	}{
		{"https://app.example.com/callback", false},
		{"http://localhost:3000/callback", false},
		{"http://app.localhost/callback", false},
		{"http://127.0.0.1:8000/callback", false},
		{"http://127.8.9.10/callback", false},
		{"http://[::1]:8000/callback", false},
		{"http://app.example.com/callback", true},
		{"HTTP://APP.EXAMPLE.COM/callback", true},
		{"http://localhost.evil.example/callback", true},
		{"http://127.0.0.1.nip.io/callback", true},
		{"http://localhost@evil.example/callback", true},
		{"http://0.0.0.0/callback", true},
		{"http://10.0.0.5/callback", true},
		{"http://[::ffff:10.0.0.5]/callback", true},
	} {
		t.Run(strings.NewReplacer("://", " ", "/", " ").Replace(tc.uri), func(t *testing.T) {
			yaml := "clients:\n  - {id: app, public: true, redirect_uris: ['" + tc.uri + "']}\n"
			for _, env := range []map[string]string{prod, dev} {
				production := env["GATEHOUSE_ENV"] == "production"
				warnings, err := loadYAMLIn(t, yaml, env)
				warned := strings.Contains(strings.Join(warnings, "\n"), "plain-HTTP redirect URI")
				switch {
				case production && tc.refused:
					if err == nil || !strings.Contains(err.Error(), "clients[0].redirect_uris") ||
						!strings.Contains(err.Error(), "plain-HTTP redirect URI") || !strings.Contains(err.Error(), "not allowed with GATEHOUSE_ENV=production") {
						t.Fatalf("production: err = %v, want the redirect URI refused", err)
					}
				case err != nil:
					t.Fatalf("production=%v: err = %v", production, err)
				case !production && warned != tc.refused:
					t.Fatalf("development: warnings = %v", warnings)
				}
			}
		})
	}
}

// TestBackchannelLogoutURI: a backchannel_logout_uri is an absolute http
// or https URL without fragment; plain HTTP to a host other than a
// loopback one stops start-up in production (naming the client and the
// URI) and is a warning in development, as docs/configuration.md says.
func TestBackchannelLogoutURI(t *testing.T) {
	prod := map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey}
	dev := map[string]string{}
	for _, tc := range []struct {
		uri    string
		unsafe bool   // plain HTTP outside loopback: refused in production, warned in development
		bad    string // refused everywhere, with this in the message
	}{
		{uri: "https://app.example.com/backchannel"},
		{uri: "http://localhost:3000/backchannel"},
		{uri: "http://127.0.0.1:8000/backchannel"},
		{uri: "http://[::1]:8000/backchannel"},
		{uri: "http://app.example.com/backchannel", unsafe: true},
		{uri: "http://localhost.evil.example/backchannel", unsafe: true},
		{uri: "http://10.0.0.5/backchannel", unsafe: true},
		{uri: "ftp://app.example.com/backchannel", bad: "must be an http or https URL"},
		{uri: "https://app.example.com/backchannel#frag", bad: "backchannel_logout_uri"},
		{uri: "/backchannel", bad: "backchannel_logout_uri"},
	} {
		t.Run(strings.NewReplacer("://", " ", "/", " ").Replace(tc.uri), func(t *testing.T) {
			yaml := "clients:\n  - {id: app, public: true, redirect_uris: ['https://app.example.com/cb'], backchannel_logout_uri: '" + tc.uri + "'}\n"
			for _, env := range []map[string]string{prod, dev} {
				production := env["GATEHOUSE_ENV"] == "production"
				warnings, err := loadYAMLIn(t, yaml, env)
				warned := strings.Contains(strings.Join(warnings, "\n"), "plain-HTTP back-channel logout URI")
				switch {
				case tc.bad != "":
					if err == nil || !strings.Contains(err.Error(), "clients[0].backchannel_logout_uri") || !strings.Contains(err.Error(), tc.bad) {
						t.Fatalf("production=%v: err = %v, want the URI refused", production, err)
					}
				case production && tc.unsafe:
					if err == nil || !strings.Contains(err.Error(), "clients[0].backchannel_logout_uri") ||
						!strings.Contains(err.Error(), "not allowed with GATEHOUSE_ENV=production") {
						t.Fatalf("production: err = %v, want the URI refused", err)
					}
				case err != nil:
					t.Fatalf("production=%v: err = %v", production, err)
				case !production && warned != tc.unsafe:
					t.Fatalf("development: warnings = %v", warnings)
				}
			}
		})
	}
}

// loadYAMLIn loads the YAML configuration yaml with the settings env.
func loadYAMLIn(t *testing.T, yaml string, env map[string]string) ([]string, error) {
	t.Helper()
	vars := map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, yaml)}
	for k, v := range env {
		vars[k] = v
	}
	_, warnings, err := load(t, vars)
	return warnings, err
}
