package tokens_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

func TestRefreshRotationChain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		s := f.session(u.ID, "spa")
		tok := f.refresh(s.ID, "spa")

		seen := map[string]bool{tok: true}
		for step := range 5 {
			if !strings.HasPrefix(tok, tokens.RefreshTokenPrefix) || len(tok) != 47 {
				t.Fatalf("token shape: prefix/length wrong (len %d)", len(tok))
			}
			// Advance past the grace window but inside the idle TTL.
			f.clock.Advance(sessTestIdle / 2)
			if !f.clock.Now().Before(s.ExpiresAt) {
				break
			}
			now := f.clock.Now()
			r, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if seen[r.RefreshToken] {
				t.Fatalf("step %d: token repeated", step)
			}
			seen[r.RefreshToken] = true
			if r.Reissued || r.UserID != u.ID || r.User.ID != u.ID || r.Session.ID != s.ID ||
				!r.Session.LastUsedAt.Equal(now) {
				t.Fatalf("step %d: redeemed = %+v (session %+v)", step, r, r.Session)
			}
			wantExp := now.Add(sessTestIdle)
			if s.ExpiresAt.Before(wantExp) {
				wantExp = s.ExpiresAt // capped at absolute expiry
			}
			if !r.RefreshTokenExpiresAt.Equal(wantExp) {
				t.Fatalf("step %d: expires %v, want %v", step, r.RefreshTokenExpiresAt, wantExp)
			}
			if strings.Contains(r.String(), r.RefreshToken) {
				t.Fatal("Redeemed.String leaks the token")
			}

			// The presented row is rotated into the new one.
			var oldRow, newRow models.RefreshToken
			if err := db.Where("token_hash = ?", sessHash(tok)).Take(&oldRow).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Where("token_hash = ?", sessHash(r.RefreshToken)).Take(&newRow).Error; err != nil {
				t.Fatal(err)
			}
			if oldRow.RotatedAt == nil || !oldRow.RotatedAt.Equal(now) || oldRow.ReplacedBy == nil ||
				*oldRow.ReplacedBy != newRow.ID {
				t.Fatalf("step %d: old row %+v, new row id %s", step, oldRow, newRow.ID)
			}
			if newRow.RotatedAt != nil || newRow.RevokedAt != nil || newRow.ClientID != "spa" ||
				!newRow.ExpiresAt.Equal(wantExp) {
				t.Fatalf("step %d: new row %+v", step, newRow)
			}
			tok = r.RefreshToken
		}
		// The database never holds a token, only hashes.
		for _, row := range f.familyRows(s.ID) {
			if seen[row.TokenHash] || len(row.TokenHash) != 64 {
				t.Fatalf("row %s stores something other than a SHA-256 hex hash", row.ID)
			}
		}
		if got := len(f.familyRows(s.ID)); got != len(seen) {
			t.Fatalf("%d rows for %d tokens", got, len(seen))
		}
	})
}

func sessHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// TestRedeemRefreshToken covers each refusal and its boundary.
func TestRedeemRefreshToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		cases := []struct {
			name   string
			client string
			// setup runs after issuing tok and may return another token to present.
			setup func(f *sessFixture, s *models.Session, tok string) string
			want  error
		}{
			{name: "valid", want: nil},
			{name: "unknown token", setup: func(f *sessFixture, s *models.Session, tok string) string {
				return tokens.RefreshTokenPrefix + strings.Repeat("A", 43)
			}, want: tokens.ErrGrantUnknown},
			{name: "malformed token", setup: func(f *sessFixture, s *models.Session, tok string) string {
				return tok[:20]
			}, want: tokens.ErrGrantUnknown},
			{name: "wrong prefix", setup: func(f *sessFixture, s *models.Session, tok string) string {
				return tokens.AuthorizationCodePrefix + strings.TrimPrefix(tok, tokens.RefreshTokenPrefix)
			}, want: tokens.ErrGrantUnknown},
			{name: "empty", setup: func(f *sessFixture, s *models.Session, tok string) string { return "" },
				want: tokens.ErrGrantUnknown},
			{name: "other client", client: "other", want: tokens.ErrGrantClientMismatch},
			{name: "just before idle expiry", setup: func(f *sessFixture, s *models.Session, tok string) string {
				f.clock.Advance(sessTestIdle - time.Microsecond)
				return tok
			}, want: nil},
			{name: "idle expiry", setup: func(f *sessFixture, s *models.Session, tok string) string {
				f.clock.Advance(sessTestIdle)
				return tok
			}, want: tokens.ErrGrantExpired},
			{name: "absolute expiry despite activity", setup: func(f *sessFixture, s *models.Session, tok string) string {
				// Refresh every idle/2: never idle, yet the session ends at AbsoluteTTL.
				for f.clock.Now().Add(sessTestIdle / 2).Before(s.ExpiresAt) {
					f.clock.Advance(sessTestIdle / 2)
					r, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
					if err != nil {
						f.t.Fatal(err)
					}
					if r.RefreshTokenExpiresAt.After(s.ExpiresAt) {
						f.t.Fatalf("token outlives its session: %v > %v", r.RefreshTokenExpiresAt, s.ExpiresAt)
					}
					tok = r.RefreshToken
				}
				f.clock.Advance(s.ExpiresAt.Sub(f.clock.Now()))
				return tok
			}, want: tokens.ErrGrantExpired},
			{name: "revoked session", setup: func(f *sessFixture, s *models.Session, tok string) string {
				if err := f.svc.RevokeSession(f.ctx, s.ID, "logout"); err != nil {
					f.t.Fatal(err)
				}
				return tok
			}, want: tokens.ErrGrantRevoked},
			{name: "disabled user", setup: func(f *sessFixture, s *models.Session, tok string) string {
				f.disable(s.UserID)
				return tok
			}, want: tokens.ErrGrantUserDisabled},
			{name: "reuse after grace", setup: func(f *sessFixture, s *models.Session, tok string) string {
				if _, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa"); err != nil {
					f.t.Fatal(err)
				}
				f.clock.Advance(sessTestGrace)
				return tok
			}, want: tokens.ErrRefreshTokenReuse},
			{name: "reuse within grace", setup: func(f *sessFixture, s *models.Session, tok string) string {
				if _, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa"); err != nil {
					f.t.Fatal(err)
				}
				f.clock.Advance(sessTestGrace - time.Microsecond)
				return tok
			}, want: nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newSessFixture(t, db, nil)
				s := f.session(f.user("u-"+models.NewID()).ID, "spa")
				tok := f.refresh(s.ID, "spa")
				present := tok
				if tc.setup != nil {
					present = tc.setup(f, s, tok)
				}
				client := tc.client
				if client == "" {
					client = "spa"
				}
				r, err := f.svc.RedeemRefreshToken(f.ctx, present, client)
				wantGrantErr(t, err, tc.want, tok, present, sessHash(present))
				if tc.want == nil && (r == nil || r.RefreshToken == "" || r.RefreshToken == present) {
					t.Fatalf("redeemed = %+v", r)
				}
			})
		}
	})
}

func TestRefreshReuseWithinGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		s := f.session(f.user("ada").ID, "spa")
		r0 := f.refresh(s.ID, "spa")
		first, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(sessTestGrace / 2) // the second tab, a moment later
		second, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		if err != nil {
			t.Fatal(err)
		}
		if !second.Reissued || first.Reissued || second.RefreshToken == first.RefreshToken {
			t.Fatalf("first reissued=%v second reissued=%v same=%v", first.Reissued, second.Reissued,
				second.RefreshToken == first.RefreshToken)
		}
		// r0 still names its first successor.
		var r0Row, firstRow models.RefreshToken
		db.Where("token_hash = ?", sessHash(r0)).Take(&r0Row)
		db.Where("token_hash = ?", sessHash(first.RefreshToken)).Take(&firstRow)
		if r0Row.ReplacedBy == nil || *r0Row.ReplacedBy != firstRow.ID {
			t.Fatalf("replaced_by = %v, want %s", r0Row.ReplacedBy, firstRow.ID)
		}
		// Both tabs keep working, past the grace window too.
		f.clock.Advance(time.Minute)
		for _, tok := range []string{first.RefreshToken, second.RefreshToken} {
			if _, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa"); err != nil {
				t.Fatalf("tab token: %v", err)
			}
		}
		if got := f.loadSession(s.ID); got.RevokedAt != nil {
			t.Fatalf("session revoked: %+v", got)
		}
		if n := len(f.audits(tokens.AuditRefreshTokenReuse)); n != 0 {
			t.Fatalf("%d reuse audit events within grace", n)
		}
	})
}

