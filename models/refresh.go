package models

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// The refresh grant's two statements (issue 16): one read of everything
// a refresh decides and mints from (FindRefreshGrant), and one write that
// rotates (RotateRefreshToken). Both are plain SQL through the pool,
// scanned by hand: no transaction, no GORM reflection over the models.

// RefreshGrant is what a refresh token grants, read in one query by the
// token's hash: the token, its session (the family), the session's user,
// and what tokens minted from them state about the user.
type RefreshGrant struct {
	Token   RefreshToken
	Session Session
	User    User
	// Grants are the user's role and permissions in the session's active
	// organization (ActiveGrants); nil when the session has none, or the
	// user no active membership there.
	Grants *Grants
	// EmailTrusted reports that one of the user's identities of a
	// provider among the trusted ones reports the user's email verified:
	// TrustedVerifiedEmails contains User.Email (never for an empty
	// email, nor when no provider is trusted).
	EmailTrusted bool
	// Username and UpstreamGroups are those of the identity the session
	// came through (Session.IdentityID), as of its last sign-in; empty
	// when the session names none.
	Username       string
	UpstreamGroups []string
	// OrgRoles are the user's active memberships as "<org-slug>:<role>",
	// sorted (UserOrgRoles), read only when RefreshRead.OrgRoles asks;
	// else nil.
	OrgRoles []string
	// UpstreamCheckedAt is when the upstream last vouched for the
	// session's identity (UpstreamCheck.CheckedAt); nil when the session
	// names no identity or the identity has no re-check row.
	UpstreamCheckedAt *time.Time
	// UpstreamSaved reports that the identity's re-check row keeps data
	// to re-check with (UpstreamCheck.Saved is not empty): without it a
	// re-check has nothing to ask the upstream with.
	UpstreamSaved bool
}

// RefreshRead says what FindRefreshGrant reads besides the token, its
// session and user, the active organization's grants and the identity.
type RefreshRead struct {
	// TrustedEmail names the providers whose verified emails count, for
	// RefreshGrant.EmailTrusted.
	TrustedEmail []string
	// OrgRoles asks for RefreshGrant.OrgRoles.
	OrgRoles bool
}

// permSep joins permission names in the grants read; the permission
// grammar (resource:action: letters, digits, '-', '_', '*') never holds it.
const permSep = "\x1f"

// FindRefreshGrant returns the refresh token with the given hash, with
// its session, user, the grants of the session's active organization,
// whether a provider among read.TrustedEmail vouches for the user's
// email, the username and upstream groups of the session's identity and,
// when read.OrgRoles, the user's organization roles, in one query;
// ErrNotFound when no token has the hash (or its session or user is
// gone). It reads whatever state the token is in: rotated, revoked and
// expired tokens too.
func (s *Store) FindRefreshGrant(ctx context.Context, hash string, read RefreshRead) (*RefreshGrant, error) {
	postgres := s.db.Dialector.Name() == "postgres"
	trusted := read.TrustedEmail
	q := refreshGrantSQL(postgres, len(trusted), read.OrgRoles)
	args := make([]any, 0, 4+len(trusted))
	if len(trusted) > 0 {
		args = append(args, true)
		for _, p := range trusted {
			args = append(args, p)
		}
	}
	if read.OrgRoles {
		args = append(args, MembershipActive)
	}
	args = append(args, MembershipActive, hash)
	g := &RefreshGrant{}
	var role, perms, username, groups, orgRoles sql.NullString
	err := s.read(ctx, func(db *gorm.DB) error {
		t, se, u := &g.Token, &g.Session, &g.User
		// Straight to the pool (or the transaction): no statement to
		// build, no reflection over the models.
		row := func() *sql.Row {
			if st := s.stmts.stmt(ctx, q); st != nil {
				return st.QueryRowContext(ctx, args...)
			}
			return db.Statement.ConnPool.QueryRowContext(ctx, q, args...)
		}()
		return row.Scan(
			&t.ID, &t.SessionID, &t.ClientID, &t.CreatedAt, &t.ExpiresAt, &t.RotatedAt, &t.ReplacedBy, &t.RevokedAt,
			&se.UserID, &se.ClientID, &se.Provider, &se.ActiveOrgID, &se.Scope, &se.AMR, &se.ACR, &se.AuthTime, &se.LastUsedAt, &se.ExpiresAt,
			&se.RevokedAt, &se.RevokeReason, &se.CreatedAt, &se.IdentityID,
			&u.Email, &u.EmailVerified, &u.Name, &u.AvatarURL, &u.Disabled, &u.DefaultOrgID, &u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt,
			&role, &perms, &g.EmailTrusted, &username, &groups, &orgRoles, &g.UpstreamCheckedAt, &g.UpstreamSaved)
	})
	if errors.Is(err, sql.ErrNoRows) {
		err = gorm.ErrRecordNotFound
	}
	if err != nil {
		return nil, mapErr(err, "find refresh token")
	}
	g.Token.TokenHash = hash
	g.Session.ID = g.Token.SessionID
	g.User.ID = g.Session.UserID
	if role.Valid && g.Session.ActiveOrgID != nil {
		g.Grants = &Grants{OrganizationID: *g.Session.ActiveOrgID, Roles: []string{role.String}, Permissions: []string{}}
		if perms.Valid && perms.String != "" {
			g.Grants.Permissions = strings.Split(perms.String, permSep)
		}
	}
	g.Username = username.String
	g.UpstreamGroups = DecodeGroups(groups.String)
	if read.OrgRoles {
		g.OrgRoles = []string{}
		if orgRoles.Valid && orgRoles.String != "" {
			g.OrgRoles = strings.Split(orgRoles.String, permSep)
		}
	}
	return g, nil
}

