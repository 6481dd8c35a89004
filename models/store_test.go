package models_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"

	"gorm.io/gorm/schema"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestModelsMatchSchema proves every model field has a column in the
// migrated schema and every column has a field, on both dialects.
func TestModelsMatchSchema(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		for _, m := range models.All() {
			s, err := schema.Parse(m, &sync.Map{}, db.NamingStrategy)
			if err != nil {
				t.Fatal(err)
			}
			cols, err := db.Migrator().ColumnTypes(m)
			if err != nil {
				t.Fatalf("%s: %v", s.Table, err)
			}
			var inDB []string
			for _, c := range cols {
				inDB = append(inDB, c.Name())
			}
			inModel := append([]string(nil), s.DBNames...)
			sort.Strings(inDB)
			sort.Strings(inModel)
			if len(inDB) == 0 {
				t.Errorf("table %s missing from the migrated schema", s.Table)
				continue
			}
			if !equal(inDB, inModel) {
				t.Errorf("table %s: schema columns %v, model columns %v", s.Table, inDB, inModel)
			}
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStoreContract(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)

		u := &models.User{Email: "ada@example.com", EmailVerified: true, Name: "Ada"}
		id := &models.Identity{Provider: "dev", Subject: "ada", Email: u.Email, EmailVerified: true}
		if err := s.CreateUserWithIdentity(ctx, u, id); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindIdentity(ctx, "dev", "ada")
		if err != nil || got.UserID != u.ID {
			t.Fatalf("FindIdentity = %+v, %v", got, err)
		}
		if _, err := s.FindIdentity(ctx, "dev", "nobody"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown identity: err = %v, want ErrNotFound", err)
		}
		user, err := s.FindUser(ctx, u.ID)
		if err != nil || user.Email != "ada@example.com" || !user.EmailVerified {
			t.Fatalf("FindUser = %+v, %v", user, err)
		}
		ids, err := s.ListIdentities(ctx, u.ID)
		if err != nil || len(ids) != 1 {
			t.Fatalf("ListIdentities = %v, %v", ids, err)
		}

		// The same (provider, subject) again is a conflict and leaves no second user.
		dup := &models.User{Email: "other@example.com"}
		err = s.CreateUserWithIdentity(ctx, dup, &models.Identity{Provider: "dev", Subject: "ada"})
		if !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate identity: err = %v, want ErrConflict", err)
		}
		if _, err := s.FindUser(ctx, dup.ID); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("user of a failed insert exists: %v", err)
		}

		org := &models.Organization{Slug: "acme", Name: "Acme"}
		if err := s.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOrganization(ctx, &models.Organization{Slug: "acme"}); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate slug: err = %v, want ErrConflict", err)
		}
		found, err := s.FindOrganizationBySlug(ctx, "acme")
		if err != nil || found.ID != org.ID {
			t.Fatalf("FindOrganizationBySlug = %+v, %v", found, err)
		}

		// The system roles are seeded by the migrations.
		member := &models.Role{ID: models.RoleMemberID}
		admin := &models.Role{ID: models.RoleAdminID}
		if err := s.CreateRole(ctx, &models.Role{Name: "member"}); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate system role: err = %v, want ErrConflict", err)
		}
		orgRole := &models.Role{Name: "member", OrganizationID: &org.ID}
		if err := s.CreateRole(ctx, orgRole); err != nil {
			t.Fatalf("org role may share a system role's name: %v", err)
		}
		if err := s.CreateRole(ctx, &models.Role{Name: "member", OrganizationID: &org.ID}); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate org role: err = %v, want ErrConflict", err)
		}

		m := &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: member.ID}
		if err := s.CreateMembership(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: admin.ID}); !errors.Is(err, models.ErrConflict) {
			t.Fatalf("duplicate membership: err = %v, want ErrConflict", err)
		}
		if err := s.UpsertMembership(ctx, &models.Membership{UserID: u.ID, OrganizationID: org.ID, RoleID: admin.ID, Source: models.SyncSource("dev")}); err != nil {
			t.Fatal(err)
		}
		ms, err := s.ListMemberships(ctx, u.ID)
		if err != nil || len(ms) != 1 {
			t.Fatalf("ListMemberships = %v, %v", ms, err)
		}
		if ms[0].RoleID != admin.ID || ms[0].Source != "sync:dev" || ms[0].Status != models.MembershipActive {
			t.Fatalf("upsert did not update: %+v", ms[0])
		}
	})
}

// TestUniqueConstraints checks the remaining unique indexes reject duplicates.
func TestUniqueConstraints(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		s := models.NewStore(db)
		u := &models.User{}
		if err := s.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: "x"}); err != nil {
			t.Fatal(err)
		}
		org := &models.Organization{Slug: "o"}
		if err := s.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		now := db.NowFunc()
		sess := &models.Session{ID: models.NewID(), UserID: u.ID, ClientID: "c", AuthTime: now, LastUsedAt: now, ExpiresAt: now, CreatedAt: now}
		if err := db.Create(sess).Error; err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			first  any
			second any
		}{
			{"refresh token hash",
				&models.RefreshToken{ID: models.NewID(), SessionID: sess.ID, TokenHash: "h", ClientID: "c", ExpiresAt: now},
				&models.RefreshToken{ID: models.NewID(), SessionID: sess.ID, TokenHash: "h", ClientID: "c", ExpiresAt: now}},
			{"authorization code hash",
				&models.AuthorizationCode{ID: models.NewID(), CodeHash: "h", ClientID: "c", UserID: u.ID, SessionID: sess.ID, ExpiresAt: now},
				&models.AuthorizationCode{ID: models.NewID(), CodeHash: "h", ClientID: "c", UserID: u.ID, SessionID: sess.ID, ExpiresAt: now}},
			{"api key prefix",
				&models.APIKey{ID: models.NewID(), OrganizationID: org.ID, Prefix: "p", KeyHash: "h1"},
				&models.APIKey{ID: models.NewID(), OrganizationID: org.ID, Prefix: "p", KeyHash: "h2"}},
			{"org external id",
				&models.OrganizationExternalID{ID: models.NewID(), OrganizationID: org.ID, Provider: "auth0", ExternalID: "org_1"},
				&models.OrganizationExternalID{ID: models.NewID(), OrganizationID: org.ID, Provider: "auth0", ExternalID: "org_1"}},
			{"saml assertion id",
				&models.SAMLReplay{Provider: "idp", AssertionID: "a1", ExpiresAt: now},
				&models.SAMLReplay{Provider: "idp", AssertionID: "a1", ExpiresAt: now}},
			{"permission name",
				&models.Permission{ID: models.NewID(), Name: "kb:read"},
				&models.Permission{ID: models.NewID(), Name: "kb:read"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if err := db.WithContext(ctx).Create(tc.first).Error; err != nil {
					t.Fatal(err)
				}
				if err := db.WithContext(ctx).Create(tc.second).Error; err == nil {
					t.Fatal("duplicate accepted")
				}
			})
		}
	})
}
