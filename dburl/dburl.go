// Package dburl reads GATEHOUSE_DATABASE_URL: which database family it
// names, the DSN that family's driver receives and a form safe to log.
// It imports nothing of Gatehouse's and no database driver, so that the
// configuration can check the setting without pulling in storage;
// models opens what it returns.
package dburl

import (
	"errors"
	"net/url"
	"strings"
)

// Dialect names a supported database family.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// sqlitePragmas make the embedded database safe for concurrent use: WAL for
// readers beside one writer, a busy timeout instead of SQLITE_BUSY errors,
// enforced foreign keys, and write transactions that take the lock up front.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"

// Target is a parsed GATEHOUSE_DATABASE_URL.
type Target struct {
	Dialect Dialect
	// DSN is what the driver receives (with SQLite pragmas added).
	DSN string
	// Display is safe to log: no password.
	Display string
}

// Parse recognises PostgreSQL URLs and key=value DSNs; anything else is
// a SQLite file path (optionally prefixed with sqlite:// or file:). Its
// errors say what is wrong without repeating the value, which may hold
// a password.
func Parse(raw string) (Target, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return Target{}, errors.New("empty database URL")
	}
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			return Target{}, errors.New("not a valid postgres:// URL")
		}
		display := *u
		if _, has := display.User.Password(); has {
			display.User = url.UserPassword(display.User.Username(), "redacted")
		}
		display.RawQuery = redactQuery(display.RawQuery)
		return Target{Dialect: Postgres, DSN: raw, Display: display.Redacted()}, nil
	case strings.Contains(raw, "host=") || strings.Contains(raw, "dbname="):
		return Target{Dialect: Postgres, DSN: raw, Display: "postgres (key=value DSN)"}, nil
	}
	path := raw
	for _, p := range []string{"sqlite://", "sqlite:", "file:"} {
		if strings.HasPrefix(lower, p) {
			path = raw[len(p):]
			break
		}
	}
	if path == "" {
		return Target{}, errors.New("SQLite database path is empty")
	}
	display := path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		display = path[:i]
	}
	dsn := path
	if !strings.Contains(path, "_pragma=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		dsn = path + sep + sqlitePragmas
	}
	return Target{Dialect: SQLite, DSN: dsn, Display: display}, nil
}

// redactQuery replaces the values of the query parameters that carry a
// secret (password and sslpassword, which libpq and pgx accept in the
// URL's query as well as in its user information) with xxxxx, keeping
// the parameters' order.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err != nil || strings.Contains(strings.ToLower(name), "password") {
			parts[i] = k + "=xxxxx"
		}
	}
	return strings.Join(parts, "&")
}
