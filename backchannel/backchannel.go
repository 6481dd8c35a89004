// Package backchannel delivers OpenID Connect Back-Channel Logout 1.0:
// when an app session ends (by any path: a database trigger queues a row
// in the logout_deliveries outbox in the transaction that ends it), the
// Dispatcher signs a logout token and POSTs it to the client's registered
// backchannel_logout_uri, retrying with exponential backoff until the
// client answers 2xx or the delivery is given up. The outbox makes it
// durable (a restart loses nothing) and safe with several replicas (a row
// is claimed by one replica at a time, see models.ClaimLogoutDelivery).
package backchannel

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// EventLogout is the event the events claim of a logout token holds.
const EventLogout = "http://schemas.openid.net/event/backchannel-logout"

// Delivery outcomes, as the metric's outcome label and the audit events
// name them.
const (
	// OutcomeDelivered: the client answered 2xx; the row is deleted.
	OutcomeDelivered = "delivered"
	// OutcomeFailed: the attempt failed (no answer in time, a network
	// error, a non-2xx status, a redirect); another attempt is scheduled.
	OutcomeFailed = "failed"
	// OutcomeGaveUp: the attempt failed and the delivery is past its
	// limits; the row is deleted.
	OutcomeGaveUp = "gave_up"
)

// Audit event types written for each outcome.
const (
	AuditDelivered = "backchannel_logout.delivered"
	AuditFailed    = "backchannel_logout.failed"
	AuditAbandoned = "backchannel_logout.abandoned"
)

// Claims are the claims of a logout token (Back-Channel Logout 1.0 §2.4).
// There is never a nonce, so a logout token cannot pass for an ID token.
type Claims struct {
	Issuer    string              `json:"iss"`
	Audience  string              `json:"aud"`
	IssuedAt  int64               `json:"iat"`
	Expiry    int64               `json:"exp"`
	ID        string              `json:"jti"`
	Subject   string              `json:"sub"`
	SessionID string              `json:"sid"`
	Events    map[string]struct{} `json:"events"`
}

// Store is the outbox as the dispatcher uses it; *models.Store provides it.
type Store interface {
	DueLogoutDeliveries(ctx context.Context, clientIDs []string, now time.Time, limit int) ([]models.LogoutDelivery, error)
	ClaimLogoutDelivery(ctx context.Context, sessionID string, attempts int, now, leaseUntil time.Time) (bool, error)
	DeleteLogoutDelivery(ctx context.Context, sessionID string) error
	RescheduleLogoutDelivery(ctx context.Context, sessionID string, attempts int, next time.Time, lastError string) (bool, error)
	DropLogoutDeliveries(ctx context.Context, keep []string) (int64, error)
	CountLogoutDeliveries(ctx context.Context) (int64, error)
	RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error
}

// Signer signs a token with Gatehouse's active key and the given typ
// header; *tokens.KeyManager provides it.
type Signer interface {
	Sign(claims any, typ string) (string, error)
}

// Hooks report to metrics; nil hooks are skipped.
type Hooks struct {
	// Outcome is called once per delivery attempt with the client and one
	// of the Outcome constants.
	Outcome func(client, outcome string)
	// Pending reports how many logouts wait in the outbox (every replica's).
	Pending func(n int64)
}

// Options configure a Dispatcher. Zero durations and counts take the
// documented defaults.
type Options struct {
	Store  Store
	Signer Signer
	// Issuer is the iss of logout tokens.
	Issuer string
	// Endpoints maps a client id to its backchannel_logout_uri; clients
	// absent are never told, and their rows are dropped.
	Endpoints map[string]string
	Log       *slog.Logger
	// Now is the clock (default: time.Now in UTC).
	Now   func() time.Time
	Hooks Hooks

	// Timeout bounds one POST, answer included (default 5s).
	Timeout time.Duration
	// TokenTTL is the logout token's lifetime (default 2 minutes).
	TokenTTL time.Duration
	// RetryMin is the wait after the first failure, doubled after each
	// further one up to RetryMax (defaults 1s and 10 minutes).
	RetryMin, RetryMax time.Duration
	// GiveUpAfter: a delivery whose session ended longer ago than this is
	// given up after its next failure (default 24h). MaxAttempts, when
	// positive, also gives up after that many failures.
	GiveUpAfter time.Duration
	MaxAttempts int
	// Poll is how often the outbox is read for due rows (default 1s);
	// Housekeep how often rows of clients without a URI are dropped and
	// the pending count reported (default 10s).
	Poll, Housekeep time.Duration
	// Lease is how long a claimed row stays another replica's (default
	// the larger of one minute and four Timeouts; never less than one
	// delivery may take, Timeout plus 5 seconds): a replica that dies
	// mid-delivery delays that delivery this long.
	Lease time.Duration
	// Parallel bounds the deliveries in flight (default 16), PerClient
	// those to one client (default 4), so one slow client cannot hold
	// the others up.
	Parallel, PerClient int
	// HTTPClient sends the POSTs (default: one that follows no redirect).
	// Its redirect policy is replaced: redirects are never followed.
	HTTPClient *http.Client

	writeGrace time.Duration // writeGrace when New ran
}

