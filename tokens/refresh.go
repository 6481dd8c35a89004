package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// Refresh tokens (DESIGN.md §5): opaque "ghr_" secrets stored only as
// SHA-256 hashes, bound to a session (the family), rotated on every use.
//
// Reuse policy. Rotation marks the presented row rotated_at/replaced_by and
// inserts one successor, in one conditional statement (… WHERE rotated_at
// IS NULL) that first locks the session row (models.Store.
// RotateRefreshToken), so of concurrent redemptions exactly one rotates.
// A rotated token presented again:
//   - less than ReuseGrace after its rotation (two tabs refreshing at once)
//     is exchanged for an additional, independent successor. The first
//     successor stays valid and replaced_by keeps naming it; the extra
//     token is a sibling in the same family, so a later reuse of any of them
//     still revokes everything. (Rotating the first successor instead would
//     make the tab that won the race look like a thief on its next refresh.)
//     A redemption that read the token unrotated and then lost the
//     rotation race counts as presented before the rotation: it is served
//     so whatever time passed meanwhile (RedeemOptions.Check may wait on
//     an upstream re-check for seconds), never taken for reuse (unless
//     ReuseGrace is 0: then every lost race is).
//   - later revokes the whole session with all its tokens (reason
//     "refresh_token_reuse"), records one "refresh_token.reuse" audit event
//     (only the call that actually revoked the session records it, so a
//     burst of replays yields one event), and fails with
//     ErrRefreshTokenReuse. This check runs before the idle-expiry check:
//     replaying an old rotated token signals theft even if it would have
//     expired anyway.
//
// Database faults. A redemption that fails with a transient database fault
// (models.IsTransient: the caller answers 503) leaves the presented token
// as it was whenever the rotation did not commit: the rotation is one
// statement, its own transaction, and a transaction cut short (connection
// lost, server restarting) is rolled back, so the client retries with the
// token it holds. If the fault hides the outcome of the commit itself (it
// reached the server, the answer was lost), the service asks the database
// whether the successor row exists — it is inserted by the same statement
// — and, if so, answers with it as a success. Only when that question fails too
// does the client get a 503 for a rotation that did commit; its retry is
// then a replay of a rotated token, served by the grace window above as
// for concurrent tabs (so clients should retry within ReuseGrace; the 503
// asks for a retry after one second, and the default grace is two).

// Redeemed is the outcome of a successful refresh.
type Redeemed struct {
	// Session is the family's session as updated by this redemption
	// (last_used_at bumped); mint access tokens from its scope and active org.
	Session *models.Session
	// User is the session's user (not disabled at redemption).
	User *models.User
	// UserID is Session.UserID, the access token's sub.
	UserID string
	// RefreshToken is the new refresh token to hand to the client. It is
	// redacted when the value is printed or logged.
	RefreshToken string
	// RefreshTokenExpiresAt is the new token's expiry (idle, capped at the
	// session's absolute expiry).
	RefreshTokenExpiresAt time.Time
	// Reissued reports that the presented token had already been rotated
	// and this token was issued within the reuse grace window.
	Reissued bool
	// Grants are the user's role and permissions in the session's active
	// organization, read with the token; nil when the session has none or
	// the user no active membership there.
	Grants *models.Grants
	// EmailVerified reports that an identity of a provider named in
	// RedeemOptions.TrustedEmail reports the user's email verified, read
	// with the token: what tokens minted from this redemption state as
	// email_verified (provisioning.Service.EmailVerified decides the same).
	EmailVerified bool
	// Username and UpstreamGroups are those of the identity the session
	// came through, as of its last sign-in, read with the token (empty
	// when the session names none).
	Username       string
	UpstreamGroups []string
	// OrgRoles are the user's active memberships as "<org-slug>:<role>",
	// read with the token when RedeemOptions.OrgRoles asks (else nil).
	OrgRoles []string
}

