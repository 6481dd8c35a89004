package provisioning_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// claimedAt is the identity's re-check claim time (nil: none).
func (f *recheckFixture) claimedAt(identityID string) *time.Time {
	f.t.Helper()
	c, err := f.store.FindUpstreamCheck(f.ctx, identityID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c.ClaimedAt
}

// browserSession opens a live browser session of g's session's
// identity, as a sign-in through it does.
func (f *recheckFixture) browserSession(g *models.RefreshGrant) *models.BrowserSession {
	f.t.Helper()
	b := &models.BrowserSession{TokenHash: models.NewID(), UserID: g.Session.UserID, IdentityID: g.Session.IdentityID,
		Provider: g.Session.Provider, AuthTime: g.Session.AuthTime, AMR: "ext", CreatedAt: f.clock, LastUsedAt: f.clock,
		ExpiresAt: f.clock.Add(7 * 24 * time.Hour)}
	if err := f.store.CreateBrowserSession(f.ctx, b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// TestRecheckNothingKept: an identity whose upstream kept nothing to
// re-check with (no refresh token), under a policy that does not require
// one, is not re-checked at all: no claim, and a refresh that meets
// another's claim (busy) never ends the session as stale, however old
// the last check.
func TestRecheckNothingKept(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, policy := range []providers.RecheckPolicy{
			{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour},
			{Enabled: true, Interval: 0, MaxStaleness: 24 * time.Hour, DenyUnavailable: true},
		} {
			f := newRecheckFixture(t, db, policy)
			g := f.signIn("rc", "s-"+models.NewID(), "")
			id := *g.Session.IdentityID
			f.clock = f.clock.Add(25 * time.Hour)
			if checked, err := f.before(f.grant(g.Session.ID)); checked || err != nil {
				t.Fatalf("%+v: BeforeRefresh = %v, %v", policy, checked, err)
			}
			if c := f.claimedAt(id); c != nil {
				t.Fatalf("%+v: an identity with nothing to re-check with was claimed at %v", policy, c)
			}
			// Another refresh's claim (busy) changes nothing.
			f.db.Exec("UPDATE upstream_checks SET claimed_at = ? WHERE identity_id = ?", f.clock, id)
			if _, err := f.before(f.grant(g.Session.ID)); err != nil || revokeReason(f, g.Session.ID) != "" {
				t.Fatalf("%+v: busy with nothing to check: %v, session %q", policy, err, revokeReason(f, g.Session.ID))
			}
			if f.rc.calls.Load() != 0 {
				t.Fatal("the upstream was asked")
			}
		}
	})
}

// TestRecheckWithoutRow: a session whose identity has no re-check row
// (opened before the upgrade, or before re-checks were enabled) is not
// re-checked unless recheck_interval is configured; then its sign-in
// counts as the last check: deny refuses it, and past
// recheck_max_staleness it ends.
func TestRecheckWithoutRow(t *testing.T) {
	keep := providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour}
	required := keep
	required.Required = true
	requiredDeny := required
	requiredDeny.DenyUnavailable = true
	for _, tc := range []struct {
		name   string
		policy providers.RecheckPolicy
		after  time.Duration
		kind   fault.Kind
		reason string
	}{
		{name: "not configured: not re-checked", policy: keep, after: 48 * time.Hour},
		{name: "configured, keep, within staleness", policy: required, after: 2 * time.Hour},
		{name: "configured, keep, stale", policy: required, after: 25 * time.Hour, kind: fault.InvalidGrant, reason: "upstream_recheck_stale"},
		{name: "configured, deny", policy: requiredDeny, after: 2 * time.Hour, kind: fault.UpstreamUnconfirmed},
		{name: "configured, deny, stale", policy: requiredDeny, after: 25 * time.Hour, kind: fault.InvalidGrant, reason: "upstream_recheck_stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *models.DB) {
				f := newRecheckFixture(t, db, tc.policy)
				g := f.signIn("rc", "s1", "rt-1")
				f.db.Exec("DELETE FROM upstream_checks")
				f.clock = f.clock.Add(tc.after)
				_, err := f.before(f.grant(g.Session.ID))
				if kindOf(err) != tc.kind || revokeReason(f, g.Session.ID) != tc.reason {
					t.Fatalf("BeforeRefresh = %v (kind %q), session %q; want kind %q, %q", err, kindOf(err),
						revokeReason(f, g.Session.ID), tc.kind, tc.reason)
				}
				if f.rc.calls.Load() != 0 {
					t.Fatal("the upstream was asked without data")
				}
			})
		})
	}
}

