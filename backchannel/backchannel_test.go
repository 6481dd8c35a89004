package backchannel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/backchannel"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/tokens"
)

const issuer = "https://id.example.com"

type fixture struct {
	t     *testing.T
	ctx   context.Context
	db    *models.DB
	store *models.Store
	keys  *tokens.KeyManager
	user  string
}

func newFixture(t *testing.T, db *models.DB) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), db: db, store: models.NewStore(db)}
	keys, err := tokens.NewKeyManager(f.store, "test-secret-key-0123456789abcdef-0123456789", tokens.KeyOptions{
		Algorithm: "ES256", RotationPeriod: 30 * 24 * time.Hour, PublishLead: time.Hour, RetainAfterRetire: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Init(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.keys = keys
	u := &models.User{}
	if err := f.store.CreateUserWithIdentity(f.ctx, u, &models.Identity{Provider: "dev", Subject: "ada-" + models.NewID()}); err != nil {
		t.Fatal(err)
	}
	f.user = u.ID
	return f
}

// endSession opens an app session of client and ends it, which queues
// its logout (the trigger); it returns the session id.
func (f *fixture) endSession(client string) string {
	f.t.Helper()
	now := time.Now().UTC()
	sess := &models.Session{UserID: f.user, ClientID: client, Provider: "dev", AuthTime: now, LastUsedAt: now,
		ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	if err := f.store.CreateSession(f.ctx, sess); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.store.RevokeSession(f.ctx, sess.ID, "logout", now); err != nil {
		f.t.Fatal(err)
	}
	return sess.ID
}

func (f *fixture) rows() []models.LogoutDelivery {
	f.t.Helper()
	var out []models.LogoutDelivery
	if err := f.db.Order("created_at").Find(&out).Error; err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) audits(typ string) []map[string]any {
	f.t.Helper()
	events, err := f.store.ListAuditEvents(f.ctx, models.AuditFilter{Type: typ}, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range events {
		var d map[string]any
		_ = json.Unmarshal([]byte(e.Details), &d)
		d["client_id"], d["outcome"] = e.ClientID, e.Outcome
		if e.SubjectUserID != nil {
			d["subject"] = *e.SubjectUserID
		}
		out = append(out, d)
	}
	return out
}

// outcomes counts the Outcome hook's calls by "client outcome".
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) hook(client, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[client+" "+outcome]++
}

func (o *outcomes) get(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[key]
}

func (f *fixture) dispatcher(endpoints map[string]string, o *outcomes, tweak func(*backchannel.Options)) *backchannel.Dispatcher {
	opts := backchannel.Options{Store: f.store, Signer: f.keys, Issuer: issuer, Endpoints: endpoints,
		RetryMin: 20 * time.Millisecond, RetryMax: time.Second, Timeout: 2 * time.Second, Poll: 10 * time.Millisecond}
	if o != nil {
		opts.Hooks.Outcome = o.hook
	}
	if tweak != nil {
		tweak(&opts)
	}
	return backchannel.New(opts)
}

// receiver is a client's back-channel logout endpoint: it verifies each
// logout token with go-jose against the published keys, as a client
// would, then answers as answer says (nil: 200).
type receiver struct {
	*httptest.Server
	t      *testing.T
	jwks   func() jose.JSONWebKeySet
	client string
	answer func(w http.ResponseWriter, r *http.Request, call int)

	calls atomic.Int32
	mu    sync.Mutex
	got   []backchannel.Claims
	at    []time.Time
}

func (f *fixture) receiver(client string, answer func(http.ResponseWriter, *http.Request, int)) *receiver {
	r := &receiver{t: f.t, jwks: f.keys.JWKS, client: client, answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	f.t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	call := int(r.calls.Add(1))
	c, err := verifyLogoutToken(req, r.jwks(), r.client)
	if err != nil {
		r.t.Errorf("call %d: %v", call, err)
		http.Error(w, "bad logout token", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got, r.at = append(r.got, *c), append(r.at, time.Now())
	r.mu.Unlock()
	if r.answer != nil {
		r.answer(w, req, call)
	}
}

func (r *receiver) received() []backchannel.Claims {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]backchannel.Claims(nil), r.got...)
}

// verifyLogoutToken checks a back-channel logout request as Back-Channel
// Logout 1.0 §2.6 tells a client to: a form POST, a JWS signed by a key
// of the JWKS, typ logout+jwt, iss, aud, iat, exp, jti, sub, sid, the
// event, and no nonce.
func verifyLogoutToken(req *http.Request, jwks jose.JSONWebKeySet, client string) (*backchannel.Claims, error) {
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("%s with %q", req.Method, req.Header.Get("Content-Type"))
	}
	raw := req.PostFormValue("logout_token")
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("typ = %q", typ)
	}
	keys := jwks.Key(h.KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("kid %q not in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var all map[string]any
	if err := json.Unmarshal(payload, &all); err != nil {
		return nil, err
	}
	if _, ok := all["nonce"]; ok {
		return nil, fmt.Errorf("a logout token carries a nonce")
	}
	var c backchannel.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	switch {
	case c.Issuer != issuer && !strings.HasPrefix(c.Issuer, "http://127.0.0.1"):
		return nil, fmt.Errorf("iss = %q", c.Issuer)
	case c.Audience != client:
		return nil, fmt.Errorf("aud = %q", c.Audience)
	case c.IssuedAt > now+5 || c.Expiry <= now || c.Expiry-c.IssuedAt > 300:
		return nil, fmt.Errorf("iat %d exp %d at %d", c.IssuedAt, c.Expiry, now)
	case len(c.ID) < 16:
		return nil, fmt.Errorf("jti = %q", c.ID)
	case c.Subject == "" || c.SessionID == "":
		return nil, fmt.Errorf("sub %q sid %q", c.Subject, c.SessionID)
	}
	if _, ok := c.Events[backchannel.EventLogout]; !ok || len(c.Events) != 1 {
		return nil, fmt.Errorf("events = %v", all["events"])
	}
	return &c, nil
}

// waitFor polls cond for up to 30 s (a bound for a hung test, far above
// what any wait takes on a slow machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts d until the test ends or stop is called; stop returns
// once Run has.
func run(t *testing.T, d *backchannel.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestDeliversALogoutToken: an ended session's logout reaches its client
// once, as a token a stock JOSE library verifies (typ, iss, aud, sub =
// the user, sid = the session, the event, no nonce), with a metric and an
// audit event; a client without a URI gets nothing and its rows go.
func TestDeliversALogoutToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		rcv := f.receiver("app-a", nil)
		var o outcomes
		d := f.dispatcher(map[string]string{"app-a": rcv.URL + "/logout"}, &o, nil)
		sid := f.endSession("app-a")
		f.endSession("no-uri")
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		got := rcv.received()
		if len(got) != 1 || got[0].SessionID != sid || got[0].Subject != f.user || got[0].Issuer != issuer {
			t.Fatalf("received %+v", got)
		}
		if rows := f.rows(); len(rows) != 0 {
			t.Fatalf("outbox after delivery = %+v", rows)
		}
		if o.get("app-a delivered") != 1 {
			t.Fatalf("outcomes = %v", o.n)
		}
		ev := f.audits(backchannel.AuditDelivered)
		if len(ev) != 1 || ev[0]["session_id"] != sid || ev[0]["client_id"] != "app-a" || ev[0]["subject"] != f.user ||
			ev[0]["status"] != float64(200) || ev[0]["outcome"] != models.OutcomeSuccess {
			t.Fatalf("audit = %+v", ev)
		}
		var raw []models.AuditEvent
		db.Find(&raw)
		for _, e := range raw {
			if strings.Contains(e.Details, "eyJ") {
				t.Fatalf("an audit event holds a token: %s", e.Details)
			}
		}
		// Two tokens for one session differ (jti).
		row := models.LogoutDelivery{SessionID: sid, ClientID: "app-a", UserID: f.user}
		a, _ := d.Token(row)
		b, _ := d.Token(row)
		if a == b {
			t.Fatal("two logout tokens are identical")
		}
	})
}

// TestRetriesWithBackoff: a client that fails (500, then a refused
// redirect) is retried after a doubling wait, and delivered once when it
// answers 204; each failure is a metric and an audit event naming the
// status, and a redirect is never followed.
func TestRetriesWithBackoff(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		var elsewhere atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
		defer other.Close()
		rcv := f.receiver("app-a", func(w http.ResponseWriter, r *http.Request, call int) {
			switch call {
			case 1:
				w.WriteHeader(http.StatusInternalServerError)
			case 2:
				http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
			default:
				w.WriteHeader(http.StatusNoContent)
			}
		})
		var o outcomes
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, func(o *backchannel.Options) { o.RetryMin = 100 * time.Millisecond })
		f.endSession("app-a")
		run(t, d)
		waitFor(t, "delivery", func() bool { return o.get("app-a delivered") == 1 && len(f.rows()) == 0 })
		if rcv.calls.Load() != 3 || o.get("app-a failed") != 2 || elsewhere.Load() != 0 {
			t.Fatalf("calls %d, outcomes %v, redirect followed %d times", rcv.calls.Load(), o.n, elsewhere.Load())
		}
		rcv.mu.Lock()
		gaps := []time.Duration{rcv.at[1].Sub(rcv.at[0]), rcv.at[2].Sub(rcv.at[1])}
		rcv.mu.Unlock()
		if gaps[0] < 100*time.Millisecond || gaps[1] < 200*time.Millisecond {
			t.Fatalf("waits between attempts %v, want ≥ 100ms then ≥ 200ms", gaps)
		}
		failed := f.audits(backchannel.AuditFailed)
		if len(failed) != 2 {
			t.Fatalf("failure events = %+v", failed)
		}
		errs := []string{failed[0]["error"].(string), failed[1]["error"].(string)}
		if !strings.Contains(strings.Join(errs, " "), "HTTP 500") || !strings.Contains(strings.Join(errs, " "), "HTTP 302: redirects are not followed") {
			t.Fatalf("failure errors = %q", errs)
		}
		if len(f.rows()) != 0 || len(f.audits(backchannel.AuditDelivered)) != 1 {
			t.Fatalf("rows %+v after delivery", f.rows())
		}
	})
}