func TestRefreshReuseAfterGraceRevokesFamily(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		s := f.session(u.ID, "spa")
		r0 := f.refresh(s.ID, "spa")
		r1, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		r2, err := f.svc.RedeemRefreshToken(f.ctx, r1.RefreshToken, "spa")
		if err != nil {
			t.Fatal(err)
		}
		// The thief replays the old r0 long after its rotation.
		f.clock.Advance(10 * time.Minute)
		_, err = f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		wantGrantErr(t, err, tokens.ErrRefreshTokenReuse, r0, sessHash(r0))

		got := f.loadSession(s.ID)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(f.clock.Now()) || got.RevokeReason != tokens.RevokeReasonRefreshReuse {
			t.Fatalf("session after reuse = %+v", got)
		}
		for _, row := range f.familyRows(s.ID) {
			if row.RevokedAt == nil {
				t.Fatalf("token %s of the family survived", row.ID)
			}
		}
		// The legitimate holder's current token is dead too.
		_, err = f.svc.RedeemRefreshToken(f.ctx, r2.RefreshToken, "spa")
		wantGrantErr(t, err, tokens.ErrGrantRevoked, r2.RefreshToken)
		if ok, _ := f.svc.SessionActive(f.ctx, s.ID); ok {
			t.Fatal("session still active")
		}

		events := f.audits(tokens.AuditRefreshTokenReuse)
		if len(events) != 1 {
			t.Fatalf("%d reuse audit events, want 1", len(events))
		}
		e := events[0]
		if e.Outcome != models.OutcomeFailure || e.SubjectUserID == nil || *e.SubjectUserID != u.ID ||
			e.ClientID != "spa" || e.Provider != "dev" || !strings.Contains(e.Details, s.ID) {
			t.Fatalf("audit event = %+v", e)
		}
		for _, secret := range []string{r0, r1.RefreshToken, r2.RefreshToken, sessHash(r0)} {
			if strings.Contains(e.Details, secret) {
				t.Fatal("audit details contain a token or its hash")
			}
		}
		// Replaying again: still refused, no second event.
		_, err = f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		wantGrantErr(t, err, tokens.ErrGrantRevoked, r0)
		if n := len(f.audits(tokens.AuditRefreshTokenReuse)); n != 1 {
			t.Fatalf("%d reuse audit events after a second replay, want 1", n)
		}
	})
}

func TestRefreshAuditHook(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		var mu sync.Mutex
		var got []string
		f := newSessFixture(t, db, func(o *tokens.SessionOptions) {
			o.Audit = func(ctx context.Context, e *models.AuditEvent, details map[string]any) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, e.Type)
			}
		})
		s := f.session(f.user("ada").ID, "spa")
		r0 := f.refresh(s.ID, "spa")
		if _, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Hour)
		_, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		wantGrantErr(t, err, tokens.ErrRefreshTokenReuse)
		if len(got) != 1 || got[0] != tokens.AuditRefreshTokenReuse {
			t.Fatalf("hook saw %v", got)
		}
		if n := len(f.audits(tokens.AuditRefreshTokenReuse)); n != 0 {
			t.Fatalf("a custom hook replaces the store; %d rows written", n)
		}
	})
}

