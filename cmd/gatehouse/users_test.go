package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestUsersCommands: the operator lists, deactivates, reactivates and
// deletes people from the console, naming them by id or by an email one
// user has, on SQLite and PostgreSQL with the server's settings.
// Deactivating ends their sessions (a back-channel logout queued);
// deleting needs --yes, leaves no row of theirs and is audited as the
// console's; the second time, the person is not found. Two users with one
// email must be named by id.
func TestUsersCommands(t *testing.T) {
	sqlitePath := func(t *testing.T) string { return filepath.Join(t.TempDir(), "g.db") }
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			var url string
			var target dburl.Target
			if dialect == "sqlite" {
				url = sqlitePath(t)
				var err error
				if target, err = dburl.Parse(url); err != nil {
					t.Fatal(err)
				}
			} else {
				target = dbtest.PostgresTarget(t)
				url = target.DSN
			}
			ctx := context.Background()
			db, err := models.Open(ctx, target, models.PoolSettings{MaxOpenConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			m, err := migrations.New(db.SQL, db.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Up(ctx); err != nil {
				t.Fatal(err)
			}
			store := models.NewStore(db)
			user := func(email, provider string) string {
				t.Helper()
				u := &models.User{Email: email, EmailVerified: true, Name: "Person " + email}
				if err := store.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: provider, Subject: provider + "|" + email + "|" + models.NewID(),
					Email: email, EmailVerified: true}); err != nil {
					t.Fatal(err)
				}
				return u.ID
			}
			ada := user("ada@example.com", "dev")
			user("twin@example.com", "dev")
			user("twin@example.com", "lax")
			now := time.Now().UTC().Truncate(time.Microsecond)
			sess := &models.Session{UserID: ada, ClientID: "spa", Provider: "dev", AuthTime: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
			if err := store.CreateSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
			count := func(q string, args ...any) (n int64) {
				t.Helper()
				if err := db.Raw(q, args...).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}

			dir := t.TempDir()
			env := map[string]string{"GATEHOUSE_DATABASE_URL": url, "GATEHOUSE_SECRET_KEY": strings.Repeat("k", 40)}
			steps := []struct {
				args  []string
				ok    bool
				want  string
				check func()
			}{
				{[]string{"users"}, false, "usage: gatehouse users list", nil},
				{[]string{"users", "frobnicate", ada}, false, `unknown users command "frobnicate"`, nil},
				{[]string{"users", "deactivate"}, false, "usage", nil},
				{[]string{"users", "deactivate", ada, "extra"}, false, "usage", nil},
				{[]string{"users", "list", "--limit", "0"}, false, "usage", nil},
				{[]string{"users", "list", "--disabled", "maybe"}, false, "disabled: must be true or false", nil},
				{[]string{"users", "list"}, true, ada + "  ada@example.com", nil},
				{[]string{"users", "list", "--email", "ADA@example.com"}, true, "active", nil},
				{[]string{"users", "deactivate", "nobody@example.com"}, false, "no user has the email nobody@example.com", nil},
				{[]string{"users", "deactivate", "Ada@Example.com"}, true, "deactivated user " + ada, func() {
					if count("SELECT COUNT(*) FROM users WHERE id = ? AND disabled", ada) != 1 ||
						count("SELECT COUNT(*) FROM sessions WHERE id = ? AND revoked_at IS NOT NULL", sess.ID) != 1 ||
						count("SELECT COUNT(*) FROM logout_deliveries WHERE session_id = ? AND reason = 'user_disabled'", sess.ID) != 1 {
						t.Error("deactivation did not disable her, end her session and queue its logout")
					}
				}},
				{[]string{"users", "list", "--disabled", "true"}, true, "deactivated", nil},
				{[]string{"users", "reactivate", ada}, true, "reactivated user " + ada, func() {
					if count("SELECT COUNT(*) FROM users WHERE id = ? AND NOT disabled", ada) != 1 {
						t.Error("still disabled")
					}
				}},
				{[]string{"users", "delete", "ada@example.com"}, false, "run again with --yes", func() {
					if count("SELECT COUNT(*) FROM users WHERE id = ?", ada) != 1 {
						t.Error("deleted without --yes")
					}
				}},
				{[]string{"users", "delete", "--yes", "ada@example.com"}, true, "deleted user " + ada, func() {
					if count("SELECT COUNT(*) FROM users WHERE id = ?", ada) != 0 || count("SELECT COUNT(*) FROM identities WHERE user_id = ?", ada) != 0 {
						t.Error("her rows are still there")
					}
					if count("SELECT COUNT(*) FROM audit_events WHERE type = 'user.deleted' AND actor_user_id IS NULL AND details LIKE '%console%'") != 1 {
						t.Error("no user.deleted event by the console")
					}
					if count("SELECT COUNT(*) FROM audit_events WHERE actor_user_id = ? OR subject_user_id = ? OR details LIKE ?", ada, ada, "%"+ada+"%") != 0 {
						t.Error("the audit trail still names her")
					}
				}},
				{[]string{"users", "delete", ada, "--yes"}, false, "no user has the id", nil},
				{[]string{"users", "delete", "twin@example.com", "--yes"}, false, "2 users have the email twin@example.com", nil},
			}
			for _, st := range steps {
				out, err := command(t, dir, env, st.args...).CombinedOutput()
				if (err == nil) != st.ok || !strings.Contains(string(out), st.want) {
					t.Fatalf("gatehouse %v = %s, %v; want ok=%v and %q", st.args, out, err, st.ok, st.want)
				}
				if st.check != nil {
					st.check()
				}
			}
		})
	}
}
