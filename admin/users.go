package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// UserQuery filters ListUsers.
type UserQuery struct {
	Email    string
	Disabled string // "", "true" or "false"
	// Search keeps users whose email or name contains it (any case).
	Search string
}

// ListUsers lists users, oldest first (Gatehouse administrators only).
func (s *Service) ListUsers(ctx context.Context, a Actor, q UserQuery, req PageRequest) (List[User], error) {
	p, err := req.page(false)
	if err != nil {
		return List[User]{}, err
	}
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[User]{}, err
	}
	f := models.UserFilter{Email: strings.ToLower(strings.TrimSpace(q.Email)), Search: strings.TrimSpace(q.Search)}
	if len(f.Search) > 200 {
		return List[User]{}, invalid("q", "must be at most 200 characters")
	}
	if q.Disabled != "" {
		b, err := strconv.ParseBool(q.Disabled)
		if err != nil {
			return List[User]{}, invalid("disabled", "must be true or false")
		}
		f.Disabled = &b
	}
	rows, err := s.store.ListUsers(ctx, f, p)
	return finish(rows, p.Limit, func(u models.User) cursor { return cursor{T: u.CreatedAt, I: u.ID} }, userView), err
}

// GetUser returns a user with identities and memberships (Gatehouse
// administrators only).
func (s *Service) GetUser(ctx context.Context, a Actor, userID string) (UserDetail, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return UserDetail{}, err
	}
	u, err := s.store.FindUser(ctx, userID)
	if err != nil {
		return UserDetail{}, err
	}
	out := UserDetail{User: userView(*u), Identities: []Identity{}, Memberships: []Membership{}}
	ids, err := s.store.ListIdentities(ctx, userID)
	if err != nil {
		return UserDetail{}, err
	}
	for _, i := range ids {
		out.Identities = append(out.Identities, Identity{ID: i.ID, Provider: i.Provider, Subject: i.Subject, Email: i.Email,
			EmailVerified: i.EmailVerified, LastLoginAt: i.LastLoginAt, CreatedAt: i.CreatedAt})
	}
	ms, err := s.store.ListMemberships(ctx, userID)
	for _, m := range ms {
		out.Memberships = append(out.Memberships, Membership{OrganizationID: m.OrganizationID, RoleID: m.RoleID, Status: m.Status, Source: m.Source})
	}
	return out, err
}

// SetUserDisabled deactivates (disables) a user, which also ends every
// session of theirs, browser sessions too, at once (their clients get
// back-channel logouts; refresh tokens stop working; Gatehouse's
// introspection and admin API refuse their access tokens; backends that
// verify locally accept those until they expire; signing in is refused
// with the "Account disabled" page), or reactivates (enables) them
// again, which revives no session. API keys they created keep working:
// they belong to their organization (the audit event lists them).
// Nobody disables themselves, nor an administrator above their own
// level.
func (s *Service) SetUserDisabled(ctx context.Context, a Actor, userID string, disabled bool) (User, error) {
	if disabled && userID == a.UserID {
		return User{}, forbidden("you cannot disable yourself")
	}
	return s.setUserDisabled(ctx, a, false, userID, disabled)
}

// ConsoleSetUserDisabled is SetUserDisabled for the operator at the
// console (`gatehouse users deactivate|reactivate`), with no actor and no
// level; the audit event says "by": "console".
func (s *Service) ConsoleSetUserDisabled(ctx context.Context, userID string, disabled bool) (User, error) {
	return s.setUserDisabled(ctx, Actor{}, true, userID, disabled)
}

func (s *Service) setUserDisabled(ctx context.Context, a Actor, console bool, userID string, disabled bool) (User, error) {
	var out User
	err := s.store.InTx(ctx, func(tx Store) error {
		if !console {
			if err := s.mayActOnUser(ctx, tx, a, userID); err != nil {
				return err
			}
		}
		if _, err := tx.FindUser(ctx, userID); err != nil {
			return err
		}
		now := s.now()
		changed, err := tx.SetUserDisabled(ctx, userID, disabled, now)
		if err != nil {
			return err
		}
		details := map[string]any{"changed": changed}
		if console {
			details["by"] = "console"
		}
		typ := AuditUserEnabled
		if disabled {
			typ = AuditUserDisabled
			n, err := tx.RevokeUserSessions(ctx, userID, revokeReasonDisabling, now)
			if err != nil {
				return err
			}
			details["sessions_revoked"] = n
			// Their browser sessions end too: single sign-on must not
			// sign a disabled person in again once re-enabled.
			bn, err := tx.RevokeUserBrowserSessions(ctx, userID, revokeReasonDisabling, now)
			if err != nil {
				return err
			}
			details["browser_sessions_revoked"] = bn
			// The keys they created keep working; the operator sees
			// which, to rotate them if the person may hold a copy.
			keys, err := tx.ListAPIKeysCreatedBy(ctx, userID)
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(keys))
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			details["api_keys_created"] = ids
		}
		u, err := tx.FindUser(ctx, userID)
		if err != nil {
			return err
		}
		out = userView(*u)
		return audit(ctx, tx, a, typ, "", userID, details)
	})
	return out, err
}

// mayActOnUser checks that a Gatehouse administrator may change a user's
// account (disable, unlink, sign out): not one whose level in the
// administrators' organization is above their own, whom they could
// otherwise lock out of administering Gatehouse.
func (s *Service) mayActOnUser(ctx context.Context, st Store, a Actor, userID string) error {
	own, err := s.asAdministrator(ctx, st, a)
	if err != nil {
		return err
	}
	m, err := st.FindMember(ctx, models.AdminOrgID, userID)
	switch {
	case errors.Is(err, models.ErrNotFound):
		return nil
	case err != nil:
		return err
	case m.RoleLevel > own.level:
		return forbidden("the user is an administrator above your own level (%d)", own.level)
	}
	return nil
}