// TestRecheckDenyRetryAfter: deny answers with its own words and a
// Retry-After of what is left of the lease, which keeps other attempts
// from asking the upstream: the whole lease after a failed attempt,
// less as it runs out.
func TestRecheckDenyRetryAfter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour,
			DenyUnavailable: true})
		f.rc.answer = func(string) (*providers.Identity, string, error) { return nil, "", errDown }
		g := f.signIn("rc", "s1", "rt-1")
		f.clock = f.clock.Add(2 * time.Hour)
		_, err := f.before(g)
		if kindOf(err) != fault.UpstreamUnconfirmed || fault.RetryAfterOf(err) != provisioning.RecheckLease ||
			!strings.Contains(fault.MessageOf(err), "cannot be reached") {
			t.Fatalf("first refusal: %v (kind %q, retry after %v, message %q)", err, kindOf(err), fault.RetryAfterOf(err), fault.MessageOf(err))
		}
		f.clock = f.clock.Add(12 * time.Second)
		_, err = f.before(g)
		if kindOf(err) != fault.UpstreamUnconfirmed || fault.RetryAfterOf(err) != provisioning.RecheckLease-12*time.Second {
			t.Fatalf("refusal within the lease: %v (retry after %v)", err, fault.RetryAfterOf(err))
		}
		if n := f.rc.calls.Load(); n != 1 {
			t.Fatalf("upstream asked %d times within the lease", n)
		}
		// A check another refresh completed meanwhile lets it through.
		f.rc.answer = func(string) (*providers.Identity, string, error) { return nil, "rt-2", nil }
		f.clock = f.clock.Add(provisioning.RecheckLease)
		if _, err := f.before(g); err != nil {
			t.Fatalf("after the lease, the upstream back: %v", err)
		}
		stale := g // read before that check
		if _, err := f.before(stale); err != nil {
			t.Fatalf("a refresh read before another's successful check: %v", err)
		}
	})
}

// TestRecheckEndsSignIns: a session ended by max_session_age or by
// staleness takes the browser sessions of its identity with it, so
// single sign-on cannot hand out a new one; and BeforeSSO, which single
// sign-on asks, refuses by the same rules.
func TestRecheckEndsSignIns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour})
		f.rc.answer = func(string) (*providers.Identity, string, error) { return nil, "", errDown }
		for _, tc := range []struct {
			provider, reason string
			age              time.Duration
		}{
			{"idp", "max_session_age", 9 * time.Hour},
			{"rc", "upstream_recheck_stale", 25 * time.Hour},
		} {
			start := f.clock
			g := f.signIn(tc.provider, "p-"+tc.provider, "rt-1")
			b := f.browserSession(g)
			other := f.browserSession(f.signIn(tc.provider, "someone-else-"+tc.provider, "rt-1"))
			if err := f.svc.BeforeSSO(f.ctx, b, provisioning.Meta{}); err != nil {
				t.Fatalf("%s: fresh BeforeSSO = %v", tc.provider, err)
			}
			f.clock = f.clock.Add(tc.age)
			if err := f.svc.BeforeSSO(f.ctx, b, provisioning.Meta{}); kindOf(err) != fault.InvalidGrant {
				t.Fatalf("%s: BeforeSSO past the rule = %v", tc.provider, err)
			}
			if _, err := f.before(g); kindOf(err) != fault.InvalidGrant || revokeReason(f, g.Session.ID) != tc.reason {
				t.Fatalf("%s: BeforeRefresh = %v, session %q", tc.provider, err, revokeReason(f, g.Session.ID))
			}
			got, err := f.store.FindBrowserSession(f.ctx, b.ID)
			if err != nil || got.RevokedAt == nil || got.RevokeReason != tc.reason {
				t.Fatalf("%s: browser session after the refusal: %+v, %v", tc.provider, got, err)
			}
			if got, _ := f.store.FindBrowserSession(f.ctx, other.ID); got.RevokedAt != nil {
				t.Fatalf("%s: another person's browser session ended", tc.provider)
			}
			f.clock = start
		}
		// A provider without such rules never refuses single sign-on.
		if err := f.svc.BeforeSSO(f.ctx, &models.BrowserSession{IdentityID: new(models.NewID()), Provider: "nobody",
			AuthTime: f.clock.Add(-1000 * time.Hour)}, provisioning.Meta{}); err != nil {
			t.Fatalf("unknown provider: %v", err)
		}
	})
}

