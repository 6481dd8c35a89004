package models

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Queries of the admin API (consumed by admin.Service, behind its small
// interfaces). Every list is keyset-paginated: rows come in a total order
// (a time, then the id), and a page starts after the sort key of the
// previous page's last row, so pages stay stable while rows are added.

// AdminOrgID is the organization whose members administer Gatehouse
// itself: grants held there apply to every organization and to users,
// sessions and the whole audit trail. `gatehouse admin grant` creates it;
// org sync never touches it.
const (
	AdminOrgID   = "org-admin"
	AdminOrgSlug = "gatehouse-admin"
)

// Page selects one page of a list. It asks for Limit+1 rows, so the
// caller knows whether another page follows.
type Page struct {
	Limit int
	// AfterTime and AfterID are the sort key of the previous page's last
	// row; an empty AfterID means the first page.
	AfterTime time.Time
	AfterID   string
	// Desc lists newest first.
	Desc bool
}

// keyset applies the page to a query ordered by (timeCol, idCol).
func keyset(q *gorm.DB, timeCol, idCol string, p Page) *gorm.DB {
	op, dir := ">", "ASC"
	if p.Desc {
		op, dir = "<", "DESC"
	}
	if p.AfterID != "" {
		q = q.Where(fmt.Sprintf("(%s %s ? OR (%s = ? AND %s %s ?))", timeCol, op, timeCol, idCol, op),
			p.AfterTime, p.AfterTime, p.AfterID)
	}
	return q.Order(timeCol + " " + dir + ", " + idCol + " " + dir).Limit(p.Limit + 1)
}

// ListOrganizations returns a page of organizations, oldest first.
func (s *Store) ListOrganizations(ctx context.Context, p Page) ([]Organization, error) {
	var out []Organization
	err := keyset(s.db.WithContext(ctx).Model(&Organization{}), "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list organizations")
}

// UpdateOrganization sets slug and name; a taken slug is ErrConflict, an
// unknown organization ErrNotFound.
func (s *Store) UpdateOrganization(ctx context.Context, o *Organization) error {
	res := s.db.WithContext(ctx).Model(&Organization{}).Where("id = ?", o.ID).
		Updates(map[string]any{"slug": o.Slug, "name": o.Name, "updated_at": o.UpdatedAt})
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "update organization")
	}
	return mapErr(res.Error, "update organization")
}

// DeleteOrganization deletes an organization with its memberships,
// invitations, API keys and roles; sessions in it lose their active
// organization.
func (s *Store) DeleteOrganization(ctx context.Context, id string) error {
	return s.InTx(ctx, func(tx *Store) error {
		// Rows that reference the organization's roles go first: the
		// cascade from organizations would meet them in either order.
		for _, m := range []any{&Membership{}, &Invitation{}, &APIKey{}} {
			if err := tx.db.Where("organization_id = ?", id).Delete(m).Error; err != nil {
				return mapErr(err, "delete organization")
			}
		}
		res := tx.db.Where("id = ?", id).Delete(&Organization{})
		if res.Error == nil && res.RowsAffected == 0 {
			return mapErr(gorm.ErrRecordNotFound, "delete organization")
		}
		return mapErr(res.Error, "delete organization")
	})
}

// Member is a membership with its user and role, as the admin API lists it.
type Member struct {
	Membership
	Email     string
	Name      string
	RoleName  string
	RoleLevel int
}

func (s *Store) members(ctx context.Context) *gorm.DB {
	return s.db.WithContext(ctx).Table("memberships").
		Select("memberships.*, users.email AS email, users.name AS name, roles.name AS role_name, roles.level AS role_level").
		Joins("JOIN users ON users.id = memberships.user_id").
		Joins("JOIN roles ON roles.id = memberships.role_id")
}

// ListMembers returns a page of an organization's memberships (every
// status), oldest first.
func (s *Store) ListMembers(ctx context.Context, orgID string, p Page) ([]Member, error) {
	var out []Member
	q := s.members(ctx).Where("memberships.organization_id = ?", orgID)
	err := keyset(q, "memberships.created_at", "memberships.id", p).Scan(&out).Error
	return out, mapErr(err, "list members")
}

// FindMember returns the user's membership of the organization, any status.
func (s *Store) FindMember(ctx context.Context, orgID, userID string) (*Member, error) {
	var out []Member
	err := s.members(ctx).Where("memberships.organization_id = ? AND memberships.user_id = ?", orgID, userID).Limit(1).Scan(&out).Error
	if err == nil && len(out) == 0 {
		err = gorm.ErrRecordNotFound
	}
	if err != nil {
		return nil, mapErr(err, "find membership")
	}
	return &out[0], nil
}