// TestSilentClientTimesOut: a client that never answers costs one
// Timeout per attempt and is retried; the row records why.
func TestSilentClientTimesOut(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		release := make(chan struct{})
		rcv := f.receiver("app-a", func(w http.ResponseWriter, r *http.Request, call int) {
			if call == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		defer close(release)
		var o outcomes
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, func(o *backchannel.Options) {
			o.Timeout, o.RetryMin, o.RetryMax = 200*time.Millisecond, time.Hour, time.Hour
		})
		f.endSession("app-a")
		start := time.Now()
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("an attempt took %v with a 200ms timeout", took)
		}
		rows := f.rows()
		if len(rows) != 1 || rows[0].Attempts != 1 || rows[0].LastError != "no answer within 200ms" ||
			rows[0].NextAttemptAt.Before(time.Now().Add(50*time.Minute)) {
			t.Fatalf("row after a timeout = %+v", rows)
		}
		if o.get("app-a failed") != 1 {
			t.Fatalf("outcomes = %v", o.n)
		}
		// Once due again, it is delivered.
		if err := db.Model(&models.LogoutDelivery{}).Where("1 = 1").Update("next_attempt_at", time.Now().UTC().Add(-time.Second)).Error; err != nil {
			t.Fatal(err)
		}
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if len(f.rows()) != 0 || o.get("app-a delivered") != 1 {
			t.Fatalf("after the retry: rows %+v outcomes %v", f.rows(), o.n)
		}
	})
}