// TestRefreshConcurrentRedemption presents one token from 10 goroutines at
// once. Without a grace window exactly one wins and the rest trigger reuse
// detection; within it all succeed, with one rotation and reissued siblings.
func TestRefreshConcurrentRedemption(t *testing.T) {
	const n = 10
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, grace := range []time.Duration{0, sessTestGrace} {
			t.Run("grace="+grace.String(), func(t *testing.T) {
				f := newSessFixture(t, db, func(o *tokens.SessionOptions) { o.ReuseGrace = grace })
				s := f.session(f.user("u-"+models.NewID()).ID, "spa")
				tok := f.refresh(s.ID, "spa")

				results := make([]*tokens.Redeemed, n)
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						<-start
						results[i], errs[i] = f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
					})
				}
				close(start)
				wg.Wait()

				var ok, rotated int
				for i := range n {
					if errs[i] == nil {
						ok++
						if !results[i].Reissued {
							rotated++
						}
						continue
					}
					if !errors.Is(errs[i], tokens.ErrRefreshTokenReuse) && !errors.Is(errs[i], tokens.ErrGrantRevoked) {
						t.Errorf("goroutine %d: unexpected error %v", i, errs[i])
					}
				}
				var live int
				for _, row := range f.familyRows(s.ID) {
					if row.RevokedAt == nil && row.RotatedAt == nil {
						live++
					}
				}
				// Subtests share the database; count this session's events only.
				reuseEvents := 0
				for _, e := range f.audits(tokens.AuditRefreshTokenReuse) {
					if strings.Contains(e.Details, s.ID) {
						reuseEvents++
					}
				}
				if grace == 0 {
					if ok != 1 || rotated != 1 {
						t.Fatalf("%d successes (%d rotations), want exactly 1", ok, rotated)
					}
					if got := f.loadSession(s.ID); got.RevokedAt == nil || got.RevokeReason != tokens.RevokeReasonRefreshReuse {
						t.Fatalf("session not revoked for reuse: %+v", got)
					}
					if live != 0 {
						t.Fatalf("%d live successors after reuse detection", live)
					}
					if reuseEvents != 1 {
						t.Fatalf("%d reuse audit events, want 1", reuseEvents)
					}
					return
				}
				if ok != n || rotated != 1 {
					t.Fatalf("%d successes (%d rotations), want %d with 1 rotation; errors %v", ok, rotated, n, errs)
				}
				if live != n {
					t.Fatalf("%d live tokens, want %d", live, n)
				}
				if got := f.loadSession(s.ID); got.RevokedAt != nil || reuseEvents != 0 {
					t.Fatalf("session revoked within grace: %+v, %d events", got, reuseEvents)
				}
			})
		}
	})
}

func TestIssueRefreshToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		s := f.session(u.ID, "spa")
		if _, err := f.svc.IssueRefreshToken(f.ctx, "nope", "spa"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
		_, err := f.svc.IssueRefreshToken(f.ctx, s.ID, "other")
		wantGrantErr(t, err, tokens.ErrGrantClientMismatch)

		f.disable(u.ID)
		_, err = f.svc.IssueRefreshToken(f.ctx, s.ID, "spa")
		wantGrantErr(t, err, tokens.ErrGrantUserDisabled)

		s2 := f.session(f.user("bob").ID, "spa")
		if err := f.svc.RevokeSession(f.ctx, s2.ID, "logout"); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.IssueRefreshToken(f.ctx, s2.ID, "spa")
		wantGrantErr(t, err, tokens.ErrGrantRevoked)

		s3 := f.session(f.user("cy").ID, "spa")
		f.clock.Advance(sessTestAbsolute)
		_, err = f.svc.IssueRefreshToken(f.ctx, s3.ID, "spa")
		wantGrantErr(t, err, tokens.ErrGrantExpired)
	})
}

func TestRevokeRefreshToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		s := f.session(f.user("ada").ID, "spa")
		r0 := f.refresh(s.ID, "spa")
		r1, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		if err != nil {
			t.Fatal(err)
		}
		for _, unknown := range []string{"", "garbage", tokens.RefreshTokenPrefix + strings.Repeat("x", 43)} {
			if err := f.svc.RevokeRefreshToken(f.ctx, unknown, "spa"); err != nil {
				t.Fatalf("unknown token: %v", err)
			}
		}
		err = f.svc.RevokeRefreshToken(f.ctx, r1.RefreshToken, "other")
		wantGrantErr(t, err, tokens.ErrGrantClientMismatch, r1.RefreshToken)
		if ok, _ := f.svc.SessionActive(f.ctx, s.ID); !ok {
			t.Fatal("another client's revocation request revoked the session")
		}
		// Revoking an old (rotated) token of the family ends the family too.
		if err := f.svc.RevokeRefreshToken(f.ctx, r0, "spa"); err != nil {
			t.Fatal(err)
		}
		got := f.loadSession(s.ID)
		if got.RevokedAt == nil || got.RevokeReason != tokens.RevokeReasonTokenRevocation {
			t.Fatalf("session = %+v", got)
		}
		_, err = f.svc.RedeemRefreshToken(f.ctx, r1.RefreshToken, "spa")
		wantGrantErr(t, err, tokens.ErrGrantRevoked)
		if err := f.svc.RevokeRefreshToken(f.ctx, r1.RefreshToken, "spa"); err != nil {
			t.Fatalf("second revocation: %v", err)
		}
	})
}

