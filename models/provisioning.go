package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Queries for just-in-time provisioning, linking, org sync and
// invitations (consumed by provisioning.Service). Those a login uses open
// no transaction of their own: the service runs a whole login in one
// InTx. On SQLite write transactions begin IMMEDIATE, so a login decides
// on rows nothing else changes meanwhile. On PostgreSQL logins of one
// user queue on the user's row, which each of them updates; for
// everything else (new users, shared organizations, invitations, an
// administrator at work) every write here is conditional or an ON
// CONFLICT upsert, so a concurrent change turns it into a no-op, never an
// error.

// System role ids and names, seeded by migration 00002.
const (
	RoleOwnerID  = "role-owner"
	RoleAdminID  = "role-admin"
	RoleMemberID = "role-member"
	RoleViewerID = "role-viewer"
)

// Invitation statuses. An invitation past its expiry keeps status
// pending (its expires_at tells) until a new invitation of the same email
// to the same organization replaces it and marks it expired.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationRevoked  = "revoked"
	InvitationExpired  = "expired"
)

// LoginUser is the user behind an identity, as a login finds it.
type LoginUser struct {
	User
	IdentityID string
}

// FindLoginUser returns the user of the identity (provider, subject) and
// the identity's id, in one query; ErrNotFound for an unknown identity.
func (s *Store) FindLoginUser(ctx context.Context, provider, subject string) (*LoginUser, error) {
	var out LoginUser
	res := s.db.WithContext(ctx).Table("users").
		Select("users.*, identities.id AS identity_id").
		Joins("JOIN identities ON identities.user_id = users.id").
		Where("identities.provider = ? AND identities.subject = ?", provider, subject).
		Limit(1).Scan(&out)
	if res.Error != nil {
		return nil, mapErr(res.Error, "find identity")
	}
	if res.RowsAffected == 0 {
		return nil, mapErr(gorm.ErrRecordNotFound, "find identity")
	}
	return &out, nil
}

// InsertUser inserts a user.
func (s *Store) InsertUser(ctx context.Context, u *User) error {
	if u.ID == "" {
		u.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(u).Error, "create user")
}

// InsertIdentityIfAbsent inserts an identity unless one with the same
// (provider, subject) exists, and reports whether it did. It never fails
// on that conflict: on PostgreSQL a concurrent insert of the same pair
// makes it wait for that transaction and then do nothing.
func (s *Store) InsertIdentityIfAbsent(ctx context.Context, id *Identity) (bool, error) {
	if id.ID == "" {
		id.ID = NewID()
	}
	if id.RawClaims == "" {
		id.RawClaims = "{}"
	}
	if id.UpstreamGroups == "" {
		id.UpstreamGroups = "[]"
	}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "provider"}, {Name: "subject"}},
		DoNothing: true,
	}).Create(id)
	return res.RowsAffected == 1, mapErr(res.Error, "create identity")
}

// UpdateIdentityLogin refreshes an identity's profile fields, upstream
// groups, username and last-login time.
func (s *Store) UpdateIdentityLogin(ctx context.Context, identityID string, fields Identity, now time.Time) error {
	err := s.db.WithContext(ctx).Model(&Identity{}).Where("id = ?", identityID).Updates(map[string]any{
		"email": fields.Email, "email_verified": fields.EmailVerified, "name": fields.Name,
		"avatar_url": fields.AvatarURL, "raw_claims": fields.RawClaims, "upstream_groups": fields.UpstreamGroups,
		"username": fields.Username, "last_login_at": now, "updated_at": now,
	}).Error
	return mapErr(err, "update identity")
}

// UpdateUserLogin sets the given profile columns and the last-login time
// of a user.
func (s *Store) UpdateUserLogin(ctx context.Context, userID string, profile map[string]any, now time.Time) error {
	updates := map[string]any{"last_login_at": now, "updated_at": now}
	for k, v := range profile {
		updates[k] = v
	}
	return mapErr(s.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).Updates(updates).Error, "update user")
}

// EmailUser is a user holding an identity with a given verified email.
// Trusted: one such identity is of a provider trusted for email, whose
// word on the address counts (config `trusted_email`).
type EmailUser struct {
	User
	Trusted bool
}