// RedeemOptions ask a redemption to read, with the token and in the same
// query, what minting from it needs besides the session and user.
type RedeemOptions struct {
	// TrustedEmail names the providers whose verified emails count
	// (configuration `trusted_email`), for Redeemed.EmailVerified.
	TrustedEmail []string
	// OrgRoles asks for Redeemed.OrgRoles (a client whose groups claim
	// includes organization roles).
	OrgRoles bool
	// Check, when set, is called with the token's grant once the token is
	// known live and before it rotates (upstream re-checks); an error
	// refuses the redemption with that error and leaves the token as it
	// was, so the client may retry with it. It may be called again after
	// a lost rotation race.
	Check func(ctx context.Context, g *models.RefreshGrant) error
}

// String keeps the refresh token out of fmt output.
func (r Redeemed) String() string {
	return fmt.Sprintf("Redeemed{session=%s user=%s refresh_token=[redacted] expires=%s reissued=%t}",
		sessionIDOf(r.Session), r.UserID, r.RefreshTokenExpiresAt.Format(time.RFC3339), r.Reissued)
}

// LogValue keeps the refresh token out of slog output.
func (r Redeemed) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("session_id", sessionIDOf(r.Session)),
		slog.String("user_id", r.UserID),
		slog.Bool("reissued", r.Reissued),
	)
}

func sessionIDOf(s *models.Session) string {
	if s == nil {
		return ""
	}
	return s.ID
}

// RefreshInfo describes a refresh token for introspection (RFC 7662).
type RefreshInfo struct {
	// Active: the token would be accepted by a normal (non-grace)
	// redemption now: known, not rotated, not revoked, not expired, session
	// live, user not disabled. A rotated token is inactive even inside the
	// grace window.
	Active bool
	// The remaining fields are filled whenever the token is known, active
	// or not; RFC 7662 says to reveal nothing but active=false for an
	// inactive token, which is the caller's job.
	SessionID   string
	ClientID    string
	UserID      string
	Scope       string
	ActiveOrgID *string
	IssuedAt    time.Time
	// ExpiresAt is the earlier of the token's idle and the session's
	// absolute expiry.
	ExpiresAt time.Time
}

// Refusal reasons, phrased for error_description.
const (
	reasonRefreshUnknown  = "refresh token is invalid"
	reasonRefreshExpired  = "refresh token expired"
	reasonSessionExpired  = "session expired"
	reasonRefreshRevoked  = "refresh token was revoked"
	reasonRefreshClient   = "refresh token belongs to another client"
	reasonRefreshReuse    = "refresh token reuse detected; the session was revoked"
	reasonUserDisabled    = "user is disabled"
	reasonSessionRevoked  = "session was revoked"
	reasonSessionOfClient = "session belongs to another client"
)

// newRefreshRow builds a refresh token row of sess and its secret. Its
// expiry is the idle expiry, capped at the session's absolute expiry.
func (s *SessionService) newRefreshRow(sess *models.Session, now time.Time) (*models.RefreshToken, string, error) {
	secret, hash, err := opaqueNew(RefreshTokenPrefix)
	if err != nil {
		return nil, "", err
	}
	exp := now.Add(s.opts.IdleTTL)
	if sess.ExpiresAt.Before(exp) {
		// UTC again: a time read back from the database may carry another
		// location, and SQLite compares times as text.
		exp = sess.ExpiresAt.UTC()
	}
	return &models.RefreshToken{
		ID:        models.NewID(),
		SessionID: sess.ID,
		TokenHash: hash,
		ClientID:  sess.ClientID,
		CreatedAt: now,
		ExpiresAt: exp,
	}, secret, nil
}

// IssueRefreshToken starts (or extends) the refresh-token family of a live
// session of clientID and returns the new token; the database keeps only
// its hash. An unknown session matches models.ErrNotFound; a session of
// another client, revoked, expired, or of a disabled user is a *GrantError.
func (s *SessionService) IssueRefreshToken(ctx context.Context, sessionID, clientID string) (string, error) {
	sess, err := s.store.FindSession(ctx, sessionID)
	if err != nil {
		return "", err
	}
	if sess.ClientID != clientID {
		return "", grantErr(ErrGrantClientMismatch, reasonSessionOfClient)
	}
	now := s.now()
	row, secret, err := s.newRefreshRow(sess, now)
	if err != nil {
		return "", err
	}
	if _, err := s.addRefreshToken(ctx, row, now); err != nil {
		if errors.Is(err, models.ErrSessionInactive) {
			return "", s.inactiveSessionError(ctx, sess.ID, now)
		}
		return "", err
	}
	return secret, nil
}

