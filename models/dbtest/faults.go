package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/models"
)

// Faults is a private schema on the test PostgreSQL server whose
// connections all carry one unique application_name, so that a test can
// cut exactly its own connections — what a PostgreSQL restart, a failover
// or an administrator's pg_terminate_backend does to a running Gatehouse
// — without touching the other tests that share the server.
type Faults struct {
	// Target is the schema, with the application_name in its DSN; open
	// it (or hand its DSN to a server) as usual.
	Target dburl.Target
	// AppName is the application_name every connection of Target reports.
	AppName string
	admin   *models.DB
}

// PostgresFaults prepares a Faults schema (not migrated); it skips the
// test without a PostgreSQL server, like PostgresTarget.
func PostgresFaults(t testing.TB) *Faults {
	t.Helper()
	target := PostgresTarget(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gatehouse_faults_" + hex.EncodeToString(b[:])
	target.DSN = withParam(target.DSN, "application_name", name)
	base, err := dburl.Parse(os.Getenv(PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := models.Open(context.Background(), base, models.PoolSettings{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	return &Faults{Target: target, AppName: name, admin: admin}
}

// Terminate ends every server connection of the Faults schema open at
// the call with pg_terminate_backend (their clients read SQLSTATE 57P01
// or a closed socket) and waits until the server has dropped them. It
// returns how many it ended. Connections opened meanwhile live on.
func (f *Faults) Terminate(t testing.TB) int {
	t.Helper()
	var rows []struct {
		PID        int64
		Terminated bool
	}
	// pg_terminate_backend in the select list runs only for the rows the
	// WHERE clause kept (in the WHERE clause the planner may call it first).
	err := f.admin.Raw(`SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = ? AND pid <> pg_backend_pid()`, f.AppName).
		Scan(&rows).Error
	if err != nil {
		t.Errorf("terminate connections: %v", err)
		return 0
	}
	var pids []int64
	for _, r := range rows {
		if r.Terminated {
			pids = append(pids, r.PID)
		}
	}
	if len(pids) == 0 {
		return 0
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		var left int
		if err := f.admin.Raw(`SELECT count(*) FROM pg_stat_activity WHERE pid IN ?`, pids).Scan(&left).Error; err != nil {
			t.Errorf("count connections: %v", err)
			break
		}
		if left == 0 {
			break
		}
	}
	return len(pids)
}

// withParam sets one connection parameter in a URL or key=value DSN.
func withParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set(key, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + key + "=" + value
}
