package tokens

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// Authorization codes (RFC 6749 §4.1): opaque "ghc_" secrets stored only as
// SHA-256 hashes, valid for CodeTTL, redeemable once. A second presentation
// revokes the session the first redemption started (RFC 6749 §4.1.2), so
// refresh tokens issued from the code stop working.

// PKCEMethodS256 is the only code_challenge_method Gatehouse accepts.
const PKCEMethodS256 = "S256"

// NewCode is the authorization request a code stands for.
type NewCode struct {
	ClientID    string
	UserID      string
	SessionID   string
	RedirectURI string
	Scope       string
	Nonce       string
	// CodeChallenge is the PKCE S256 challenge; empty for a confidential
	// client that sent none. When set, CodeChallengeMethod must be "S256".
	CodeChallenge       string
	CodeChallengeMethod string
}

const (
	reasonCodeUnknown  = "authorization code is invalid"
	reasonCodeExpired  = "authorization code expired"
	reasonCodeUsed     = "authorization code was already used"
	reasonCodeClient   = "authorization code belongs to another client"
	reasonCodeRedirect = "redirect_uri does not match the authorization request"
)

// IssueCode records an authorization code for a live session of the given
// user and client and returns it; the database keeps only its hash. The
// code expires CodeTTL from now. A missing field, a challenge method other
// than S256, a malformed challenge, or a session that is not live or not
// the user's at that client is an error (a caller bug, not a grant error).
func (s *SessionService) IssueCode(ctx context.Context, n NewCode) (string, error) {
	if n.ClientID == "" || n.UserID == "" || n.SessionID == "" || n.RedirectURI == "" {
		return "", errors.New("issue authorization code: client, user, session and redirect_uri are required")
	}
	switch {
	case n.CodeChallenge == "" && n.CodeChallengeMethod != "":
		return "", errors.New("issue authorization code: code_challenge_method without code_challenge")
	case n.CodeChallenge != "" && n.CodeChallengeMethod != PKCEMethodS256:
		return "", errors.New("issue authorization code: code_challenge_method must be S256")
	case n.CodeChallenge != "" && !pkceChallengeWellFormed(n.CodeChallenge):
		return "", errors.New("issue authorization code: code_challenge must be 43 base64url characters")
	}
	sess, err := s.store.FindSession(ctx, n.SessionID)
	if err != nil {
		return "", fmt.Errorf("issue authorization code: %w", err)
	}
	now := s.now()
	if sess.UserID != n.UserID || sess.ClientID != n.ClientID {
		return "", errors.New("issue authorization code: session belongs to another user or client")
	}
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) {
		return "", errors.New("issue authorization code: session is not active")
	}
	secret, hash, err := opaqueNew(AuthorizationCodePrefix)
	if err != nil {
		return "", err
	}
	err = s.store.CreateAuthorizationCode(ctx, &models.AuthorizationCode{
		ID:                  models.NewID(),
		CodeHash:            hash,
		ClientID:            n.ClientID,
		UserID:              n.UserID,
		SessionID:           n.SessionID,
		RedirectURI:         n.RedirectURI,
		Scope:               n.Scope,
		Nonce:               n.Nonce,
		CodeChallenge:       n.CodeChallenge,
		CodeChallengeMethod: n.CodeChallengeMethod,
		CreatedAt:           now,
		ExpiresAt:           now.Add(s.opts.CodeTTL),
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// RedeemCode consumes an authorization code presented by clientID with
// redirectURI and returns the authorization request it stands for (UsedAt
// set). The caller must then verify PKCE against CodeChallenge
// (VerifyPKCE) before issuing tokens. Failures are *GrantError (map to
// invalid_grant): unknown code, another client, a different redirect_uri
// (exact string match), expired, session revoked or expired, user disabled
// — these leave the code unused — and a code already used, which also
// revokes the code's session and records an "authorization_code.replay"
// audit event on every such attempt (ErrAuthorizationCodeReplay). Of
// concurrent redemptions exactly one succeeds; the others count as replays.
func (s *SessionService) RedeemCode(ctx context.Context, code, clientID, redirectURI string) (*models.AuthorizationCode, error) {
	if !opaqueWellFormed(AuthorizationCodePrefix, code) {
		return nil, grantErr(ErrGrantUnknown, reasonCodeUnknown)
	}
	c, err := s.store.FindAuthorizationCodeByHash(ctx, opaqueHash(code))
	if errors.Is(err, models.ErrNotFound) {
		return nil, grantErr(ErrGrantUnknown, reasonCodeUnknown)
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	// Replay first: whoever presents a used code, the code has leaked.
	if c.UsedAt != nil {
		return nil, s.codeReplay(ctx, c, clientID, now)
	}
	switch {
	case c.ClientID != clientID:
		return nil, grantErr(ErrGrantClientMismatch, reasonCodeClient)
	case c.RedirectURI != redirectURI:
		return nil, grantErr(ErrGrantRedirectMismatch, reasonCodeRedirect)
	case !now.Before(c.ExpiresAt):
		return nil, grantErr(ErrGrantExpired, reasonCodeExpired)
	}
	sess, err := s.store.FindSession(ctx, c.SessionID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, grantErr(ErrGrantUnknown, reasonCodeUnknown)
	} else if err != nil {
		return nil, err
	}
	switch {
	case sess.RevokedAt != nil:
		return nil, grantErr(ErrGrantRevoked, reasonSessionRevoked)
	case !now.Before(sess.ExpiresAt):
		return nil, grantErr(ErrGrantExpired, reasonSessionExpired)
	}
	user, err := s.store.FindUser(ctx, c.UserID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, grantErr(ErrGrantUnknown, reasonCodeUnknown)
	} else if err != nil {
		return nil, err
	}
	if user.Disabled {
		return nil, grantErr(ErrGrantUserDisabled, reasonUserDisabled)
	}
	won, err := s.store.MarkAuthorizationCodeUsed(ctx, c.ID, now)
	if err != nil {
		return nil, err
	}
	if !won {
		return nil, s.codeReplay(ctx, c, clientID, now)
	}
	c.UsedAt = &now
	return c, nil
}

// codeReplay revokes the session of a replayed code and audits the attempt.
func (s *SessionService) codeReplay(ctx context.Context, c *models.AuthorizationCode, clientID string, now time.Time) error {
	// The client hanging up must not abort the revocation or its record.
	ctx = context.WithoutCancel(ctx)
	revoked, err := s.store.RevokeSession(ctx, c.SessionID, RevokeReasonCodeReplay, now)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("revoke session after authorization code replay: %w", err)
	}
	s.opts.Audit(ctx, &models.AuditEvent{
		OccurredAt:    now,
		Type:          AuditAuthorizationCodeReplay,
		Outcome:       models.OutcomeFailure,
		SubjectUserID: &c.UserID,
		ClientID:      c.ClientID,
	}, map[string]any{
		"session_id":            c.SessionID,
		"authorization_code_id": c.ID,
		"same_client":           clientID == c.ClientID,
		"session_revoked":       revoked,
	})
	return grantErr(ErrAuthorizationCodeReplay, reasonCodeUsed)
}

// VerifyPKCE reports whether verifier matches challenge under RFC 7636.
// Only method "S256" is accepted ("plain" and anything else are refused);
// the verifier must be 43–128 characters of [A-Za-z0-9-._~]. The derived
// challenge is compared in constant time.
func VerifyPKCE(challenge, method, verifier string) bool {
	if method != PKCEMethodS256 || !pkceVerifierWellFormed(verifier) {
		return false
	}
	want := PKCEChallengeS256(verifier)
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// PKCEChallengeS256 returns the S256 code_challenge of a verifier,
// BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2); for clients
// Gatehouse itself drives (the demo page, tests).
func PKCEChallengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func pkceVerifierWellFormed(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// pkceChallengeWellFormed: an S256 challenge is the unpadded base64url of
// a SHA-256 digest, exactly 43 characters.
func pkceChallengeWellFormed(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(c)
	return err == nil
}