// TestOversizedAnswerIsNotRead: a client answering 200 with an endless
// body is delivered without Gatehouse reading the body.
func TestOversizedAnswerIsNotRead(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		const total = 256 << 20
		var written atomic.Int64
		rcv := f.receiver("app-a", func(w http.ResponseWriter, r *http.Request, call int) {
			w.WriteHeader(http.StatusOK)
			chunk := make([]byte, 64<<10)
			for written.Load() < total {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
		var o outcomes
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, nil)
		f.endSession("app-a")
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if o.get("app-a delivered") != 1 || len(f.rows()) != 0 {
			t.Fatalf("outcomes %v rows %+v", o.n, f.rows())
		}
		waitFor(t, "the handler to stop", func() bool { return rcv.calls.Load() == 1 })
		time.Sleep(100 * time.Millisecond)
		if n := written.Load(); n >= total {
			t.Fatalf("the whole %d-byte answer was read", n)
		}
	})
}

// TestGivesUp: past MaxAttempts (or GiveUpAfter since the session ended)
// a failing delivery is deleted with an abandoned audit event and a
// gave_up metric.
func TestGivesUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		rcv := f.receiver("app-a", func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusBadGateway) })
		var o outcomes
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, func(o *backchannel.Options) { o.MaxAttempts = 3 })
		sid := f.endSession("app-a")
		stop := run(t, d)
		waitFor(t, "give-up", func() bool { return o.get("app-a gave_up") == 1 && len(f.rows()) == 0 })
		stop()
		if rcv.calls.Load() != 3 || o.get("app-a failed") != 2 || len(f.rows()) != 0 {
			t.Fatalf("calls %d outcomes %v rows %+v", rcv.calls.Load(), o.n, f.rows())
		}
		ev := f.audits(backchannel.AuditAbandoned)
		if len(ev) != 1 || ev[0]["session_id"] != sid || ev[0]["attempt"] != float64(3) || ev[0]["error"] != "HTTP 502" ||
			ev[0]["outcome"] != models.OutcomeFailure {
			t.Fatalf("abandoned events = %+v", ev)
		}

		// By age: a session that ended longer ago than GiveUpAfter gets
		// one attempt.
		old := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, func(o *backchannel.Options) { o.GiveUpAfter = time.Hour })
		f.endSession("app-a")
		if err := db.Model(&models.LogoutDelivery{}).Where("1 = 1").Update("created_at", time.Now().UTC().Add(-2*time.Hour)).Error; err != nil {
			t.Fatal(err)
		}
		if err := old.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if o.get("app-a gave_up") != 2 || len(f.rows()) != 0 {
			t.Fatalf("outcomes %v rows %+v", o.n, f.rows())
		}
	})
}

