package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gatehouse-id/gatehouse/models"
)

// Deleting a user honours an erasure request. What goes, what stays and
// how it is anonymized is documented in docs/admin-api.md ("Erasure
// requests"); the rules in short:
//
//   - the person's sessions end first, in the same transaction, so the
//     back-channel logouts of every app session are queued (the outbox
//     has no foreign key to sessions and keeps the user id only as the
//     logout token's sub, until delivered or given up);
//   - their row goes, and with it (the schema's cascades) identities with
//     their raw claims, memberships, sessions, refresh tokens,
//     authorization codes and browser sessions; invitations addressed to
//     any of their emails are deleted;
//   - API keys they created stay (they belong to the organization) with
//     no creator; invitations they sent stay with no inviter;
//   - the audit trail stays, with every reference to the person replaced
//     by one random pseudonym ("deleted-user:<hex>"), their emails erased
//     from every event's details, their names and upstream subjects
//     erased from the events about them, and the IP address cleared on
//     the events they made.

// AuditUserDeleted is the audit event of a deletion; its subject is the
// deleted user's pseudonym, never their id, email or name.
const AuditUserDeleted = "user.deleted"

// DeletedPrefix begins the pseudonym that replaces a deleted user's id in
// the audit trail.
const DeletedPrefix = "deleted-user:"

// Erased replaces a deleted person's email, name or upstream subject in
// audit details.
const Erased = "[erased]"

// revokeReasonDeleting is the revoke reason (and back-channel logout
// reason) of the sessions a deletion ends.
const revokeReasonDeleting = "user_deleted"

// DeletedUser says what deleting a user did.
type DeletedUser struct {
	// Reference is the pseudonym that stands for the person in the audit
	// trail from now on: the subject of the user.deleted event and of
	// every event that named them.
	Reference string `json:"reference"`
	// SessionsEnded counts the app sessions that were live: each has a
	// back-channel logout queued.
	SessionsEnded        int64 `json:"sessions_ended"`
	BrowserSessionsEnded int64 `json:"browser_sessions_ended"`
	IdentitiesDeleted    int   `json:"identities_deleted"`
	MembershipsDeleted   int   `json:"memberships_deleted"`
	InvitationsDeleted   int64 `json:"invitations_deleted"`
	// APIKeysKept are the ids of the API keys the person created: they
	// keep working, with no creator.
	APIKeysKept []string `json:"api_keys_kept"`
	// AuditEventsAnonymized counts the audit events rewritten.
	AuditEventsAnonymized int64 `json:"audit_events_anonymized"`
}

// DeleteUser deletes a user for good (an erasure request); see the rules
// above. Nobody deletes themselves, nor an administrator above their own
// level; the last active owner of an organization is not deleted (409:
// give the organization another owner first). A user already deleted is
// not found.
func (s *Service) DeleteUser(ctx context.Context, a Actor, userID string) (DeletedUser, error) {
	if userID == a.UserID {
		return DeletedUser{}, forbidden("you cannot delete yourself")
	}
	return s.deleteUser(ctx, a, false, userID)
}

// ConsoleDeleteUser is DeleteUser for the operator at the console
// (`gatehouse users delete`), with no actor: no level applies, the other
// rules do, and the audit event says "by": "console".
func (s *Service) ConsoleDeleteUser(ctx context.Context, userID string) (DeletedUser, error) {
	return s.deleteUser(ctx, Actor{}, true, userID)
}

