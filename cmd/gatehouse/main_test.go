package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatehouse-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gatehouse")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("build gatehouse: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command runs the binary in its own empty working directory with only the
// given settings (plus PATH and HOME).
func command(t *testing.T, dir string, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func TestServeAndGracefulStop(t *testing.T) {
	dir := t.TempDir()
	cmd := command(t, dir, map[string]string{"GATEHOUSE_ADDR": "127.0.0.1:0"})
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	var addr string
	var log strings.Builder
	for addr == "" && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		var entry struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "listening" {
			addr = entry.Addr
		}
	}
	if addr == "" {
		t.Fatalf("server did not report its address:\n%s", log.String())
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz = %d", resp.StatusCode)
	}
	stopGracefully(t, cmd, stderr)
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.db")); err != nil {
		t.Fatal("default SQLite database not created in the working directory")
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, err := command(t, t.TempDir(), nil, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "gatehouse ") {
		t.Fatalf("version = %q, %v", out, err)
	}
	cmd := command(t, t.TempDir(), nil, "frobnicate")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestMigrateCommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GATEHOUSE_DATABASE_URL": filepath.Join(dir, "g.db")}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "pending"},
		{[]string{"migrate", "up"}, "applied 00001"},
		{[]string{"migrate", "up"}, "schema is current"},
		{[]string{"migrate", "status"}, "applied"},
	} {
		out, err := command(t, dir, env, step.args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), step.want) {
			t.Fatalf("%v = %q, %v; want %q", step.args, out, err, step.want)
		}
	}
	// Each down rolls back the latest migration, down to the first.
	var last string
	for range 100 {
		out, err := command(t, dir, env, "migrate", "down").CombinedOutput()
		if err != nil {
			t.Fatalf("migrate down = %q, %v", out, err)
		}
		if strings.Contains(string(out), "nothing to roll back") {
			break
		}
		last = string(out)
	}
	if !strings.Contains(last, "rolled back 00001") {
		t.Fatalf("last roll-back = %q, want 00001", last)
	}
}

// TestBadInputStopsStartUp: each cause is one line on stderr, a non-zero
// exit, and nothing written.
func TestBadInputStopsStartUp(t *testing.T) {
	newerDB := filepath.Join(t.TempDir(), "newer.db")
	if out, err := command(t, t.TempDir(), map[string]string{"GATEHOUSE_DATABASE_URL": newerDB}, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("%s", out)
	}
	db, err := sqlOpen(newerDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(context.Background(), "INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, 1)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_ = dbtest.PostgresEnv

	cases := []struct {
		name  string
		files map[string]string
		env   map[string]string
		want  string
	}{
		{"malformed .env line", map[string]string{".env": "GATEHOUSE_ADDR=:0\nnot a setting\n"}, nil, ".env line 2: expected NAME=value"},
		{"unreadable YAML", nil, map[string]string{"GATEHOUSE_CONFIG": "missing.yaml"}, "GATEHOUSE_CONFIG: cannot read missing.yaml"},
		{"invalid YAML", map[string]string{"g.yaml": "clients: [\n"}, map[string]string{"GATEHOUSE_CONFIG": "g.yaml"}, "is not valid"},
		{"invalid setting", nil, map[string]string{"GATEHOUSE_SIGNING_ALG": "HS256"}, "GATEHOUSE_SIGNING_ALG: must be RS256"},
		{"unreachable database", nil, map[string]string{"GATEHOUSE_DATABASE_URL": "postgres://gatehouse@127.0.0.1:1/gatehouse?connect_timeout=2"}, "cannot reach postgres database"},
		{"unreachable redis", nil, map[string]string{"GATEHOUSE_REDIS_URL": "redis://127.0.0.1:1/0"}, "GATEHOUSE_REDIS_URL: cannot reach redis at 127.0.0.1:1/0"},
		{"database newer than the binary", nil, map[string]string{"GATEHOUSE_DATABASE_URL": newerDB}, "database schema is newer than this binary"},
		{"production without secret key", nil, map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com"}, "GATEHOUSE_SECRET_KEY: unset (the public development key is used): not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"GATEHOUSE_ADDR": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			cmd := command(t, dir, env)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("exit 0; stderr:\n%s", stderr.String())
			}
			// The message follows "gatehouse:"; configuration problems
			// add one line per field below it.
			_, msg, found := strings.Cut(stderr.String(), "gatehouse: ")
			if !found || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q lacks %q\nstderr:\n%s", msg, tc.want, stderr.String())
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(tc.files) {
				t.Fatalf("something was written: %v", entries)
			}
		})
	}
}

func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GATEHOUSE_DATABASE_URL": filepath.Join(dir, "g.db"), "GATEHOUSE_SECRET_KEY": strings.Repeat("k", 40)}
	if out, err := command(t, dir, env, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("%s", out)
	}
	out, err := command(t, dir, env, "keys", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "active") || !strings.Contains(string(out), "RS256") {
		t.Fatalf("keys list = %s, %v", out, err)
	}
	out, err = command(t, dir, env, "keys", "rotate").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "published now, signs from") {
		t.Fatalf("keys rotate = %s, %v", out, err)
	}
	out, _ = command(t, dir, env, "keys", "list").CombinedOutput()
	if !strings.Contains(string(out), "pending") {
		t.Fatalf("rotated key not pending:\n%s", out)
	}
	// Another secret key cannot decrypt the keys: a clear refusal, no new key.
	env["GATEHOUSE_SECRET_KEY"] = strings.Repeat("x", 40)
	env["GATEHOUSE_ADDR"] = "127.0.0.1:0"
	out, _ = command(t, dir, env).CombinedOutput()
	if !strings.Contains(string(out), "cannot be decrypted with this GATEHOUSE_SECRET_KEY") {
		t.Fatalf("wrong secret key: %s", out)
	}
}

// TestAdminGrant bootstraps the first administrator from the console:
// an email nobody signed in with yet gets an owner invitation to the
// administrators' organization; a second grant of it is refused.
func TestAdminGrant(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GATEHOUSE_DATABASE_URL": filepath.Join(dir, "g.db"), "GATEHOUSE_SECRET_KEY": strings.Repeat("k", 40)}
	if out, err := command(t, dir, env, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("%s", out)
	}
	cases := []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"admin"}, false, "usage: gatehouse admin grant EMAIL"},
		{[]string{"admin", "grant", "not-an-email"}, false, "usage"},
		{[]string{"admin", "grant", "Root@Example.com"}, true, "verified by a provider trusted for email"},
		{[]string{"admin", "grant", "root@example.com"}, false, "already has a pending invitation"},
	}
	for _, tc := range cases {
		out, err := command(t, dir, env, tc.args...).CombinedOutput()
		if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) {
			t.Fatalf("gatehouse %v = %s, %v; want ok=%v and %q", tc.args, out, err, tc.ok, tc.want)
		}
	}
}