// refreshGrantQueries caches FindRefreshGrant's text by dialect and the
// number of trusted providers.
var refreshGrantQueries sync.Map // refreshGrantKey → string

type refreshGrantKey struct {
	postgres bool
	trusted  int
	orgRoles bool
}

// refreshGrantSQL is FindRefreshGrant's query in the dialect's own
// placeholders, which take, in this order: with trusted providers, true
// and each provider; with orgRoles, the membership status; the membership
// status; the hash.
func refreshGrantSQL(postgres bool, trusted int, orgRoles bool) string {
	key := refreshGrantKey{postgres, trusted, orgRoles}
	if q, ok := refreshGrantQueries.Load(key); ok {
		return q.(string)
	}
	n := 0
	param := func() string {
		n++
		if postgres {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	var q strings.Builder
	q.WriteString(`SELECT t.id, t.session_id, t.client_id, t.created_at, t.expires_at, t.rotated_at, t.replaced_by, t.revoked_at,
	s.user_id, s.client_id, s.provider, s.active_org_id, s.scope, s.amr, s.acr, s.auth_time, s.last_used_at, s.expires_at,
	s.revoked_at, s.revoke_reason, s.created_at, s.identity_id,
	u.email, u.email_verified, u.name, u.avatar_url, u.disabled, u.default_org_id, u.last_login_at, u.created_at, u.updated_at,
	r.name, `)
	// The permission names in the order ActiveGrants gives them (the
	// database's collation), joined by permSep. Each name is looked up by
	// its key: a join let PostgreSQL hash the whole permissions table,
	// which grows with every organization's roles, for a role's twenty.
	if postgres {
		q.WriteString(`(SELECT string_agg(n, chr(31) ORDER BY n)`)
	} else {
		q.WriteString(`(SELECT group_concat(n, char(31) ORDER BY n)`)
	}
	q.WriteString(` FROM (SELECT (SELECT p.name FROM permissions p WHERE p.id = rp.permission_id) AS n
		FROM role_permissions rp WHERE rp.role_id = r.id) perms), `)
	// What provisioning.Service.EmailVerified decides, from the same rows
	// TrustedVerifiedEmails reads; nothing counts without a trusted
	// provider.
	if trusted == 0 {
		q.WriteString(`FALSE`)
	} else {
		q.WriteString(`u.email <> '' AND EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id AND i.email = u.email AND i.email_verified = `)
		q.WriteString(param())
		q.WriteString(` AND i.provider IN (`)
		for i := range trusted {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(param())
		}
		q.WriteString(`))`)
	}
	// The session's identity, by its key (NULL columns without one).
	q.WriteString(`, si.username, si.upstream_groups, `)
	// The user's organization roles as UserOrgRoles gives them, sorted
	// byte-wise (PostgreSQL's ORDER BY follows the database's collation
	// unless told "C"; SQLite's is binary), joined by permSep (slugs and
	// role names never hold it): the groups claim lists them in one order
	// at sign-in, refresh and UserInfo.
	if !orgRoles {
		q.WriteString(`NULL`)
	} else {
		if postgres {
			q.WriteString(`(SELECT string_agg(n, chr(31) ORDER BY n COLLATE "C")`)
		} else {
			q.WriteString(`(SELECT group_concat(n, char(31) ORDER BY n)`)
		}
		q.WriteString(` FROM (SELECT o.slug || ':' || mr.name AS n FROM memberships um
		JOIN organizations o ON o.id = um.organization_id JOIN roles mr ON mr.id = um.role_id
		WHERE um.user_id = s.user_id AND um.status = `)
		q.WriteString(param())
		q.WriteString(`) org_roles)`)
	}
	// When the upstream last vouched for the identity, and whether there
	// is anything to re-check with (upstream re-checks).
	q.WriteString(`, uc.checked_at, COALESCE(uc.saved <> '', FALSE)`)
	q.WriteString(`
	FROM refresh_tokens t
	JOIN sessions s ON s.id = t.session_id
	JOIN users u ON u.id = s.user_id
	LEFT JOIN memberships m ON m.user_id = s.user_id AND m.organization_id = s.active_org_id AND m.status = `)
	q.WriteString(param())
	q.WriteString(`
	LEFT JOIN roles r ON r.id = m.role_id
	LEFT JOIN identities si ON si.id = s.identity_id
	LEFT JOIN upstream_checks uc ON uc.identity_id = s.identity_id
	WHERE t.token_hash = `)
	q.WriteString(param())
	text := q.String()
	refreshGrantQueries.Store(key, text)
	return text
}

// RotateRefreshToken marks the token oldID as rotated into next, inserts
// next, and marks the session used (last_used_at = now), in one
// statement. The rotation is conditional: it changes nothing and returns
// ErrConflict unless, at now, oldID is a token of next's session that is
// neither rotated, revoked nor expired, its session is neither revoked nor
// expired, and the session's user is not disabled. A concurrent
// redemption that won, a revocation, an expiry: the caller reads the
// token again (FindRefreshGrant) to learn which. It returns no session
// (nil): the caller read it with the token.
//
// Race safety. On PostgreSQL the statement updates the session row
// first (a data-modifying CTE the token update waits for), so it takes
// the session's row lock before the old token's, as every writer of the
// family does (RevokeSession, AddRefreshToken): a revocation either
// commits first, and the rotation finds the session revoked, or waits for
// the rotation and sweeps its successor too; of two rotations of one
// token the second waits for the first and then finds the token rotated
// (the conditional update re-checks the row it waited for). On SQLite one
// statement is one write transaction, serialised with every other: one
// INSERT … ON CONFLICT DO UPDATE inserts the successor and updates the
// old row, both or neither as the liveness check over the old token, its
// session and user says, and a trigger (migration 00006) marks the
// session used when the old row is rotated.
//
// It goes straight to the pool as a statement prepared once per pooled
// connection (stmtCache): SQLite compiles the statement and its trigger
// once instead of at every refresh. Its faults are noted as GORM's
// statements' are (connHealth), and a unique violation is ErrConflict as
// through GORM.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next *RefreshToken, now time.Time) (*Session, error) {
	if next.ID == "" {
		next.ID = NewID()
	}
	var q string
	var args []any
	if s.db.Dialector.Name() == "postgres" {
		q, args = rotatePostgres, []any{now, next.SessionID, now,
			now, next.ID, oldID, next.SessionID, now,
			next.ID, next.SessionID, next.TokenHash, next.ClientID, next.CreatedAt, next.ExpiresAt}
	} else {
		q, args = rotateSQLite, []any{oldID, next.SessionID, now, now,
			next.ID, next.TokenHash, next.ClientID, next.CreatedAt, next.ExpiresAt,
			now, next.ID}
	}
	var res sql.Result
	var err error
	if st := s.stmts.stmt(ctx, q); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = s.db.WithContext(ctx).Statement.ConnPool.ExecContext(ctx, q, args...)
	}
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		s.health.note(err)
		if t, ok := s.db.Dialector.(gorm.ErrorTranslator); ok {
			err = t.Translate(err)
		}
		return nil, mapErr(err, "rotate refresh token")
	}
	if n == 0 {
		return nil, ErrConflict
	}
	return nil, nil
}

