package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// refreshFixture is a user with a live session and one current refresh
// token of it, at now.
type refreshFixture struct {
	ctx  context.Context
	s    *models.Store
	db   *models.DB
	now  time.Time
	user *models.User
	sess *models.Session
	tok  *models.RefreshToken
}

func newRefreshFixture(t *testing.T, db *models.DB, email string) *refreshFixture {
	t.Helper()
	f := &refreshFixture{ctx: context.Background(), s: models.NewStore(db), db: db,
		now: time.Now().UTC().Truncate(time.Microsecond)}
	f.user = &models.User{Email: email, Name: "Ada"}
	if err := f.s.CreateUserWithIdentity(f.ctx, f.user, &models.Identity{Provider: "dev", Subject: models.NewID()}); err != nil {
		t.Fatal(err)
	}
	f.sess = &models.Session{UserID: f.user.ID, ClientID: "spa", Provider: "dev", Scope: "openid", AMR: "pwd",
		AuthTime: f.now, LastUsedAt: f.now, ExpiresAt: f.now.Add(24 * time.Hour), CreatedAt: f.now}
	if err := f.s.CreateSession(f.ctx, f.sess); err != nil {
		t.Fatal(err)
	}
	f.tok = f.newToken(t)
	return f
}

// newToken adds a current token to the session.
func (f *refreshFixture) newToken(t *testing.T) *models.RefreshToken {
	t.Helper()
	tok := &models.RefreshToken{SessionID: f.sess.ID, TokenHash: models.NewID(), ClientID: "spa",
		CreatedAt: f.now, ExpiresAt: f.now.Add(time.Hour)}
	if _, err := f.s.AddRefreshToken(f.ctx, tok, f.now); err != nil {
		t.Fatal(err)
	}
	return tok
}

// successor is a token to rotate f.tok into at when.
func (f *refreshFixture) successor(when time.Time) *models.RefreshToken {
	return &models.RefreshToken{ID: models.NewID(), SessionID: f.sess.ID, TokenHash: models.NewID(), ClientID: "spa",
		CreatedAt: when, ExpiresAt: when.Add(time.Hour)}
}

