package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// fakeRechecker is an upstream kind that can re-check, answering what the
// test sets.
type fakeRechecker struct {
	name   string
	policy providers.RecheckPolicy
	mu     sync.Mutex
	answer func(saved string) (*providers.Identity, string, error)
	seen   []string
	calls  atomic.Int64
	delay  time.Duration
}

func (p *fakeRechecker) Name() string        { return p.name }
func (p *fakeRechecker) Type() string        { return "fake" }
func (p *fakeRechecker) DisplayName() string { return p.name }
func (p *fakeRechecker) Begin(context.Context, providers.BeginRequest) (*providers.Challenge, error) {
	return nil, errors.New("not used")
}
func (p *fakeRechecker) Complete(context.Context, providers.CompleteRequest) (*providers.Identity, error) {
	return nil, errors.New("not used")
}
func (p *fakeRechecker) RecheckPolicy() providers.RecheckPolicy { return p.policy }
func (p *fakeRechecker) Recheck(_ context.Context, saved string) (*providers.Identity, string, error) {
	p.calls.Add(1)
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, saved)
	return p.answer(saved)
}

// fakeSAML has a policy but cannot re-check.
type fakeSAML struct{ fakeRechecker }

func (p *fakeSAML) Recheck() {} // hides the embedded Recheck: not a Rechecker

type recheckFixture struct {
	*fixture
	rc   *fakeRechecker
	saml *fakeSAML
	key  []byte
}

func newRecheckFixture(t *testing.T, db *models.DB, pol providers.RecheckPolicy) *recheckFixture {
	rc := &fakeRechecker{name: "rc", policy: pol}
	saml := &fakeSAML{fakeRechecker{name: "idp", policy: providers.RecheckPolicy{MaxSessionAge: 8 * time.Hour}}}
	key := tokens.DeriveKey("test-secret-key-0123456789abcdef", "upstream-rechecks")
	f := newFixture(t, db, provisioning.Options{Providers: providers.NewSet([]providers.Provider{rc, saml}), RecheckKey: key,
		Sync: provisioning.SyncPolicy{OnLeave: provisioning.LeaveRemove, AutoCreateOrgs: true,
			Rules: []provisioning.Rule{{Index: 0, Match: "fake:team:admins", Org: "acme", Role: "admin"}}}})
	return &recheckFixture{fixture: f, rc: rc, saml: saml, key: key}
}

// signIn provisions a sign-in through provider carrying saved, and opens
// a session through its identity; it returns the refresh read of it.
func (f *recheckFixture) signIn(provider, subject, saved string, groups ...string) *models.RefreshGrant {
	f.t.Helper()
	id := identity(provider, subject, subject+"@example.com", true, groups...)
	id.Recheck = saved
	res := f.login(id)
	sess := &models.Session{UserID: res.User.ID, ClientID: "spa", Provider: provider, Scope: "openid", AuthTime: f.clock,
		LastUsedAt: f.clock, ExpiresAt: f.clock.Add(720 * time.Hour), CreatedAt: f.clock, IdentityID: &res.IdentityID}
	if err := f.store.CreateSession(f.ctx, sess); err != nil {
		f.t.Fatal(err)
	}
	return f.grant(sess.ID)
}

// grant is what the refresh read sees of a session now.
func (f *recheckFixture) grant(sessionID string) *models.RefreshGrant {
	f.t.Helper()
	sess, err := f.store.FindSession(f.ctx, sessionID)
	if err != nil {
		f.t.Fatal(err)
	}
	g := &models.RefreshGrant{Session: *sess}
	if c, err := f.store.FindUpstreamCheck(f.ctx, *sess.IdentityID); err == nil {
		g.UpstreamCheckedAt, g.UpstreamSaved = &c.CheckedAt, c.Saved != ""
	}
	return g
}