// RedeemRefreshToken is RedeemRefreshTokenWith without trusted email
// providers (Redeemed.EmailVerified is false).
func (s *SessionService) RedeemRefreshToken(ctx context.Context, token, clientID string) (*Redeemed, error) {
	return s.RedeemRefreshTokenWith(ctx, token, clientID, RedeemOptions{})
}

// RedeemRefreshTokenWith exchanges a refresh token of clientID for a new
// one (rotation) and returns the session to mint access tokens from, with
// its user, the grants of its active organization and what opts ask for.
// Failures are *GrantError (map to invalid_grant): unknown token, another
// client, revoked token or session, idle or absolute expiry, disabled
// user, and reuse of a rotated token after the grace window (which
// revokes the session, see the reuse policy above). It is race-safe:
// concurrent redemptions of one token yield one rotation plus, with a
// grace window, re-issued siblings (a loser that read the token before
// the winner rotated it is always within the window); without one
// (ReuseGrace 0) the losers trigger reuse detection.
//
// A redemption that rotates sends the database two statements: one read
// of the token with its session, user, grants, trusted email, the
// session identity's username and groups, and the organization roles
// when asked (models.Store.FindRefreshGrant), and the rotation, one conditional
// statement (models.Store.RotateRefreshToken). Lost races, refusals, the
// grace window and faults read or write more.
func (s *SessionService) RedeemRefreshTokenWith(ctx context.Context, token, clientID string, opts RedeemOptions) (*Redeemed, error) {
	if !opaqueWellFormed(RefreshTokenPrefix, token) {
		return nil, grantErr(ErrGrantUnknown, reasonRefreshUnknown)
	}
	hash := opaqueHash(token)
	// liveAt is when this redemption read the token live (not rotated):
	// a rotation at or after it is a race this redemption lost, not a
	// replay, however long opts.Check took (an upstream re-check may
	// outlast the grace window).
	var liveAt time.Time
	// A lost rotation race changes the row's state; read and classify it
	// again. Two passes suffice (after a lost race the row is rotated or
	// revoked for good, or its session ended); the third is slack.
	for range 3 {
		// Read the clock per pass: after a lost race it must not be earlier
		// than the winner's rotated_at, or a zero grace window would let the
		// loser through.
		now := s.now()
		g, err := s.store.FindRefreshGrant(ctx, hash, models.RefreshRead{TrustedEmail: opts.TrustedEmail, OrgRoles: opts.OrgRoles})
		if errors.Is(err, models.ErrNotFound) { // unknown, or its session or user deleted (cascades)
			return nil, grantErr(ErrGrantUnknown, reasonRefreshUnknown)
		} else if err != nil {
			return nil, err
		}
		tok, sess, user := &g.Token, &g.Session, &g.User
		if tok.ClientID != clientID {
			return nil, grantErr(ErrGrantClientMismatch, reasonRefreshClient)
		}
		switch {
		case tok.RevokedAt != nil || sess.RevokedAt != nil:
			return nil, grantErr(ErrGrantRevoked, reasonRefreshRevoked)
		case !now.Before(sess.ExpiresAt):
			return nil, grantErr(ErrGrantExpired, reasonSessionExpired)
		case user.Disabled:
			return nil, grantErr(ErrGrantUserDisabled, reasonUserDisabled)
		}

		if tok.RotatedAt != nil {
			lostRace := !liveAt.IsZero() && !tok.RotatedAt.Before(liveAt)
			if s.opts.ReuseGrace > 0 && (now.Sub(*tok.RotatedAt) < s.opts.ReuseGrace || lostRace) {
				return s.reissue(ctx, g, now)
			}
			return nil, s.refreshReuse(ctx, tok, sess, now)
		}
		if !now.Before(tok.ExpiresAt) {
			return nil, grantErr(ErrGrantExpired, reasonRefreshExpired)
		}
		if liveAt.IsZero() {
			liveAt = now
		}
		if opts.Check != nil {
			if err := opts.Check(ctx, g); err != nil {
				return nil, err
			}
		}

		next, secret, err := s.newRefreshRow(sess, now)
		if err != nil {
			return nil, err
		}
		_, err = s.store.RotateRefreshToken(ctx, tok.ID, next, now)
		if models.IsTransient(err) && s.landed(ctx, next) {
			err = nil
		}
		switch {
		case err == nil:
			return redeemed(g, now, secret, next, false), nil
		case errors.Is(err, models.ErrConflict):
			// A concurrent redemption won, or the token or its session
			// ended meanwhile: the next pass reads which.
			continue
		default:
			return nil, err
		}
	}
	return nil, errors.New("redeem refresh token: state kept changing under concurrent redemptions")
}