// UpdateMembership sets a membership's role and status. The membership
// becomes manual: an administrator's word is final, and org sync never
// changes it again.
func (s *Store) UpdateMembership(ctx context.Context, id, roleID, status string, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&Membership{}).Where("id = ?", id).
		Updates(map[string]any{"role_id": roleID, "status": status, "source": SourceManual, "updated_at": now}).Error
	return mapErr(err, "update membership")
}

// DeleteMembership deletes a membership.
func (s *Store) DeleteMembership(ctx context.Context, id string) error {
	return mapErr(s.db.WithContext(ctx).Where("id = ?", id).Delete(&Membership{}).Error, "delete membership")
}

// CountActiveAtLevel counts the active memberships of an organization
// whose role has at least the given level (its owners, for level 100).
func (s *Store) CountActiveAtLevel(ctx context.Context, orgID string, level int) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Table("memberships").Joins("JOIN roles ON roles.id = memberships.role_id").
		Where("memberships.organization_id = ? AND memberships.status = ? AND roles.level >= ?", orgID, MembershipActive, level).
		Count(&n).Error
	return n, mapErr(err, "count members")
}

// ListRoles returns a page of the roles usable in an organization: the
// system roles and its own, by level (highest first), then id.
func (s *Store) ListRoles(ctx context.Context, orgID string, afterLevel int, afterID string, limit int) ([]Role, error) {
	var out []Role
	q := s.db.WithContext(ctx).Where("organization_id IS NULL OR organization_id = ?", orgID)
	if afterID != "" {
		q = q.Where("(level < ? OR (level = ? AND id > ?))", afterLevel, afterLevel, afterID)
	}
	err := q.Order("level DESC, id ASC").Limit(limit + 1).Find(&out).Error
	return out, mapErr(err, "list roles")
}

// RolePermissions returns the permission names of each role.
func (s *Store) RolePermissions(ctx context.Context, roleIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(roleIDs) == 0 {
		return out, nil
	}
	var rows []struct{ RoleID, Name string }
	err := s.db.WithContext(ctx).Table("role_permissions").
		Select("role_permissions.role_id AS role_id, permissions.name AS name").
		Joins("JOIN permissions ON permissions.id = role_permissions.permission_id").
		Where("role_permissions.role_id IN ?", roleIDs).Order("permissions.name").Scan(&rows).Error
	for _, r := range rows {
		out[r.RoleID] = append(out[r.RoleID], r.Name)
	}
	return out, mapErr(err, "list role permissions")
}

// UpdateRole writes a role's name, description and level and, when
// permissions is not nil, replaces its grants.
func (s *Store) UpdateRole(ctx context.Context, r *Role, permissions []string) error {
	return s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Role{}).Where("id = ?", r.ID).Updates(map[string]any{
			"name": r.Name, "description": r.Description, "level": r.Level, "updated_at": r.UpdatedAt})
		if res.Error != nil {
			return mapErr(res.Error, "update role")
		}
		if res.RowsAffected == 0 {
			return mapErr(gorm.ErrRecordNotFound, "update role")
		}
		if permissions == nil {
			return nil
		}
		if err := tx.db.Where("role_id = ?", r.ID).Delete(&RolePermission{}).Error; err != nil {
			return mapErr(err, "update role permissions")
		}
		return tx.grantPermissions(r.ID, permissions)
	})
}

// RoleUses counts the memberships and pending invitations holding a role.
func (s *Store) RoleUses(ctx context.Context, roleID string) (int64, error) {
	var m, i int64
	db := s.db.WithContext(ctx)
	if err := db.Model(&Membership{}).Where("role_id = ?", roleID).Count(&m).Error; err != nil {
		return 0, mapErr(err, "count role uses")
	}
	err := db.Model(&Invitation{}).Where("role_id = ? AND status = ?", roleID, InvitationPending).Count(&i).Error
	return m + i, mapErr(err, "count role uses")
}

// DeleteRole deletes an organization's role (with its grants and closed
// invitations); ErrConflict while memberships or pending invitations
// hold it.
func (s *Store) DeleteRole(ctx context.Context, orgID, id string) error {
	return s.InTx(ctx, func(tx *Store) error {
		n, err := tx.RoleUses(ctx, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("role is held by %d memberships or pending invitations: %w", n, ErrConflict)
		}
		if err := tx.db.Where("role_id = ?", id).Delete(&Invitation{}).Error; err != nil {
			return mapErr(err, "delete role")
		}
		res := tx.db.Where("id = ? AND organization_id = ? AND system = ?", id, orgID, false).Delete(&Role{})
		if res.Error == nil && res.RowsAffected == 0 {
			return mapErr(gorm.ErrRecordNotFound, "delete role")
		}
		return mapErr(res.Error, "delete role")
	})
}

