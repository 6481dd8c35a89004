package dburl_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/dburl"
)

func TestParse(t *testing.T) {
	pragmas := "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
	for _, tc := range []struct {
		raw     string
		want    dburl.Target
		wantErr string
	}{
		{raw: "postgres://gh:s3cret@db:5432/gatehouse?sslmode=disable", want: dburl.Target{Dialect: dburl.Postgres,
			DSN: "postgres://gh:s3cret@db:5432/gatehouse?sslmode=disable", Display: "postgres://gh:xxxxx@db:5432/gatehouse?sslmode=disable"}},
		// libpq and pgx take the password in the query too.
		{raw: "postgres://gh@db/g?sslmode=verify-full&password=s3cret&sslpassword=s3cret&Pass%77ord=s3cret&application_name=gh",
			want: dburl.Target{Dialect: dburl.Postgres,
				DSN:     "postgres://gh@db/g?sslmode=verify-full&password=s3cret&sslpassword=s3cret&Pass%77ord=s3cret&application_name=gh",
				Display: "postgres://gh@db/g?sslmode=verify-full&password=xxxxx&sslpassword=xxxxx&Pass%77ord=xxxxx&application_name=gh"}},
		{raw: "postgres://gh:s3cret@db/g?password=s3cret", want: dburl.Target{Dialect: dburl.Postgres,
			DSN: "postgres://gh:s3cret@db/g?password=s3cret", Display: "postgres://gh:xxxxx@db/g?password=xxxxx"}},
		{raw: "  PostgreSQL://db/g  ", want: dburl.Target{Dialect: dburl.Postgres, DSN: "PostgreSQL://db/g", Display: "postgresql://db/g"}},
		{raw: "host=db dbname=g password=s3cret", want: dburl.Target{Dialect: dburl.Postgres,
			DSN: "host=db dbname=g password=s3cret", Display: "postgres (key=value DSN)"}},
		{raw: "/var/lib/gatehouse/g.db", want: dburl.Target{Dialect: dburl.SQLite, DSN: "/var/lib/gatehouse/g.db?" + pragmas, Display: "/var/lib/gatehouse/g.db"}},
		{raw: "sqlite://g.db?cache=shared", want: dburl.Target{Dialect: dburl.SQLite, DSN: "g.db?cache=shared&" + pragmas, Display: "g.db"}},
		{raw: "file:g.db?_pragma=busy_timeout(0)", want: dburl.Target{Dialect: dburl.SQLite, DSN: "g.db?_pragma=busy_timeout(0)", Display: "g.db"}},
		{raw: " ", wantErr: "empty database URL"},
		{raw: "postgres://db:port/g", wantErr: "not a valid postgres:// URL"},
		{raw: "sqlite://", wantErr: "SQLite database path is empty"},
	} {
		got, err := dburl.Parse(tc.raw)
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Parse(%q) = %+v, %v; want error %q", tc.raw, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.raw, got, err, tc.want)
		case strings.Contains(got.Display, "s3cret"):
			t.Errorf("Parse(%q).Display shows the password: %s", tc.raw, got.Display)
		}
	}
}