// TestRevokeRefreshTokenSession: the revocation reports the session and
// whether this call ended it, so it is recorded once.
func TestRevokeRefreshTokenSession(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		s := f.session(f.user("ada").ID, "spa")
		r0 := f.refresh(s.ID, "spa")
		cases := []struct {
			name, token, client string
			session, ended      bool
		}{
			{"unknown", tokens.RefreshTokenPrefix + strings.Repeat("x", 43), "spa", false, false},
			{"another client's", r0, "other", false, false},
			{"first revocation", r0, "spa", true, true},
			{"again", r0, "spa", true, false},
		}
		for _, tc := range cases {
			sess, ended, err := f.svc.RevokeRefreshTokenSession(f.ctx, tc.token, tc.client)
			if err != nil && !errors.Is(err, tokens.ErrGrantClientMismatch) {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if (sess != nil) != tc.session || ended != tc.ended || (sess != nil && (sess.ID != s.ID || sess.UserID != s.UserID)) {
				t.Fatalf("%s: session %+v ended %v; want session %v ended %v", tc.name, sess, ended, tc.session, tc.ended)
			}
		}
	})
}

func TestLookupRefreshToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		s := f.session(u.ID, "spa")
		issuedAt := f.clock.Now()
		r0 := f.refresh(s.ID, "spa")

		info, err := f.svc.LookupRefreshToken(f.ctx, r0)
		if err != nil {
			t.Fatal(err)
		}
		want := tokens.RefreshInfo{Active: true, SessionID: s.ID, ClientID: "spa", UserID: u.ID,
			Scope: s.Scope, IssuedAt: issuedAt, ExpiresAt: issuedAt.Add(sessTestIdle)}
		if info.Active != want.Active || info.SessionID != want.SessionID || info.ClientID != want.ClientID ||
			info.UserID != want.UserID || info.Scope != want.Scope || !info.IssuedAt.Equal(want.IssuedAt) ||
			!info.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("info = %+v, want %+v", info, want)
		}
		for _, unknown := range []string{"", "nope", tokens.RefreshTokenPrefix + strings.Repeat("A", 43)} {
			info, err := f.svc.LookupRefreshToken(f.ctx, unknown)
			if err != nil || info.Active || info.SessionID != "" {
				t.Fatalf("unknown token: %+v, %v", info, err)
			}
		}
		r1, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := f.svc.LookupRefreshToken(f.ctx, r0); info.Active || info.SessionID != s.ID {
			t.Fatalf("rotated token: %+v", info)
		}
		if info, _ := f.svc.LookupRefreshToken(f.ctx, r1.RefreshToken); !info.Active {
			t.Fatalf("successor: %+v", info)
		}
		f.clock.Advance(sessTestIdle)
		if info, _ := f.svc.LookupRefreshToken(f.ctx, r1.RefreshToken); info.Active {
			t.Fatal("idle-expired token active")
		}
	})
}