// redeemed is the answer of a redemption of g's token, whose write at now
// issued next (secret).
func redeemed(g *models.RefreshGrant, now time.Time, secret string, next *models.RefreshToken, reissued bool) *Redeemed {
	sess := g.Session
	sess.LastUsedAt = now
	return &Redeemed{Session: &sess, User: &g.User, UserID: sess.UserID, RefreshToken: secret,
		RefreshTokenExpiresAt: next.ExpiresAt, Reissued: reissued, Grants: g.Grants, EmailVerified: g.EmailTrusted,
		Username: g.Username, UpstreamGroups: g.UpstreamGroups, OrgRoles: g.OrgRoles}
}

// reissue serves a rotated token inside the grace window with a sibling.
func (s *SessionService) reissue(ctx context.Context, g *models.RefreshGrant, now time.Time) (*Redeemed, error) {
	next, secret, err := s.newRefreshRow(&g.Session, now)
	if err != nil {
		return nil, err
	}
	_, err = s.addRefreshToken(ctx, next, now)
	if errors.Is(err, models.ErrSessionInactive) {
		return nil, s.inactiveSessionError(ctx, g.Session.ID, now)
	} else if err != nil {
		return nil, err
	}
	return redeemed(g, now, secret, next, true), nil
}

// addRefreshToken adds row to its session's family; a transient fault
// that hid whether the insert committed is resolved by landed.
func (s *SessionService) addRefreshToken(ctx context.Context, row *models.RefreshToken, now time.Time) (*models.Session, error) {
	sess, err := s.store.AddRefreshToken(ctx, row, now)
	if models.IsTransient(err) && s.landed(ctx, row) {
		if fresh, ferr := s.store.FindSession(ctx, row.SessionID); ferr == nil {
			return fresh, nil
		}
	}
	return sess, err
}

// landed settles a write of the refresh token row that failed with a
// transient fault: the row is inserted by the write's one statement or
// transaction, so it exists exactly when that write committed. It
// reports whether it exists (false also when the question fails too);
// it reads and never writes.
func (s *SessionService) landed(ctx context.Context, row *models.RefreshToken) bool {
	found, err := s.store.FindRefreshTokenByHash(ctx, row.TokenHash)
	return err == nil && found.ID == row.ID
}

// refreshReuse revokes the family of a replayed token and audits it.
func (s *SessionService) refreshReuse(ctx context.Context, tok *models.RefreshToken, sess *models.Session, now time.Time) error {
	// The client hanging up must not abort the revocation or its record.
	ctx = context.WithoutCancel(ctx)
	revoked, err := s.store.RevokeSession(ctx, sess.ID, RevokeReasonRefreshReuse, now)
	if err != nil {
		return fmt.Errorf("revoke session after refresh token reuse: %w", err)
	}
	if revoked {
		s.opts.Audit(ctx, &models.AuditEvent{
			OccurredAt:     now,
			Type:           AuditRefreshTokenReuse,
			Outcome:        models.OutcomeFailure,
			SubjectUserID:  &sess.UserID,
			OrganizationID: sess.ActiveOrgID,
			ClientID:       sess.ClientID,
			Provider:       sess.Provider,
		}, map[string]any{
			"session_id":       sess.ID,
			"refresh_token_id": tok.ID,
			"rotated_at":       tok.RotatedAt.Format(time.RFC3339Nano),
			"grace_seconds":    s.opts.ReuseGrace.Seconds(),
			"revoke_reason":    RevokeReasonRefreshReuse,
		})
	}
	return grantErr(ErrRefreshTokenReuse, reasonRefreshReuse)
}