func (s *Service) deleteUser(ctx context.Context, a Actor, console bool, userID string) (DeletedUser, error) {
	ref, err := newPseudonym()
	if err != nil {
		return DeletedUser{}, err
	}
	out := DeletedUser{Reference: ref, APIKeysKept: []string{}}
	err = s.store.InTx(ctx, func(tx Store) error {
		if !console {
			if err := s.mayActOnUser(ctx, tx, a, userID); err != nil {
				return err
			}
		}
		// The row lock orders the deletion after (or before) a sign-in
		// or an administrator's change to the same user.
		if err := tx.LockUser(ctx, userID); err != nil {
			return err
		}
		u, err := tx.FindUser(ctx, userID)
		if err != nil {
			return err
		}
		ms, err := tx.ListMemberships(ctx, userID)
		if err != nil {
			return err
		}
		if err := lastOwnerOf(ctx, tx, userID, ms); err != nil {
			return err
		}
		ids, err := tx.ListIdentities(ctx, userID)
		if err != nil {
			return err
		}
		er := newErasure(userID, ref, *u, ids)
		now := s.now()
		// Sessions end before their rows go: the trigger queues a
		// back-channel logout for each.
		if out.SessionsEnded, err = tx.RevokeUserSessions(ctx, userID, revokeReasonDeleting, now); err != nil {
			return err
		}
		if out.BrowserSessionsEnded, err = tx.RevokeUserBrowserSessions(ctx, userID, revokeReasonDeleting, now); err != nil {
			return err
		}
		if _, err := tx.SetLogoutDeliveriesAuditSubject(ctx, userID, ref); err != nil {
			return err
		}
		keys, err := tx.ListAPIKeysCreatedBy(ctx, userID)
		if err != nil {
			return err
		}
		for _, k := range keys {
			out.APIKeysKept = append(out.APIKeysKept, k.ID)
		}
		if out.InvitationsDeleted, err = tx.DeleteInvitationsTo(ctx, er.emails); err != nil {
			return err
		}
		if out.AuditEventsAnonymized, err = anonymizeAudit(ctx, tx, er); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, userID); err != nil {
			return err
		}
		out.IdentitiesDeleted, out.MembershipsDeleted = len(ids), len(ms)
		details := map[string]any{"sessions_ended": out.SessionsEnded, "browser_sessions_ended": out.BrowserSessionsEnded,
			"identities_deleted": out.IdentitiesDeleted, "memberships_deleted": out.MembershipsDeleted,
			"invitations_deleted": out.InvitationsDeleted, "api_keys_kept": out.APIKeysKept,
			"audit_events_anonymized": out.AuditEventsAnonymized}
		if console {
			details["by"] = "console"
		}
		return audit(ctx, tx, a, AuditUserDeleted, "", ref, details)
	})
	if err != nil {
		return DeletedUser{}, err
	}
	return out, nil
}

// lastOwnerOf refuses to delete the last active owner of an organization.
func lastOwnerOf(ctx context.Context, st Store, userID string, ms []models.Membership) error {
	for _, m := range ms {
		if m.Status != models.MembershipActive {
			continue
		}
		r, err := st.FindRole(ctx, m.RoleID)
		if err != nil {
			return err
		}
		if r.Level < OwnerLevel {
			continue
		}
		n, err := st.CountActiveAtLevel(ctx, m.OrganizationID, OwnerLevel)
		if err != nil {
			return err
		}
		if n <= 1 {
			return conflict("the user is the last active owner of organization %s: make someone else its owner first", m.OrganizationID)
		}
	}
	return nil
}

// newPseudonym returns a fresh "deleted-user:<24 hex>": random, so
// nothing (not even Gatehouse's secret) ties it back to the deleted id.
func newPseudonym() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pseudonym: %w", err)
	}
	return DeletedPrefix + hex.EncodeToString(b), nil
}

// erasure is what must leave the audit trail with a deleted user.
type erasure struct {
	id, ref string
	// emails are the person's addresses (profile and identities), in
	// lowercase; erased wherever they appear.
	emails []string
	// emailRE matches any of them, ignoring case.
	emailRE *regexp.Regexp
	// exact are values (lowercased) erased when a whole string of the
	// details of an event about the person equals one: names, upstream
	// subjects and usernames (a GitHub login), avatar URLs.
	exact map[string]bool
}

func newErasure(id, ref string, u models.User, ids []models.Identity) erasure {
	e := erasure{id: id, ref: ref, exact: map[string]bool{}}
	seen := map[string]bool{}
	addEmail := func(v string) {
		v = strings.ToLower(strings.TrimSpace(v))
		if v != "" && !seen[v] {
			seen[v] = true
			e.emails = append(e.emails, v)
		}
	}
	addExact := func(v string) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			e.exact[v] = true
		}
	}
	addEmail(u.Email)
	addExact(u.Name)
	addExact(u.AvatarURL)
	for _, i := range ids {
		addEmail(i.Email)
		addExact(i.Name)
		addExact(i.Subject)
		addExact(i.Username)
		addExact(i.AvatarURL)
	}
	if len(e.emails) > 0 {
		quoted := make([]string, len(e.emails))
		for i, m := range e.emails {
			quoted[i] = regexp.QuoteMeta(m)
		}
		e.emailRE = regexp.MustCompile("(?i)" + strings.Join(quoted, "|"))
	}
	return e
}

// auditPage is how many audit events anonymizeAudit reads at a time.
const auditPage = 500