// TestRefreshReuseRacesRotation replays an old token while the legitimate
// holder refreshes at the same moment: whatever the interleaving, the family
// ends revoked with no live token left behind.
func TestRefreshReuseRacesRotation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for i := range 15 {
			f := newSessFixture(t, db, nil)
			s := f.session(f.user("u-"+models.NewID()).ID, "spa")
			r0 := f.refresh(s.ID, "spa")
			r1, err := f.svc.RedeemRefreshToken(f.ctx, r0, "spa")
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(time.Minute)

			var legit *tokens.Redeemed
			var legitErr, thiefErr error
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { <-start; legit, legitErr = f.svc.RedeemRefreshToken(f.ctx, r1.RefreshToken, "spa") })
			wg.Go(func() { <-start; _, thiefErr = f.svc.RedeemRefreshToken(f.ctx, r0, "spa") })
			close(start)
			wg.Wait()

			wantGrantErr(t, thiefErr, tokens.ErrRefreshTokenReuse)
			if got := f.loadSession(s.ID); got.RevokedAt == nil {
				t.Fatalf("round %d: session not revoked", i)
			}
			for _, row := range f.familyRows(s.ID) {
				if row.RevokedAt == nil {
					t.Fatalf("round %d: token %s survived the family revocation (legit err %v)", i, row.ID, legitErr)
				}
			}
			if legitErr == nil {
				_, err := f.svc.RedeemRefreshToken(f.ctx, legit.RefreshToken, "spa")
				wantGrantErr(t, err, tokens.ErrGrantRevoked)
			} else if !errors.Is(legitErr, tokens.ErrGrantRevoked) {
				t.Fatalf("round %d: legit refresh failed with %v", i, legitErr)
			}
		}
	})
}

// TestRefreshLostRaceWithoutGrace: without a grace window
// (GATEHOUSE_REFRESH_REUSE_GRACE=0, strict) a redemption that loses the
// rotation race is reuse even when its Check was slow: only the grace
// window lets a lost race through
// (TestRefreshSlowCheckLosesRaceWithoutReuse).
func TestRefreshLostRaceWithoutGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, func(o *tokens.SessionOptions) { o.ReuseGrace = 0 })
		s := f.session(f.user("u-"+models.NewID()).ID, "spa")
		tok := f.refresh(s.ID, "spa")
		checks := 0
		slow := func(ctx context.Context, _ *models.RefreshGrant) error {
			if checks++; checks == 1 {
				if _, err := f.svc.RedeemRefreshToken(ctx, tok, "spa"); err != nil {
					t.Errorf("the other tab's refresh: %v", err)
				}
				f.clock.Advance(5 * time.Second)
			}
			return nil
		}
		_, err := f.svc.RedeemRefreshTokenWith(f.ctx, tok, "spa", tokens.RedeemOptions{Check: slow})
		wantGrantErr(t, err, tokens.ErrRefreshTokenReuse)
	})
}

// TestRefreshSlowCheckLosesRaceWithoutReuse: a redemption whose Check
// (an upstream re-check) takes longer than the grace window, while a
// concurrent redemption of the same token rotates it, lost a race; it
// presented the token live, so it is no reuse: it gets a sibling and the
// session lives. A token presented after its rotation and past the grace
// window is still reuse.
func TestRefreshSlowCheckLosesRaceWithoutReuse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newSessFixture(t, db, nil)
		s := f.session(f.user("u-"+models.NewID()).ID, "spa")
		tok := f.refresh(s.ID, "spa")
		slow := tokens.RedeemOptions{Check: func(ctx context.Context, _ *models.RefreshGrant) error {
			// Meanwhile another tab refreshes with the same token, and
			// the re-check outlasts the grace window.
			if _, err := f.svc.RedeemRefreshToken(ctx, tok, "spa"); err != nil {
				return err
			}
			f.clock.Advance(sessTestGrace + 5*time.Second)
			return nil
		}}
		red, err := f.svc.RedeemRefreshTokenWith(f.ctx, tok, "spa", slow)
		if err != nil {
			t.Fatalf("the slow redemption = %v", err)
		}
		if !red.Reissued {
			t.Fatal("the slow redemption rotated a token already rotated")
		}
		if sess, err := f.store.FindSession(f.ctx, s.ID); err != nil || sess.RevokedAt != nil {
			t.Fatalf("session = %+v, %v", sess, err)
		}
		// Presented again now, long after its rotation: reuse.
		if _, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa"); !errors.Is(err, tokens.ErrRefreshTokenReuse) {
			t.Fatalf("replay after the grace window = %v", err)
		}
	})
}
