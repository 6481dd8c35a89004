package models_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/models"
)

// TestOpenErrorHidesQueryPassword: a PostgreSQL URL may carry its
// password in the query (?password=, ?sslpassword=) as well as in its
// user information; when the database cannot be reached, the error that
// start-up and `gatehouse doctor` print names the database without
// either.
func TestOpenErrorHidesQueryPassword(t *testing.T) {
	// A port nothing listens on: the connection is refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, raw := range []string{
		"postgres://gh@" + addr + "/g?sslmode=disable&password=Hunter2Secret&connect_timeout=2",
		"postgres://gh:Hunter2Secret@" + addr + "/g?sslmode=disable&sslpassword=Hunter2Secret",
		"postgres://gh@" + addr + "/g?sslmode=disable&password=Hunter2Secret&connect_timeout=abc",
	} {
		target, err := dburl.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		db, err := models.Open(ctx, target, models.PoolSettings{MaxOpenConns: 1})
		cancel()
		if err == nil {
			db.Close()
			t.Fatalf("Open(%s) reached a database", target.Display)
		}
		if strings.Contains(err.Error(), "Hunter2Secret") || !strings.Contains(err.Error(), "cannot reach postgres database") {
			t.Errorf("Open: %v", err)
		}
	}
}
