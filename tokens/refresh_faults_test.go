package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// TestRefreshRotationCutShortRollsBack: when the database connection
// dies in the middle of a rotation, the redemption fails with a transient
// error (503 at the endpoint), nothing of it remains, and the client's
// token is still current: it redeems normally even long after the reuse
// grace window. The fault is injected at the driver (dbtest's
// Interrupt), so it reaches the rotation however it is sent (prepared
// once per connection, straight through the pool). On PostgreSQL the
// rotation really starts: another transaction holds its session's row
// lock, so the statement waits inside the server, and its backend is
// terminated there (pg_terminate_backend) — what a restart or failover
// does to a statement in flight. SQLite has no server to cut the
// connection: the statement fails on its way to the library with a lost
// connection, and the connection is discarded.
func TestRefreshRotationCutShortRollsBack(t *testing.T) {
	dbtest.EachCounted(t, func(t *testing.T, db *models.DB, st *dbtest.Statements) {
		f := newSessFixture(t, db, nil)
		u := f.user("ada")
		s := f.session(u.ID, "spa")
		tok := f.refresh(s.ID, "spa")

		var met atomic.Bool
		st.Interrupt("INSERT INTO refresh_tokens", func(ctx context.Context, pid uint32) error {
			met.Store(true)
			if db.Dialect != migrations.Postgres {
				return fmt.Errorf("rotate: connection lost: %w", io.ErrUnexpectedEOF)
			}
			if pid == 0 {
				return errors.New("no backend process id on a PostgreSQL connection")
			}
			return cutWhileWaiting(t, db, s.ID, pid)
		})
		_, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
		if !met.Load() {
			t.Fatal("the rotation never reached the driver")
		}
		t.Logf("the cut rotation: %v", err)
		if err == nil || !models.IsTransient(err) || errors.Is(err, tokens.ErrGrantInvalid) {
			t.Fatalf("redeem with the connection cut mid-rotation: %v, want a transient database error", err)
		}
		var rows []models.RefreshToken
		if err := db.Where("session_id = ?", s.ID).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].RotatedAt != nil || rows[0].ReplacedBy != nil || rows[0].RevokedAt != nil {
			t.Fatalf("after the cut rotation the family is %+v, want the presented token alone and current", rows)
		}

		// Long past the grace window: only a current token redeems now.
		f.clock.Advance(10 * sessTestGrace)
		r, err := f.svc.RedeemRefreshToken(f.ctx, tok, "spa")
		if err != nil || r.Reissued {
			t.Fatalf("retry with the same token = %v, %v; want a normal rotation", r, err)
		}
	})
}

// cutWhileWaiting holds the row lock of session sessionID in a
// transaction of its own, and terminates backend pid once it waits for
// that lock inside a statement; then it lets the lock go. It returns at
// once: the statement about to run on pid is the one cut.
func cutWhileWaiting(t *testing.T, db *models.DB, sessionID string, pid uint32) error {
	lock := db.Begin()
	if err := lock.Exec("SELECT 1 FROM sessions WHERE id = ? FOR UPDATE", sessionID).Error; err != nil {
		lock.Rollback()
		return err
	}
	go func() {
		defer lock.Rollback()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			var waiting int
			if err := db.Raw("SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'", pid).
				Scan(&waiting).Error; err != nil {
				t.Errorf("watch backend %d: %v", pid, err)
				return
			}
			if waiting == 1 {
				if err := db.Exec("SELECT pg_terminate_backend(?)", pid).Error; err != nil {
					t.Errorf("terminate backend %d: %v", pid, err)
				}
				return
			}
		}
		t.Errorf("backend %d never waited for the session's lock", pid)
	}()
	return nil
}

// lostAnswerStore is the real store with a fault injected where a
// connection can die after the server committed: the write took effect,
// its caller hears a lost connection (io.ErrUnexpectedEOF, what pgx
// reports for a socket closed mid-answer).
type lostAnswerStore struct {
	*models.Store
	// loseAnswer: the next rotation or insert commits, then "fails".
	loseAnswer atomic.Bool
	// loseReadBack: the look-up of a refresh token right after a lost
	// answer fails too (the database is still unreachable).
	loseReadBack atomic.Bool
	readBackDue  atomic.Bool
}

var errLostAnswer = fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)

