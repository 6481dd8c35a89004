package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// Default lifetimes used when SessionOptions leaves them zero; they match
// the configuration defaults.
const (
	DefaultRefreshIdleTTL     = 7 * 24 * time.Hour
	DefaultRefreshAbsoluteTTL = 30 * 24 * time.Hour
	DefaultAuthCodeTTL        = 60 * time.Second
)

// Session revoke reasons this package writes to sessions.revoke_reason.
const (
	RevokeReasonRefreshReuse    = "refresh_token_reuse"
	RevokeReasonCodeReplay      = "authorization_code_replay"
	RevokeReasonTokenRevocation = "token_revocation"
)

// Audit event types this package records.
const (
	AuditRefreshTokenReuse       = "refresh_token.reuse"
	AuditAuthorizationCodeReplay = "authorization_code.replay"
)

// SessionStore is the storage SessionService needs; *models.Store
// implements it (models/sessions.go). Implementations must make
// AddRefreshToken, RotateRefreshToken, RevokeSession and
// MarkAuthorizationCodeUsed atomic and conditional as documented there:
// the service's race safety rests on them.
type SessionStore interface {
	CreateSession(ctx context.Context, sess *models.Session) error
	FindSession(ctx context.Context, id string) (*models.Session, error)
	ListUserSessions(ctx context.Context, userID string) ([]models.Session, error)
	SessionActive(ctx context.Context, id string, now time.Time) (bool, error)
	SetSessionActiveOrg(ctx context.Context, id string, orgID *string, now time.Time) error
	RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
	RevokeUserSessions(ctx context.Context, userID, reason string, now time.Time) (int64, error)
	FindUser(ctx context.Context, id string) (*models.User, error)

	AddRefreshToken(ctx context.Context, t *models.RefreshToken, now time.Time) (*models.Session, error)
	RotateRefreshToken(ctx context.Context, oldID string, next *models.RefreshToken, now time.Time) (*models.Session, error)
	FindRefreshTokenByHash(ctx context.Context, hash string) (*models.RefreshToken, error)
	FindRefreshGrant(ctx context.Context, hash string, read models.RefreshRead) (*models.RefreshGrant, error)

	CreateAuthorizationCode(ctx context.Context, c *models.AuthorizationCode) error
	FindAuthorizationCodeByHash(ctx context.Context, hash string) (*models.AuthorizationCode, error)
	MarkAuthorizationCodeUsed(ctx context.Context, id string, now time.Time) (bool, error)

	PruneSessions(ctx context.Context, now, cutoff time.Time) (int64, error)
	RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error
}

var _ SessionStore = (*models.Store)(nil)

// SessionOptions configure a SessionService.
type SessionOptions struct {
	// IdleTTL: a refresh token unused this long expires (capped at the
	// session's absolute expiry). Zero means DefaultRefreshIdleTTL.
	IdleTTL time.Duration
	// AbsoluteTTL: a session and all its refresh tokens end this long after
	// it was created, however active. Zero means DefaultRefreshAbsoluteTTL.
	AbsoluteTTL time.Duration
	// ReuseGrace: a rotated refresh token presented again less than this
	// long after its rotation is exchanged again (concurrent tabs) instead
	// of revoking the family. Zero disables the grace window.
	ReuseGrace time.Duration
	// CodeTTL is the lifetime of an authorization code. Zero means
	// DefaultAuthCodeTTL.
	CodeTTL time.Duration
	// Now is the clock (tests move it); nil means time.Now. Its result is
	// converted to UTC and truncated to microseconds, the precision both
	// databases store, so that stored and computed times compare equal.
	Now func() time.Time
	// Audit receives the audit events this service raises. Nil records them
	// through the store's RecordAudit (errors ignored: the security action,
	// such as revoking the family, has already happened). Set it to add
	// request context (IP, request id) or to observe events.
	Audit func(ctx context.Context, e *models.AuditEvent, details map[string]any)
}

// SessionService manages sessions, their refresh-token families and
// authorization codes. It holds no per-request state and is safe for
// concurrent use by many goroutines and many replicas sharing one database.
type SessionService struct {
	store SessionStore
	opts  SessionOptions
}

// NewSessionService returns a service over store; zero options take the
// documented defaults.
func NewSessionService(store SessionStore, opts SessionOptions) *SessionService {
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = DefaultRefreshIdleTTL
	}
	if opts.AbsoluteTTL <= 0 {
		opts.AbsoluteTTL = DefaultRefreshAbsoluteTTL
	}
	if opts.ReuseGrace < 0 {
		opts.ReuseGrace = 0
	}
	if opts.CodeTTL <= 0 {
		opts.CodeTTL = DefaultAuthCodeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Audit == nil {
		opts.Audit = func(ctx context.Context, e *models.AuditEvent, details map[string]any) {
			_ = store.RecordAudit(ctx, e, details)
		}
	}
	return &SessionService{store: store, opts: opts}
}

