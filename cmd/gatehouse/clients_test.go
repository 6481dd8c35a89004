package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestClientsCommands: the operator creates, lists, shows, updates,
// rotates and deletes stored clients from the console on SQLite and
// PostgreSQL; the configuration file's clients are listed but refused
// any change; the secret is printed once and stored only hashed, in no
// audit event; each change is audited as the console's.
func TestClientsCommands(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			dir := t.TempDir()
			var target dburl.Target
			if dialect == "sqlite" {
				var err error
				if target, err = dburl.Parse(filepath.Join(dir, "g.db")); err != nil {
					t.Fatal(err)
				}
			} else {
				target = dbtest.PostgresTarget(t)
			}
			yamlPath := filepath.Join(dir, "gatehouse.yaml")
			if err := os.WriteFile(yamlPath, []byte("clients:\n  - id: yaml-app\n    public: true\n    redirect_uris: [https://yaml.example/cb]\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"GATEHOUSE_DATABASE_URL": target.DSN, "GATEHOUSE_SECRET_KEY": strings.Repeat("k", 40),
				"GATEHOUSE_CONFIG": yamlPath}
			if dialect == "sqlite" {
				env["GATEHOUSE_DATABASE_URL"] = filepath.Join(dir, "g.db")
			}
			if out, err := command(t, dir, env, "migrate", "up").CombinedOutput(); err != nil {
				t.Fatalf("migrate: %s %v", out, err)
			}
			clientFile := filepath.Join(dir, "client.yaml")
			if err := os.WriteFile(clientFile, []byte("client_id: file-app\npublic: true\nredirect_uris: [http://127.0.0.1:9/cb]\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var secrets []string
			secretLine := regexp.MustCompile(`client_secret: (\S+)`)
			steps := []struct {
				args []string
				ok   bool
				want string
			}{
				{[]string{"clients"}, false, "usage: gatehouse clients list"},
				{[]string{"clients", "frobnicate"}, false, `unknown clients command "frobnicate"`},
				{[]string{"clients", "create"}, false, "--file or --json"},
				{[]string{"clients", "create", "--json", `{"client_id":"bad","redirect_uris":["not a url"]}`}, false, "not an absolute URL"},
				{[]string{"clients", "create", "--json", `{"client_id":"cli-app","name":"CLI","redirect_uris":["https://app.example/cb"]}`}, true, "client_secret: "},
				{[]string{"clients", "create", "--file", clientFile}, true, "created client file-app"},
				{[]string{"clients", "create", "--json", `{"client_id":"yaml-app","redirect_uris":["https://x.example/cb"]}`}, false, "configuration file"},
				{[]string{"clients", "create", "--json", `{"client_id":"gatehouse-admin-console","public":true,"redirect_uris":["https://x.example/cb"]}`}, false, "configuration file"},
				{[]string{"clients", "list"}, true, "cli-app                  database  confidential  CLI                      authorization_code,refresh_token"},
				{[]string{"clients", "list"}, true, "yaml-app                 config    public"},
				{[]string{"clients", "list"}, true, "gatehouse-admin-console  config    public"},
				{[]string{"clients", "show", "cli-app"}, true, `"source": "database"`},
				{[]string{"clients", "show", "nope"}, false, "not found"},
				{[]string{"clients", "update", "cli-app", "--json", `{"name":"CLI App"}`}, true, "updated client cli-app"},
				{[]string{"clients", "update", "yaml-app", "--json", `{"name":"x"}`}, false, "defined in the configuration file"},
				{[]string{"clients", "rotate-secret", "cli-app", "--overlap", "9999h"}, false, "overlap: must be a duration"},
				{[]string{"clients", "rotate-secret", "cli-app", "--overlap", "2h"}, true, "previous secret keeps working until"},
				{[]string{"clients", "rotate-secret", "file-app"}, false, "public"},
				{[]string{"clients", "delete", "cli-app"}, false, "run again with --yes"},
				{[]string{"clients", "delete", "cli-app", "--yes"}, true, "deleted client cli-app: 0 session(s) ended"},
				{[]string{"clients", "delete", "yaml-app", "--yes"}, false, "configuration file"},
			}
			for _, st := range steps {
				out, err := command(t, dir, env, st.args...).CombinedOutput()
				if (err == nil) != st.ok || !strings.Contains(string(out), st.want) {
					t.Fatalf("gatehouse %v = %s, %v; want ok=%v and %q", st.args, out, err, st.ok, st.want)
				}
				for _, m := range secretLine.FindAllStringSubmatch(string(out), -1) {
					secrets = append(secrets, m[1])
				}
			}
			if len(secrets) != 2 {
				t.Fatalf("secrets printed = %d, want 2 (creation, rotation)", len(secrets))
			}
			db, err := models.Open(context.Background(), target, models.PoolSettings{MaxOpenConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var events []models.AuditEvent
			if err := db.DB.Where("type LIKE ?", "client.%").Order("id").Find(&events).Error; err != nil {
				t.Fatal(err)
			}
			var types []string
			for _, e := range events {
				types = append(types, e.Type)
				if !strings.Contains(e.Details, `"by":"console"`) {
					t.Errorf("%s details = %s, want by console", e.Type, e.Details)
				}
				for _, s := range secrets {
					if strings.Contains(e.Details, s) {
						t.Errorf("%s holds a secret", e.Type)
					}
				}
			}
			if got := strings.Join(types, " "); got != "client.created client.created client.updated client.secret_rotated client.deleted" {
				t.Errorf("audit events = %s", got)
			}
		})
	}
}
