package admin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// AuditBrowserSessionRevoked: an administrator ended one of a user's
// browser sessions (and with it the app sessions opened under it, whose
// clients get a back-channel logout).
const AuditBrowserSessionRevoked = "browser_session.revoked"

// BrowserSession is a user's single sign-on session in one browser. The
// cookie's token (stored hashed) and what an upstream logout needs are
// never shown.
type BrowserSession struct {
	ID         string  `json:"id"`
	Provider   string  `json:"provider"`
	IdentityID *string `json:"identity_id,omitempty"`
	// Active: not ended, before its absolute expiry and, when the idle
	// limit is known, used within it.
	Active       bool       `json:"active"`
	AuthTime     time.Time  `json:"auth_time"`
	AMR          []string   `json:"amr"`
	ACR          string     `json:"acr,omitempty"`
	IP           string     `json:"ip,omitempty"`
	UserAgent    string     `json:"user_agent,omitempty"`
	LastUsedAt   time.Time  `json:"last_used_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
}

// SetBrowserSessionIdleTTL tells the service GATEHOUSE_SSO_IDLE_TTL, so
// that a browser session unused that long is listed as not active.
func (s *Service) SetBrowserSessionIdleTTL(d time.Duration) { s.browserIdleTTL = d }

func (s *Service) browserSessionView(now time.Time) func(models.BrowserSession) BrowserSession {
	return func(b models.BrowserSession) BrowserSession {
		active := b.RevokedAt == nil && b.ExpiresAt.After(now) &&
			(s.browserIdleTTL <= 0 || b.LastUsedAt.Add(s.browserIdleTTL).After(now))
		amr := strings.Fields(b.AMR)
		if amr == nil {
			amr = []string{}
		}
		return BrowserSession{ID: b.ID, Provider: b.Provider, IdentityID: b.IdentityID, Active: active, AuthTime: b.AuthTime,
			AMR: amr, ACR: b.ACR, IP: b.IP, UserAgent: b.UserAgent, LastUsedAt: b.LastUsedAt, ExpiresAt: b.ExpiresAt,
			RevokedAt: b.RevokedAt, RevokeReason: b.RevokeReason, CreatedAt: b.CreatedAt}
	}
}

// ListBrowserSessions lists a user's browser sessions, newest first
// (ended and expired ones too, until pruned); Gatehouse administrators
// only. An unknown user is ErrNotFound.
func (s *Service) ListBrowserSessions(ctx context.Context, a Actor, userID string, req PageRequest) (List[BrowserSession], error) {
	p, err := req.page(true)
	if err != nil {
		return List[BrowserSession]{}, err
	}
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[BrowserSession]{}, err
	}
	if _, err := s.store.FindUser(ctx, userID); err != nil {
		return List[BrowserSession]{}, err
	}
	rows, err := s.store.ListUserBrowserSessionsPage(ctx, userID, p)
	return finish(rows, p.Limit, func(x models.BrowserSession) cursor { return cursor{T: x.CreatedAt, I: x.ID} },
		s.browserSessionView(s.now())), err
}

// RevokeBrowserSession ends one of a user's browser sessions and every
// app session opened under it, in one transaction (their clients are
// then sent back-channel logouts); ending one already ended changes
// nothing but is not an error. A browser session of another user is
// ErrNotFound. Nobody signs out an administrator above their own level.
func (s *Service) RevokeBrowserSession(ctx context.Context, a Actor, userID, browserSessionID string) error {
	return s.store.InTx(ctx, func(tx Store) error {
		if err := s.mayActOnUser(ctx, tx, a, userID); err != nil {
			return err
		}
		b, err := tx.FindBrowserSession(ctx, browserSessionID)
		if err != nil {
			return err
		}
		if b.UserID != userID {
			return fmt.Errorf("browser session %s of user %s: %w", browserSessionID, userID, ErrNotFound)
		}
		ended, err := tx.RevokeBrowserSession(ctx, browserSessionID, revokeReasonByAdmin, s.now())
		if err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditBrowserSessionRevoked, "", userID,
			map[string]any{"browser_session_id": browserSessionID, "changed": ended})
	})
}