// TestOutboxSurvivesRestart: logouts queued while no dispatcher runs,
// and one a dead replica had claimed, are delivered by a new dispatcher
// (the latter once its lease has run out, on the dispatcher's clock: no
// real time passes, so a slow machine cannot let the lease run out early).
func TestOutboxSurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		rcv := f.receiver("app-a", nil)
		endpoints := map[string]string{"app-a": rcv.URL}
		queued := []string{f.endSession("app-a"), f.endSession("app-a")}
		// A replica claimed this one, then died.
		dead := f.endSession("app-a")
		var clock atomic.Int64 // the dispatchers' now, in Unix nanoseconds
		start := time.Now().UTC()
		clock.Store(start.UnixNano())
		now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
		withClock := func(o *backchannel.Options) { o.Now = now }
		// Logout tokens carry the fake clock's iat: the lease stays well
		// within the receiver's five seconds of tolerance.
		leaseEnd := start.Add(2 * time.Second)
		if ok, err := f.store.ClaimLogoutDelivery(f.ctx, dead, 0, start, leaseEnd); !ok || err != nil {
			t.Fatalf("claim = %v %v", ok, err)
		}
		var o outcomes
		if err := f.dispatcher(endpoints, &o, withClock).DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if n := o.get("app-a delivered"); n != len(queued) {
			t.Fatalf("delivered %d after the restart, want %d", n, len(queued))
		}
		// Just before the lease ends, the dead replica's row is not due.
		clock.Store(leaseEnd.Add(-time.Millisecond).UnixNano())
		if err := f.dispatcher(endpoints, &o, withClock).DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if n := o.get("app-a delivered"); n != len(queued) || len(f.rows()) != 1 {
			t.Fatalf("a leased row was delivered before its lease ran out: outcomes %v rows %+v", o.n, f.rows())
		}
		clock.Store(leaseEnd.UnixNano())
		if err := f.dispatcher(endpoints, &o, withClock).DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if o.get("app-a delivered") != 3 || len(f.rows()) != 0 {
			t.Fatalf("outcomes %v rows %+v", o.n, f.rows())
		}
		seen := map[string]bool{}
		for _, c := range rcv.received() {
			seen[c.SessionID] = true
		}
		for _, sid := range append(queued, dead) {
			if !seen[sid] {
				t.Fatalf("session %s was never told", sid)
			}
		}
	})
}