func (f *recheckFixture) saved(identityID string) string {
	f.t.Helper()
	c, err := f.store.FindUpstreamCheck(f.ctx, identityID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Saved
}

func (f *recheckFixture) before(g *models.RefreshGrant) (bool, error) {
	return f.svc.BeforeRefresh(f.ctx, g, provisioning.Meta{ClientID: "spa", RequestID: "req-r"})
}

func kindOf(err error) fault.Kind {
	if err == nil {
		return ""
	}
	return fault.Of(err)
}

func revokeReason(f *recheckFixture, sessionID string) string {
	sess, err := f.store.FindSession(f.ctx, sessionID)
	if err != nil {
		f.t.Fatal(err)
	}
	return sess.RevokeReason
}

var errDown = fmt.Errorf("%w: token endpoint answered 503", providers.ErrUnavailable)

// TestBeforeRefresh walks the re-check rules on both databases: not due,
// success (provisioning again, the rotated upstream data kept, sealed),
// gone, unreachable with keep, deny and staleness, no data with and
// without recheck_interval configured, and SAML's max_session_age.
func TestBeforeRefresh(t *testing.T) {
	keep := providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour}
	deny := keep
	deny.DenyUnavailable = true
	required := deny
	required.Required = true
	for _, tc := range []struct {
		name    string
		policy  providers.RecheckPolicy
		saved   string // what the sign-in kept
		after   time.Duration
		answer  func(saved string) (*providers.Identity, string, error)
		checked bool
		kind    fault.Kind
		calls   int64
		reason  string // the session's revoke reason afterwards
		keeps   string // the upstream data kept afterwards ("": unchanged)
	}{
		{name: "not due", policy: keep, saved: "rt-1", after: 59 * time.Minute},
		{name: "due, the upstream answers", policy: keep, saved: "rt-1", after: 61 * time.Minute, calls: 1, checked: true, keeps: "rt-2",
			answer: func(string) (*providers.Identity, string, error) {
				id := identity("rc", "s1", "s1@example.com", true) // out of fake:team:admins
				id.Name = "Renamed"
				return id, "rt-2", nil
			}},
		{name: "due, the upstream confirms the grant only", policy: keep, saved: "rt-1", after: 2 * time.Hour, calls: 1, checked: true, keeps: "rt-2",
			answer: func(string) (*providers.Identity, string, error) { return nil, "rt-2", nil }},
		{name: "gone", policy: keep, saved: "rt-1", after: 2 * time.Hour, calls: 1, checked: true, kind: fault.InvalidGrant, reason: "upstream_recheck",
			answer: func(string) (*providers.Identity, string, error) {
				return nil, "", fmt.Errorf("%w: invalid_grant", providers.ErrGone)
			}},
		{name: "unreachable, keep", policy: keep, saved: "rt-1", after: 2 * time.Hour, calls: 1,
			answer: func(string) (*providers.Identity, string, error) { return nil, "", errDown }},
		{name: "unreachable after rotating, the new token is kept", policy: keep, saved: "rt-1", after: 2 * time.Hour, calls: 1, keeps: "rt-9",
			answer: func(string) (*providers.Identity, string, error) { return nil, "rt-9", errDown }},
		{name: "unreachable, keep, stale", policy: keep, saved: "rt-1", after: 25 * time.Hour, calls: 1, kind: fault.InvalidGrant, reason: "upstream_recheck_stale",
			answer: func(string) (*providers.Identity, string, error) { return nil, "", errDown }},
		{name: "unreachable, deny", policy: deny, saved: "rt-1", after: 2 * time.Hour, calls: 1, kind: fault.UpstreamUnconfirmed,
			answer: func(string) (*providers.Identity, string, error) { return nil, "", errDown }},
		{name: "no upstream data, not configured: not re-checked", policy: deny, after: 2 * time.Hour},
		{name: "no upstream data, recheck_interval configured: unreachable", policy: required, after: 2 * time.Hour, kind: fault.UpstreamUnconfirmed},
		{name: "no upstream data, configured, stale", policy: required, after: 25 * time.Hour, kind: fault.InvalidGrant, reason: "upstream_recheck_stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *models.DB) {
				f := newRecheckFixture(t, db, tc.policy)
				f.rc.answer = tc.answer
				g := f.signIn("rc", "s1", tc.saved, "fake:team:admins")
				identityID := *g.Session.IdentityID
				sealed := f.saved(identityID)
				if tc.saved != "" && (sealed == "" || sealed == tc.saved) {
					t.Fatalf("kept upstream data = %q, want it sealed", sealed)
				}
				f.clock = f.clock.Add(tc.after)
				checked, err := f.before(g)
				if checked != tc.checked || kindOf(err) != tc.kind {
					t.Fatalf("BeforeRefresh = %v, %v (kind %q); want %v, kind %q", checked, err, kindOf(err), tc.checked, tc.kind)
				}
				if n := f.rc.calls.Load(); n != tc.calls {
					t.Fatalf("upstream asked %d times, want %d", n, tc.calls)
				}
				if tc.calls > 0 && f.rc.seen[0] != tc.saved {
					t.Fatalf("the re-check got %q, want the sign-in's", f.rc.seen[0])
				}
				if got := revokeReason(f, g.Session.ID); got != tc.reason {
					t.Fatalf("session revoke reason = %q, want %q", got, tc.reason)
				}
				after := f.saved(identityID)
				switch {
				case tc.reason == "upstream_recheck" && after != "":
					t.Fatalf("the upstream data of a person gone is still kept")
				case tc.keeps != "" && after == sealed:
					t.Fatalf("the rotated upstream data was not stored")
				}
				if tc.keeps != "" {
					// The next re-check gets what this one stored.
					f.rc.answer = func(string) (*providers.Identity, string, error) { return nil, tc.keeps, nil }
					f.clock = f.clock.Add(2 * time.Hour)
					if _, err := f.svc.RecheckUser(f.ctx, g.Session.UserID, provisioning.Meta{}); err != nil {
						t.Fatal(err)
					}
					if last := f.rc.seen[len(f.rc.seen)-1]; last != tc.keeps {
						t.Fatalf("the next re-check got %q, want %q", last, tc.keeps)
					}
				}
				if tc.name == "due, the upstream answers" {
					u, _ := f.store.FindUser(f.ctx, g.Session.UserID)
					ms, _ := f.store.ListMemberships(f.ctx, g.Session.UserID)
					if u.Name != "Renamed" || len(ms) != 0 {
						t.Fatalf("after the re-check: name %q, memberships %+v", u.Name, ms)
					}
					if u.LastLoginAt == nil || !u.LastLoginAt.Before(f.clock) {
						t.Fatalf("a re-check moved last_login_at to %v", u.LastLoginAt)
					}
				}
			})
		})
	}
}