// UsersWithVerifiedEmail returns the users holding an identity whose
// verified email is email (compared exactly: provisioning stores emails
// in lowercase), oldest first, each marked Trusted when one such
// identity's provider is among trusted.
func (s *Store) UsersWithVerifiedEmail(ctx context.Context, email string, trusted []string) ([]EmailUser, error) {
	holders := s.db.Model(&Identity{}).Select("user_id").Where("email = ? AND email_verified = ?", email, true)
	var out []EmailUser
	q := s.db.WithContext(ctx).Table("users").Where("id IN (?)", holders).Order("created_at, id")
	if len(trusted) == 0 {
		q = q.Select("users.*, FALSE AS trusted")
	} else {
		// A fresh subquery: GORM statements are not reusable once built.
		vouched := vouching(s.db, trusted).Select("user_id").Where("email = ?", email)
		q = q.Select("users.*, (users.id IN (?)) AS trusted", vouched)
	}
	err := q.Scan(&out).Error
	return out, mapErr(err, "find users by email")
}

// vouching selects the identities whose word on their email counts: the
// email is reported verified and the provider is among trusted (config
// `trusted_email`), which must not be empty.
func vouching(db *gorm.DB, trusted []string) *gorm.DB {
	return db.Model(&Identity{}).Where("email_verified = ? AND provider IN ?", true, trusted)
}

// TrustedVerifiedEmails returns, without repeats, the addresses that the
// user's identities of providers among trusted report verified: the only
// addresses Gatehouse may state verified for this user. None when trusted
// is empty.
func (s *Store) TrustedVerifiedEmails(ctx context.Context, userID string, trusted []string) ([]string, error) {
	if len(trusted) == 0 {
		return nil, nil
	}
	var out []string
	// On every mint, after a refresh has rotated: a read retried on a
	// live connection, like the others on that path.
	err := s.read(ctx, func(db *gorm.DB) error {
		out = nil
		return vouching(db, trusted).Where("user_id = ? AND email <> ''", userID).Distinct().Pluck("email", &out).Error
	})
	return out, mapErr(err, "find verified emails")
}

// TrustedOnly keeps the users whose email a trusted provider verified.
func TrustedOnly(users []EmailUser) []User {
	var out []User
	for _, u := range users {
		if u.Trusted {
			out = append(out, u.User)
		}
	}
	return out
}

// LockUser takes the user's row lock for the rest of the transaction (by
// touching updated_at; SQLite write transactions are exclusive anyway), so
// checks on the user's identities cannot race. ErrNotFound for an unknown
// user.
func (s *Store) LockUser(ctx context.Context, userID string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).Update("updated_at", s.db.NowFunc())
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "find user")
	}
	return mapErr(res.Error, "lock user")
}

// DeleteIdentity deletes one identity of a user; ErrNotFound when the user
// has no such identity.
func (s *Store) DeleteIdentity(ctx context.Context, userID, identityID string) error {
	res := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", identityID, userID).Delete(&Identity{})
	if res.Error == nil && res.RowsAffected == 0 {
		return mapErr(gorm.ErrRecordNotFound, "delete identity")
	}
	return mapErr(res.Error, "delete identity")
}

// UpsertSyncMembership creates the membership (user, organization) with
// m's role, status and source, or updates role and status of an existing
// one when it has the same source. It reports whether it changed a row:
// false means the membership was already so (a concurrent login wrote
// it), or one of another source (made by hand, or synced from another
// provider) is there, and it is left untouched.
func (s *Store) UpsertSyncMembership(ctx context.Context, m *Membership) (bool, error) {
	if m.ID == "" {
		m.ID = NewID()
	}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "organization_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"role_id", "status", "updated_at"}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "memberships.source = excluded.source AND " +
			"(memberships.role_id <> excluded.role_id OR memberships.status <> excluded.status)"}}},
	}).Create(m)
	return res.RowsAffected == 1, mapErr(res.Error, "upsert membership")
}

