package provisioning

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// Upstream re-checks (issue 15). Every sign-in records, per identity,
// when the upstream last vouched for the person and, sealed, what the
// provider keeps to ask again (models.UpstreamCheck). A refresh whose
// identity's last check is older than the provider's recheck_interval
// asks the upstream again before the refresh token rotates
// (BeforeRefresh):
//
//   - the upstream says the person is gone (providers.ErrGone): every
//     session and browser session through that identity ends (reason
//     "upstream_recheck"; back-channel logouts are queued by the
//     database), an audit event is written and the refresh is refused with
//     invalid_grant;
//   - the upstream cannot be reached: on_recheck_unavailable keep lets the
//     refresh go on until the last successful check is older than
//     recheck_max_staleness, then ends the session; deny refuses the
//     refresh (503, the refresh token stays valid for a retry);
//   - it answers: provisioning runs again exactly as at a sign-in (profile,
//     groups, org sync), the new upstream refresh token is kept, and
//     checked_at moves on.
//
// One conditional UPDATE claims the check (models.Store.
// ClaimUpstreamCheck), so of concurrent refreshes one calls the upstream,
// and a failed attempt is not repeated before RecheckLease has passed.
// A refresh whose check is not due reads nothing more: the refresh read
// brings checked_at along, and whether anything is kept to re-check with.
//
// A session refused by max_session_age or recheck_max_staleness ends with
// the browser sessions signed in through its identity, and single sign-on
// obeys the same rules before it answers without the upstream
// (BeforeSSO): neither rule is escaped through a browser session.

// Re-check outcomes: the metrics' outcome label and the audit details.
const (
	RecheckSuccess     = "success"
	RecheckGone        = "gone"
	RecheckUnavailable = "unavailable"
	// RecheckBusy: another refresh is checking the identity now, or
	// failed to reach the upstream less than RecheckLease ago.
	RecheckBusy = "busy"
	// RecheckNoData: the upstream gave nothing to re-check with (no
	// refresh token); counted as unavailable when recheck_interval is set.
	RecheckNoData = "no_data"
	// RecheckError: Gatehouse's own storage failed.
	RecheckError = "error"
)

// Audit events of re-checks.
const (
	// AuditRecheckGone: the upstream said the person is gone; the
	// identity's sessions were ended.
	AuditRecheckGone = "identity.recheck_gone"
	// AuditRecheckStale: a refresh was refused because the upstream could
	// not confirm the person for longer than recheck_max_staleness.
	AuditRecheckStale = "session.recheck_stale"
	// AuditSessionTooOld: a refresh was refused by max_session_age.
	AuditSessionTooOld = "session.max_age_reached"
	// AuditRecheckForced: an administrator asked for a re-check now.
	AuditRecheckForced = "identity.recheck_forced"
)

// Session revocation reasons of re-checks.
const (
	RevokeReasonRecheck       = "upstream_recheck"
	RevokeReasonRecheckStale  = "upstream_recheck_stale"
	RevokeReasonMaxSessionAge = "max_session_age"
)

// RecheckLease is how long a started re-check keeps others from calling
// the upstream for the same identity: longer than a re-check may take,
// and the pause between attempts while the upstream is unreachable.
const RecheckLease = 30 * time.Second

// recheckTimeout bounds one re-check, its upstream calls and writes.
const recheckTimeout = 20 * time.Second

// ErrIdentityGone: a re-check found no identity to update (it was
// unlinked or its user deleted meanwhile).
var ErrIdentityGone = errors.New("the identity no longer exists")

// Refusals of a refresh, phrased for error_description.
const (
	msgRecheckGone  = "the identity provider no longer vouches for this account (upstream re-check); sign in again"
	msgRecheckStale = "the identity provider could not confirm this account for too long (recheck_max_staleness); sign in again"
	msgRecheckDeny  = "the identity provider cannot be reached to confirm this account; retry later"
	msgSessionAge   = "the session is older than its identity provider allows (max_session_age); sign in again"
)

// sealAAD binds sealed re-check data to its identity: a row copied to
// another identity does not open.
func sealAAD(identityID string) []byte { return []byte("upstream-check:" + identityID) }

// saveUpstreamCheck records, in a sign-in's or re-check's transaction,
// that the upstream vouched for the identity now, sealing what the
// provider keeps for the next re-check (an empty saved keeps the old).
// Nothing is written for a provider without a re-check policy in force
// (no re-checks, no max_session_age): one statement fewer per sign-in.
func (s *Service) saveUpstreamCheck(ctx context.Context, tx *models.Store, provider, identityID, saved string, now time.Time) error {
	if pol, rc, ok := s.policyOf(provider); !ok || !((rc != nil && pol.Enabled) || pol.MaxSessionAge > 0) {
		return nil
	}
	sealed, err := s.seal(identityID, saved)
	if err != nil {
		return err
	}
	return tx.SaveUpstreamCheck(ctx, identityID, sealed, now)
}