// rotatePostgres: s locks and touches the live session; o rotates the
// old token only once s has (EXISTS over s); the successor is inserted
// for the row o rotated. The INSERT reports one row, or none. Arguments:
// now, session, now; now, next, old, session, now; next, session, hash,
// client, created, expires.
const rotatePostgres = `WITH s AS (
	UPDATE sessions SET last_used_at = $1
	WHERE id = $2 AND revoked_at IS NULL AND expires_at > $3
	AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND users.disabled)
	RETURNING id
), o AS (
	UPDATE refresh_tokens SET rotated_at = $4, replaced_by = $5
	WHERE id = $6 AND session_id = $7 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $8
	AND EXISTS (SELECT 1 FROM s)
	RETURNING id
)
INSERT INTO refresh_tokens (id, session_id, token_hash, client_id, created_at, expires_at)
SELECT $9::text, $10::text, $11::text, $12::text, $13::timestamptz, $14::timestamptz FROM o`

// rotateSQLite: live is the old token when it, its session and user may
// rotate; the successor is inserted and the old row (inserted again with
// its own values, so its id conflicts) takes rotated_at and replaced_by.
// SQLite evaluates the whole SELECT before writing (it reads the table
// it inserts into), so both rows see the state before the statement. The
// INSERT reports two rows, or none. Arguments: old, session, now, now;
// next, hash, client, created, expires; now, next.
const rotateSQLite = `WITH live AS (
	SELECT o.* FROM refresh_tokens o
	JOIN sessions s ON s.id = o.session_id
	JOIN users u ON u.id = s.user_id
	WHERE o.id = ? AND o.session_id = ? AND o.rotated_at IS NULL AND o.revoked_at IS NULL AND o.expires_at > ?
	AND s.revoked_at IS NULL AND s.expires_at > ? AND NOT u.disabled
)
INSERT INTO refresh_tokens (id, session_id, token_hash, client_id, created_at, expires_at, rotated_at, replaced_by)
SELECT ?, session_id, ?, ?, ?, ?, NULL, NULL FROM live
UNION ALL
SELECT id, session_id, token_hash, client_id, created_at, expires_at, ?, ? FROM live WHERE true
ON CONFLICT (id) DO UPDATE SET rotated_at = excluded.rotated_at, replaced_by = excluded.replaced_by`