func (f *refreshFixture) family(t *testing.T) []models.RefreshToken {
	t.Helper()
	var rows []models.RefreshToken
	if err := f.db.Where("session_id = ?", f.sess.ID).Order("created_at, id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestFindRefreshGrant: the one read of a refresh says what the separate
// look-ups say: the token, session and user, the grants ActiveGrants
// gives (order included), and whether TrustedVerifiedEmails contains the
// user's email.
func TestFindRefreshGrant(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRefreshFixture(t, db, "ada@example.com")
		ctx, s := f.ctx, f.s
		if _, err := s.FindRefreshGrant(ctx, "no such hash", models.RefreshRead{}); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("unknown hash: %v", err)
		}
		for _, i := range []models.Identity{
			{UserID: f.user.ID, Provider: "google", Subject: "g", Email: "ada@example.com", EmailVerified: true},
			{UserID: f.user.ID, Provider: "okta", Subject: "o", Email: "ada@okta.example", EmailVerified: true},
			{UserID: f.user.ID, Provider: "github", Subject: "h", Email: "ada@example.com", EmailVerified: false},
		} {
			if ok, err := s.InsertIdentityIfAbsent(ctx, &i); !ok || err != nil {
				t.Fatalf("insert identity %s: %v, %v", i.Provider, ok, err)
			}
		}
		check := func(name string, trusted []string) *models.RefreshGrant {
			t.Helper()
			g, err := s.FindRefreshGrant(ctx, f.tok.TokenHash, models.RefreshRead{TrustedEmail: trusted, OrgRoles: true})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			tok, _ := s.FindRefreshTokenByHash(ctx, f.tok.TokenHash)
			sess, _ := s.FindSession(ctx, f.sess.ID)
			user, _ := s.FindUser(ctx, f.user.ID)
			if g.Token.ID != tok.ID || g.Token.TokenHash != tok.TokenHash || g.Token.SessionID != tok.SessionID ||
				g.Token.ClientID != tok.ClientID || !g.Token.ExpiresAt.Equal(tok.ExpiresAt) || !g.Token.CreatedAt.Equal(tok.CreatedAt) ||
				(g.Token.RotatedAt == nil) != (tok.RotatedAt == nil) || (g.Token.RevokedAt == nil) != (tok.RevokedAt == nil) {
				t.Fatalf("%s: token %+v, want %+v", name, g.Token, tok)
			}
			if g.Session.ID != sess.ID || g.Session.UserID != sess.UserID || g.Session.Scope != sess.Scope || g.Session.AMR != sess.AMR ||
				!g.Session.ExpiresAt.Equal(sess.ExpiresAt) || !g.Session.LastUsedAt.Equal(sess.LastUsedAt) ||
				!g.Session.AuthTime.Equal(sess.AuthTime) || g.Session.Provider != sess.Provider ||
				g.Session.RevokeReason != sess.RevokeReason || (g.Session.RevokedAt == nil) != (sess.RevokedAt == nil) ||
				(g.Session.ActiveOrgID == nil) != (sess.ActiveOrgID == nil) ||
				(sess.ActiveOrgID != nil && *g.Session.ActiveOrgID != *sess.ActiveOrgID) {
				t.Fatalf("%s: session %+v, want %+v", name, g.Session, sess)
			}
			if g.User.ID != user.ID || g.User.Email != user.Email || g.User.Name != user.Name || g.User.Disabled != user.Disabled {
				t.Fatalf("%s: user %+v, want %+v", name, g.User, user)
			}
			emails, _ := s.TrustedVerifiedEmails(ctx, user.ID, trusted)
			if want := user.Email != "" && slices.Contains(emails, user.Email); g.EmailTrusted != want {
				t.Fatalf("%s: EmailTrusted = %v, TrustedVerifiedEmails %v", name, g.EmailTrusted, emails)
			}
			roles, err := s.UserOrgRoles(ctx, user.ID)
			if err != nil || !slices.Equal(g.OrgRoles, roles) || g.OrgRoles == nil {
				t.Fatalf("%s: org roles %q, UserOrgRoles %q (%v)", name, g.OrgRoles, roles, err)
			}
			if sess.IdentityID != nil {
				id, err := s.FindIdentityByID(ctx, *sess.IdentityID)
				if err != nil || g.Username != id.Username || !slices.Equal(g.UpstreamGroups, id.Groups()) ||
					g.Session.IdentityID == nil || *g.Session.IdentityID != id.ID {
					t.Fatalf("%s: identity %q %q, want %+v (%v)", name, g.Username, g.UpstreamGroups, id, err)
				}
			} else if g.Username != "" || g.UpstreamGroups != nil || g.Session.IdentityID != nil {
				t.Fatalf("%s: identity %q %q without one", name, g.Username, g.UpstreamGroups)
			}
			want := (*models.Grants)(nil)
			if sess.ActiveOrgID != nil {
				if want, err = s.ActiveGrants(ctx, user.ID, *sess.ActiveOrgID); errors.Is(err, models.ErrNotFound) {
					want = nil
				}
			}
			switch {
			case (g.Grants == nil) != (want == nil):
				t.Fatalf("%s: grants %+v, ActiveGrants %+v", name, g.Grants, want)
			case want != nil && (g.Grants.OrganizationID != want.OrganizationID || !slices.Equal(g.Grants.Roles, want.Roles) ||
				!slices.Equal(g.Grants.Permissions, want.Permissions) || g.Grants.Permissions == nil):
				t.Fatalf("%s: grants %+v, ActiveGrants %+v", name, g.Grants, want)
			}
			return g
		}
		if g := check("no identity", nil); g.UpstreamGroups != nil {
			t.Fatalf("groups without an identity: %q", g.UpstreamGroups)
		}
		// The session's identity: its username and groups come with the grant.
		gh := models.Identity{UserID: f.user.ID, Provider: "github", Subject: "h2", Username: "ada-l",
			UpstreamGroups: models.EncodeGroups([]string{"github:org:acme", "github:team:acme/eng"})}
		if ok, err := s.InsertIdentityIfAbsent(ctx, &gh); !ok || err != nil {
			t.Fatalf("insert identity: %v, %v", ok, err)
		}
		if err := db.Model(&models.Session{}).Where("id = ?", f.sess.ID).Update("identity_id", gh.ID).Error; err != nil {
			t.Fatal(err)
		}
		if g := check("an identity", nil); g.Username != "ada-l" || len(g.UpstreamGroups) != 2 {
			t.Fatalf("identity: %q %q", g.Username, g.UpstreamGroups)
		}
		for _, trusted := range [][]string{nil, {"google"}, {"okta"}, {"github"}, {"google", "okta"}} {
			check(fmt.Sprintf("trusted %v", trusted), trusted)
		}
		if g := check("trusted google", []string{"google"}); !g.EmailTrusted {
			t.Fatal("google vouches for ada@example.com")
		}

		// An organization: no membership, then a role without permissions,
		// then one with many (names chosen to test the order), suspended.
		org := &models.Organization{Slug: "acme"}
		if err := s.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := db.Model(&models.Session{}).Where("id = ?", f.sess.ID).Update("active_org_id", org.ID).Error; err != nil {
			t.Fatal(err)
		}
		if g := check("not a member", nil); g.Grants != nil {
			t.Fatalf("grants without a membership: %+v", g.Grants)
		}
		empty := &models.Role{OrganizationID: &org.ID, Name: "empty"}
		if err := s.CreateRole(ctx, empty); err != nil {
			t.Fatal(err)
		}
		m := &models.Membership{UserID: f.user.ID, OrganizationID: org.ID, RoleID: empty.ID}
		if err := s.UpsertMembership(ctx, m); err != nil {
			t.Fatal(err)
		}
		if g := check("a role without permissions", nil); g.Grants == nil || len(g.Grants.Permissions) != 0 {
			t.Fatalf("grants of an empty role: %+v", g.Grants)
		}
		rich := &models.Role{OrganizationID: &org.ID, Name: "rich"}
		if err := s.CreateRole(ctx, rich); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"kb:read", "kb:*", "api_key:read", "api-key:write", "*:list", "z:z", "a:b", "kb:r*"} {
			p := &models.Permission{ID: models.NewID(), Name: name, CreatedAt: f.now}
			if err := db.Create(p).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Create(&models.RolePermission{RoleID: rich.ID, PermissionID: p.ID}).Error; err != nil {
				t.Fatal(err)
			}
		}
		m.RoleID = rich.ID
		if err := s.UpsertMembership(ctx, m); err != nil {
			t.Fatal(err)
		}
		if g := check("a role with 8 permissions", []string{"google"}); g.Grants == nil || len(g.Grants.Permissions) != 8 ||
			g.Grants.Roles[0] != "rich" {
			t.Fatalf("grants: %+v", g.Grants)
		}
		m.Status = models.MembershipSuspended
		if err := s.UpsertMembership(ctx, m); err != nil {
			t.Fatal(err)
		}
		if g := check("suspended", nil); g.Grants != nil {
			t.Fatalf("grants of a suspended membership: %+v", g.Grants)
		}

		// A user without email is never verified; state of every kind is read.
		noEmail := newRefreshFixture(t, db, "")
		if r, err := s.FindRefreshGrant(ctx, noEmail.tok.TokenHash, models.RefreshRead{TrustedEmail: []string{"dev", "google"}}); err != nil || r.EmailTrusted {
			t.Fatalf("user without email: %+v, %v", r, err)
		}
		if _, err := s.RevokeSession(ctx, f.sess.ID, "test", f.now); err != nil {
			t.Fatal(err)
		}
		if r := check("revoked", nil); r.Token.RevokedAt == nil || r.Session.RevokedAt == nil || r.Session.RevokeReason != "test" {
			t.Fatalf("revoked: %+v", r)
		}
	})
}