func (s *Service) seal(identityID, saved string) (string, error) {
	if saved == "" {
		return "", nil
	}
	if len(s.opts.RecheckKey) == 0 {
		return "", nil // no key configured (tests of other rules): nothing kept
	}
	b, err := tokens.Seal(s.opts.RecheckKey, []byte(saved), sealAAD(identityID))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Service) open(identityID, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", tokens.ErrDecrypt
	}
	plain, err := tokens.Open(s.opts.RecheckKey, b, sealAAD(identityID))
	return string(plain), err
}

// recheckProfile is a re-check's update of an existing identity and its
// user: a sign-in's profile refresh, without the last-login times.
func (s *Service) recheckProfile(ctx context.Context, tx *models.Store, u *models.User, identityID string, id *providers.Identity, fields models.Identity, now time.Time) error {
	if err := tx.UpdateIdentityRecheck(ctx, identityID, fields, now); err != nil {
		return err
	}
	profile, err := s.refreshProfile(ctx, tx, u, id)
	if err != nil {
		return err
	}
	return tx.UpdateUserProfile(ctx, u.ID, profile, now)
}

// policyOf returns the provider's re-check policy and its re-check
// capability (nil when it cannot re-check).
func (s *Service) policyOf(provider string) (providers.RecheckPolicy, providers.Rechecker, bool) {
	p, ok := s.opts.Providers.Get(provider)
	if !ok {
		return providers.RecheckPolicy{}, nil, false
	}
	ph, ok := p.(providers.RecheckPolicyHolder)
	if !ok {
		return providers.RecheckPolicy{}, nil, false
	}
	rc, _ := p.(providers.Rechecker)
	return ph.RecheckPolicy(), rc, true
}

// BeforeRefresh applies the upstream re-check rules to a refresh of the
// session g was read with, before its refresh token rotates. It reports
// whether a re-check ran (the grants and profile read with the token may
// be stale then), and refuses the refresh with an error whose kind is
// invalid_grant (the session ended: the person is gone, the check is
// stale, the session is older than max_session_age) or
// upstream_unconfirmed (on_recheck_unavailable: deny; the error says
// when to retry). A check not due, or one with nothing to re-check with
// under a policy that does not require it, sends nothing to the database
// or the upstream.
//
// An identity without a re-check row (it has not signed in since
// re-checks were enabled, or since the upgrade that brought them) is not
// re-checked, unless recheck_interval is configured explicitly
// (Required): then its last word is the session's sign-in (auth_time), so
// staleness and deny apply to it as to an identity without an upstream
// refresh token.
func (s *Service) BeforeRefresh(ctx context.Context, g *models.RefreshGrant, meta Meta) (checked bool, err error) {
	sess := &g.Session
	if sess.IdentityID == nil {
		return false, nil // opened before re-checks, or through no identity
	}
	return s.admit(ctx, *sess.IdentityID, sess.Provider, sess.AuthTime, g.UpstreamCheckedAt, g.UpstreamSaved, meta,
		func(reason, event, msg string, details map[string]any) error {
			return s.endOne(ctx, sess, reason, event, msg, meta, s.now(), details)
		})
}

// BeforeSSO applies the rules a refresh obeys to a single sign-on from
// browser session bs, before it answers an authorization request without
// the upstream: a browser session must not mint new app sessions the
// upstream no longer vouches for. A due re-check runs (the person gone:
// every session through the identity, the browser session included,
// ends); the refusals are those of BeforeRefresh (invalid_grant: the
// upstream must be asked again; upstream_unconfirmed: deny), and the
// caller sends the browser upstream instead. Nothing is ended for a
// stale check or max_session_age: a new upstream sign-in answers both.
// A provider without a re-check policy in force reads nothing.
func (s *Service) BeforeSSO(ctx context.Context, bs *models.BrowserSession, meta Meta) error {
	if bs.IdentityID == nil {
		return nil
	}
	pol, rc, ok := s.policyOf(bs.Provider)
	if !ok || !((rc != nil && pol.Enabled) || pol.MaxSessionAge > 0) {
		return nil
	}
	var last *time.Time
	saved := false
	c, err := s.store.FindUpstreamCheck(ctx, *bs.IdentityID)
	switch {
	case err == nil:
		last, saved = &c.CheckedAt, c.Saved != ""
	case !errors.Is(err, models.ErrNotFound):
		return err
	}
	_, err = s.admit(ctx, *bs.IdentityID, bs.Provider, bs.AuthTime, last, saved, meta,
		func(reason, _, msg string, _ map[string]any) error {
			return fault.Explain(fault.InvalidGrant, msg, errors.New(reason))
		})
	return err
}