// UpdateSyncMembership sets role and status of a membership if its source
// is still source, and reports whether that changed it.
func (s *Store) UpdateSyncMembership(ctx context.Context, id, source, roleID, status string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&Membership{}).
		Where("id = ? AND source = ? AND (role_id <> ? OR status <> ?)", id, source, roleID, status).
		Updates(map[string]any{"role_id": roleID, "status": status, "updated_at": now})
	return res.RowsAffected == 1, mapErr(res.Error, "update membership")
}

// DeleteSyncMembership deletes a membership if its source is still
// source, and reports whether it did.
func (s *Store) DeleteSyncMembership(ctx context.Context, id, source string) (bool, error) {
	res := s.db.WithContext(ctx).Where("id = ? AND source = ?", id, source).Delete(&Membership{})
	return res.RowsAffected == 1, mapErr(res.Error, "delete membership")
}

// FindOrganizationsBySlugs returns the organizations with these slugs.
func (s *Store) FindOrganizationsBySlugs(ctx context.Context, slugs []string) ([]Organization, error) {
	var out []Organization
	if len(slugs) == 0 {
		return out, nil
	}
	err := s.db.WithContext(ctx).Where("slug IN ?", slugs).Find(&out).Error
	return out, mapErr(err, "find organizations")
}

// FindOrganizationExternalIDs returns the provider's upstream organization
// ids among externalIDs, mapped to Gatehouse organization ids.
func (s *Store) FindOrganizationExternalIDs(ctx context.Context, provider string, externalIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(externalIDs) == 0 {
		return out, nil
	}
	var rows []OrganizationExternalID
	err := s.db.WithContext(ctx).Where("provider = ? AND external_id IN ?", provider, externalIDs).Find(&rows).Error
	for _, r := range rows {
		out[r.ExternalID] = r.OrganizationID
	}
	return out, mapErr(err, "find organization external ids")
}

// OrgSyncLinks returns what ties an organization to org-sync rules: the
// organizations the literal targets are bound to (target → organization
// id) and the providers whose upstream organizations map to orgID.
func (s *Store) OrgSyncLinks(ctx context.Context, orgID string, targets []string) (map[string]string, []string, error) {
	bindings := map[string]string{}
	if len(targets) > 0 {
		var rows []OrgSyncBinding
		if err := s.db.WithContext(ctx).Where("target IN ?", targets).Find(&rows).Error; err != nil {
			return nil, nil, mapErr(err, "find org sync bindings")
		}
		for _, r := range rows {
			bindings[r.Target] = r.OrganizationID
		}
	}
	var providers []string
	err := s.db.WithContext(ctx).Model(&OrganizationExternalID{}).Where("organization_id = ?", orgID).
		Distinct().Order("provider").Pluck("provider", &providers).Error
	return bindings, providers, mapErr(err, "find organization external ids")
}

// SyncOrganizations is what org sync reads about organizations for one
// sign-in (FindSyncOrganizations).
type SyncOrganizations struct {
	Orgs []Organization
	// Mappings are every mapping of Orgs, of any provider.
	Mappings []OrganizationExternalID
	// Bindings maps the literal targets asked for that are bound to an
	// organization (of Orgs) to its id.
	Bindings map[string]string
}

