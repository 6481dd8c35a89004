package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// openPTY opens a pseudo-terminal: the server's stderr gets the terminal
// end, the test reads what it printed from the other.
func openPTY(t *testing.T) (master, terminal *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// startOn runs `gatehouse serve` with stderr on w and returns the log
// lines until the start-up banner's end (its rate_limits line), or the
// first JSON line that is the banner.
func startOn(t *testing.T, env map[string]string, out *os.File, r io.Reader) []string {
	t.Helper()
	env["GATEHOUSE_ADDR"] = "127.0.0.1:0"
	cmd := command(t, t.TempDir(), env)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(lines)
	}()
	var got []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("log ended before the banner:\n%s", strings.Join(got, "\n"))
			}
			got = append(got, l)
			if strings.HasPrefix(l, "    rate_limits") || strings.Contains(l, `"msg":"Gatehouse is ready"`) {
				return got
			}
		case <-timeout:
			t.Fatalf("no banner within 60s:\n%s", strings.Join(got, "\n"))
		}
	}
}

// TestLogFormatOnTerminal: on a terminal the log is text and the banner a
// block with the issuer, listen address, mode, database (no password),
// providers, clients and metrics; GATEHOUSE_LOG_FORMAT=json forces JSON
// on a terminal; off a terminal it is JSON (TestServeAndGracefulStop).
func TestLogFormatOnTerminal(t *testing.T) {
	// A password the banner must not show, whatever the test DSN holds
	// (trust authentication ignores it).
	pu, err := url.Parse(dbtest.PostgresTarget(t).DSN)
	if err != nil {
		t.Fatal(err)
	}
	pu.User = url.UserPassword(pu.User.Username(), "s3cret-password")
	dsn := pu.String()
	master, term := openPTY(t)
	got := strings.Join(startOn(t, map[string]string{"GATEHOUSE_DATABASE_URL": dsn}, term, master), "\n")
	// Columns are aligned on the longest key: compare with single spaces.
	squeezed := regexp.MustCompile(` +`).ReplaceAllString(got, " ")
	for _, want := range []string{" INFO Gatehouse is ready\n", "\n issuer http://localhost:", "\n listen 127.0.0.1:", "\n mode development\n",
		"\n database postgres " + dbHostAndName(t, dsn) + "\n", "\n providers dev (dev) callback http://localhost:", "\n clients 2\n", "\n metrics /metrics on this listener\n"} {
		if !strings.Contains(squeezed, want) {
			t.Fatalf("terminal log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "s3cret-password") || strings.Contains(got, `{"time"`) {
		t.Fatalf("terminal log shows the password or JSON:\n%s", got)
	}

	master, term = openPTY(t)
	lines := startOn(t, map[string]string{"GATEHOUSE_LOG_FORMAT": "json"}, term, master)
	var entry struct{ Msg, Database, Mode string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &entry); err != nil || entry.Mode != "development" || entry.Database != "sqlite ./gatehouse.db" {
		t.Fatalf("GATEHOUSE_LOG_FORMAT=json on a terminal: %q (%v)", lines, err)
	}
}

// dbHostAndName is the host and database name of a PostgreSQL URL, as
// the banner shows them.
func dbHostAndName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host + u.Path
}
