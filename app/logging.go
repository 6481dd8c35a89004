package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
)

// Log formats (GATEHOUSE_LOG_FORMAT).
const (
	LogJSON = "json"
	LogText = "text"
)

// NewLogger returns the logger at the configured level, JSON by default.
// It is NewLoggerFormat with the format left to the writer.
func NewLogger(w io.Writer, level string) *slog.Logger { return NewLoggerFormat(w, level, "") }

// NewLoggerFormat returns the logger at level in format: json (one object
// a line, for collectors), text (for people), or "" for text when w is a
// terminal and JSON otherwise.
func NewLoggerFormat(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	if format == "" {
		format = LogJSON
		if IsTerminal(w) {
			format = LogText
		}
	}
	if format == LogText {
		return slog.New(&textHandler{out: &lockedWriter{w: w}, level: l})
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// IsTerminal reports whether w is a terminal (a character device that
// answers terminal requests: not /dev/null, a pipe or a file).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// lockedWriter serialises the records of every logger derived from one.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// textHandler writes a record for people: "15:04:05 INFO  message
// key=value ..." on one line when it is short; a long record, or one
// with a list, as the message followed by one aligned "key  value" line
// per attribute (the start-up banner), lists one item a line.
type textHandler struct {
	out    *lockedWriter
	level  slog.Level
	attrs  []slog.Attr
	prefix string // group names of WithGroup, dot-joined
}

// maxOneLine is the width beyond which a record is printed as a block.
const maxOneLine = 120

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), h.qualify(as)...)
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

func (h *textHandler) qualify(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		out = append(out, flatten(h.prefix, a)...)
	}
	return out
}

// flatten turns groups into dotted keys and drops empty attributes.
func flatten(prefix string, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return nil
	}
	if a.Value.Kind() != slog.KindGroup {
		return []slog.Attr{{Key: prefix + a.Key, Value: a.Value}}
	}
	p := prefix
	if a.Key != "" {
		p += a.Key + "."
	}
	var out []slog.Attr
	for _, g := range a.Value.Group() {
		out = append(out, flatten(p, g)...)
	}
	return out
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]slog.Attr{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, flatten(h.prefix, a)...)
		return true
	})
	ts := r.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s", ts.Format("15:04:05"), r.Level.String(), printable(r.Message))
	line := b.String()
	block, width := false, len(line)
	var pairs []string
	for _, a := range attrs {
		if items, ok := listOf(a.Value); ok && len(items) > 0 {
			block = true
		}
		p := printable(a.Key) + "=" + quote(textOf(a.Value))
		pairs = append(pairs, p)
		width += 1 + len(p)
	}
	if !block && width <= maxOneLine {
		for _, p := range pairs {
			b.WriteString(" " + p)
		}
		b.WriteByte('\n')
		return h.write(b.String())
	}
	b.WriteByte('\n')
	keyWidth := 0
	for _, a := range attrs {
		keyWidth = max(keyWidth, len(printable(a.Key)))
	}
	for _, a := range attrs {
		items, ok := listOf(a.Value)
		if !ok {
			items = []string{textOf(a.Value)}
		}
		if len(items) == 0 {
			items = []string{"(none)"}
		}
		for i, it := range items {
			key := printable(a.Key)
			if i > 0 {
				key = ""
			}
			fmt.Fprintf(&b, "    %-*s  %s\n", keyWidth, key, printable(it))
		}
	}
	return h.write(b.String())
}

func (h *textHandler) write(s string) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := io.WriteString(h.out.w, s)
	return err
}

// listOf returns the items of a list of strings (other slices, such as
// migration versions, stay on one line).
func listOf(v slog.Value) ([]string, bool) {
	if v.Kind() != slog.KindAny {
		return nil, false
	}
	list, ok := v.Any().([]string)
	return list, ok
}

func textOf(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return v.String()
}

// quote keeps a value with spaces, quotes or control characters on one
// line and readable.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \"=") || !isPrintable(s) {
		return strconv.Quote(s)
	}
	return s
}

// printable returns s as it is when every character of it prints, else
// quoted with Go's escapes. Values in the block form and messages are
// often request data (a path, an upstream's error): a raw newline there
// would let a caller forge a log line, and an escape sequence would
// drive the terminal that reads the text form.
func printable(s string) string {
	if isPrintable(s) {
		return s
	}
	return strconv.Quote(s)
}

// isPrintable reports whether s is valid UTF-8 made of printable
// characters and spaces only: no control character (newlines, tabs,
// ESC), no invisible formatting character (bidirectional overrides, line
// separators).
func isPrintable(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		}
		if r != ' ' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