// FindSyncOrganizations returns, in one query, the organizations org
// sync may resolve its targets to (those with one of the slugs, those the
// provider's upstream organizations externalIDs are mapped to, and those
// the literal targets are bound to), every mapping of those
// organizations, of any provider, and the targets' bindings.
func (s *Store) FindSyncOrganizations(ctx context.Context, slugs []string, provider string, externalIDs, targets []string) (SyncOrganizations, error) {
	out := SyncOrganizations{Bindings: map[string]string{}}
	if len(slugs) == 0 && len(externalIDs) == 0 && len(targets) == 0 {
		return out, nil
	}
	var rows []struct {
		Organization
		XID         *string    `gorm:"column:x_id"`
		XProvider   *string    `gorm:"column:x_provider"`
		XExternalID *string    `gorm:"column:x_external_id"`
		XCreatedAt  *time.Time `gorm:"column:x_created_at"`
		BTarget     *string    `gorm:"column:b_target"`
	}
	err := s.db.WithContext(ctx).Table("organizations").
		Select("organizations.*, x.id AS x_id, x.provider AS x_provider, x.external_id AS x_external_id, x.created_at AS x_created_at, b.target AS b_target").
		Joins("LEFT JOIN organization_external_ids x ON x.organization_id = organizations.id").
		Joins("LEFT JOIN org_sync_bindings b ON b.organization_id = organizations.id AND b.target IN ?", nonEmpty(targets)).
		Where("organizations.slug IN ? OR organizations.id IN (?) OR b.target IS NOT NULL", slugs,
			s.db.Model(&OrganizationExternalID{}).Select("organization_id").Where("provider = ? AND external_id IN ?", provider, externalIDs)).
		Order("organizations.slug, x.provider, x.external_id").Scan(&rows).Error
	if err != nil {
		return out, mapErr(err, "find organizations")
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if len(out.Orgs) == 0 || out.Orgs[len(out.Orgs)-1].ID != r.ID {
			out.Orgs = append(out.Orgs, r.Organization)
		}
		if r.XID != nil && !seen[*r.XID] {
			seen[*r.XID] = true
			out.Mappings = append(out.Mappings, OrganizationExternalID{ID: *r.XID, OrganizationID: r.ID, Provider: *r.XProvider,
				ExternalID: *r.XExternalID, CreatedAt: *r.XCreatedAt})
		}
		if r.BTarget != nil {
			out.Bindings[*r.BTarget] = r.ID
		}
	}
	return out, nil
}

// nonEmpty keeps an IN list valid SQL when there is nothing to match.
func nonEmpty(list []string) []string {
	if len(list) == 0 {
		return []string{""}
	}
	return list
}

// BindSyncTarget records that the literal org-sync target stands for the
// organization orgID, and reports whether this call recorded it: false
// without error when that very binding exists (a concurrent sign-in made
// it), ErrConflict when the target is bound to another organization,
// ErrNotFound when the organization is gone.
func (s *Store) BindSyncTarget(ctx context.Context, target, orgID string) (bool, error) {
	db := s.db.WithContext(ctx)
	res := db.Exec("INSERT INTO org_sync_bindings (target, organization_id, created_at) "+
		"SELECT ?, id, ? FROM organizations WHERE id = ? ON CONFLICT (target) DO NOTHING", target, s.db.NowFunc(), orgID)
	if res.Error != nil {
		return false, mapErr(res.Error, "bind org sync target")
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	var existing []OrgSyncBinding
	if err := db.Where("target = ?", target).Limit(1).Find(&existing).Error; err != nil {
		return false, mapErr(err, "find org sync binding")
	}
	switch {
	case len(existing) == 0:
		return false, mapErr(gorm.ErrRecordNotFound, "find organization")
	case existing[0].OrganizationID != orgID:
		return false, fmt.Errorf("org sync target %q is bound to another organization: %w", target, ErrConflict)
	}
	return false, nil
}

// EnsureOrganization returns the organization with o.Slug, creating it
// from o when there is none, and reports whether this call created it.
// Concurrent calls for one slug create one organization and none fails.
//
// With an externalID the organization stands for the provider's upstream
// organization of that id: one this call creates is mapped to it, and an
// existing one is returned only if it is mapped to it already, otherwise
// the answer is ErrConflict. A slug alone never proves which upstream
// organization an organization stands for (foo.co.uk and foo-co.uk both
// slugify to foo-co-uk); ErrConflict is how a sign-in that lost the race
// for a slug to another upstream organization learns it.
func (s *Store) EnsureOrganization(ctx context.Context, o *Organization, provider, externalID string) (bool, error) {
	if o.ID == "" {
		o.ID = NewID()
	}
	db := s.db.WithContext(ctx)
	res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "slug"}}, DoNothing: true}).Create(o)
	if res.Error != nil {
		return false, mapErr(res.Error, "create organization")
	}
	if res.RowsAffected == 0 {
		// Into a fresh value: GORM would add o's (unused) id to the query.
		var existing Organization
		if err := db.Where("slug = ?", o.Slug).Take(&existing).Error; err != nil {
			return false, mapErr(err, "find organization")
		}
		*o = existing
		if externalID == "" {
			return false, nil
		}
		var n int64
		err := db.Model(&OrganizationExternalID{}).
			Where("organization_id = ? AND provider = ? AND external_id = ?", o.ID, provider, externalID).Count(&n).Error
		if err != nil {
			return false, mapErr(err, "find organization external id")
		}
		if n == 0 {
			return false, fmt.Errorf("organization %q does not stand for %s organization %q: %w", o.Slug, provider, externalID, ErrConflict)
		}
		return false, nil
	}
	if externalID == "" {
		return true, nil
	}
	mapped, err := s.mapExternalID(ctx, o.ID, provider, externalID)
	if err != nil || mapped {
		return mapped, err
	}
	// A concurrent sign-in mapped the upstream organization to another
	// organization meanwhile: take back the one made here, which would
	// stand for nothing.
	if err := db.Where("id = ?", o.ID).Delete(&Organization{}).Error; err != nil {
		return false, mapErr(err, "delete organization")
	}
	return false, fmt.Errorf("%s organization %q is mapped to another organization: %w", provider, externalID, ErrConflict)
}