func (s *SessionService) now() time.Time {
	return s.opts.Now().UTC().Truncate(time.Microsecond)
}

// Errors. Every failure of a grant (refresh token, authorization code) is a
// *GrantError: errors.Is(err, ErrGrantInvalid) holds for all of them, and
// errors.Is with one of the specific sentinels below tells them apart.
var (
	// ErrGrantInvalid is matched by every *GrantError; the HTTP layer maps
	// it to the OAuth error "invalid_grant".
	ErrGrantInvalid = errors.New("invalid grant")
	// ErrGrantUnknown: no such refresh token or code (or it is malformed).
	ErrGrantUnknown = errors.New("unknown grant")
	// ErrGrantExpired: idle or absolute expiry, or an expired code.
	ErrGrantExpired = errors.New("grant expired")
	// ErrGrantRevoked: the token or its session was revoked.
	ErrGrantRevoked = errors.New("grant revoked")
	// ErrGrantClientMismatch: the grant was issued to another client.
	ErrGrantClientMismatch = errors.New("grant issued to another client")
	// ErrGrantRedirectMismatch: redirect_uri differs from the authorization request.
	ErrGrantRedirectMismatch = errors.New("redirect_uri mismatch")
	// ErrGrantUserDisabled: the session's user is disabled.
	ErrGrantUserDisabled = errors.New("user disabled")
	// ErrRefreshTokenReuse: a rotated refresh token was presented after the
	// grace window; the whole session has been revoked.
	ErrRefreshTokenReuse = errors.New("refresh token reuse")
	// ErrAuthorizationCodeReplay: an authorization code was presented again;
	// the session its first redemption used has been revoked.
	ErrAuthorizationCodeReplay = errors.New("authorization code replay")
)

// GrantError is a refused grant. Reason is written for an OAuth
// error_description: it never holds the token or code.
type GrantError struct {
	Reason string
	// Kind is one of the specific sentinels (ErrGrantExpired, ...).
	Kind error
}

// Error includes Reason only, so it is as safe to log as Reason.
func (e *GrantError) Error() string { return "invalid grant: " + e.Reason }

// Unwrap makes errors.Is match ErrGrantInvalid and e.Kind.
func (e *GrantError) Unwrap() []error { return []error{ErrGrantInvalid, e.Kind} }

func grantErr(kind error, reason string) *GrantError {
	return &GrantError{Reason: reason, Kind: kind}
}

// Opaque secrets: a visible prefix (so leaked tokens are recognisable by
// secret scanners and misrouted tokens are rejected early) followed by 256
// random bits in unpadded base64url.

// Prefixes of Gatehouse's opaque secrets.
const (
	RefreshTokenPrefix      = "ghr_"
	AuthorizationCodePrefix = "ghc_"
)

const opaqueRandomBytes = 32

var opaqueBodyLen = base64.RawURLEncoding.EncodedLen(opaqueRandomBytes)

