package tokens_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// sessClock is a settable clock shared by the service under test.
type sessClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sessClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sessClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sessFixture is a SessionService on a real database with a moveable clock.
type sessFixture struct {
	t     testing.TB
	ctx   context.Context
	db    *models.DB
	store *models.Store
	svc   *tokens.SessionService
	clock *sessClock
	opts  tokens.SessionOptions
}

const (
	sessTestIdle     = 2 * time.Hour
	sessTestAbsolute = 5 * time.Hour
	sessTestGrace    = 2 * time.Second
	sessTestCodeTTL  = 60 * time.Second
)

// newSessFixture builds a service with the test lifetimes; edit may change
// the options (nil keeps them).
func newSessFixture(t testing.TB, db *models.DB, edit func(*tokens.SessionOptions)) *sessFixture {
	t.Helper()
	clock := &sessClock{t: time.Date(2031, 3, 4, 5, 6, 7, 891011000, time.UTC)}
	opts := tokens.SessionOptions{
		IdleTTL:     sessTestIdle,
		AbsoluteTTL: sessTestAbsolute,
		ReuseGrace:  sessTestGrace,
		CodeTTL:     sessTestCodeTTL,
		Now:         clock.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	store := models.NewStore(db)
	return &sessFixture{t: t, ctx: context.Background(), db: db, store: store,
		svc: tokens.NewSessionService(store, opts), clock: clock, opts: opts}
}

func (f *sessFixture) user(subject string) *models.User {
	f.t.Helper()
	u := &models.User{Email: subject + "@example.com", EmailVerified: true, Name: subject}
	id := &models.Identity{Provider: "dev", Subject: subject, Email: u.Email, EmailVerified: true}
	if err := f.store.CreateUserWithIdentity(f.ctx, u, id); err != nil {
		f.t.Fatal(err)
	}
	return u
}

func (f *sessFixture) session(userID, clientID string) *models.Session {
	f.t.Helper()
	s, err := f.svc.CreateSession(f.ctx, tokens.NewSession{
		UserID: userID, ClientID: clientID, Provider: "dev", Scope: "openid profile offline_access",
		AMR: []string{"pwd", "mfa"},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *sessFixture) refresh(sessionID, clientID string) string {
	f.t.Helper()
	tok, err := f.svc.IssueRefreshToken(f.ctx, sessionID, clientID)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func (f *sessFixture) disable(userID string) {
	f.t.Helper()
	if err := f.db.Model(&models.User{}).Where("id = ?", userID).Update("disabled", true).Error; err != nil {
		f.t.Fatal(err)
	}
}

func (f *sessFixture) loadSession(id string) *models.Session {
	f.t.Helper()
	s, err := f.svc.GetSession(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *sessFixture) familyRows(sessionID string) []models.RefreshToken {
	f.t.Helper()
	var rows []models.RefreshToken
	if err := f.db.Where("session_id = ?", sessionID).Order("created_at, id").Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	return rows
}

func (f *sessFixture) audits(typ string) []models.AuditEvent {
	f.t.Helper()
	var rows []models.AuditEvent
	if err := f.db.Where("type = ?", typ).Order("id").Find(&rows).Error; err != nil {
		f.t.Fatal(err)
	}
	return rows
}

// wantGrantErr checks err is a *GrantError of kind (nil kind: no error) and
// that nothing secret leaks into it.
func wantGrantErr(t testing.TB, err error, kind error, secrets ...string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ge *tokens.GrantError
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v (%T), want *tokens.GrantError of %v", err, err, kind)
	}
	if !errors.Is(err, tokens.ErrGrantInvalid) || !errors.Is(err, kind) {
		t.Fatalf("err = %v, want errors.Is %v and ErrGrantInvalid", err, kind)
	}
	if ge.Reason == "" {
		t.Fatal("GrantError without a reason")
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(err.Error(), s) || strings.Contains(ge.Reason, s)) {
			t.Fatalf("error %q contains a secret", err)
		}
	}
}

func TestCreateSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		org := &models.Organization{Slug: "acme", Name: "Acme"}
		if err := f.store.CreateOrganization(f.ctx, org); err != nil {
			t.Fatal(err)
		}
		authTime := f.clock.Now().Add(-time.Minute)
		s, err := f.svc.CreateSession(f.ctx, tokens.NewSession{
			UserID: u.ID, ClientID: "spa", Provider: "dev", ActiveOrgID: &org.ID,
			Scope: "openid", AMR: []string{"pwd"}, AuthTime: authTime,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := f.loadSession(s.ID)
		now := f.clock.Now()
		if got.UserID != u.ID || got.ClientID != "spa" || got.Provider != "dev" || got.Scope != "openid" ||
			got.ActiveOrgID == nil || *got.ActiveOrgID != org.ID || got.RevokedAt != nil {
			t.Fatalf("session = %+v", got)
		}
		if !got.ExpiresAt.Equal(now.Add(sessTestAbsolute)) || !got.AuthTime.Equal(authTime) ||
			!got.CreatedAt.Equal(now) || !got.LastUsedAt.Equal(now) {
			t.Fatalf("times: expires %v auth %v created %v (now %v)", got.ExpiresAt, got.AuthTime, got.CreatedAt, now)
		}
		if amr := got.AMRValues(); len(amr) != 1 || amr[0] != "pwd" {
			t.Fatalf("amr = %v", amr)
		}

		for _, bad := range []tokens.NewSession{
			{ClientID: "spa"},
			{UserID: u.ID},
			{UserID: u.ID, ClientID: "spa", AMR: []string{"pwd mfa"}},
			{UserID: u.ID, ClientID: "spa", AMR: []string{""}},
		} {
			if _, err := f.svc.CreateSession(f.ctx, bad); err == nil {
				t.Errorf("CreateSession(%+v) succeeded", bad)
			}
		}

		f.clock.Advance(time.Second)
		s2 := f.session(u.ID, "spa")
		list, err := f.svc.ListUserSessions(f.ctx, u.ID)
		if err != nil || len(list) != 2 || list[0].ID != s2.ID || list[1].ID != s.ID {
			t.Fatalf("ListUserSessions = %v, %v", list, err)
		}
		if _, err := f.svc.GetSession(f.ctx, "nope"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("GetSession(unknown) = %v", err)
		}
	})
}

func TestSessionActive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		cases := []struct {
			name  string
			setup func(f *sessFixture, s *models.Session) string // returns the id to check
			want  bool
		}{
			{"live", func(f *sessFixture, s *models.Session) string { return s.ID }, true},
			{"unknown", func(f *sessFixture, s *models.Session) string { return models.NewID() }, false},
			{"revoked", func(f *sessFixture, s *models.Session) string {
				if err := f.svc.RevokeSession(f.ctx, s.ID, "logout"); err != nil {
					t.Fatal(err)
				}
				return s.ID
			}, false},
			{"just before absolute expiry", func(f *sessFixture, s *models.Session) string {
				f.clock.Advance(sessTestAbsolute - time.Microsecond)
				return s.ID
			}, true},
			{"at absolute expiry", func(f *sessFixture, s *models.Session) string {
				f.clock.Advance(sessTestAbsolute)
				return s.ID
			}, false},
			{"user disabled", func(f *sessFixture, s *models.Session) string {
				f.disable(s.UserID)
				return s.ID
			}, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newSessFixture(t, db, nil)
				s := f.session(f.user("u-"+models.NewID()).ID, "spa")
				id := tc.setup(f, s)
				got, err := f.svc.SessionActive(f.ctx, id)
				if err != nil || got != tc.want {
					t.Fatalf("SessionActive = %v, %v; want %v", got, err, tc.want)
				}
			})
		}
	})
}