// ClaimOrganization maps the provider's upstream organization externalID
// to the existing organization orgID, which must be mapped to nothing yet,
// and reports whether this call mapped it: false without error when that
// very mapping exists (a concurrent sign-in made it), ErrConflict when the
// organization stands for another upstream organization or the upstream
// organization for another organization, ErrNotFound when the
// organization is gone. The organization's row stays locked for the rest
// of the transaction, so of concurrent claims of one organization one
// wins: the unique index covers (provider, external id), not the
// organization.
func (s *Store) ClaimOrganization(ctx context.Context, orgID, provider, externalID string) (bool, error) {
	db := s.db.WithContext(ctx)
	res := db.Model(&Organization{}).Where("id = ?", orgID).Update("updated_at", s.db.NowFunc())
	if res.Error != nil {
		return false, mapErr(res.Error, "lock organization")
	}
	if res.RowsAffected == 0 {
		return false, mapErr(gorm.ErrRecordNotFound, "find organization")
	}
	var existing []OrganizationExternalID
	if err := db.Where("organization_id = ?", orgID).Find(&existing).Error; err != nil {
		return false, mapErr(err, "find organization external ids")
	}
	for _, x := range existing {
		if x.Provider == provider && x.ExternalID == externalID {
			return false, nil
		}
	}
	if len(existing) > 0 {
		return false, fmt.Errorf("organization %s stands for another upstream organization: %w", orgID, ErrConflict)
	}
	mapped, err := s.mapExternalID(ctx, orgID, provider, externalID)
	if err == nil && !mapped {
		err = fmt.Errorf("%s organization %q is mapped to another organization: %w", provider, externalID, ErrConflict)
	}
	return mapped, err
}

// mapExternalID maps the provider's upstream organization to orgID unless
// it is mapped already (to any organization), and reports whether it did.
func (s *Store) mapExternalID(ctx context.Context, orgID, provider, externalID string) (bool, error) {
	ext := &OrganizationExternalID{ID: NewID(), OrganizationID: orgID, Provider: provider, ExternalID: externalID, CreatedAt: s.db.NowFunc()}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "provider"}, {Name: "external_id"}}, DoNothing: true,
	}).Create(ext)
	return res.RowsAffected == 1, mapErr(res.Error, "map organization external id")
}

// FindRolesByNames returns the system roles and the roles of the given
// organizations whose name is among names.
func (s *Store) FindRolesByNames(ctx context.Context, orgIDs, names []string) ([]Role, error) {
	var out []Role
	if len(names) == 0 {
		return out, nil
	}
	q := s.db.WithContext(ctx).Where("name IN ?", names)
	if len(orgIDs) > 0 {
		q = q.Where("organization_id IS NULL OR organization_id IN ?", orgIDs)
	} else {
		q = q.Where("organization_id IS NULL")
	}
	err := q.Order("level DESC, name").Find(&out).Error
	return out, mapErr(err, "find roles")
}

// FindRole returns the role with the given id.
func (s *Store) FindRole(ctx context.Context, id string) (*Role, error) {
	var r Role
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	return &r, mapErr(err, "find role")
}