// Unlink removes one of a user's identities (never the last one) and
// ends the user's sessions opened through its provider. Nobody unlinks
// an administrator above their own level.
func (s *Service) Unlink(ctx context.Context, a Actor, userID, identityID string) error {
	// Checked before the provisioning service's own transaction: the
	// level is read fresh, a moment before the unlinking.
	if err := s.mayActOnUser(ctx, s.store, a, userID); err != nil {
		return err
	}
	err := s.prov.Unlink(ctx, userID, identityID, a.meta())
	if errors.Is(err, provisioning.ErrLastIdentity) {
		return conflict("a user must keep at least one identity")
	}
	return err
}

// ListSessions lists a user's sessions, newest first (revoked and
// expired ones too, until pruned); Gatehouse administrators only.
func (s *Service) ListSessions(ctx context.Context, a Actor, userID string, req PageRequest) (List[Session], error) {
	p, err := req.page(true)
	if err != nil {
		return List[Session]{}, err
	}
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[Session]{}, err
	}
	if _, err := s.store.FindUser(ctx, userID); err != nil {
		return List[Session]{}, err
	}
	rows, err := s.store.ListUserSessionsPage(ctx, userID, p)
	return finish(rows, p.Limit, func(x models.Session) cursor { return cursor{T: x.CreatedAt, I: x.ID} }, sessionView(s.now())), err
}

// RevokeSession revokes one of a user's sessions with its refresh
// tokens. Nobody signs out an administrator above their own level.
func (s *Service) RevokeSession(ctx context.Context, a Actor, userID, sessionID string) error {
	return s.store.InTx(ctx, func(tx Store) error {
		if err := s.mayActOnUser(ctx, tx, a, userID); err != nil {
			return err
		}
		sess, err := tx.FindSession(ctx, sessionID)
		if err != nil {
			return err
		}
		if sess.UserID != userID {
			return fmt.Errorf("session %s of user %s: %w", sessionID, userID, ErrNotFound)
		}
		revoked, err := tx.RevokeSession(ctx, sessionID, revokeReasonByAdmin, s.now())
		if err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditSessionRevoked, "", userID, map[string]any{"session_id": sessionID, "changed": revoked})
	})
}

// RevokeAllSessions signs a user out everywhere (every app session and
// browser session) and returns how many app sessions that ended, under
// the rules of RevokeSession.
func (s *Service) RevokeAllSessions(ctx context.Context, a Actor, userID string) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, func(tx Store) error {
		if err := s.mayActOnUser(ctx, tx, a, userID); err != nil {
			return err
		}
		if _, err := tx.FindUser(ctx, userID); err != nil {
			return err
		}
		var err error
		if n, err = tx.RevokeUserSessions(ctx, userID, revokeReasonByAdmin, s.now()); err != nil {
			return err
		}
		b, err := tx.RevokeUserBrowserSessions(ctx, userID, revokeReasonByAdmin, s.now())
		if err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditSessionsRevoked, "", userID, map[string]any{"sessions_revoked": n, "browser_sessions_revoked": b})
	})
	return n, err
}

// AuditQuery filters ListAudit; times are RFC 3339.
type AuditQuery struct {
	OrganizationID string
	Type           string
	Outcome        string
	ActorUserID    string
	SubjectUserID  string
	ClientID       string
	Since, Until   string
}

// ListAudit lists audit events, newest first. The whole trail is for
// Gatehouse administrators; an organization's admins read the events of
// their own organization (q.OrganizationID), the one exception to the
// instance-wide routes being the administrators' alone.
func (s *Service) ListAudit(ctx context.Context, a Actor, q AuditQuery, req PageRequest) (List[AuditEvent], error) {
	limit, c, err := req.parse()
	if err != nil {
		return List[AuditEvent]{}, err
	}
	if q.OrganizationID == "" {
		_, err = s.asAdministrator(ctx, s.store, a)
	} else {
		_, err = s.standingIn(ctx, s.store, a, q.OrganizationID)
	}
	if err != nil {
		return List[AuditEvent]{}, err
	}
	var before int64
	if c.I != "" {
		if before, err = strconv.ParseInt(c.I, 10, 64); err != nil || before <= 0 {
			return List[AuditEvent]{}, invalid("cursor", "is not a cursor this API returned; start again without it")
		}
	}
	f := models.AuditFilter{OrganizationID: q.OrganizationID, Type: q.Type, Outcome: q.Outcome,
		ActorUserID: q.ActorUserID, SubjectUserID: q.SubjectUserID, ClientID: q.ClientID}
	for _, t := range []struct {
		field, v string
		into     *time.Time
	}{{"since", q.Since, &f.Since}, {"until", q.Until, &f.Until}} {
		if t.v == "" {
			continue
		}
		if *t.into, err = time.Parse(time.RFC3339, t.v); err != nil {
			return List[AuditEvent]{}, invalid(t.field, "must be an RFC 3339 time such as 2026-11-23T17:00:00Z")
		}
	}
	if q.Outcome != "" && q.Outcome != models.OutcomeSuccess && q.Outcome != models.OutcomeFailure {
		return List[AuditEvent]{}, invalid("outcome", "must be success or failure")
	}
	rows, err := s.store.ListAuditEvents(ctx, f, before, limit)
	return finish(rows, limit, func(e models.AuditEvent) cursor { return cursor{I: strconv.FormatInt(e.ID, 10)} }, auditView), err
}