// TestFindRefreshGrantUpstreamCheck: the refresh read says when the
// upstream last vouched for the session's identity and whether anything
// is kept to re-check with, in its one statement.
func TestFindRefreshGrantUpstreamCheck(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newRefreshFixture(t, db, "ada@example.com")
		ctx, s := f.ctx, f.s
		id := models.Identity{UserID: f.user.ID, Provider: "okta", Subject: "o"}
		if ok, err := s.InsertIdentityIfAbsent(ctx, &id); !ok || err != nil {
			t.Fatalf("insert identity: %v, %v", ok, err)
		}
		if err := db.Model(&models.Session{}).Where("id = ?", f.sess.ID).Update("identity_id", id.ID).Error; err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name      string
			save      *string // nil: no row
			wantSaved bool
		}{
			{name: "no row"},
			{name: "nothing kept", save: new(""), wantSaved: false},
			{name: "kept", save: new("sealed"), wantSaved: true},
			{name: "a later sign-in without a token keeps it", save: new(""), wantSaved: true},
		} {
			if tc.save != nil {
				if err := s.SaveUpstreamCheck(ctx, id.ID, *tc.save, f.now); err != nil {
					t.Fatal(err)
				}
			}
			g, err := s.FindRefreshGrant(ctx, f.tok.TokenHash, models.RefreshRead{})
			if err != nil {
				t.Fatal(err)
			}
			if (g.UpstreamCheckedAt != nil) != (tc.save != nil) || g.UpstreamSaved != tc.wantSaved {
				t.Fatalf("%s: checked at %v, saved %v", tc.name, g.UpstreamCheckedAt, g.UpstreamSaved)
			}
		}
	})
}