// CreateRoleWithPermissions inserts a role and grants it the named
// permissions, creating permission rows that do not exist yet.
func (s *Store) CreateRoleWithPermissions(ctx context.Context, r *Role, permissions []string) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.CreateRole(ctx, r); err != nil {
			return err
		}
		return tx.grantPermissions(r.ID, permissions)
	})
}

// grantPermissions grants a role the named permissions, creating the
// permission rows that do not exist yet.
func (s *Store) grantPermissions(roleID string, permissions []string) error {
	if len(permissions) == 0 {
		return nil
	}
	now := s.db.NowFunc()
	rows := make([]Permission, len(permissions))
	for i, name := range permissions {
		rows[i] = Permission{ID: NewID(), Name: name, CreatedAt: now}
	}
	err := s.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).Create(&rows).Error
	if err != nil {
		return mapErr(err, "create permissions")
	}
	var ids []string
	if err := s.db.Model(&Permission{}).Where("name IN ?", permissions).Pluck("id", &ids).Error; err != nil {
		return mapErr(err, "find permissions")
	}
	links := make([]RolePermission, len(ids))
	for i, id := range ids {
		links[i] = RolePermission{RoleID: roleID, PermissionID: id}
	}
	return mapErr(s.db.Create(&links).Error, "grant permissions")
}

// CreateInvitation inserts a pending invitation. A pending invitation of
// the same email to the same organization is ErrConflict, unless it has
// expired: then it is marked expired first.
func (s *Store) CreateInvitation(ctx context.Context, inv *Invitation, now time.Time) error {
	if inv.ID == "" {
		inv.ID = NewID()
	}
	inv.Status = InvitationPending
	return s.InTx(ctx, func(tx *Store) error {
		err := tx.db.Model(&Invitation{}).
			Where("organization_id = ? AND email = ? AND status = ? AND expires_at <= ?", inv.OrganizationID, inv.Email, InvitationPending, now).
			Updates(map[string]any{"status": InvitationExpired, "updated_at": now}).Error
		if err != nil {
			return mapErr(err, "close expired invitation")
		}
		return mapErr(tx.db.Create(inv).Error, "create invitation")
	})
}

// ListInvitations returns an organization's invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, orgID string) ([]Invitation, error) {
	var out []Invitation
	err := s.db.WithContext(ctx).Where("organization_id = ?", orgID).Order("created_at DESC, id").Find(&out).Error
	return out, mapErr(err, "list invitations")
}

// RevokeInvitation closes a pending invitation of the organization. It
// returns ErrNotFound for an unknown invitation and ErrConflict for one
// that is no longer pending.
func (s *Store) RevokeInvitation(ctx context.Context, orgID, id string, now time.Time) (*Invitation, error) {
	var inv Invitation
	err := s.InTx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Invitation{}).Where("id = ? AND organization_id = ? AND status = ?", id, orgID, InvitationPending).
			Updates(map[string]any{"status": InvitationRevoked, "updated_at": now})
		if res.Error != nil {
			return mapErr(res.Error, "revoke invitation")
		}
		if err := tx.db.Where("id = ? AND organization_id = ?", id, orgID).Take(&inv).Error; err != nil {
			return mapErr(err, "find invitation")
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("invitation is %s: %w", inv.Status, ErrConflict)
		}
		return nil
	})
	return &inv, err
}

// PendingInvitations returns the pending, unexpired invitations of email
// (exact match: stored in lowercase), oldest first.
func (s *Store) PendingInvitations(ctx context.Context, email string, now time.Time) ([]Invitation, error) {
	var out []Invitation
	err := s.db.WithContext(ctx).Where("email = ? AND status = ? AND expires_at > ?", email, InvitationPending, now).
		Order("created_at, id").Find(&out).Error
	return out, mapErr(err, "find invitations")
}

// AcceptInvitation marks a pending invitation accepted and reports
// whether this call did (of concurrent callers, one).
func (s *Store) AcceptInvitation(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&Invitation{}).Where("id = ? AND status = ?", id, InvitationPending).
		Updates(map[string]any{"status": InvitationAccepted, "accepted_at": now, "updated_at": now})
	return res.RowsAffected == 1, mapErr(res.Error, "accept invitation")
}