func TestSetActiveOrg(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		s := f.session(f.user("ada").ID, "spa")
		org := &models.Organization{Slug: "acme"}
		if err := f.store.CreateOrganization(f.ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.SetActiveOrg(f.ctx, s.ID, &org.ID); err != nil {
			t.Fatal(err)
		}
		if got := f.loadSession(s.ID).ActiveOrgID; got == nil || *got != org.ID {
			t.Fatalf("active org = %v", got)
		}
		if err := f.svc.SetActiveOrg(f.ctx, s.ID, nil); err != nil {
			t.Fatal(err)
		}
		if got := f.loadSession(s.ID).ActiveOrgID; got != nil {
			t.Fatalf("active org after clear = %v", *got)
		}
		if err := f.svc.SetActiveOrg(f.ctx, "nope", &org.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
		if err := f.svc.RevokeSession(f.ctx, s.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		wantGrantErr(t, f.svc.SetActiveOrg(f.ctx, s.ID, &org.ID), tokens.ErrGrantRevoked)
	})
}

func TestRevokeSessionAndUserSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		ada, bob := f.user("ada"), f.user("bob")
		a1, a2, b1 := f.session(ada.ID, "spa"), f.session(ada.ID, "cli"), f.session(bob.ID, "spa")
		ra1, ra2, rb1 := f.refresh(a1.ID, "spa"), f.refresh(a2.ID, "cli"), f.refresh(b1.ID, "spa")

		if err := f.svc.RevokeSession(f.ctx, "nope", "logout"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("RevokeSession(unknown) = %v", err)
		}
		if err := f.svc.RevokeSession(f.ctx, a1.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		if err := f.svc.RevokeSession(f.ctx, a1.ID, "admin"); err != nil { // idempotent, first reason kept
			t.Fatal(err)
		}
		if got := f.loadSession(a1.ID); got.RevokedAt == nil || got.RevokeReason != "logout" {
			t.Fatalf("revoked session = %+v", got)
		}
		_, err := f.svc.RedeemRefreshToken(f.ctx, ra1, "spa")
		wantGrantErr(t, err, tokens.ErrGrantRevoked, ra1)

		n, err := f.svc.RevokeUserSessions(f.ctx, ada.ID, "user_disabled")
		if err != nil || n != 1 {
			t.Fatalf("RevokeUserSessions = %d, %v; want 1 (a1 was revoked already)", n, err)
		}
		if got := f.loadSession(a2.ID); got.RevokedAt == nil || got.RevokeReason != "user_disabled" {
			t.Fatalf("a2 = %+v", got)
		}
		for _, r := range f.familyRows(a2.ID) {
			if r.RevokedAt == nil {
				t.Fatalf("refresh token %s of a revoked session not revoked", r.ID)
			}
		}
		_, err = f.svc.RedeemRefreshToken(f.ctx, ra2, "cli")
		wantGrantErr(t, err, tokens.ErrGrantRevoked, ra2)
		if _, err := f.svc.RedeemRefreshToken(f.ctx, rb1, "spa"); err != nil {
			t.Fatalf("another user's session was affected: %v", err)
		}
		if n, err := f.svc.RevokeUserSessions(f.ctx, ada.ID, "again"); err != nil || n != 0 {
			t.Fatalf("second RevokeUserSessions = %d, %v", n, err)
		}
	})
}