// rescheduledMeanwhile is the outbox as a replica sees it when another
// replica records a failed attempt of a row between this replica's read
// and its claim: the first read's first row is rescheduled, already due.
type rescheduledMeanwhile struct {
	*models.Store
	once sync.Once
	row  string
}

func (s *rescheduledMeanwhile) DueLogoutDeliveries(ctx context.Context, clients []string, now time.Time, limit int) ([]models.LogoutDelivery, error) {
	rows, err := s.Store.DueLogoutDeliveries(ctx, clients, now, limit)
	if err != nil || len(rows) == 0 {
		return rows, err
	}
	s.once.Do(func() {
		s.row = rows[0].SessionID
		if ok, rerr := s.Store.RescheduleLogoutDelivery(ctx, rows[0].SessionID, rows[0].Attempts, now.Add(-time.Second), "HTTP 503"); !ok || rerr != nil {
			err = fmt.Errorf("reschedule by the other replica: %v %v", ok, rerr)
		}
	})
	return rows, err
}

// TestClaimSeesAnotherReplicasReschedule: a row another replica
// rescheduled after this one read it is not claimed on the stale read,
// even though it is due again: its failure stays recorded (attempts 1),
// and the next read delivers it as the second attempt. Claimed on the
// stale read, a failure would have been recorded against the old count,
// refused, and the row left leased for a whole lease.
func TestClaimSeesAnotherReplicasReschedule(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		rcv := f.receiver("app-a", nil)
		var o outcomes
		store := &rescheduledMeanwhile{Store: f.store}
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, &o, func(o *backchannel.Options) { o.Store = store })
		sid := f.endSession("app-a")
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		rows := f.rows()
		if store.row != sid || rcv.calls.Load() != 0 || len(rows) != 1 || rows[0].Attempts != 1 || rows[0].LastError != "HTTP 503" ||
			rows[0].NextAttemptAt.After(time.Now()) {
			t.Fatalf("after a claim on a stale read: calls %d, rows %+v", rcv.calls.Load(), rows)
		}
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		ev := f.audits(backchannel.AuditDelivered)
		if rcv.calls.Load() != 1 || len(f.rows()) != 0 || len(ev) != 1 || ev[0]["attempt"] != float64(2) {
			t.Fatalf("calls %d rows %+v delivered events %+v", rcv.calls.Load(), f.rows(), ev)
		}
	})
}

// stalledWrites is an outbox whose database stops answering writes
// after a delivery: each write waits until its context ends.
type stalledWrites struct {
	*models.Store
	entered chan struct{} // one value per stalled write
	release chan struct{} // closed when the test ends, should it fail
	mu      sync.Mutex
	errs    []error // the context errors the writes ended with
}

func (s *stalledWrites) stall(ctx context.Context) error {
	s.entered <- struct{}{}
	select {
	case <-ctx.Done():
	case <-s.release:
		return errors.New("released by the test")
	}
	s.mu.Lock()
	s.errs = append(s.errs, ctx.Err())
	s.mu.Unlock()
	return ctx.Err()
}

func (s *stalledWrites) RecordAudit(ctx context.Context, _ *models.AuditEvent, _ map[string]any) error {
	return s.stall(ctx)
}

func (s *stalledWrites) DeleteLogoutDelivery(ctx context.Context, _ string) error {
	return s.stall(ctx)
}