// TestRecheckUserCollectsErrors: a forced re-check that fails in storage
// for one identity reports it and still re-checks the others, saying what
// it applied.
func TestRecheckUserCollectsErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRecheckFixture(t, db, providers.RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour})
		f.rc.answer = func(saved string) (*providers.Identity, string, error) {
			subject := strings.TrimPrefix(saved, "rt-")
			return identity("rc", subject, "s1@example.com", true), saved, nil
		}
		g := f.signIn("rc", "s1", "rt-s1")
		// A second identity of the same person, whose update fails.
		broken := models.Identity{UserID: g.Session.UserID, Provider: "rc", Subject: "broken"}
		if ok, err := f.store.InsertIdentityIfAbsent(f.ctx, &broken); !ok || err != nil {
			t.Fatalf("insert identity: %v, %v", ok, err)
		}
		sealed, err := tokens.Seal(f.key, []byte("rt-broken"), []byte("upstream-check:"+broken.ID))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.SaveUpstreamCheck(f.ctx, broken.ID, base64.RawURLEncoding.EncodeToString(sealed), f.clock); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range map[bool][]string{
			false: {`CREATE TRIGGER boom BEFORE UPDATE ON identities WHEN NEW.subject = 'broken' BEGIN SELECT RAISE(ABORT, 'boom'); END`},
			true: {`CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER boom BEFORE UPDATE ON identities FOR EACH ROW WHEN (NEW.subject = 'broken') EXECUTE FUNCTION boom()`},
		}[db.Dialector.Name() == "postgres"] {
			if err := f.db.Exec(stmt).Error; err != nil {
				t.Fatal(err)
			}
		}
		f.clock = f.clock.Add(time.Minute)
		reports, err := f.svc.RecheckUser(f.ctx, g.Session.UserID, provisioning.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]string{}
		for _, r := range reports {
			outcomes[r.IdentityID] = r.Outcome
		}
		if len(reports) != 2 || outcomes[broken.ID] != provisioning.RecheckError || outcomes[*g.Session.IdentityID] != provisioning.RecheckSuccess {
			t.Fatalf("reports %+v", reports)
		}
		c, err := f.store.FindUpstreamCheck(f.ctx, *g.Session.IdentityID)
		if err != nil || !c.CheckedAt.Equal(f.clock) {
			t.Fatalf("the re-check that succeeded was not recorded: %+v, %v", c, err)
		}
		var n int64
		f.db.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ? AND details LIKE ?", provisioning.AuditRecheckForced, "%"+provisioning.RecheckError+"%").Scan(&n)
		if n != 1 {
			t.Fatalf("forced re-check audit events naming the error: %d", n)
		}
		if strings.Contains(fmt.Sprint(reports), "boom") {
			t.Fatalf("the storage error's detail reached the report: %+v", reports)
		}
	})
}
