package admin

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// Instance-wide views the admin console reads: sign-in activity
// aggregated from the audit trail, and the token signing keys.

// Audit types the activity aggregation counts. Sign-ins are completed
// upstream sign-ins (login.success); single sign-on from a live browser
// session (login.sso) is not one. Failed sign-ins are the sign-in events
// with outcome failure, grouped by their type: that is their reason.
const (
	AuditSigningKeyRotated = "signing_key.rotated"

	auditLoginSuccess   = "login.success"
	auditRefreshReuse   = "refresh_token.reuse"
	maxActivityBuckets  = 24 * 93
	defaultHourlyWindow = 24 * time.Hour
	defaultDailyWindow  = 30 * 24 * time.Hour
)

// failedSignInTypes are the events of a sign-in that did not complete.
var failedSignInTypes = []string{"login.failed", "login.refused", "login.cancelled", "login.state_rejected"}

// ActivityQuery is GET /activity's query: the window [Since, Until) as
// RFC 3339 times and the bucket size (hour or day).
type ActivityQuery struct {
	Since, Until, Bucket string
}

// ActivityPoint is one count in one bucket.
type ActivityPoint struct {
	Bucket   time.Time `json:"bucket"`
	Provider string    `json:"provider,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Count    int64     `json:"count"`
}

// Activity is the answer of GET /activity: every bucket's start in the
// window (so charts show empty ones), and the non-zero counts.
type Activity struct {
	Since   time.Time   `json:"since"`
	Until   time.Time   `json:"until"`
	Bucket  string      `json:"bucket"`
	Buckets []time.Time `json:"buckets"`
	// SignIns: completed sign-ins per provider per bucket.
	SignIns []ActivityPoint `json:"sign_ins"`
	// FailedSignIns: sign-ins that failed, per reason (the event type:
	// login.failed, login.refused, login.cancelled, login.state_rejected).
	FailedSignIns []ActivityPoint `json:"failed_sign_ins"`
	// RefreshTokenReuse: refresh_token.reuse events (a rotated refresh
	// token presented again; its session was ended) per bucket.
	RefreshTokenReuse []ActivityPoint `json:"refresh_token_reuse"`
	// ActiveSessions counts the app sessions live now.
	ActiveSessions int64 `json:"active_sessions"`
}

// Activity aggregates the audit trail for the console's charts
// (Gatehouse administrators only). The counting happens in the database:
// the answer's size depends on the number of buckets, not of events. The
// window defaults to the last 24 hours by hour, the last 30 days by day;
// it may span at most 2232 buckets (93 days by hour).
func (s *Service) Activity(ctx context.Context, a Actor, q ActivityQuery) (Activity, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return Activity{}, err
	}
	bucket, size, window := models.BucketHour, time.Hour, defaultHourlyWindow
	switch q.Bucket {
	case "", models.BucketHour:
	case models.BucketDay:
		bucket, size, window = models.BucketDay, 24*time.Hour, defaultDailyWindow
	default:
		return Activity{}, invalid("bucket", "must be hour or day")
	}
	now := s.now()
	until, since := now, time.Time{}
	var err error
	if q.Until != "" {
		if until, err = time.Parse(time.RFC3339, q.Until); err != nil {
			return Activity{}, invalid("until", "must be an RFC 3339 time such as 2026-11-23T17:00:00Z")
		}
	}
	if q.Since != "" {
		if since, err = time.Parse(time.RFC3339, q.Since); err != nil {
			return Activity{}, invalid("since", "must be an RFC 3339 time such as 2026-11-23T17:00:00Z")
		}
	} else {
		since = until.Add(-window)
	}
	since, until = since.UTC(), until.UTC()
	if !since.Before(until) {
		return Activity{}, invalid("since", "must be before until")
	}
	// Buckets start at whole hours or days (UTC): the window widens to them.
	first := since.Truncate(size)
	if until.Sub(first) > maxActivityBuckets*size {
		return Activity{}, invalid("since", "the window spans more than %d buckets; use bucket=day or a shorter window", maxActivityBuckets)
	}
	out := Activity{Since: since, Until: until, Bucket: bucket, Buckets: []time.Time{},
		SignIns: []ActivityPoint{}, FailedSignIns: []ActivityPoint{}, RefreshTokenReuse: []ActivityPoint{}}
	for b := first; b.Before(until); b = b.Add(size) {
		out.Buckets = append(out.Buckets, b)
	}
	mq := models.ActivityQuery{Since: since, Until: until, Bucket: bucket}
	for _, part := range []struct {
		types   []string
		outcome string
		byType  bool
		into    *[]ActivityPoint
		reason  bool
	}{
		{[]string{auditLoginSuccess}, models.OutcomeSuccess, false, &out.SignIns, false},
		{failedSignInTypes, models.OutcomeFailure, true, &out.FailedSignIns, true},
		{[]string{auditRefreshReuse}, "", true, &out.RefreshTokenReuse, false},
	} {
		mq.Types, mq.Outcome, mq.ByType = part.types, part.outcome, part.byType
		rows, err := s.store.ActivityCounts(ctx, mq)
		if err != nil {
			return Activity{}, err
		}
		for _, r := range rows {
			p := ActivityPoint{Bucket: r.Bucket, Count: r.Count}
			switch {
			case part.reason:
				p.Reason = r.Key
			case !part.byType:
				p.Provider = r.Key
			}
			*part.into = append(*part.into, p)
		}
	}
	out.ActiveSessions, err = s.store.CountActiveSessions(ctx, now)
	return out, err
}

// SigningKey describes one token signing key; it holds no key material.
type SigningKey struct {
	KID         string     `json:"kid"`
	Algorithm   string     `json:"alg"`
	State       string     `json:"state"` // pending, active or retired
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	DeleteAfter *time.Time `json:"delete_after,omitempty"`
}

// KeyRing lists and rotates the signing keys (the key manager, adapted).
type KeyRing interface {
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	RotateSigningKey(ctx context.Context) (SigningKey, error)
}

// errNoKeyRing is a programming error: the service was built without
// SetKeyRing.
var errNoKeyRing = errors.New("admin: no key ring configured")

// SetKeyRing gives the service the signing keys it lists and rotates.
func (s *Service) SetKeyRing(k KeyRing) { s.keys = k }

// SigningKeys lists the signing keys, newest first (Gatehouse
// administrators only).
func (s *Service) SigningKeys(ctx context.Context, a Actor) (List[SigningKey], error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[SigningKey]{}, err
	}
	if s.keys == nil {
		return List[SigningKey]{}, errNoKeyRing
	}
	list, err := s.keys.SigningKeys(ctx)
	if list == nil {
		list = []SigningKey{}
	}
	return List[SigningKey]{Items: list}, err
}

// RotateSigningKey makes a new signing key, as `gatehouse keys rotate`
// does (published now, signing after the publish lead), and records
// signing_key.rotated (Gatehouse administrators only). While the key of
// an earlier rotation is still pending it refuses (ErrConflict): every
// rotation keeps the earlier keys published until their tokens expire,
// and rotations in a row would grow the JWKS past what verifiers read.
func (s *Service) RotateSigningKey(ctx context.Context, a Actor) (SigningKey, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return SigningKey{}, err
	}
	if s.keys == nil {
		return SigningKey{}, errNoKeyRing
	}
	k, err := s.keys.RotateSigningKey(ctx)
	var pending *tokens.PendingKeyError
	if errors.As(err, &pending) {
		return SigningKey{}, conflict("signing key %s was published by an earlier rotation and signs from %s; rotate again after that",
			pending.KID, pending.ActivatesAt.UTC().Format(time.RFC3339))
	}
	if err != nil {
		return SigningKey{}, err
	}
	// The key is stored by then; the event follows it (the key manager
	// keeps its own transaction).
	err = audit(ctx, s.store, a, AuditSigningKeyRotated, "", "", map[string]any{"kid": k.KID, "alg": k.Algorithm,
		"activates_at": k.ActivatesAt.UTC().Format(time.RFC3339)})
	return k, err
}