// writeGrace (a variable for tests only) is how long, beyond Timeout, one delivery may take to record
// its outcome (audit event, then the row deleted or rescheduled). A
// delivery, POST and writes, never outlives Timeout + writeGrace, so Run
// returns that long after its context ends at the latest; a write cut
// short leaves the row leased, and it is tried again when the lease runs
// out (Lease is never shorter than a delivery may take).
var writeGrace = 5 * time.Second

// maxAnswer bounds how much of a client's answer is read (and discarded).
const maxAnswer = 4 << 10

// maxErrorLen bounds last_error and the error in audit events.
const maxErrorLen = 200

// Dispatcher delivers the outbox. Run it once per replica; several
// replicas share the work through the database.
type Dispatcher struct {
	opts Options
	// endpoints are Options.Endpoints as the dispatcher reads them,
	// replaced whole by SetEndpoints.
	endpoints atomic.Pointer[endpoints]
	http      *http.Client
	wake      chan struct{}

	mu        sync.Mutex
	inFlight  int
	perClient map[string]int
	wg        sync.WaitGroup // Run's deliveries in flight
}

// New returns a dispatcher; it does nothing until Run.
func New(opts Options) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.Timeout, 5*time.Second)
	def(&opts.TokenTTL, 2*time.Minute)
	def(&opts.RetryMin, time.Second)
	def(&opts.RetryMax, 10*time.Minute)
	def(&opts.GiveUpAfter, 24*time.Hour)
	def(&opts.Poll, time.Second)
	def(&opts.Housekeep, 10*time.Second)
	def(&opts.Lease, max(time.Minute, 4*opts.Timeout))
	opts.Lease = max(opts.Lease, opts.Timeout+writeGrace)
	opts.writeGrace = writeGrace
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	if opts.PerClient <= 0 {
		opts.PerClient = 4
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return time.Now().UTC() }
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
	}
	hc.Timeout = opts.Timeout
	// A redirect is the client's answer, and a failure: following it
	// would let a logout endpoint send Gatehouse's POST anywhere.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d := &Dispatcher{opts: opts, http: hc, wake: make(chan struct{}, 1), perClient: map[string]int{}}
	d.SetEndpoints(opts.Endpoints)
	return d
}

// Wake makes a running dispatcher look at the outbox now rather than at
// its next poll (after a local logout); it never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due logouts until ctx ends, then waits for the deliveries
// in flight (each bounded by Timeout plus 5 seconds for its database
// writes, whatever the database does) and returns. Faults of the outbox
// are logged and retried at the next poll.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.wg.Wait()
	poll := time.NewTicker(d.opts.Poll)
	defer poll.Stop()
	var lastHousekeep time.Time
	for {
		if now := time.Now(); now.Sub(lastHousekeep) >= d.opts.Housekeep {
			lastHousekeep = now
			d.housekeep(ctx)
		}
		if err := d.dispatch(ctx, &d.wg); err != nil && ctx.Err() == nil {
			d.opts.Log.ErrorContext(ctx, "back-channel logout: read the outbox", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-d.wake:
		}
	}
}

// DeliverDue claims what is due now as Run would and waits until those
// deliveries are done (tests, and a one-off flush).
func (d *Dispatcher) DeliverDue(ctx context.Context) error {
	d.housekeep(ctx)
	var wg sync.WaitGroup
	err := d.dispatch(ctx, &wg)
	wg.Wait()
	return err
}

