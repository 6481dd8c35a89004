package app_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app"
)

// TestTextLogInjection: whatever a value, a list item or a message holds
// — newlines, carriage returns, terminal escapes — the text format writes
// it escaped: a record makes the lines it should (one, or the block's
// message line plus one per attribute or item), no forged line, no raw
// control character reaching the terminal, and a long value that turns
// the record into a block does not escape either.
func TestTextLogInjection(t *testing.T) {
	forged := "x\n12:00:00 ERROR forged admin=granted\r\x1b[2K"
	long := strings.Repeat("a", 130) + forged
	for _, tc := range []struct {
		name  string
		log   func(*slog.Logger)
		lines int
	}{
		{"value", func(l *slog.Logger) { l.Info("sign-in failed", slog.String("email", forged)) }, 1},
		{"terminal escape only", func(l *slog.Logger) { l.Info("x", slog.String("name", "\x1b[31mred\u2028")) }, 1},
		{"long value (a block)", func(l *slog.Logger) { l.Info("sign-in failed", slog.String("email", long), slog.Int("n", 1)) }, 3},
		{"list item", func(l *slog.Logger) { l.Info("ready", slog.Any("providers", []string{"ok", forged})) }, 3},
		{"message", func(l *slog.Logger) { l.Info("upstream said " + forged) }, 1},
		{"key", func(l *slog.Logger) { l.Info("x", slog.String(forged, "v")) }, 1},
		{"error", func(l *slog.Logger) { l.Warn("x", slog.Any("error", errString(forged))) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(app.NewLoggerFormat(&buf, "info", app.LogText))
			out := buf.String()
			if n := strings.Count(out, "\n"); n != tc.lines || !strings.HasSuffix(out, "\n") {
				t.Errorf("%d lines, want %d:\n%s", n, tc.lines, out)
			}
			if strings.ContainsAny(strings.TrimSuffix(out, "\n"), "\r\x1b") {
				t.Errorf("raw control characters written: %q", out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "12:00:00 ERROR") {
					t.Errorf("forged line: %q", out)
				}
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
