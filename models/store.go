package models

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrNotFound reports that no row matched.
var ErrNotFound = errors.New("not found")

// ErrConflict reports that a unique constraint rejected the write.
var ErrConflict = errors.New("already exists")

// NewID returns a random identifier for a new row.
func NewID() string { return uuid.NewString() }

// Store runs Gatehouse's queries; its methods are safe for concurrent use.
type Store struct {
	db *gorm.DB
	// inTx: db is a transaction (InTx); a failed read is not retried.
	inTx   bool
	health *connHealth
	// stmts is nil in a transaction: statements there run directly.
	stmts *stmtCache
}

// NewStore wraps an open database.
func NewStore(db *DB) *Store { return &Store{db: db.DB, health: db.health, stmts: db.stmts} }

// Gorm exposes the handle for packages that own their own queries.
func (s *Store) Gorm() *gorm.DB { return s.db }

// InTx runs fn in one transaction with a Store bound to it. When the
// transaction cannot even begin because of a transient fault (the pooled
// connection was dead), nothing was written, so it begins once more on a
// connection checked alive; fn's own failures are never retried (a
// transaction cut short is rolled back by the server).
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) error {
	began := false
	body := func(tx *gorm.DB) error {
		began = true
		return fn(&Store{db: tx, inTx: true, health: s.health})
	}
	err := s.db.WithContext(ctx).Transaction(body)
	if err != nil && !began && !s.inTx && ctx.Err() == nil && worthRetry(err) {
		s.health.note(err)
		err = s.db.WithContext(ctx).Transaction(body)
	}
	s.health.note(err) // BEGIN and COMMIT run outside the statement callbacks
	return err
}

// mapErr turns driver errors into the package's sentinel errors.
func mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w", what, ErrConflict)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// CreateUserWithIdentity inserts a user and its first identity in one
// transaction. A concurrent insert of the same (provider, subject) yields
// ErrConflict and leaves no user behind.
func (s *Store) CreateUserWithIdentity(ctx context.Context, u *User, id *Identity) error {
	if u.ID == "" {
		u.ID = NewID()
	}
	if id.ID == "" {
		id.ID = NewID()
	}
	id.UserID = u.ID
	if id.RawClaims == "" {
		id.RawClaims = "{}"
	}
	if id.UpstreamGroups == "" {
		id.UpstreamGroups = "[]"
	}
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.db.Create(u).Error; err != nil {
			return mapErr(err, "create user")
		}
		return mapErr(tx.db.Create(id).Error, "create identity")
	})
}

// FindUser returns the user with the given id.
func (s *Store) FindUser(ctx context.Context, id string) (*User, error) {
	var u User
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&u).Error })
	return &u, mapErr(err, "find user")
}

// FindIdentity returns the identity of (provider, subject).
func (s *Store) FindIdentity(ctx context.Context, provider, subject string) (*Identity, error) {
	var i Identity
	err := s.db.WithContext(ctx).Where("provider = ? AND subject = ?", provider, subject).Take(&i).Error
	return &i, mapErr(err, "find identity")
}

// ListIdentities returns a user's identities, oldest first.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]Identity, error) {
	var out []Identity
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	})
	return out, mapErr(err, "list identities")
}

// CreateOrganization inserts an organization; a taken slug is ErrConflict.
func (s *Store) CreateOrganization(ctx context.Context, o *Organization) error {
	if o.ID == "" {
		o.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(o).Error, "create organization")
}

// FindOrganization returns the organization with the given id.
func (s *Store) FindOrganization(ctx context.Context, id string) (*Organization, error) {
	var o Organization
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&o).Error
	return &o, mapErr(err, "find organization")
}

// FindOrganizationBySlug returns the organization with the given slug.
func (s *Store) FindOrganizationBySlug(ctx context.Context, slug string) (*Organization, error) {
	var o Organization
	err := s.db.WithContext(ctx).Where("slug = ?", slug).Take(&o).Error
	return &o, mapErr(err, "find organization")
}

// CreateRole inserts a role; a duplicate name in the same scope is ErrConflict.
func (s *Store) CreateRole(ctx context.Context, r *Role) error {
	if r.ID == "" {
		r.ID = NewID()
	}
	return mapErr(s.db.WithContext(ctx).Create(r).Error, "create role")
}

// UpsertMembership creates the membership of (user, organization) or, when
// one exists, sets its role, status and source.
func (s *Store) UpsertMembership(ctx context.Context, m *Membership) error {
	if m.ID == "" {
		m.ID = NewID()
	}
	if m.Status == "" {
		m.Status = MembershipActive
	}
	if m.Source == "" {
		m.Source = SourceManual
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "organization_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"role_id", "status", "source", "updated_at"}),
	}).Create(m).Error
	return mapErr(err, "upsert membership")
}

// CreateMembership inserts a membership; an existing one for the same
// user and organization is ErrConflict.
func (s *Store) CreateMembership(ctx context.Context, m *Membership) error {
	if m.ID == "" {
		m.ID = NewID()
	}
	if m.Status == "" {
		m.Status = MembershipActive
	}
	if m.Source == "" {
		m.Source = SourceManual
	}
	return mapErr(s.db.WithContext(ctx).Create(m).Error, "create membership")
}

// ListMemberships returns a user's memberships of every status.
func (s *Store) ListMemberships(ctx context.Context, userID string) ([]Membership, error) {
	var out []Membership
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	return out, mapErr(err, "list memberships")
}

// UserMembership is a membership with its organization and role, as a
// user's own view (/auth/me) lists it.
type UserMembership struct {
	Membership
	OrganizationSlug string
	OrganizationName string
	RoleName         string
}

// ListUserMemberships returns a user's memberships of every status with
// their organization and role, oldest first. It is one query, whatever
// the number of memberships.
func (s *Store) ListUserMemberships(ctx context.Context, userID string) ([]UserMembership, error) {
	var out []UserMembership
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table("memberships").
			Select("memberships.*, organizations.slug AS organization_slug, organizations.name AS organization_name, roles.name AS role_name").
			Joins("JOIN organizations ON organizations.id = memberships.organization_id").
			Joins("JOIN roles ON roles.id = memberships.role_id").
			Where("memberships.user_id = ?", userID).
			Order("memberships.created_at, memberships.id").Scan(&out).Error
	})
	return out, mapErr(err, "list memberships")
}
