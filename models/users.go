package models

import (
	"context"
	"strings"

	"gorm.io/gorm"
)

// Queries for deleting a user (an erasure request). The schema does the
// rest: deleting the users row cascades to identities, memberships,
// sessions (and with them refresh tokens and authorization codes) and
// browser sessions, and sets api_keys.created_by and
// invitations.invited_by to NULL.

// DeleteUser deletes the user's row and, through the schema's cascades,
// everything that hangs off it; ErrNotFound for an unknown user.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&User{})
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "delete user")
	}
	return mapErr(res.Error, "delete user")
}

// ListAPIKeysCreatedBy returns the API keys the user created, in every
// organization, oldest first.
func (s *Store) ListAPIKeysCreatedBy(ctx context.Context, userID string) ([]APIKey, error) {
	var out []APIKey
	err := s.db.WithContext(ctx).Where("created_by = ?", userID).Order("created_at, id").Find(&out).Error
	return out, mapErr(err, "list API keys by creator")
}

// DeleteInvitationsTo deletes every invitation (any status) addressed to
// one of the emails, compared in lowercase, and returns how many.
func (s *Store) DeleteInvitationsTo(ctx context.Context, emails []string) (int64, error) {
	if len(emails) == 0 {
		return 0, nil
	}
	lower := make([]string, len(emails))
	for i, e := range emails {
		lower[i] = strings.ToLower(e)
	}
	res := s.db.WithContext(ctx).Where("LOWER(email) IN ?", lower).Delete(&Invitation{})
	return res.RowsAffected, mapErr(res.Error, "delete invitations")
}

// ReplaceAuditUser rewrites the audit trail's references to a user: every
// actor_user_id and subject_user_id equal to userID becomes ref, and the
// ip of the events the user made (their actor, or their subject with no
// actor: a sign-in) is cleared. It returns how many events it changed.
func (s *Store) ReplaceAuditUser(ctx context.Context, userID, ref string) (int64, error) {
	db := s.db.WithContext(ctx).Model(&AuditEvent{})
	res := db.Where("actor_user_id = ? OR (actor_user_id IS NULL AND subject_user_id = ?)", userID, userID).Update("ip", "")
	if res.Error != nil {
		return 0, mapErr(res.Error, "clear audit ip")
	}
	var n int64
	for _, col := range []string{"actor_user_id", "subject_user_id"} {
		res := s.db.WithContext(ctx).Model(&AuditEvent{}).Where(col+" = ?", userID).Update(col, ref)
		if res.Error != nil {
			return 0, mapErr(res.Error, "replace audit user")
		}
		n += res.RowsAffected
	}
	return n, nil
}

// AuditEventsMentioning returns up to limit events with an id above
// afterID, in id order, whose actor or subject is ref or whose details
// contain, ignoring case, one of the needles. Needles match as substrings
// (LIKE with '%' and '_' escaped), so the caller decides what a match
// really is.
func (s *Store) AuditEventsMentioning(ctx context.Context, ref string, needles []string, afterID int64, limit int) ([]AuditEvent, error) {
	cond := []string{"actor_user_id = ?", "subject_user_id = ?"}
	args := []any{ref, ref}
	for _, n := range needles {
		if n == "" {
			continue
		}
		cond = append(cond, `LOWER(details) LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscaper.Replace(strings.ToLower(n))+"%")
	}
	var out []AuditEvent
	err := s.db.WithContext(ctx).Where("id > ?", afterID).Where("("+strings.Join(cond, " OR ")+")", args...).
		Order("id").Limit(limit).Find(&out).Error
	return out, mapErr(err, "find audit events")
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// SetAuditDetails replaces the details (JSON) of one audit event.
func (s *Store) SetAuditDetails(ctx context.Context, id int64, details string) error {
	return mapErr(s.db.WithContext(ctx).Model(&AuditEvent{}).Where("id = ?", id).Update("details", details).Error,
		"update audit details")
}

// SetLogoutDeliveriesAuditSubject makes the pending back-channel logouts
// of a user carry ref, not the user's id, in their audit events.
func (s *Store) SetLogoutDeliveriesAuditSubject(ctx context.Context, userID, ref string) (int64, error) {
	res := s.db.WithContext(ctx).Model(&LogoutDelivery{}).Where("user_id = ?", userID).Update("audit_subject", ref)
	return res.RowsAffected, mapErr(res.Error, "mark logout deliveries")
}
