package app_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/app"
)

// TestTextLogCannotBeForged: request data in the text format (a path
// with an encoded newline, an escape sequence, a bidirectional override)
// stays on its own line, escaped, in the one-line and in the block form,
// so a caller cannot add a line that looks like Gatehouse's own nor drive
// the terminal that shows the log.
func TestTextLogCannotBeForged(t *testing.T) {
	forged := "/nope\n22:41:00 ERROR forged admin login user=root\n"
	for _, tc := range []struct {
		name  string
		log   func(*slog.Logger)
		lines int
		want  []string
	}{
		{"one line", func(l *slog.Logger) { l.Info("request", slog.String("path", forged)) }, 1,
			[]string{`path="/nope\n22:41:00 ERROR forged admin login user=root\n"`}},
		{"block", func(l *slog.Logger) {
			l.Info("request", slog.String("request_id", strings.Repeat("r", 40)), slog.String("method", "GET"),
				slog.String("path", forged), slog.String("route", ""), slog.Int("status", 404), slog.String("client_ip", "127.0.0.1"))
		}, 7, []string{`    path        "/nope\n22:41:00 ERROR forged admin login user=root\n"` + "\n"}},
		{"list item", func(l *slog.Logger) { l.Info("ready", slog.Any("providers", []string{"a\nb", "c"})) }, 3,
			[]string{`    providers  "a\nb"` + "\n", "               c\n"}},
		{"escape sequence", func(l *slog.Logger) { l.Info("request", slog.String("path", "/\x1b[2J\x1b[1;1Hclean")) }, 1,
			[]string{`path="/\x1b[2J\x1b[1;1Hclean"`}},
		{"bidi override", func(l *slog.Logger) { l.Info("request", slog.String("path", "/a\u202egpj.exe")) }, 1,
			[]string{`path="/a\u202egpj.exe"`}},
		{"invalid utf-8", func(l *slog.Logger) { l.Info("request", slog.String("path", "/\xff\n")) }, 1,
			[]string{`path="/\xff\n"`}},
		{"message", func(l *slog.Logger) { l.Warn("upstream said: bad\n22:41:00 ERROR forged") }, 1,
			[]string{` WARN  "upstream said: bad\n22:41:00 ERROR forged"`}},
		{"key", func(l *slog.Logger) { l.Info("x", slog.String("a\nb", "v")) }, 1, []string{`"a\nb"=v`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(app.NewLoggerFormat(&buf, "info", app.LogText))
			out := buf.String()
			if got := strings.Count(out, "\n"); got != tc.lines {
				t.Errorf("%d lines, want %d:\n%s", got, tc.lines, out)
			}
			for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if (i == 0) == strings.HasPrefix(line, "    ") || strings.ContainsAny(line, "\x1b\r\u202e") {
					t.Errorf("line %d is not the record's: %q", i, line)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
