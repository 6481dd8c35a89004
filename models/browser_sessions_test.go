package models_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

type browserFixture struct {
	ctx  context.Context
	s    *models.Store
	now  time.Time
	user *models.User
	bs   *models.BrowserSession
}

func newBrowserFixture(t *testing.T, db *models.DB) *browserFixture {
	t.Helper()
	f := &browserFixture{ctx: context.Background(), s: models.NewStore(db), now: time.Now().UTC().Truncate(time.Microsecond), user: &models.User{}}
	id := &models.Identity{Provider: "dev", Subject: "ada-" + models.NewID()}
	if err := f.s.CreateUserWithIdentity(f.ctx, f.user, id); err != nil {
		t.Fatal(err)
	}
	f.bs = f.browserSession(t, "hash-"+models.NewID())
	return f
}

func (f *browserFixture) browserSession(t *testing.T, hash string) *models.BrowserSession {
	t.Helper()
	b := &models.BrowserSession{TokenHash: hash, UserID: f.user.ID, Provider: "dev", AuthTime: f.now, AMR: "ext",
		CreatedAt: f.now, LastUsedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	if err := f.s.CreateBrowserSession(f.ctx, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// appSession opens an app session of client under browser session b (nil: none).
func (f *browserFixture) appSession(t *testing.T, client string, b *models.BrowserSession) *models.Session {
	t.Helper()
	sess := &models.Session{UserID: f.user.ID, ClientID: client, Provider: "dev", AuthTime: f.now, LastUsedAt: f.now,
		ExpiresAt: f.now.Add(time.Hour), CreatedAt: f.now}
	if b != nil {
		sess.BrowserSessionID = &b.ID
	}
	if err := f.s.CreateSession(f.ctx, sess); err != nil {
		t.Fatal(err)
	}
	return sess
}

func (f *browserFixture) queued(t *testing.T, db *models.DB) []string {
	t.Helper()
	var rows []models.LogoutDelivery
	if err := db.Where("user_id = ?", f.user.ID).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.ClientID+":"+r.Reason)
	}
	slices.Sort(out)
	return out
}

// TestBrowserSessionLife: a browser session is found by its token hash
// only while live (not revoked, before its absolute and idle expiry, its
// user enabled); renewing it replaces the token.
func TestBrowserSessionLife(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newBrowserFixture(t, db)
		live := func(hash string, at, idleSince time.Time) error {
			_, err := f.s.LiveBrowserSession(f.ctx, hash, at, idleSince)
			return err
		}
		if err := live(f.bs.TokenHash, f.now, f.now.Add(-time.Minute)); err != nil {
			t.Fatalf("a fresh session: %v", err)
		}
		for name, err := range map[string]error{
			"another token":          live("hash-other", f.now, f.now.Add(-time.Minute)),
			"past its absolute time": live(f.bs.TokenHash, f.now.Add(time.Hour), f.now.Add(-time.Minute)),
			"idle too long":          live(f.bs.TokenHash, f.now, f.now),
		} {
			if !errors.Is(err, models.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}
		if ok, err := f.s.TouchBrowserSession(f.ctx, f.bs.ID, f.now.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("touch: %v %v", ok, err)
		}
		if err := live(f.bs.TokenHash, f.now.Add(time.Minute), f.now.Add(30*time.Second)); err != nil {
			t.Fatalf("touched, then within the idle time: %v", err)
		}
		renewed := *f.bs
		renewed.TokenHash, renewed.AMR, renewed.ACR = "hash-renewed-"+models.NewID(), "mfa", "gold"
		if ok, err := f.s.RenewBrowserSession(f.ctx, &renewed, f.now); !ok || err != nil {
			t.Fatalf("renew: %v %v", ok, err)
		}
		if err := live(f.bs.TokenHash, f.now, f.now.Add(-time.Minute)); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("the token before renewal: %v", err)
		}
		got, err := f.s.LiveBrowserSession(f.ctx, renewed.TokenHash, f.now, f.now.Add(-time.Minute))
		if err != nil || got.ACR != "gold" || got.ID != f.bs.ID {
			t.Fatalf("renewed: %+v %v", got, err)
		}
		if _, err := f.s.SetUserDisabled(f.ctx, f.user.ID, true, f.now); err != nil {
			t.Fatal(err)
		}
		if err := live(renewed.TokenHash, f.now, f.now.Add(-time.Minute)); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("a disabled user's session: %v", err)
		}
	})
}

