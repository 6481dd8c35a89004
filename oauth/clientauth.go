package oauth

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// AuditClientAuthFailed is the audit event of failed client
// authentication at the token, revocation and introspection endpoints.
const AuditClientAuthFailed = "client_auth.failed"

// Why client authentication failed, as the event's details say.
const (
	authFailNoClientID     = "no_client_id"
	authFailUnknownClient  = "unknown_client"
	authFailWrongSecret    = "wrong_secret"
	authFailPublicWithPass = "secret_sent_for_public_client"
)

// authFailures audits failed client authentication per client and
// minute, so that a flood of guesses writes a handful of rows, not one
// per attempt:
//
//   - the first failure of a client in a minute is written at once, with
//     the request's IP and request id (details: failures 1, reason);
//   - further failures in that minute are only counted;
//   - once the minute is over, the failures not yet written go out as one
//     summary row (details: failures n, summary true, the window, the IP
//     of the last one) — at the client's next failure, or at the periodic
//     flush (every minute, and at shutdown), whichever comes first.
//
// A flood against one client thus writes two rows a minute per replica.
// Memory is bounded by construction: there is one counter per configured
// client, made at start, plus one shared by every client_id that is not
// configured (its rows have an empty client_id and reason
// unknown_client or no_client_id); no request can add a counter, so
// inventing client ids costs nothing but that one counter's rows. Each
// replica counts the failures it sees.
type authFailures struct {
	mu      sync.Mutex
	clients map[string]*failureWindow // fixed after construction
	unknown *failureWindow
	now     func() time.Time
	record  func(ctx context.Context, e models.AuditEvent, details map[string]any)
}

// failureWindow counts one client's failures in the current minute.
type failureWindow struct {
	clientID string
	start    time.Time // the minute counted; zero before the first failure
	count    int       // failures in the minute
	written  int       // of them, already in the audit log
	lastIP   string
	reason   string
}

// pendingAudit is an event decided under the lock and written after it.
type pendingAudit struct {
	event   models.AuditEvent
	details map[string]any
}

func newAuthFailures(clientIDs []string, now func() time.Time,
	record func(ctx context.Context, e models.AuditEvent, details map[string]any)) *authFailures {
	f := &authFailures{clients: make(map[string]*failureWindow, len(clientIDs)), unknown: &failureWindow{}, now: now, record: record}
	for _, id := range clientIDs {
		f.clients[id] = &failureWindow{clientID: id}
	}
	return f
}

// track counts the failures of the clients in ids under their own ids
// (a client added by a configuration reload). A client that is removed
// keeps its window, so a summary already begun is still written.
func (f *authFailures) track(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if _, ok := f.clients[id]; !ok {
			f.clients[id] = &failureWindow{clientID: id}
		}
	}
}

// failed counts one failed authentication of clientID (a configured
// client, or "" for any other) and writes what is due.
func (f *authFailures) failed(ctx context.Context, clientID, reason string, meta RequestMeta) {
	now := f.now()
	minute := now.Truncate(time.Minute)
	var due []pendingAudit
	f.mu.Lock()
	w, ok := f.clients[clientID]
	if !ok {
		w = f.unknown
	}
	if !w.start.Equal(minute) {
		if p, ok := w.summary(now); ok {
			due = append(due, p)
		}
		w.start, w.count, w.written = minute, 0, 0
	}
	w.count++
	w.lastIP, w.reason = meta.IP, reason
	if w.count == 1 {
		w.written = 1
		due = append(due, pendingAudit{
			event: models.AuditEvent{OccurredAt: now, Type: AuditClientAuthFailed, Outcome: models.OutcomeFailure,
				ClientID: w.clientID, IP: meta.IP, RequestID: meta.RequestID},
			details: map[string]any{"failures": 1, "reason": reason, "window_start": minute.Format(time.RFC3339)},
		})
	}
	f.mu.Unlock()
	f.write(ctx, due)
}

// flush writes the summaries of minutes that are over (all: of the
// current minute too, at shutdown).
func (f *authFailures) flush(ctx context.Context, all bool) {
	now := f.now()
	var due []pendingAudit
	f.mu.Lock()
	for _, w := range f.clients {
		if p, ok := w.flushable(now, all); ok {
			due = append(due, p)
		}
	}
	if p, ok := f.unknown.flushable(now, all); ok {
		due = append(due, p)
	}
	f.mu.Unlock()
	f.write(ctx, due)
}

func (f *authFailures) write(ctx context.Context, due []pendingAudit) {
	// A client hanging up must not cost the record of its failure.
	ctx = context.WithoutCancel(ctx)
	for _, p := range due {
		f.record(ctx, p.event, p.details)
	}
}

// flushable returns the summary of w when its minute is over (or all).
func (w *failureWindow) flushable(now time.Time, all bool) (pendingAudit, bool) {
	if w.start.IsZero() || (!all && !w.start.Before(now.Truncate(time.Minute))) {
		return pendingAudit{}, false
	}
	return w.summary(now)
}

// summary returns the row, written at now, for the failures of w's
// minute not yet written, and marks them written.
func (w *failureWindow) summary(now time.Time) (pendingAudit, bool) {
	n := w.count - w.written
	if n <= 0 {
		return pendingAudit{}, false
	}
	w.written = w.count
	end := w.start.Add(time.Minute)
	return pendingAudit{
		event: models.AuditEvent{OccurredAt: now, Type: AuditClientAuthFailed, Outcome: models.OutcomeFailure,
			ClientID: w.clientID, IP: w.lastIP},
		details: map[string]any{"failures": n, "summary": true, "reason": w.reason,
			"window_start": w.start.Format(time.RFC3339), "window_end": end.Format(time.RFC3339),
			"failures_in_window": w.count},
	}, true
}
