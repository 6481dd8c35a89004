package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestClusterDownRemovesOnlyItsDirectory: `scripts/cluster.sh down`
// removes CLUSTER_DIR whole, so it refuses a directory `up` did not make
// (a mistyped CLUSTER_DIR pointing at a home or a project) and leaves it
// as it was; one with `up`'s marker is removed.
func TestClusterDownRemovesOnlyItsDirectory(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	down := func(dir string) ([]byte, error) {
		cmd := exec.Command("bash", "scripts/cluster.sh", "down")
		cmd.Dir = ".."
		// A port base where nothing of ours listens: down's Redis
		// shutdown finds no server.
		cmd.Env = append(os.Environ(), "CLUSTER_DIR="+dir, "CLUSTER_PORT_BASE=47100")
		return cmd.CombinedOutput()
	}
	foreign := t.TempDir()
	keep := filepath.Join(foreign, "precious.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := down(foreign); err == nil {
		t.Fatalf("down removed a directory up did not make: %s", out)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("down touched a directory up did not make: %v", err)
	}

	ours := filepath.Join(t.TempDir(), "cluster")
	if err := os.MkdirAll(filepath.Join(ours, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ours, ".gatehouse-cluster"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := down(ours); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if _, err := os.Stat(ours); !os.IsNotExist(err) {
		t.Fatalf("down left %s: %v", ours, err)
	}
}