// TestFindRefreshGrantOrgRolesOrder: the refresh read lists organization
// roles in UserOrgRoles' byte-wise order, whatever the collation of the
// columns (on PostgreSQL they are given a linguistic one that orders
// punctuation and capitals otherwise): the groups claim is the same at
// sign-in, refresh and UserInfo.
func TestFindRefreshGrantOrgRolesOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		if db.Dialector.Name() == "postgres" {
			var icu int64
			db.Raw(`SELECT COUNT(*) FROM pg_collation WHERE collname = 'en-x-icu'`).Scan(&icu)
			if icu == 0 {
				t.Log("no en-x-icu collation: the columns keep the database's")
			} else {
				for _, stmt := range []string{`ALTER TABLE organizations ALTER COLUMN slug TYPE TEXT COLLATE "en-x-icu"`,
					`ALTER TABLE roles ALTER COLUMN name TYPE TEXT COLLATE "en-x-icu"`} {
					if err := db.Exec(stmt).Error; err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		f := newRefreshFixture(t, db, "ada@example.com")
		ctx, s := f.ctx, f.s
		for _, m := range []struct{ slug, role string }{{"a", "B"}, {"a1", "_x"}, {"ab", "a"}} {
			org := &models.Organization{Slug: m.slug}
			if err := s.CreateOrganization(ctx, org); err != nil {
				t.Fatal(err)
			}
			role := &models.Role{OrganizationID: &org.ID, Name: m.role}
			if err := s.CreateRole(ctx, role); err != nil {
				t.Fatal(err)
			}
			if err := s.UpsertMembership(ctx, &models.Membership{UserID: f.user.ID, OrganizationID: org.ID, RoleID: role.ID}); err != nil {
				t.Fatal(err)
			}
		}
		g, err := s.FindRefreshGrant(ctx, f.tok.TokenHash, models.RefreshRead{OrgRoles: true})
		if err != nil {
			t.Fatal(err)
		}
		roles, err := s.UserOrgRoles(ctx, f.user.ID)
		want := []string{"a1:_x", "a:B", "ab:a"}
		if err != nil || !slices.Equal(roles, want) || !slices.Equal(g.OrgRoles, want) {
			t.Fatalf("refresh read %q, UserOrgRoles %q (%v); want %q", g.OrgRoles, roles, err, want)
		}
	})
}