// TestEndingSessionsQueuesLogouts: ending a browser session ends the app
// sessions under it and no other; every app session that ends, by any
// path, queues exactly one back-channel logout with its reason.
func TestEndingSessionsQueuesLogouts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newBrowserFixture(t, db)
		a, b := f.appSession(t, "app-a", f.bs), f.appSession(t, "app-b", f.bs)
		other := f.appSession(t, "app-c", nil)
		if q := f.queued(t, db); len(q) != 0 {
			t.Fatalf("queued before any end: %v", q)
		}
		ended, err := f.s.RevokeBrowserSession(f.ctx, f.bs.ID, "logout", f.now)
		if !ended || err != nil {
			t.Fatalf("revoke: %v %v", ended, err)
		}
		for _, sess := range []*models.Session{a, b} {
			if ok, _ := f.s.SessionActive(f.ctx, sess.ID, f.now); ok {
				t.Fatalf("app session %s outlived its browser session", sess.ClientID)
			}
		}
		if ok, _ := f.s.SessionActive(f.ctx, other.ID, f.now); !ok {
			t.Fatal("an app session of no browser session ended")
		}
		if q := f.queued(t, db); !slices.Equal(q, []string{"app-a:logout", "app-b:logout"}) {
			t.Fatalf("queued = %v", q)
		}
		again, err := f.s.RevokeBrowserSession(f.ctx, f.bs.ID, "admin", f.now)
		if again || err != nil {
			t.Fatalf("second revoke: %v %v", again, err)
		}
		if _, err := f.s.RevokeSession(f.ctx, other.ID, "refresh_token_reuse", f.now); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.RevokeSession(f.ctx, other.ID, "again", f.now); err != nil {
			t.Fatal(err)
		}
		if q := f.queued(t, db); !slices.Equal(q, []string{"app-a:logout", "app-b:logout", "app-c:refresh_token_reuse"}) {
			t.Fatalf("queued after more ends = %v", q)
		}
		// A session past its expiry was over for its client: revoking it
		// later (signing a user out everywhere) tells nobody.
		expired := f.appSession(t, "app-d", nil)
		if _, err := f.s.RevokeSession(f.ctx, expired.ID, "admin", f.now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if q := f.queued(t, db); len(q) != 3 {
			t.Fatalf("an expired session's revocation was queued: %v", q)
		}
		if _, err := f.s.RevokeBrowserSession(f.ctx, "no-such-session", "logout", f.now); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown browser session: %v", err)
		}
	})
}

// TestRevokeUserBrowserSessions ends all of a user's browser sessions and
// their app sessions.
func TestRevokeUserBrowserSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newBrowserFixture(t, db)
		second := f.browserSession(t, "hash-"+models.NewID())
		f.appSession(t, "app-a", f.bs)
		f.appSession(t, "app-b", second)
		n, err := f.s.RevokeUserBrowserSessions(f.ctx, f.user.ID, "user_disabled", f.now)
		if n != 2 || err != nil {
			t.Fatalf("revoked %d, %v", n, err)
		}
		if q := f.queued(t, db); !slices.Equal(q, []string{"app-a:user_disabled", "app-b:user_disabled"}) {
			t.Fatalf("queued = %v", q)
		}
		list, err := f.s.ListUserBrowserSessions(f.ctx, f.user.ID)
		if err != nil || len(list) != 2 || list[0].RevokedAt == nil || list[1].RevokedAt == nil {
			t.Fatalf("list = %+v, %v", list, err)
		}
	})
}

// TestNoAppSessionEscapesALogout: an app session is opened under a browser
// session only while it is live; racing the two, no live app session is
// ever left under an ended browser session.
func TestNoAppSessionEscapesALogout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newBrowserFixture(t, db)
		if _, err := f.s.RevokeBrowserSession(f.ctx, f.bs.ID, "logout", f.now); err != nil {
			t.Fatal(err)
		}
		late := &models.Session{UserID: f.user.ID, ClientID: "app-a", AuthTime: f.now, LastUsedAt: f.now,
			ExpiresAt: f.now.Add(time.Hour), CreatedAt: f.now, BrowserSessionID: &f.bs.ID}
		if err := f.s.CreateSession(f.ctx, late); !errors.Is(err, models.ErrSessionInactive) {
			t.Fatalf("an app session under an ended browser session: %v", err)
		}
		for round := range 10 {
			bs := f.browserSession(t, "hash-"+models.NewID())
			done := make(chan error, 1)
			go func() {
				_, err := f.s.RevokeBrowserSession(f.ctx, bs.ID, "logout", f.now)
				done <- err
			}()
			var opened []string
			for range 5 {
				sess := &models.Session{UserID: f.user.ID, ClientID: "app-b", AuthTime: f.now, LastUsedAt: f.now,
					ExpiresAt: f.now.Add(time.Hour), CreatedAt: f.now, BrowserSessionID: &bs.ID}
				err := f.s.CreateSession(f.ctx, sess)
				if err == nil {
					opened = append(opened, sess.ID)
				} else if !errors.Is(err, models.ErrSessionInactive) {
					t.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			for _, id := range opened {
				if ok, _ := f.s.SessionActive(f.ctx, id, f.now); ok {
					t.Fatalf("round %d: app session %s outlived the logout of its browser session", round, id)
				}
			}
		}
	})
}
