package app_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app"
)

// TestLogFormats: json writes one JSON object a line; text writes short
// records on one line and long ones, or ones with a list, as an aligned
// block; "" picks JSON for anything that is not a terminal (a buffer, a
// file, /dev/null); the level holds in both.
func TestLogFormats(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if app.IsTerminal(devnull) || app.IsTerminal(&bytes.Buffer{}) {
		t.Fatal("/dev/null or a buffer taken for a terminal")
	}
	for _, format := range []string{"", app.LogJSON} {
		var buf bytes.Buffer
		log := app.NewLoggerFormat(&buf, "info", format)
		log.Debug("hidden")
		log.Info("listening", slog.String("addr", "127.0.0.1:8080"))
		var entry struct{ Msg, Addr, Level string }
		if err := json.Unmarshal(buf.Bytes(), &entry); err != nil || entry.Msg != "listening" || entry.Addr != "127.0.0.1:8080" {
			t.Fatalf("format %q: %q (%v)", format, buf.String(), err)
		}
	}

	var buf bytes.Buffer
	log := app.NewLoggerFormat(&buf, "warn", app.LogText).With(slog.String("request_id", "r1"))
	log.Info("hidden")
	log.WithGroup("db").Warn("slow query", slog.Duration("took", 1500000000), slog.Any("error", errors.New("timeout after 1s")))
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, " WARN  slow query request_id=r1 db.took=1.5s db.error=\"timeout after 1s\"") {
		t.Fatalf("one-line text record = %q", line)
	}

	buf.Reset()
	log = app.NewLoggerFormat(&buf, "info", app.LogText)
	log.Info("Gatehouse is ready", slog.String("issuer", "https://auth.example.com/"),
		slog.Any("providers", []string{"okta (oidc) callback https://auth.example.com/auth/callback/okta", "corp (saml) callback https://auth.example.com/auth/saml/corp/acs"}),
		slog.Int("clients", 3), slog.Any("unsafe_development_defaults", []string{}))
	want := []string{
		" INFO  Gatehouse is ready\n",
		"    issuer                       https://auth.example.com/\n",
		"    providers                    okta (oidc) callback https://auth.example.com/auth/callback/okta\n",
		"                                 corp (saml) callback https://auth.example.com/auth/saml/corp/acs\n",
		"    clients                      3\n",
		"    unsafe_development_defaults  (none)\n",
	}
	for _, w := range want {
		if !strings.Contains(buf.String(), w) {
			t.Fatalf("block record lacks %q:\n%s", w, buf.String())
		}
	}
}

// TestDatabaseSummary: the banner names the database without anything
// secret a URL or DSN may hold.
func TestDatabaseSummary(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://gh:s3cret@db.internal:5432/gatehouse?sslmode=verify-full&password=s3cret": "postgres db.internal:5432/gatehouse",
		"host=db password=s3cret dbname=g": "postgres",
		"/var/lib/gatehouse/g.db":          "sqlite /var/lib/gatehouse/g.db",
		"":                                 "invalid",
	} {
		if got := app.DatabaseSummary(raw); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("DatabaseSummary(%q) = %q, want %q", raw, got, want)
		}
	}
}