// TestRotateRefreshToken: the rotation's one statement rotates a live
// token into its successor and marks the session used; every way of not
// being live changes nothing and is ErrConflict.
func TestRotateRefreshToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		t.Run("live", func(t *testing.T) {
			f := newRefreshFixture(t, db, "ada@example.com")
			later := f.now.Add(time.Minute)
			next := f.successor(later)
			if sess, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, next, later); err != nil || sess != nil {
				t.Fatalf("rotate = %v, %v", sess, err)
			}
			rows := f.family(t)
			if len(rows) != 2 || rows[0].ID != f.tok.ID || rows[1].ID != next.ID {
				t.Fatalf("family = %+v", rows)
			}
			old, got := rows[0], rows[1]
			if old.RotatedAt == nil || !old.RotatedAt.Equal(later) || old.ReplacedBy == nil || *old.ReplacedBy != next.ID ||
				old.RevokedAt != nil || old.TokenHash != f.tok.TokenHash || !old.ExpiresAt.Equal(f.tok.ExpiresAt) {
				t.Fatalf("old row = %+v", old)
			}
			if got.TokenHash != next.TokenHash || got.ClientID != "spa" || !got.CreatedAt.Equal(later) ||
				!got.ExpiresAt.Equal(next.ExpiresAt) || got.RotatedAt != nil || got.ReplacedBy != nil || got.RevokedAt != nil {
				t.Fatalf("successor row = %+v", got)
			}
			if sess, _ := f.s.FindSession(f.ctx, f.sess.ID); !sess.LastUsedAt.Equal(later) {
				t.Fatalf("last_used_at = %v, want %v", sess.LastUsedAt, later)
			}
			// Rotating it again is a lost race.
			if _, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, f.successor(later), later.Add(time.Second)); !errors.Is(err, models.ErrConflict) {
				t.Fatalf("second rotation: %v", err)
			}
			if n := len(f.family(t)); n != 2 {
				t.Fatalf("%d rows after a refused rotation", n)
			}
		})
		for _, tc := range []struct {
			name string
			// spoil makes f's token not live at the returned time.
			spoil        func(t *testing.T, f *refreshFixture) time.Time
			sessionEnded bool // the session may not be marked used
		}{
			{name: "token expired", spoil: func(t *testing.T, f *refreshFixture) time.Time { return f.tok.ExpiresAt }},
			{name: "token revoked", spoil: func(t *testing.T, f *refreshFixture) time.Time {
				if err := f.db.Model(&models.RefreshToken{}).Where("id = ?", f.tok.ID).Update("revoked_at", f.now).Error; err != nil {
					t.Fatal(err)
				}
				return f.now.Add(time.Second)
			}},
			{name: "token of another session", spoil: func(t *testing.T, f *refreshFixture) time.Time {
				other := newRefreshFixture(t, f.db, "eve@example.com")
				f.tok = other.tok
				return f.now.Add(time.Second)
			}},
			{name: "session revoked", sessionEnded: true, spoil: func(t *testing.T, f *refreshFixture) time.Time {
				if err := f.db.Model(&models.Session{}).Where("id = ?", f.sess.ID).Update("revoked_at", f.now).Error; err != nil {
					t.Fatal(err)
				}
				return f.now.Add(time.Second)
			}},
			{name: "session expired", sessionEnded: true, spoil: func(t *testing.T, f *refreshFixture) time.Time {
				if err := f.db.Model(&models.Session{}).Where("id = ?", f.sess.ID).Update("expires_at", f.now.Add(time.Second)).Error; err != nil {
					t.Fatal(err)
				}
				return f.now.Add(time.Second)
			}},
			{name: "user disabled", sessionEnded: true, spoil: func(t *testing.T, f *refreshFixture) time.Time {
				if err := f.db.Model(&models.User{}).Where("id = ?", f.user.ID).Update("disabled", true).Error; err != nil {
					t.Fatal(err)
				}
				return f.now.Add(time.Second)
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newRefreshFixture(t, db, "ada@example.com")
				at := tc.spoil(t, f)
				before := f.family(t)
				_, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, f.successor(at), at)
				if !errors.Is(err, models.ErrConflict) {
					t.Fatalf("rotate = %v, want ErrConflict", err)
				}
				after := f.family(t)
				if len(after) != len(before) || after[0].RotatedAt != nil || after[0].ReplacedBy != nil {
					t.Fatalf("family after a refused rotation = %+v", after)
				}
				if sess, _ := f.s.FindSession(f.ctx, f.sess.ID); tc.sessionEnded && !sess.LastUsedAt.Equal(f.now) {
					t.Fatalf("an ended session was marked used: %v", sess.LastUsedAt)
				}
			})
		}
	})
}

// TestRotationRacesRevocation rotates a token while its session is
// revoked, many times over: whichever commits first, the family ends with
// no live token (a successor committed first is swept by the
// revocation), and of two rotations of one token at most one wins.
func TestRotationRacesRevocation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		const rounds = 30
		var rotatedFirst, revokedFirst int
		for i := range rounds {
			f := newRefreshFixture(t, db, fmt.Sprintf("u%d@example.com", i))
			at := f.now.Add(time.Second)
			var wg sync.WaitGroup
			var won [2]bool
			start := make(chan struct{})
			for k := range 2 {
				wg.Go(func() {
					<-start
					_, err := f.s.RotateRefreshToken(f.ctx, f.tok.ID, f.successor(at), at)
					if err != nil && !errors.Is(err, models.ErrConflict) {
						t.Errorf("round %d: rotate: %v", i, err)
					}
					won[k] = err == nil
				})
			}
			wg.Go(func() {
				<-start
				if _, err := f.s.RevokeSession(f.ctx, f.sess.ID, "test", at); err != nil {
					t.Errorf("round %d: revoke: %v", i, err)
				}
			})
			close(start)
			wg.Wait()
			if won[0] && won[1] {
				t.Fatalf("round %d: both rotations of one token won", i)
			}
			rows := f.family(t)
			for _, r := range rows {
				if r.RevokedAt == nil {
					t.Fatalf("round %d: token %s outlived the revocation (family %+v)", i, r.ID, rows)
				}
			}
			if won[0] || won[1] {
				rotatedFirst++
				if len(rows) != 2 {
					t.Fatalf("round %d: a rotation won but the family has %d rows", i, len(rows))
				}
			} else {
				revokedFirst++
			}
		}
		t.Logf("%d rounds: the rotation committed first in %d, the revocation in %d", rounds, rotatedFirst, revokedFirst)
	})
}
