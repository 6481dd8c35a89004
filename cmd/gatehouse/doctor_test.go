package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorCommand: `gatehouse doctor` prints one line per check and
// exits 1 when one fails (a database that cannot be reached), 0 when
// only warnings remain (a stopped deployment on a migrated SQLite file),
// and creates no database file that was not there.
func TestDoctorCommand(t *testing.T) {
	dir := t.TempDir()
	out, err := command(t, dir, map[string]string{"GATEHOUSE_DATABASE_URL": "postgres://gatehouse:s3cret@127.0.0.1:1/gatehouse?connect_timeout=2",
		"GATEHOUSE_ISSUER": "http://127.0.0.1:1"}, "doctor").Output()
	var ee *exec.ExitError
	if !strings.Contains(string(out), "fail  database postgres 127.0.0.1:1/gatehouse") || strings.Contains(string(out), "s3cret") {
		t.Fatalf("doctor with an unreachable database:\n%s", out)
	}
	if !asExit(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want 1", err)
	}

	out, err = command(t, dir, map[string]string{"GATEHOUSE_ISSUER": "http://127.0.0.1:1"}, "doctor").Output()
	if err != nil || !strings.Contains(string(out), "warn  database sqlite ./gatehouse.db does not exist yet") {
		t.Fatalf("doctor before the first start: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "gatehouse.db")); !os.IsNotExist(err) {
		t.Fatal("doctor created the SQLite file")
	}
	if out, err := command(t, dir, nil, "migrate", "up").CombinedOutput(); err != nil {
		t.Fatalf("%s", out)
	}
	out, err = command(t, dir, map[string]string{"GATEHOUSE_ISSUER": "http://127.0.0.1:1"}, "doctor").Output()
	for _, want := range []string{"warn  issuer http://127.0.0.1:1 not reachable", "ok    database sqlite ./gatehouse.db reachable",
		"ok    migrations current", "warn  signing keys: none yet", "warn  provider dev (dev, GATEHOUSE_DEV_LOGIN)"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("doctor on a stopped deployment lacks %q: %v\n%s", want, err, out)
		}
	}
	if err != nil {
		t.Fatalf("doctor with warnings only exits %v", err)
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}