func (s *lostAnswerStore) RotateRefreshToken(ctx context.Context, oldID string, next *models.RefreshToken, now time.Time) (*models.Session, error) {
	sess, err := s.Store.RotateRefreshToken(ctx, oldID, next, now)
	if err == nil && s.loseAnswer.CompareAndSwap(true, false) {
		s.readBackDue.Store(true)
		return nil, errLostAnswer
	}
	return sess, err
}

func (s *lostAnswerStore) AddRefreshToken(ctx context.Context, tok *models.RefreshToken, now time.Time) (*models.Session, error) {
	sess, err := s.Store.AddRefreshToken(ctx, tok, now)
	if err == nil && s.loseAnswer.CompareAndSwap(true, false) {
		s.readBackDue.Store(true)
		return nil, errLostAnswer
	}
	return sess, err
}

func (s *lostAnswerStore) FindRefreshTokenByHash(ctx context.Context, hash string) (*models.RefreshToken, error) {
	if s.readBackDue.CompareAndSwap(true, false) && s.loseReadBack.Load() {
		return nil, fmt.Errorf("find refresh token: %w", io.ErrUnexpectedEOF)
	}
	return s.Store.FindRefreshTokenByHash(ctx, hash)
}

// TestRefreshCommitAnswerLost: the COMMIT of a rotation reached the
// server but its answer was lost. The service asks the database whether
// the rotation took effect and, since it did, answers with the successor
// as a success, so the client is not left holding a rotated token. Only
// if that question fails too does the client get the transient error; it
// then holds a rotated token, and a retry inside the reuse grace window
// is served (as for concurrent tabs) — after it, reuse detection revokes
// the session as for any replay: nothing is weakened.
func TestRefreshCommitAnswerLost(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, tc := range []struct {
			name     string
			readBack bool // the read-back question is answered
		}{
			{"read-back answers: success with the successor", true},
			{"read-back fails too: 503, the retry inside the grace window is served", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newSessFixture(t, db, nil)
				store := &lostAnswerStore{Store: f.store}
				svc := tokens.NewSessionService(store, f.opts)
				u := f.user("ada-" + fmt.Sprint(tc.readBack))
				s := f.session(u.ID, "spa")
				tok := f.refresh(s.ID, "spa")

				store.loseAnswer.Store(true)
				store.loseReadBack.Store(!tc.readBack)
				r, err := svc.RedeemRefreshToken(f.ctx, tok, "spa")
				if store.loseAnswer.Load() {
					t.Fatal("the rotation was not attempted")
				}
				var next string
				if tc.readBack {
					if err != nil || r.Reissued || r.Session.ID != s.ID || r.User.ID != u.ID {
						t.Fatalf("redeem whose commit answer was lost = %v, %v; want the committed rotation", r, err)
					}
					next = r.RefreshToken
				} else {
					if err == nil || !models.IsTransient(err) {
						t.Fatalf("redeem whose commit answer and read-back were lost = %v, %v; want a transient error", r, err)
					}
					f.clock.Advance(sessTestGrace / 2)
					r, err = svc.RedeemRefreshToken(f.ctx, tok, "spa")
					if err != nil || !r.Reissued {
						t.Fatalf("retry inside the grace window = %v, %v; want a re-issued token", r, err)
					}
					next = r.RefreshToken
				}
				// The token the client now holds is current.
				f.clock.Advance(10 * sessTestGrace)
				if r, err := svc.RedeemRefreshToken(f.ctx, next, "spa"); err != nil || r.Reissued {
					t.Fatalf("next refresh = %v, %v", r, err)
				}
				// The rotated token presented after the window is a replay.
				if _, err := svc.RedeemRefreshToken(f.ctx, tok, "spa"); !errors.Is(err, tokens.ErrRefreshTokenReuse) {
					t.Fatalf("the rotated token after the grace window: %v, want reuse detection", err)
				}
			})
		}
		t.Run("insert of a new family token: answer lost, read-back answers", func(t *testing.T) {
			f := newSessFixture(t, db, nil)
			store := &lostAnswerStore{Store: f.store}
			svc := tokens.NewSessionService(store, f.opts)
			u := f.user("grace")
			s := f.session(u.ID, "spa")
			store.loseAnswer.Store(true)
			tok, err := svc.IssueRefreshToken(f.ctx, s.ID, "spa")
			if err != nil || store.loseAnswer.Load() {
				t.Fatalf("issue whose commit answer was lost: %v", err)
			}
			f.clock.Advance(time.Minute)
			if _, err := svc.RedeemRefreshToken(f.ctx, tok, "spa"); err != nil {
				t.Fatalf("the issued token does not redeem: %v", err)
			}
		})
	})
}