// TestStalledDatabaseDoesNotHoldShutdown: when the database stalls while
// a delivery records its outcome, stopping the dispatcher returns once
// the delivery's bound (Timeout plus the write grace) is reached, not
// when the database answers; the writes end by that deadline, not by
// the shutdown itself, and the row stays, to be delivered again once its
// lease runs out.
func TestStalledDatabaseDoesNotHoldShutdown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		backchannel.SetWriteGrace(t, 200*time.Millisecond)
		f := newFixture(t, db)
		rcv := f.receiver("app-a", nil)
		store := &stalledWrites{Store: f.store, entered: make(chan struct{}, 8), release: make(chan struct{})}
		d := f.dispatcher(map[string]string{"app-a": rcv.URL}, nil, func(o *backchannel.Options) {
			o.Store, o.Timeout = store, time.Second
		})
		sid := f.endSession("app-a")
		stop := run(t, d)
		t.Cleanup(func() { close(store.release) }) // before the dispatcher stops
		select {
		case <-store.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the delivery never wrote its outcome")
		}
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatal("a stalled database holds the dispatcher's shutdown")
		}
		store.mu.Lock()
		errs := append([]error(nil), store.errs...)
		store.mu.Unlock()
		if len(errs) == 0 {
			t.Fatal("no stalled write ended")
		}
		for _, err := range errs {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a stalled write ended with %v, want the delivery's deadline (not the shutdown)", err)
			}
		}
		if rcv.calls.Load() != 1 {
			t.Fatalf("calls %d", rcv.calls.Load())
		}
		rows := f.rows()
		if len(rows) != 1 || rows[0].SessionID != sid || !rows[0].NextAttemptAt.After(time.Now()) {
			t.Fatalf("after a stalled write the row should stay leased: %+v", rows)
		}
	})
}

// TestReplicasDeliverEachOnce: two dispatchers on one database (two
// replicas) deliver every logout exactly once.
func TestReplicasDeliverEachOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		rcv := f.receiver("app-a", nil)
		endpoints := map[string]string{"app-a": rcv.URL}
		const n = 30
		for range n {
			f.endSession("app-a")
		}
		var o outcomes
		var wg sync.WaitGroup
		for range 2 {
			d := f.dispatcher(endpoints, &o, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for len(f.rows()) > 0 {
					if err := d.DeliverDue(f.ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		count := map[string]int{}
		for _, c := range rcv.received() {
			count[c.SessionID]++
		}
		if len(count) != n || o.get("app-a delivered") != n {
			t.Fatalf("%d sessions told, %d deliveries, want %d", len(count), o.get("app-a delivered"), n)
		}
		for sid, k := range count {
			if k != 1 {
				t.Fatalf("session %s told %d times", sid, k)
			}
		}
	})
}

// TestSlowClientDoesNotHoldOthers: while a client hangs on all its
// allowed deliveries, another client's logouts still go out. Only counts
// are asserted: the slow client hangs until released (its Timeout is far
// longer than the test), so no timing of the machine decides the outcome.
func TestSlowClientDoesNotHoldOthers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		release := make(chan struct{})
		var releaseOnce sync.Once
		free := func() { releaseOnce.Do(func() { close(release) }) }
		slow := f.receiver("slow", func(w http.ResponseWriter, r *http.Request, _ int) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		fast := f.receiver("fast", nil)
		var o outcomes
		d := f.dispatcher(map[string]string{"slow": slow.URL, "fast": fast.URL}, &o, func(o *backchannel.Options) {
			o.Parallel, o.PerClient, o.Timeout = 3, 2, 10*time.Minute
		})
		for range 5 {
			f.endSession("slow")
		}
		run(t, d)
		t.Cleanup(free) // before the dispatcher stops, should the test fail
		waitFor(t, "the slow client's deliveries", func() bool { return slow.calls.Load() == 2 })
		for range 3 {
			f.endSession("fast")
		}
		d.Wake()
		waitFor(t, "the fast client's deliveries", func() bool { return o.get("fast delivered") == 3 })
		if c := slow.calls.Load(); c != 2 || o.get("slow failed") != 0 || o.get("slow delivered") != 0 {
			t.Fatalf("the slow client got %d deliveries at once (limit 2), outcomes %v", c, o.n)
		}
		free()
		waitFor(t, "the slow client's deliveries", func() bool { return o.get("slow delivered") == 5 })
		if c := slow.calls.Load(); c != 5 || o.get("slow failed") != 0 {
			t.Fatalf("the slow client got %d calls for 5 logouts, outcomes %v", c, o.n)
		}
	})
}