// admit is the re-check rule of a refresh or a single sign-on through
// identityID at provider: authTime is the session's upstream sign-in,
// last the identity's last check (nil: none recorded), saved whether
// anything is kept to re-check with. refuse ends what must end for a
// refusal that ends the session and returns its error.
func (s *Service) admit(ctx context.Context, identityID, provider string, authTime time.Time, last *time.Time, saved bool, meta Meta,
	refuse func(reason, event, msg string, details map[string]any) error) (checked bool, err error) {
	pol, rc, ok := s.policyOf(provider)
	if !ok {
		return false, nil
	}
	now := s.now()
	if pol.MaxSessionAge > 0 {
		anchor := authTime
		if last != nil {
			anchor = *last
		}
		if now.Sub(anchor) > pol.MaxSessionAge {
			return false, refuse(RevokeReasonMaxSessionAge, AuditSessionTooOld, msgSessionAge,
				map[string]any{"max_session_age_seconds": pol.MaxSessionAge.Seconds(), "last_upstream_sign_in": anchor.Format(time.RFC3339)})
		}
	}
	if rc == nil || !pol.Enabled {
		return false, nil
	}
	if last == nil {
		if !pol.Required {
			return false, nil
		}
		last = &authTime
	}
	if now.Sub(*last) < pol.Interval {
		return false, nil
	}
	if !saved && !pol.Required {
		// Nothing to re-check with (the upstream issued no refresh token),
		// and the policy lets such people through: no claim, no verdict.
		return false, nil
	}
	r, err := s.recheck(ctx, identityID, provider, rc, *last, now, meta)
	if err != nil {
		return false, err
	}
	switch r.outcome {
	case RecheckSuccess:
		return true, nil
	case RecheckGone:
		return true, fault.Explain(fault.InvalidGrant, msgRecheckGone, errors.New(r.detail))
	case RecheckNoData:
		if !pol.Required {
			return false, nil
		}
	case RecheckBusy:
		if r.checkedAt.After(*last) {
			// Another refresh's re-check succeeded since this one read the
			// token: the upstream has just vouched for the person.
			return false, nil
		}
	}
	// The upstream could not say (unreachable, no data, another attempt).
	if now.Sub(*last) > pol.MaxStaleness {
		return false, refuse(RevokeReasonRecheckStale, AuditRecheckStale, msgRecheckStale,
			map[string]any{"last_checked_at": last.Format(time.RFC3339), "max_staleness_seconds": pol.MaxStaleness.Seconds(),
				"outcome": r.outcome, "reason": r.detail})
	}
	// deny refuses a refresh racing another's check too: it may not pass
	// unchecked, and may retry once the lease is over (Retry-After).
	if pol.DenyUnavailable {
		return false, fault.WithRetryAfter(fault.Explain(fault.UpstreamUnconfirmed, msgRecheckDeny,
			fmt.Errorf("upstream re-check %s: %s", r.outcome, r.detail)), r.retryAfter)
	}
	return false, nil
}

// recheckResult is one re-check's outcome (a Recheck* constant) with a
// detail for logs and audit (never a token); for a busy outcome, the
// identity's checked_at as the claim found it; and how long until
// another attempt may claim the check.
type recheckResult struct {
	outcome, detail string
	checkedAt       time.Time
	retryAfter      time.Duration
}