// UserFilter narrows ListUsers.
type UserFilter struct {
	// Email matches exactly (emails are stored in lowercase).
	Email string
	// Disabled, when set, keeps only disabled (true) or enabled users.
	Disabled *bool
	// Search, when set, keeps users whose email or name contains it,
	// whatever the case (it is matched literally: % and _ are no
	// wildcards).
	Search string
}

// ListUsers returns a page of users, oldest first.
func (s *Store) ListUsers(ctx context.Context, f UserFilter, p Page) ([]User, error) {
	var out []User
	q := s.db.WithContext(ctx).Model(&User{})
	if f.Email != "" {
		q = q.Where("email = ?", f.Email)
	}
	if f.Disabled != nil {
		q = q.Where("disabled = ?", *f.Disabled)
	}
	if f.Search != "" {
		// SQLite's LOWER folds ASCII only: the text as typed is matched
		// too, so a name like "Émilie" is found there when typed so.
		like := "%" + likeEscaper.Replace(strings.ToLower(f.Search)) + "%"
		typed := "%" + likeEscaper.Replace(f.Search) + "%"
		q = q.Where(`(LOWER(email) LIKE ? ESCAPE '\' OR LOWER(name) LIKE ? ESCAPE '\' OR email LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\')`,
			like, like, typed, typed)
	}
	err := keyset(q, "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list users")
}

// SetUserDisabled disables or enables a user and reports whether that
// changed anything; ErrNotFound for an unknown user.
func (s *Store) SetUserDisabled(ctx context.Context, id string, disabled bool, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ? AND disabled = ?", id, !disabled).
		Updates(map[string]any{"disabled": disabled, "updated_at": now})
	if res.Error != nil {
		return false, mapErr(res.Error, "update user")
	}
	if res.RowsAffected == 0 {
		if _, err := s.FindUser(ctx, id); err != nil {
			return false, err
		}
	}
	return res.RowsAffected == 1, nil
}

// ListUserSessionsPage returns a page of a user's sessions, newest first
// when p.Desc.
func (s *Store) ListUserSessionsPage(ctx context.Context, userID string, p Page) ([]Session, error) {
	var out []Session
	err := keyset(s.db.WithContext(ctx).Model(&Session{}).Where("user_id = ?", userID), "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list sessions")
}

// ListUserBrowserSessionsPage returns a page of a user's browser sessions
// (single sign-on), newest first when p.Desc; revoked and expired ones
// too, until pruned.
func (s *Store) ListUserBrowserSessionsPage(ctx context.Context, userID string, p Page) ([]BrowserSession, error) {
	var out []BrowserSession
	err := keyset(s.db.WithContext(ctx).Model(&BrowserSession{}).Where("user_id = ?", userID), "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list browser sessions")
}

// ListInvitationsPage returns a page of an organization's invitations.
func (s *Store) ListInvitationsPage(ctx context.Context, orgID string, p Page) ([]Invitation, error) {
	var out []Invitation
	err := keyset(s.db.WithContext(ctx).Model(&Invitation{}).Where("organization_id = ?", orgID), "created_at", "id", p).Find(&out).Error
	return out, mapErr(err, "list invitations")
}

// AuditFilter narrows ListAuditEvents; empty fields match everything.
type AuditFilter struct {
	OrganizationID string
	Type           string
	Outcome        string
	ActorUserID    string
	SubjectUserID  string
	ClientID       string
	Since, Until   time.Time
}

// ListAuditEvents returns up to limit+1 events matching f, newest first,
// older than the event beforeID (0: from the newest).
func (s *Store) ListAuditEvents(ctx context.Context, f AuditFilter, beforeID int64, limit int) ([]AuditEvent, error) {
	var out []AuditEvent
	q := s.db.WithContext(ctx).Model(&AuditEvent{})
	for col, v := range map[string]string{"organization_id": f.OrganizationID, "type": f.Type, "outcome": f.Outcome,
		"actor_user_id": f.ActorUserID, "subject_user_id": f.SubjectUserID, "client_id": f.ClientID} {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where("occurred_at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		q = q.Where("occurred_at < ?", f.Until)
	}
	if beforeID > 0 {
		q = q.Where("id < ?", beforeID)
	}
	err := q.Order("id DESC").Limit(limit + 1).Find(&out).Error
	return out, mapErr(err, "list audit events")
}