// inactiveSessionError explains why the store refused to extend a session
// that looked live a moment earlier.
func (s *SessionService) inactiveSessionError(ctx context.Context, sessionID string, now time.Time) error {
	sess, err := s.store.FindSession(ctx, sessionID)
	if errors.Is(err, models.ErrNotFound) {
		return grantErr(ErrGrantUnknown, reasonRefreshUnknown)
	} else if err != nil {
		return err
	}
	switch {
	case sess.RevokedAt != nil:
		return grantErr(ErrGrantRevoked, reasonSessionRevoked)
	case !now.Before(sess.ExpiresAt):
		return grantErr(ErrGrantExpired, reasonSessionExpired)
	}
	if user, err := s.store.FindUser(ctx, sess.UserID); err == nil && user.Disabled {
		return grantErr(ErrGrantUserDisabled, reasonUserDisabled)
	}
	return grantErr(ErrGrantRevoked, reasonSessionRevoked)
}

// RevokeRefreshToken implements RFC 7009 for refresh tokens: it revokes the
// token's whole session (every refresh token of the family; access tokens
// of the session become inactive at introspection). An unknown, malformed
// or already revoked token is not an error (RFC 7009 §2.2). A token issued
// to another client is a *GrantError matching ErrGrantClientMismatch and
// revokes nothing; the endpoint should answer it exactly like success (200,
// empty body) so that it reveals nothing about other clients' tokens.
func (s *SessionService) RevokeRefreshToken(ctx context.Context, token, clientID string) error {
	_, _, err := s.RevokeRefreshTokenSession(ctx, token, clientID)
	return err
}

// RevokeRefreshTokenSession is RevokeRefreshToken reporting the session
// the token belongs to (nil for an unknown or malformed token, or one of
// another client) and whether this call ended it (false when it had
// already been revoked), so that the caller records a revocation once.
func (s *SessionService) RevokeRefreshTokenSession(ctx context.Context, token, clientID string) (*models.Session, bool, error) {
	if !opaqueWellFormed(RefreshTokenPrefix, token) {
		return nil, false, nil
	}
	tok, err := s.store.FindRefreshTokenByHash(ctx, opaqueHash(token))
	if errors.Is(err, models.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if tok.ClientID != clientID {
		return nil, false, grantErr(ErrGrantClientMismatch, reasonRefreshClient)
	}
	ended, err := s.store.RevokeSession(ctx, tok.SessionID, RevokeReasonTokenRevocation, s.now())
	if errors.Is(err, models.ErrNotFound) { // pruned meanwhile
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	sess, err := s.store.FindSession(ctx, tok.SessionID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, ended, nil
	}
	return sess, ended, err
}

// LookupRefreshToken describes a refresh token for introspection. An
// unknown or malformed token yields an inactive RefreshInfo with empty
// fields and a nil error. It changes nothing.
func (s *SessionService) LookupRefreshToken(ctx context.Context, token string) (*RefreshInfo, error) {
	info := &RefreshInfo{}
	if !opaqueWellFormed(RefreshTokenPrefix, token) {
		return info, nil
	}
	g, err := s.store.FindRefreshGrant(ctx, opaqueHash(token), models.RefreshRead{})
	if errors.Is(err, models.ErrNotFound) {
		return info, nil
	} else if err != nil {
		return nil, err
	}
	tok, sess, user := &g.Token, &g.Session, &g.User
	exp := tok.ExpiresAt
	if sess.ExpiresAt.Before(exp) {
		exp = sess.ExpiresAt
	}
	now := s.now()
	*info = RefreshInfo{
		Active: tok.RotatedAt == nil && tok.RevokedAt == nil && sess.RevokedAt == nil &&
			now.Before(exp) && !user.Disabled,
		SessionID:   sess.ID,
		ClientID:    tok.ClientID,
		UserID:      sess.UserID,
		Scope:       sess.Scope,
		ActiveOrgID: sess.ActiveOrgID,
		IssuedAt:    tok.CreatedAt,
		ExpiresAt:   exp,
	}
	return info, nil
}