// housekeep drops the rows of clients that are not told and reports the
// pending count.
func (d *Dispatcher) housekeep(ctx context.Context) {
	if n, err := d.opts.Store.DropLogoutDeliveries(ctx, d.endpoints.Load().clients); err != nil {
		if ctx.Err() == nil {
			d.opts.Log.ErrorContext(ctx, "back-channel logout: drop rows of clients without a URI", slog.String("error", err.Error()))
		}
	} else if n > 0 {
		d.opts.Log.DebugContext(ctx, "back-channel logout: dropped rows of clients without a URI", slog.Int64("rows", n))
	}
	if d.opts.Hooks.Pending != nil {
		if n, err := d.opts.Store.CountLogoutDeliveries(ctx); err == nil {
			d.opts.Hooks.Pending(n)
		}
	}
}

// dispatch claims due rows while there are free slots and starts their
// deliveries, counted in wg; it does not wait for them.
func (d *Dispatcher) dispatch(ctx context.Context, wg *sync.WaitGroup) error {
	clients := d.endpoints.Load().clients
	if len(clients) == 0 {
		return nil
	}
	d.mu.Lock()
	free := d.opts.Parallel - d.inFlight
	var eligible []string
	for _, c := range clients {
		if d.perClient[c] < d.opts.PerClient {
			eligible = append(eligible, c)
		}
	}
	d.mu.Unlock()
	if free <= 0 || len(eligible) == 0 {
		return nil
	}
	now := d.opts.Now()
	// Read more than the free slots: some rows may be of a client at its
	// own limit, or claimed by another replica first.
	due, err := d.opts.Store.DueLogoutDeliveries(ctx, eligible, now, 4*free)
	if err != nil {
		return err
	}
	for _, row := range due {
		if !d.reserve(row.ClientID) {
			continue
		}
		ok, err := d.opts.Store.ClaimLogoutDelivery(ctx, row.SessionID, row.Attempts, now, now.Add(d.opts.Lease))
		if err != nil || !ok {
			d.release(row.ClientID)
			if err != nil {
				return err
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer d.release(row.ClientID)
			// Detached from ctx: a shutdown lets this attempt finish
			// rather than leave the row leased; bounded, so that neither
			// a silent client (Timeout) nor a stalled database (writeGrace
			// more) holds the shutdown.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.Timeout+d.opts.writeGrace)
			defer cancel()
			d.deliver(dctx, row)
		}()
	}
	return nil
}

// reserve takes a slot for a delivery to client, if one is free.
func (d *Dispatcher) reserve(client string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight >= d.opts.Parallel || d.perClient[client] >= d.opts.PerClient {
		return false
	}
	d.inFlight++
	d.perClient[client]++
	return true
}

// release frees the slot and lets Run look for more work.
func (d *Dispatcher) release(client string) {
	d.mu.Lock()
	d.inFlight--
	if d.perClient[client]--; d.perClient[client] <= 0 {
		delete(d.perClient, client)
	}
	d.mu.Unlock()
	d.Wake()
}

// deliver makes one attempt for a claimed row and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, row models.LogoutDelivery) {
	attempt := row.Attempts + 1
	status, failure := d.post(ctx, row)
	details := map[string]any{"session_id": row.SessionID, "attempt": attempt, "reason": row.Reason}
	if status != 0 {
		details["status"] = status
	}
	// The outcome is recorded before the row goes, so an empty outbox
	// means every outcome is in the audit trail.
	if failure == "" {
		d.record(ctx, row, OutcomeDelivered, AuditDelivered, models.OutcomeSuccess, details)
		if err := d.opts.Store.DeleteLogoutDelivery(ctx, row.SessionID); err != nil {
			// Delivered; the row will be delivered once more when its
			// lease runs out (a logout token is safe to receive twice).
			d.opts.Log.ErrorContext(ctx, "back-channel logout: delete a delivered row", slog.String("error", err.Error()))
		}
		return
	}
	details["error"] = failure
	now := d.opts.Now()
	if now.Sub(row.CreatedAt) >= d.opts.GiveUpAfter || (d.opts.MaxAttempts > 0 && attempt >= d.opts.MaxAttempts) {
		d.opts.Log.WarnContext(ctx, "back-channel logout given up", slog.String("client_id", row.ClientID),
			slog.String("session_id", row.SessionID), slog.Int("attempts", attempt), slog.String("error", failure))
		d.record(ctx, row, OutcomeGaveUp, AuditAbandoned, models.OutcomeFailure, details)
		if err := d.opts.Store.DeleteLogoutDelivery(ctx, row.SessionID); err != nil {
			// Tried again when the lease runs out, and given up again.
			d.opts.Log.ErrorContext(ctx, "back-channel logout: delete a given-up row", slog.String("error", err.Error()))
		}
		return
	}
	next := now.Add(d.backoff(attempt))
	details["next_attempt_at"] = next
	if _, err := d.opts.Store.RescheduleLogoutDelivery(ctx, row.SessionID, row.Attempts, next, failure); err != nil {
		d.opts.Log.ErrorContext(ctx, "back-channel logout: reschedule", slog.String("error", err.Error()))
	}
	d.opts.Log.InfoContext(ctx, "back-channel logout failed; will retry", slog.String("client_id", row.ClientID),
		slog.String("session_id", row.SessionID), slog.Int("attempt", attempt), slog.String("error", failure),
		slog.Time("next_attempt_at", next))
	d.record(ctx, row, OutcomeFailed, AuditFailed, models.OutcomeFailure, details)
}