func TestPruneExpired(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		old := f.session(u.ID, "spa") // will be > 1 day past absolute expiry
		oldRT := f.refresh(old.ID, "spa")
		oldCode, err := f.svc.IssueCode(f.ctx, tokens.NewCode{ClientID: "spa", UserID: u.ID, SessionID: old.ID,
			RedirectURI: "https://app.example.com/cb"})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(sessTestAbsolute + 24*time.Hour + time.Minute)
		recent := f.session(u.ID, "spa")
		recentRT := f.refresh(recent.ID, "spa")
		f.clock.Advance(sessTestAbsolute + time.Hour) // recent: expired, but by less than a day
		live := f.session(u.ID, "spa")
		liveRT := f.refresh(live.ID, "spa")
		liveCode, err := f.svc.IssueCode(f.ctx, tokens.NewCode{ClientID: "spa", UserID: u.ID, SessionID: live.ID,
			RedirectURI: "https://app.example.com/cb"})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(sessTestCodeTTL) // liveCode expired now
		freshCode, err := f.svc.IssueCode(f.ctx, tokens.NewCode{ClientID: "spa", UserID: u.ID, SessionID: live.ID,
			RedirectURI: "https://app.example.com/cb"})
		if err != nil {
			t.Fatal(err)
		}

		n, err := f.svc.PruneExpired(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 1 expired code of live + (old's code: deleted by the code step, as expired)
		// + old's refresh token + old session = 4 rows deleted directly.
		if n != 4 {
			t.Errorf("PruneExpired deleted %d rows, want 4", n)
		}
		if _, err := f.svc.GetSession(f.ctx, old.ID); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("old session not pruned: %v", err)
		}
		for _, id := range []string{recent.ID, live.ID} {
			if _, err := f.svc.GetSession(f.ctx, id); err != nil {
				t.Errorf("session %s pruned too early: %v", id, err)
			}
		}
		if info, _ := f.svc.LookupRefreshToken(f.ctx, oldRT); info.SessionID != "" {
			t.Error("old refresh token not pruned")
		}
		if info, _ := f.svc.LookupRefreshToken(f.ctx, recentRT); info.SessionID != recent.ID {
			t.Error("recent refresh token pruned too early")
		}
		if info, _ := f.svc.LookupRefreshToken(f.ctx, liveRT); !info.Active {
			t.Error("live refresh token affected")
		}
		for _, c := range []string{oldCode, liveCode} {
			_, err := f.svc.RedeemCode(f.ctx, c, "spa", "https://app.example.com/cb")
			wantGrantErr(t, err, tokens.ErrGrantUnknown, c)
		}
		if _, err := f.svc.RedeemCode(f.ctx, freshCode, "spa", "https://app.example.com/cb"); err != nil {
			t.Errorf("fresh code: %v", err)
		}
		if n, err := f.svc.PruneExpired(f.ctx); err != nil || n != 0 {
			t.Errorf("second prune = %d, %v", n, err)
		}
	})
}