// TestMaxSessionAge: a provider that cannot re-check (SAML) refuses a
// refresh once the last sign-in through the identity is older than
// max_session_age, ending the session; a new sign-in moves it on.
func TestMaxSessionAge(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{})
		g := f.signIn("idp", "nameid-1", "")
		f.clock = f.clock.Add(7 * time.Hour)
		if _, err := f.before(g); err != nil {
			t.Fatalf("within max_session_age: %v", err)
		}
		// Signing in again (another session) moves the identity's check on.
		g2 := f.signIn("idp", "nameid-1", "")
		f.clock = f.clock.Add(2 * time.Hour)
		if _, err := f.before(f.grant(g.Session.ID)); err != nil {
			t.Fatalf("after a new sign-in: %v", err)
		}
		f.clock = f.clock.Add(7 * time.Hour)
		_, err := f.before(f.grant(g2.Session.ID))
		if kindOf(err) != fault.InvalidGrant || revokeReason(f, g2.Session.ID) != "max_session_age" {
			t.Fatalf("past max_session_age: %v, reason %q", err, revokeReason(f, g2.Session.ID))
		}
		if f.saml.calls.Load() != 0 {
			t.Fatal("SAML was asked to re-check")
		}
		var n int64
		f.db.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", provisioning.AuditSessionTooOld).Scan(&n)
		if n != 1 {
			t.Fatalf("audit events = %d", n)
		}
	})
}

// TestRecheckClaimedOnce: refreshes racing one due re-check ask the
// upstream once; the others go on (keep) without waiting.
func TestRecheckClaimedOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour})
		f.rc.delay = 200 * time.Millisecond
		f.rc.answer = func(string) (*providers.Identity, string, error) { return nil, "rt-2", nil }
		g := f.signIn("rc", "s1", "rt-1")
		f.clock = f.clock.Add(2 * time.Hour)
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Go(func() { _, errs[i] = f.before(g) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
		}
		if n := f.rc.calls.Load(); n != 1 {
			t.Fatalf("upstream asked %d times", n)
		}
	})
}

// TestRecheckSealedPerIdentity: the kept upstream data opens only for its
// own identity: copied onto another identity's row it is not used.
func TestRecheckSealedPerIdentity(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour})
		f.rc.answer = func(saved string) (*providers.Identity, string, error) { return nil, saved, nil }
		victim := f.signIn("rc", "victim", "rt-victim")
		thief := f.signIn("rc", "thief", "rt-thief")
		f.db.Exec("UPDATE upstream_checks SET saved = ? WHERE identity_id = ?", f.saved(*victim.Session.IdentityID), *thief.Session.IdentityID)
		f.clock = f.clock.Add(2 * time.Hour)
		if _, err := f.before(f.grant(thief.Session.ID)); err != nil {
			t.Fatal(err)
		}
		if f.rc.calls.Load() != 0 {
			t.Fatalf("the upstream was asked with another identity's data: %v", f.rc.seen)
		}
	})
}