// recheck runs one re-check of an identity whose last check was at last
// (the refresh read's): claim, ask the upstream, apply the answer. err is
// Gatehouse's own failure.
func (s *Service) recheck(ctx context.Context, identityID, provider string, rc providers.Rechecker, last, now time.Time, meta Meta) (r recheckResult, err error) {
	defer func() {
		if s.opts.OnRecheck != nil {
			o := r.outcome
			if err != nil {
				o = RecheckError
			}
			s.opts.OnRecheck(provider, o)
		}
	}()
	// A claimed (or missing) check may be tried again once the lease is
	// over.
	r.retryAfter = RecheckLease
	// Whatever the client does, a claimed re-check runs to its end: a
	// rotated upstream refresh token must be stored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recheckTimeout)
	defer cancel()
	// A refresh decided the check is due from last: claim it only if no
	// other check succeeded since (checked_at is still last). A forced
	// check (last zero) claims whatever the time of the last one.
	// (A microsecond: PostgreSQL keeps times to the microsecond.)
	checkedBefore := now.Add(time.Microsecond)
	if !last.IsZero() {
		checkedBefore = last.Add(time.Microsecond)
	}
	row, err := s.store.ClaimUpstreamCheck(ctx, identityID, checkedBefore, now.Add(-RecheckLease), now)
	switch {
	case errors.Is(err, models.ErrConflict):
		r.outcome, r.detail, r.checkedAt = RecheckBusy, "another re-check of this identity is running or failed moments ago", row.CheckedAt
		if row.ClaimedAt != nil {
			r.retryAfter = max(time.Second, row.ClaimedAt.Add(RecheckLease).Sub(now))
		}
		return r, nil
	case errors.Is(err, models.ErrNotFound):
		r.outcome, r.detail = RecheckNoData, "no re-check data stored for this identity"
		return r, nil
	case err != nil:
		return r, err
	}
	saved, err := s.open(identityID, row.Saved)
	if err != nil {
		s.log().WarnContext(ctx, "upstream re-check data does not open (GATEHOUSE_SECRET_KEY changed?)",
			slog.String("provider", provider), slog.String("identity_id", identityID))
		saved = ""
	}
	if saved == "" {
		r.outcome, r.detail = RecheckNoData, "the identity provider gave nothing to re-check with (no refresh token)"
		return r, nil
	}
	id, newSaved, rerr := rc.Recheck(ctx, saved)
	switch {
	case rerr == nil:
		r.outcome, r.detail, err = s.applyRecheck(ctx, identityID, provider, id, newSaved, now, meta)
		return r, err
	case errors.Is(rerr, providers.ErrGone):
		n, err := s.store.EndIdentitySessions(ctx, identityID, RevokeReasonRecheck, now)
		if err != nil {
			return r, err
		}
		s.auditRecheck(ctx, meta, models.AuditEvent{Type: AuditRecheckGone, Outcome: models.OutcomeFailure, Provider: provider},
			identityID, map[string]any{"identity_id": identityID, "sessions_ended": n, "reason": rerr.Error()})
		r.outcome, r.detail = RecheckGone, rerr.Error()
		return r, nil
	default:
		if newSaved != "" && newSaved != saved {
			// The upstream rotated its refresh token before failing.
			if err := s.keepSaved(ctx, identityID, newSaved, now); err != nil {
				return r, err
			}
		}
		r.outcome, r.detail = RecheckUnavailable, rerr.Error()
		return r, nil
	}
}

// applyRecheck provisions what the upstream said now, as a sign-in
// does, and records the check (with the new saved data) in the same
// transaction. A nil id (the upstream only confirmed the grant) records
// the check alone.
func (s *Service) applyRecheck(ctx context.Context, identityID, provider string, id *providers.Identity, newSaved string, now time.Time, meta Meta) (string, string, error) {
	if id == nil {
		sealed, err := s.seal(identityID, newSaved)
		if err == nil {
			err = s.store.SaveUpstreamCheck(ctx, identityID, sealed, now)
		}
		return RecheckSuccess, "the grant is alive", err
	}
	id.Provider, id.Recheck = provider, newSaved
	res, err := s.Provision(ctx, Login{Identity: id, Meta: meta, Recheck: true})
	switch {
	case err == nil && res.IdentityID != identityID:
		// The upstream subject now belongs to another identity row: not
		// the person this identity signed in as.
		n, err := s.store.EndIdentitySessions(ctx, identityID, RevokeReasonRecheck, now)
		if err != nil {
			return "", "", err
		}
		s.auditRecheck(ctx, meta, models.AuditEvent{Type: AuditRecheckGone, Outcome: models.OutcomeFailure, Provider: provider},
			identityID, map[string]any{"identity_id": identityID, "sessions_ended": n, "reason": "the upstream answered for another identity"})
		return RecheckGone, "the upstream answered for another identity", nil
	case err == nil:
		return RecheckSuccess, "", nil
	case errors.Is(err, ErrUserDisabled):
		return RecheckGone, "user is disabled", nil
	case errors.Is(err, ErrIdentityGone):
		return RecheckGone, "the identity was removed", nil
	}
	// Provisioning failed (storage): keep the rotated token at least.
	if kerr := s.keepSaved(ctx, identityID, newSaved, now); kerr != nil {
		s.log().ErrorContext(ctx, "upstream re-check: rotated upstream token not stored", slog.String("provider", provider),
			slog.String("identity_id", identityID), slog.String("error", kerr.Error()))
	}
	return "", "", err
}

