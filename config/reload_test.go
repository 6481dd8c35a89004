package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestReloadReadsWhatStartUpRead: Reload reads the environment, .env and
// the file as Load did; only the file applies, and every other setting
// that differs is named (never its value) by RestartNeeded.
func TestReloadReadsWhatStartUpRead(t *testing.T) {
	dir := t.TempDir()
	dotenv, file := filepath.Join(dir, ".env"), filepath.Join(dir, "gatehouse.yaml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(dotenv, "GATEHOUSE_LOG_LEVEL=info\nAPP_SECRET=first-secret-0123456789\n")
	write(file, "clients:\n  - {id: app, secret: '${APP_SECRET}', grant_types: [client_credentials]}\n")
	cur, _, err := Load(Options{Lookup: env(map[string]string{"GATEHOUSE_CONFIG": file, "GATEHOUSE_SECRET_KEY": goodKey}), DotenvPath: dotenv})
	if err != nil {
		t.Fatal(err)
	}

	// Nothing changed: nothing needs a restart.
	next, _, err := Reload(cur)
	if err != nil {
		t.Fatal(err)
	}
	if got := RestartNeeded(cur, next); len(got) != 0 {
		t.Fatalf("RestartNeeded with nothing changed = %v", got)
	}

	write(dotenv, "GATEHOUSE_LOG_LEVEL=debug\nGATEHOUSE_SECRET_KEY=another-key-0123456789abcdef-0123456789\nAPP_SECRET=second-secret-0123456789\n")
	write(file, "clients:\n  - {id: app, secret: '${APP_SECRET}', grant_types: [client_credentials]}\n  - {id: web, public: true, redirect_uris: ['http://localhost:3000/cb']}\n")
	next, _, err = Reload(cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.File.Clients) != 2 || next.File.Clients[0].SecretHash == cur.File.Clients[0].SecretHash {
		t.Fatalf("the file was not read again with the new .env: %+v", next.File.Clients)
	}
	// The process environment wins over .env, as at start.
	got := RestartNeeded(cur, next)
	if !slices.Equal(got, []string{"GATEHOUSE_LOG_LEVEL"}) {
		t.Fatalf("RestartNeeded = %v", got)
	}
	if strings.Contains(strings.Join(got, " "), "debug") {
		t.Fatal("a value was named")
	}

	write(file, "clients:\n  - {id: app, secret: short}\n")
	if _, _, err := Reload(cur); err == nil || !strings.Contains(err.Error(), "clients[0].secret: a confidential client needs a secret") {
		t.Fatalf("invalid file: %v", err)
	}

	if _, _, err := Reload(&Config{}); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_CONFIG is not set") {
		t.Fatalf("reload without a file: %v", err)
	}
}

// TestEverySettingHasItsName: a setting added to Config is either
// reloadable or named by the variable that sets it in RestartNeeded.
func TestEverySettingHasItsName(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.IsExported() && !reloadable[f.Name] && settingNames[f.Name] == "" {
			t.Errorf("Config.%s has no name in settingNames", f.Name)
		}
	}
}

// TestProviderSameKindSettings: a provider entry is the same whatever
// its position, layout and comments; any kind setting differing, or its
// kind or name, makes it another; the provisioning fields do not.
func TestProviderSameKindSettings(t *testing.T) {
	parse := func(body string) Provider {
		t.Helper()
		c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, body)})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range c.File.Providers {
			if p.Name == "okta" {
				return p
			}
		}
		t.Fatal("no provider okta")
		return Provider{}
	}
	base := parse("providers:\n  - {name: okta, type: oidc, issuer: https://okta.example.com, client_id: a, scopes: [openid, email]}\n")
	for _, tc := range []struct {
		name, body  string
		same, equal bool
	}{
		{"moved, reformatted, commented", "providers:\n  - {name: other, type: dev}\n  # the company IdP\n  - name: okta\n    client_id: a   # ours\n    type: oidc\n    scopes:\n      - openid\n      - email\n    issuer: https://okta.example.com\n", true, true},
		{"trusted_email", "providers:\n  - {name: okta, type: oidc, issuer: https://okta.example.com, client_id: a, scopes: [openid, email], trusted_email: true}\n", true, false},
		{"client id", "providers:\n  - {name: okta, type: oidc, issuer: https://okta.example.com, client_id: b, scopes: [openid, email]}\n", false, false},
		{"scope order", "providers:\n  - {name: okta, type: oidc, issuer: https://okta.example.com, client_id: a, scopes: [email, openid]}\n", false, false},
		{"kind", "providers:\n  - {name: okta, type: auth0, issuer: https://okta.example.com, client_id: a, scopes: [openid, email]}\n", false, false},
	} {
		p := parse(tc.body)
		if got := base.SameKindSettings(&p); got != tc.same {
			t.Errorf("%s: SameKindSettings = %v", tc.name, got)
		}
		if got := base.Equal(&p); got != tc.equal {
			t.Errorf("%s: Equal = %v", tc.name, got)
		}
	}
}

// TestConfiguredClientsCheckedAgain: the check a reload makes before it
// swaps the file's clients in accepts what Load accepted, a
// private_key_jwt client (which has no secret) included, and still
// refuses a confidential secret client without a secret.
func TestConfiguredClientsCheckedAgain(t *testing.T) {
	file := writeYAML(t, "clients:\n"+
		"  - {id: app, secret: app-secret-0123456789, grant_types: [client_credentials]}\n"+
		"  - {id: web, public: true, redirect_uris: ['http://localhost:3000/cb']}\n"+
		"  - id: svc\n    grant_types: [client_credentials]\n    token_endpoint_auth_method: private_key_jwt\n"+
		"    jwks_uri: https://svc.example.com/jwks.json\n")
	cfg, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ValidateConfiguredClients(); err != nil {
		t.Fatalf("a file Load accepted is refused at reload: %v", err)
	}
	cfg.File.Clients[0].SecretHash = [32]byte{}
	if err := cfg.ValidateConfiguredClients(); err == nil || !strings.Contains(err.Error(), "clients[0].secret") {
		t.Fatalf("a secret client without its secret: %v", err)
	}
}
