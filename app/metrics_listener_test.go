package app_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// TestMetricsListener: with GATEHOUSE_METRICS_ADDR set, /metrics is served
// on that address only (the public listener answers 404, so the series
// and process details are not public), nothing else is served there, and
// stopping the server stops both listeners gracefully. Without it,
// /metrics stays on the main listener.
func TestMetricsListener(t *testing.T) {
	for _, tc := range []struct {
		name       string
		separate   bool
		mainStatus int
	}{
		{"default: on the main listener", false, http.StatusOK},
		{"GATEHOUSE_METRICS_ADDR: only on its own listener", true, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			if tc.separate {
				env["GATEHOUSE_METRICS_ADDR"] = "127.0.0.1:0"
			}
			log := &syncBuffer{}
			s := apptest.Start(t, apptest.Options{Env: env, Log: log})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx, ln) }()
			main := "http://" + ln.Addr().String()
			waitLogged(t, log, "listening")

			for _, base := range []string{main, s.URL} {
				resp, body := get(t, base+"/metrics")
				if resp.StatusCode != tc.mainStatus {
					t.Fatalf("main listener GET /metrics = %d, want %d", resp.StatusCode, tc.mainStatus)
				}
				if !tc.separate && !strings.Contains(body, "gatehouse_refresh_token_reuse_total") {
					t.Fatalf("main listener /metrics lacks Gatehouse's series:\n%.500s", body)
				}
				if tc.separate && strings.Contains(body, "go_goroutines") {
					t.Fatal("the main listener still exposes metrics")
				}
			}
			var metrics string
			if tc.separate {
				metrics = "http://" + waitLogged(t, log, "metrics listening")
				if resp, _ := get(t, main+"/healthz"); resp.StatusCode != http.StatusOK {
					t.Fatalf("main listener /healthz = %d", resp.StatusCode)
				}
				resp, body := get(t, metrics+"/metrics")
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, "gatehouse_http_request_duration_seconds") {
					t.Fatalf("metrics listener GET /metrics = %d:\n%.500s", resp.StatusCode, body)
				}
				// The main listener's traffic is what it reports.
				if !strings.Contains(body, `route="/healthz",status="200"`) {
					t.Fatalf("metrics listener does not count the main listener's requests:\n%.2000s", body)
				}
				for _, path := range []string{"/healthz", "/auth/token", "/.well-known/jwks.json", "/api/v1/admin/users"} {
					if resp, _ := get(t, metrics+path); resp.StatusCode != http.StatusNotFound {
						t.Fatalf("metrics listener GET %s = %d, want 404", path, resp.StatusCode)
					}
				}
			} else if strings.Contains(log.String(), "metrics listening") {
				t.Fatal("a metrics listener was opened without GATEHOUSE_METRICS_ADDR")
			}

			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Fatalf("Serve = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after cancel")
			}
			for _, addr := range []string{main, metrics} {
				if addr == "" {
					continue
				}
				if c, err := net.DialTimeout("tcp", strings.TrimPrefix(addr, "http://"), 200*time.Millisecond); err == nil {
					c.Close()
					t.Fatalf("%s still accepts after shutdown", addr)
				}
			}
			if !strings.Contains(log.String(), `"msg":"stopped"`) {
				t.Fatalf("no clean stop in the log:\n%s", log.String())
			}
		})
	}
}

// TestMetricsListenerAddressInUse: a metrics address that cannot be
// opened stops the server with a message naming the setting.
func TestMetricsListenerAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_METRICS_ADDR": taken.Addr().String()}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = s.Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "GATEHOUSE_METRICS_ADDR "+taken.Addr().String()) {
		t.Fatalf("Serve = %v, want an error naming GATEHOUSE_METRICS_ADDR", err)
	}
}

// waitLogged waits for a log entry with the message and returns its addr.
func waitLogged(t *testing.T, log *syncBuffer, msg string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(log.String(), "\n") {
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == msg {
				return entry.Addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q in the log:\n%s", msg, log.String())
	return ""
}
