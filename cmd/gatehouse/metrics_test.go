package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeMetricsOnSeparateAddress runs the binary with
// GATEHOUSE_METRICS_ADDR: /metrics answers there and 404 on the main
// address, and SIGTERM stops both listeners cleanly.
func TestServeMetricsOnSeparateAddress(t *testing.T) {
	cmd := command(t, t.TempDir(), map[string]string{"GATEHOUSE_ADDR": "127.0.0.1:0", "GATEHOUSE_METRICS_ADDR": "127.0.0.1:0"})
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	var mainAddr, metricsAddr string
	var log strings.Builder
	for mainAddr == "" && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		var entry struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) != nil {
			continue
		}
		switch entry.Msg {
		case "listening":
			mainAddr = entry.Addr
		case "metrics listening":
			metricsAddr = entry.Addr
		}
	}
	if mainAddr == "" || metricsAddr == "" {
		t.Fatalf("server did not report both addresses:\n%s", log.String())
	}
	status := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := status("http://" + mainAddr + "/metrics"); code != http.StatusNotFound {
		t.Fatalf("main address /metrics = %d, want 404", code)
	}
	code, body := status("http://" + metricsAddr + "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "gatehouse_") {
		t.Fatalf("metrics address /metrics = %d:\n%.300s", code, body)
	}
	// What a soak samples per replica (docs/operations.md).
	for _, series := range []string{`go_sql_open_connections{db_name="gatehouse"}`, "go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds"} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics has no %s", series)
		}
	}
	stopGracefully(t, cmd, stderr)
	for _, addr := range []string{mainAddr, metricsAddr} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after exit", addr)
		}
	}
}

// stopGracefully sends SIGTERM and expects an exit within 10 s with a
// clean stop in the log (read from stderr, the server's log pipe).
func stopGracefully(t *testing.T, cmd *exec.Cmd, stderr io.Reader) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, rest)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
	if !strings.Contains(string(rest), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", rest)
	}
}