func opaqueNew(prefix string) (secret, hash string, err error) {
	b := make([]byte, opaqueRandomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate secret: %w", err)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, opaqueHash(secret), nil
}

// opaqueHash is what the database stores and indexes. A fast unsalted hash
// is right here: the input has 256 bits of entropy, so there is nothing to
// brute-force, and the lookup must be by equality on an index.
func opaqueHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// opaqueWellFormed rejects garbage before it reaches the database.
func opaqueWellFormed(prefix, secret string) bool {
	body, ok := strings.CutPrefix(secret, prefix)
	if !ok || len(body) != opaqueBodyLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(body)
	return err == nil
}

// NewSession describes a sign-in to record.
type NewSession struct {
	UserID      string
	ClientID    string
	Provider    string
	ActiveOrgID *string
	Scope       string
	// AMR are RFC 8176 method references ("pwd", "mfa", ...); values must
	// not contain white space.
	AMR []string
	// AuthTime is when the user authenticated upstream; zero means now.
	AuthTime time.Time
	// ACR is the authentication context class the upstream reported
	// (empty: none).
	ACR string
	// BrowserSessionID names the browser session the sign-in came
	// through (nil: none): ending that browser session ends this session.
	BrowserSessionID *string
	// IdentityID names the upstream identity the sign-in came through
	// (empty: none); the session's tokens state its groups and username.
	IdentityID string
}

// CreateSession records a sign-in. The session's absolute expiry is now +
// AbsoluteTTL; no refresh token of it outlives that.
func (s *SessionService) CreateSession(ctx context.Context, n NewSession) (*models.Session, error) {
	if n.UserID == "" || n.ClientID == "" {
		return nil, errors.New("create session: user and client are required")
	}
	for _, v := range n.AMR {
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			return nil, fmt.Errorf("create session: invalid amr value %q", v)
		}
	}
	now := s.now()
	authTime := n.AuthTime.UTC().Truncate(time.Microsecond)
	if n.AuthTime.IsZero() {
		authTime = now
	}
	sess := &models.Session{
		ID:          models.NewID(),
		UserID:      n.UserID,
		ClientID:    n.ClientID,
		Provider:    n.Provider,
		ActiveOrgID: n.ActiveOrgID,
		Scope:       n.Scope,
		AMR:         strings.Join(n.AMR, " "),
		ACR:         n.ACR,
		AuthTime:    authTime,
		LastUsedAt:  now,
		ExpiresAt:   now.Add(s.opts.AbsoluteTTL),
		CreatedAt:   now,

		BrowserSessionID: n.BrowserSessionID,
	}
	if n.IdentityID != "" {
		sess.IdentityID = &n.IdentityID
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	return sess, nil
}

// GetSession returns a session, revoked or not; an unknown id is an error
// matching models.ErrNotFound.
func (s *SessionService) GetSession(ctx context.Context, id string) (*models.Session, error) {
	return s.store.FindSession(ctx, id)
}

// ListUserSessions returns a user's stored sessions, newest first,
// including revoked and expired ones not yet pruned (check RevokedAt and
// ExpiresAt, or SessionActive).
func (s *SessionService) ListUserSessions(ctx context.Context, userID string) ([]models.Session, error) {
	return s.store.ListUserSessions(ctx, userID)
}

// SessionActive reports whether access tokens of the session may still be
// honoured: it exists, is not revoked, has not reached its absolute expiry,
// and its user is not disabled. An unknown session is (false, nil). It reads
// the database each time, so revocation shows immediately (RFC 7662).
func (s *SessionService) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	return s.store.SessionActive(ctx, sessionID, s.now())
}

// SetActiveOrg switches (or with nil clears) the session's active
// organization, which later refreshes put in org_id. The caller must have
// checked the user's active membership. A revoked or expired session is a
// *GrantError (ErrGrantRevoked); an unknown one matches models.ErrNotFound.
func (s *SessionService) SetActiveOrg(ctx context.Context, sessionID string, orgID *string) error {
	err := s.store.SetSessionActiveOrg(ctx, sessionID, orgID, s.now())
	if errors.Is(err, models.ErrSessionInactive) {
		return grantErr(ErrGrantRevoked, "session is no longer active")
	}
	return err
}

// RevokeSession revokes a session and all its refresh tokens at once;
// reason is stored in revoke_reason. Revoking a revoked session is a no-op
// that keeps the first reason; an unknown id matches models.ErrNotFound.
func (s *SessionService) RevokeSession(ctx context.Context, sessionID, reason string) error {
	_, err := s.EndSession(ctx, sessionID, reason)
	return err
}

// EndSession is RevokeSession reporting whether this call ended the
// session: false when it had already been revoked (by an earlier call,
// or a concurrent one that got there first), so that callers record the
// end of a session once however often they are asked to end it. An
// unknown session matches models.ErrNotFound.
func (s *SessionService) EndSession(ctx context.Context, sessionID, reason string) (bool, error) {
	return s.store.RevokeSession(ctx, sessionID, reason, s.now())
}

// RevokeUserSessions revokes every live session of a user with all their
// refresh tokens (sign out everywhere; call it when disabling a user) and
// returns how many sessions it revoked.
func (s *SessionService) RevokeUserSessions(ctx context.Context, userID, reason string) (int64, error) {
	return s.store.RevokeUserSessions(ctx, userID, reason, s.now())
}

// PruneExpired deletes authorization codes past their expiry, and refresh
// tokens and sessions more than a day past their expiry (a session's expiry
// is its absolute one; deleting it deletes its tokens and codes). Rotated
// tokens stay until then so that their reuse is still detected. It returns
// the number of rows deleted directly. The app calls it periodically; it is
// safe to run on several replicas at once.
func (s *SessionService) PruneExpired(ctx context.Context) (int64, error) {
	now := s.now()
	return s.store.PruneSessions(ctx, now, now.Add(-24*time.Hour))
}