// backoff is the wait after the attempt-th failure: RetryMin doubled
// attempt-1 times, at most RetryMax.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	wait := d.opts.RetryMin
	for i := 1; i < attempt && wait < d.opts.RetryMax; i++ {
		wait *= 2
	}
	return min(wait, d.opts.RetryMax)
}

func (d *Dispatcher) record(ctx context.Context, row models.LogoutDelivery, outcome, typ, auditOutcome string, details map[string]any) {
	e := &models.AuditEvent{Type: typ, Outcome: auditOutcome, ClientID: row.ClientID}
	if row.UserID != "" {
		e.SubjectUserID = &row.UserID
	}
	if row.AuditSubject != "" {
		e.SubjectUserID = &row.AuditSubject
	}
	if err := d.opts.Store.RecordAudit(ctx, e, details); err != nil {
		d.opts.Log.ErrorContext(ctx, "audit event not recorded", slog.String("type", typ), slog.String("error", err.Error()))
	}
	if d.opts.Hooks.Outcome != nil {
		d.opts.Hooks.Outcome(row.ClientID, outcome)
	}
}

// Token signs the logout token for a row: iss, aud (the client), iat,
// exp, a random jti, sub (the user id, as ID tokens state it), sid (the
// ended session, as the ID tokens of that session state it) and the
// back-channel logout event; typ logout+jwt.
func (d *Dispatcher) Token(row models.LogoutDelivery) (string, error) {
	now := d.opts.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	return d.opts.Signer.Sign(Claims{
		Issuer: d.opts.Issuer, Audience: row.ClientID, IssuedAt: now.Unix(), Expiry: now.Add(d.opts.TokenTTL).Unix(),
		ID: base64.RawURLEncoding.EncodeToString(jti), Subject: row.UserID, SessionID: row.SessionID,
		Events: map[string]struct{}{EventLogout: {}},
	}, tokens.TypLogoutToken)
}

// post sends the logout token and returns the answer's status (0 when
// none came) and, for a failure, why, in words that hold no token.
func (d *Dispatcher) post(ctx context.Context, row models.LogoutDelivery) (int, string) {
	uri := d.endpoints.Load().uris[row.ClientID]
	if uri == "" {
		// A reloaded configuration took the client's URI away after the
		// row was claimed; housekeeping drops the row.
		return 0, "the client has no backchannel_logout_uri any more"
	}
	token, err := d.Token(row)
	if err != nil {
		return 0, truncate("sign the logout token: " + err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri,
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return 0, "invalid backchannel_logout_uri"
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Gatehouse back-channel logout")
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, describe(err, d.opts.Timeout)
	}
	// Read a little (so the connection may be reused), never all of it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, ""
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Sprintf("HTTP %d: redirects are not followed", resp.StatusCode)
	}
	return resp.StatusCode, fmt.Sprintf("HTTP %d", resp.StatusCode)
}

// describe says why a request failed without the URL (which the client
// registered and may carry a secret) or anything of the request.
func describe(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return truncate(err.Error())
}

func truncate(s string) string {
	if len(s) > maxErrorLen {
		return s[:maxErrorLen]
	}
	return s
}