// anonymizeAudit replaces the user's id by the pseudonym in the audit
// trail's actor and subject columns, clears the IP of the events the user
// made, and rewrites the details of every event that mentions them. It
// returns how many events changed (an event may count twice when both
// its columns and its details changed).
func anonymizeAudit(ctx context.Context, st Store, er erasure) (int64, error) {
	n, err := st.ReplaceAuditUser(ctx, er.id, er.ref)
	if err != nil {
		return 0, err
	}
	needles := append([]string{er.id}, er.emails...)
	// Details are stored as json.Marshal wrote them, which escapes '&',
	// '<', '>', quotes and backslashes ("a\u0026b@example.com"): an email
	// holding one of them is looked for in that form too, or the events
	// that name it without being about the person (an invitation to it)
	// would keep it.
	for _, m := range er.emails {
		if esc := jsonEscaped(m); esc != m {
			needles = append(needles, esc)
		}
	}
	var after int64
	for {
		rows, err := st.AuditEventsMentioning(ctx, er.ref, needles, after, auditPage)
		if err != nil {
			return n, err
		}
		for _, e := range rows {
			about := (e.ActorUserID != nil && *e.ActorUserID == er.ref) || (e.SubjectUserID != nil && *e.SubjectUserID == er.ref)
			if d, changed := er.scrub(e.Details, about); changed {
				if err := st.SetAuditDetails(ctx, e.ID, d); err != nil {
					return n, err
				}
				n++
			}
		}
		if len(rows) < auditPage {
			return n, nil
		}
		after = rows[len(rows)-1].ID
	}
}

// jsonEscaped returns s as it appears inside a JSON string that
// encoding/json wrote (without the quotes).
func jsonEscaped(s string) string {
	b, err := json.Marshal(s)
	if err != nil || len(b) < 2 {
		return s
	}
	return string(b[1 : len(b)-1])
}

// scrub rewrites an event's details (JSON): the user's id becomes the
// pseudonym, their emails are erased inside any string, and, in an event
// about them (about, or one whose details hold their id), a string that
// is wholly one of their names, subjects or avatar URLs is erased. It
// reports whether anything changed.
func (er erasure) scrub(details string, about bool) (string, bool) {
	about = about || strings.Contains(details, er.id)
	var v any
	dec := json.NewDecoder(strings.NewReader(details))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		// Not JSON (never written so): erase as text, never keep it.
		s := er.scrubString(details, false)
		return s, s != details
	}
	changed := false
	v = er.walk(v, about, &changed)
	if !changed {
		return details, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "{}", true
	}
	return string(b), true
}

func (er erasure) walk(v any, about bool, changed *bool) any {
	switch t := v.(type) {
	case string:
		s := er.scrubString(t, about)
		if s != t {
			*changed = true
		}
		return s
	case []any:
		for i := range t {
			t[i] = er.walk(t[i], about, changed)
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			nk := er.scrubString(k, false)
			if nk != k {
				*changed = true
			}
			out[nk] = er.walk(x, about, changed)
		}
		return out
	}
	return v
}

func (er erasure) scrubString(s string, about bool) string {
	if about && er.exact[strings.ToLower(strings.TrimSpace(s))] {
		return Erased
	}
	s = strings.ReplaceAll(s, er.id, er.ref)
	if er.emailRE != nil {
		s = er.emailRE.ReplaceAllLiteralString(s, Erased)
	}
	return s
}

// FindUserRef resolves what an operator typed at the console: a user id,
// or an email that exactly one user has as their profile email. Several
// users with the email is a conflict that names them.
func (s *Service) FindUserRef(ctx context.Context, ref string) (User, error) {
	ref = strings.TrimSpace(ref)
	if !strings.Contains(ref, "@") {
		u, err := s.store.FindUser(ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return User{}, fmt.Errorf("no user has the id %q: %w", ref, ErrNotFound)
		}
		if err != nil {
			return User{}, err
		}
		return userView(*u), nil
	}
	rows, err := s.store.ListUsers(ctx, models.UserFilter{Email: normalEmail(ref)}, models.Page{Limit: 11})
	if err != nil {
		return User{}, err
	}
	switch len(rows) {
	case 0:
		return User{}, fmt.Errorf("no user has the email %s: %w", normalEmail(ref), ErrNotFound)
	case 1:
		return userView(rows[0]), nil
	}
	ids := make([]string, 0, len(rows))
	for _, u := range rows {
		ids = append(ids, u.ID)
	}
	return User{}, conflict("%d users have the email %s (%s): name one by id", len(rows), normalEmail(ref), strings.Join(ids, ", "))
}

// ConsoleListUsers lists users for the operator at the console, oldest
// first, up to limit (filtered like ListUsers).
func (s *Service) ConsoleListUsers(ctx context.Context, q UserQuery, limit int) ([]User, error) {
	f := models.UserFilter{Email: normalEmail(q.Email)}
	if q.Disabled != "" {
		b, err := strconv.ParseBool(q.Disabled)
		if err != nil {
			return nil, invalid("disabled", "must be true or false")
		}
		f.Disabled = &b
	}
	rows, err := s.store.ListUsers(ctx, f, models.Page{Limit: limit})
	out := make([]User, 0, len(rows))
	for _, u := range rows[:min(len(rows), limit)] {
		out = append(out, userView(u))
	}
	return out, err
}