func (s *Service) keepSaved(ctx context.Context, identityID, saved string, now time.Time) error {
	sealed, err := s.seal(identityID, saved)
	if err != nil || sealed == "" {
		return err
	}
	return s.store.KeepUpstreamSaved(ctx, identityID, sealed, now)
}

// endOne ends one session a refresh is refused for, with the browser
// sessions signed in through its identity (single sign-on must not hand
// out a new session the same rule would refuse), audits it once, and
// returns the refusal.
func (s *Service) endOne(ctx context.Context, sess *models.Session, reason, event, msg string, meta Meta, now time.Time, details map[string]any) error {
	ctx = context.WithoutCancel(ctx)
	ended, err := s.store.EndSessionAndSignIns(ctx, sess.ID, *sess.IdentityID, reason, now)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	if ended {
		details["session_id"] = sess.ID
		details["revoke_reason"] = reason
		uid := sess.UserID
		_ = s.audit(ctx, s.store, meta, models.AuditEvent{Type: event, Outcome: models.OutcomeFailure, Provider: sess.Provider,
			SubjectUserID: &uid}, details)
	}
	return fault.Explain(fault.InvalidGrant, msg, errors.New(reason))
}

// auditRecheck records an event about an identity's re-check, naming the
// identity's user.
func (s *Service) auditRecheck(ctx context.Context, meta Meta, e models.AuditEvent, identityID string, details map[string]any) {
	if ident, err := s.store.FindIdentityByID(ctx, identityID); err == nil {
		e.SubjectUserID = &ident.UserID
	}
	if err := s.audit(ctx, s.store, meta, e, details); err != nil {
		s.log().ErrorContext(ctx, "audit event not recorded", slog.String("type", e.Type), slog.String("error", err.Error()))
	}
}

func (s *Service) log() *slog.Logger {
	if s.opts.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.opts.Log
}

// RecheckReport is the outcome of one identity's forced re-check.
type RecheckReport struct {
	IdentityID string `json:"identity_id"`
	Provider   string `json:"provider"`
	// Outcome is one of the Recheck* constants, or "not_supported" for a
	// provider that cannot re-check (SAML, dev, re-checks off).
	Outcome string `json:"outcome"`
	// Detail says why, for the administrator (never a token).
	Detail string `json:"detail,omitempty"`
}

// RecheckUser re-checks every identity of the user at its upstream now,
// whatever recheck_interval says (a re-check already running is not
// doubled: it reports busy). An identity the upstream says is gone has
// its sessions ended as at a refresh; an unreachable upstream changes
// nothing (the sessions' next refresh applies the policy). Gatehouse's
// own failure on one identity is reported as its outcome "error" (and
// logged), and the others are re-checked all the same: the answer says
// what was applied. ErrNotFound: no such user; another error: the user
// or their identities could not be read.
func (s *Service) RecheckUser(ctx context.Context, userID string, meta Meta) ([]RecheckReport, error) {
	if _, err := s.store.FindUser(ctx, userID); err != nil {
		return nil, err
	}
	ids, err := s.store.ListIdentities(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]RecheckReport, 0, len(ids))
	for _, ident := range ids {
		r := RecheckReport{IdentityID: ident.ID, Provider: ident.Provider, Outcome: "not_supported"}
		pol, rc, ok := s.policyOf(ident.Provider)
		switch {
		case !ok || rc == nil:
			r.Detail = "this provider cannot re-check"
		case !pol.Enabled:
			r.Detail = "recheck_interval is off for this provider"
		default:
			// A storage failure on one identity is reported for it; the
			// others are still re-checked, and what was applied is said.
			res, err := s.recheck(ctx, ident.ID, ident.Provider, rc, time.Time{}, s.now(), meta)
			r.Outcome, r.Detail = res.outcome, res.detail
			if err != nil {
				s.log().ErrorContext(ctx, "forced upstream re-check failed", slog.String("provider", ident.Provider),
					slog.String("identity_id", ident.ID), slog.String("error", err.Error()))
				r.Outcome, r.Detail = RecheckError, "Gatehouse could not record the re-check (see its log); try again"
			}
		}
		out = append(out, r)
	}
	_ = s.audit(ctx, s.store, meta, models.AuditEvent{Type: AuditRecheckForced, SubjectUserID: &userID},
		map[string]any{"results": out})
	return out, nil
}
