package admin_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestDeleteUser: deleting a user (an erasure request) ends their
// sessions first, so a back-channel logout is queued for each and
// survives the rows it came from; removes their identities, memberships,
// sessions, refresh tokens, browser sessions and the invitations to
// their emails; keeps the API keys they created (no creator) and the
// invitations they sent (no inviter); and leaves no id, email, name,
// subject or IP address of theirs in the audit trail, where one random
// pseudonym stands for them, the deletion's own event included.
func TestDeleteUser(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		g := f.store.Gorm()
		now := time.Now().UTC().Truncate(time.Microsecond)
		ada := f.member("ada@example.com", f.acme, models.RoleAdminID)
		if err := g.Model(&models.User{}).Where("id = ?", ada.UserID).Update("name", "Ada Lovelace").Error; err != nil {
			t.Fatal(err)
		}
		second := &models.Identity{UserID: ada.UserID, Provider: "github", Subject: "424242", Email: "Ada.L@Corp.example",
			EmailVerified: true, Name: "ada-l", Username: "Lovelace-GH", RawClaims: `{"login":"ada-l"}`, CreatedAt: now, UpdatedAt: now}
		if ok, err := f.store.InsertIdentityIfAbsent(f.ctx, second); err != nil || !ok {
			t.Fatalf("second identity: %v %v", ok, err)
		}
		sessions := []string{f.session(ada.UserID), f.session(ada.UserID)}
		if _, err := f.store.AddRefreshToken(f.ctx, &models.RefreshToken{SessionID: sessions[0], TokenHash: "h-" + sessions[0],
			ClientID: "admin-console", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now); err != nil {
			t.Fatal(err)
		}
		if err := f.store.CreateBrowserSession(f.ctx, &models.BrowserSession{TokenHash: "bs-" + ada.UserID, UserID: ada.UserID,
			Provider: "dev", AuthTime: now, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		key := &models.APIKey{OrganizationID: f.acme, Name: "ci", Prefix: "ghk_adaprefx", KeyHash: "hash-" + ada.UserID,
			Permissions: "kb:read", CreatedBy: &ada.UserID, CreatedAt: now, UpdatedAt: now}
		if err := f.store.CreateAPIKey(f.ctx, key); err != nil {
			t.Fatal(err)
		}
		sent := &models.Invitation{OrganizationID: f.acme, Email: "guest@example.com", RoleID: models.RoleViewerID,
			InvitedBy: &ada.UserID, ExpiresAt: now.Add(time.Hour)}
		toHer := &models.Invitation{OrganizationID: f.beta, Email: "ada.l@corp.example", RoleID: models.RoleViewerID, ExpiresAt: now.Add(time.Hour)}
		accepted := &models.Invitation{OrganizationID: f.acme, Email: "ada@example.com", RoleID: models.RoleViewerID, ExpiresAt: now.Add(time.Hour)}
		for _, inv := range []*models.Invitation{sent, toHer, accepted} {
			if err := f.store.CreateInvitation(f.ctx, inv, now); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := f.store.AcceptInvitation(f.ctx, accepted.ID, now); err != nil || !ok {
			t.Fatalf("accept: %v %v", ok, err)
		}
		bob := f.user("bob@example.com")
		record := func(typ string, actor, subject *string, ip string, details map[string]any) {
			t.Helper()
			if err := f.store.RecordAudit(f.ctx, &models.AuditEvent{Type: typ, ActorUserID: actor, SubjectUserID: subject, IP: ip}, details); err != nil {
				t.Fatal(err)
			}
		}
		record("login.success", &ada.UserID, &ada.UserID, "203.0.113.7", map[string]any{"session_id": sessions[0]})
		record("user.created", nil, &ada.UserID, "203.0.113.8", map[string]any{"email_verified": true})
		record("invitation.created", &f.root.UserID, nil, "198.51.100.1", map[string]any{"email": "ada@example.com"})
		record("membership.email_refused", &f.root.UserID, nil, "198.51.100.1", map[string]any{"email": "ADA@example.com", "users_with_email": []string{ada.UserID, bob}})
		record("login.failed", nil, nil, "203.0.113.9", map[string]any{"reason": "upstream refused Ada.L@Corp.example"})
		record("identity.linked", nil, &ada.UserID, "", map[string]any{"name": "Ada Lovelace", "subject": "424242"})
		record("identity.recheck_gone", nil, &ada.UserID, "", map[string]any{"username": "lovelace-gh", "provider": "github"})
		record("role.created", &f.root.UserID, nil, "198.51.100.1", map[string]any{"name": "Ada Lovelace"}) // a role, not her
		record("login.success", &bob, &bob, "192.0.2.1", map[string]any{"session_id": "s-bob"})

		res, err := f.svc.DeleteUser(f.ctx, f.root, ada.UserID)
		if err != nil {
			t.Fatal(err)
		}
		ref := res.Reference
		if !strings.HasPrefix(ref, admin.DeletedPrefix) || res.SessionsEnded != 2 || res.BrowserSessionsEnded != 1 ||
			res.IdentitiesDeleted != 2 || res.MembershipsDeleted != 1 || res.InvitationsDeleted != 2 ||
			len(res.APIKeysKept) != 1 || res.APIKeysKept[0] != key.ID || res.AuditEventsAnonymized == 0 {
			t.Fatalf("DeleteUser = %+v", res)
		}

		count := func(q string, args ...any) (n int64) {
			t.Helper()
			if err := g.Raw(q, args...).Scan(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, q := range []string{
			"SELECT COUNT(*) FROM users WHERE id = ?",
			"SELECT COUNT(*) FROM identities WHERE user_id = ?",
			"SELECT COUNT(*) FROM memberships WHERE user_id = ?",
			"SELECT COUNT(*) FROM sessions WHERE user_id = ?",
			"SELECT COUNT(*) FROM browser_sessions WHERE user_id = ?",
			"SELECT COUNT(*) FROM api_keys WHERE created_by = ?",
			"SELECT COUNT(*) FROM invitations WHERE invited_by = ?",
		} {
			if n := count(q, ada.UserID); n != 0 {
				t.Errorf("%s: %d rows left", q, n)
			}
		}
		if n := count("SELECT COUNT(*) FROM refresh_tokens WHERE session_id IN (?)", sessions); n != 0 {
			t.Errorf("%d refresh tokens left", n)
		}
		if n := count("SELECT COUNT(*) FROM invitations WHERE LOWER(email) IN ?", []string{"ada@example.com", "ada.l@corp.example"}); n != 0 {
			t.Errorf("%d invitations to her emails left", n)
		}
		if n := count("SELECT COUNT(*) FROM invitations WHERE id = ? AND invited_by IS NULL", sent.ID); n != 1 {
			t.Error("the invitation she sent is gone or still names her")
		}
		if n := count("SELECT COUNT(*) FROM api_keys WHERE id = ? AND created_by IS NULL AND NOT disabled", key.ID); n != 1 {
			t.Error("the API key she created is gone, disabled or still names her")
		}
		// One logout queued per session, for the logout token's sub; its
		// audit events will carry the pseudonym.
		var outbox []models.LogoutDelivery
		if err := g.Where("session_id IN (?)", sessions).Find(&outbox).Error; err != nil || len(outbox) != 2 {
			t.Fatalf("outbox = %+v, %v", outbox, err)
		}
		for _, d := range outbox {
			if d.UserID != ada.UserID || d.AuditSubject != ref || d.Reason != "user_deleted" {
				t.Errorf("outbox row = %+v", d)
			}
		}

		// The audit trail: nothing of hers left anywhere.
		var events []models.AuditEvent
		if err := g.Order("id").Find(&events).Error; err != nil {
			t.Fatal(err)
		}
		hers := []string{ada.UserID, "ada@example.com", "ada.l@corp.example", "ada lovelace", "424242", "ada-l", "lovelace-gh", "203.0.113.7", "203.0.113.8"}
		var deleted *models.AuditEvent
		for i, e := range events {
			row := strings.ToLower(strings.Join([]string{ptrOr(e.ActorUserID), ptrOr(e.SubjectUserID), e.IP, e.Details}, " "))
			for _, h := range hers {
				if strings.Contains(row, h) && !(h == "ada lovelace" && e.Type == "role.created") {
					t.Errorf("event %s still holds %q: %s", e.Type, h, row)
				}
			}
			if e.Type == admin.AuditUserDeleted {
				deleted = &events[i]
			}
		}
		if deleted == nil || ptrOr(deleted.SubjectUserID) != ref || ptrOr(deleted.ActorUserID) != f.root.UserID {
			t.Fatalf("user.deleted event = %+v", deleted)
		}
		byType := func(typ string) models.AuditEvent {
			for _, e := range events {
				if e.Type == typ {
					return e
				}
			}
			t.Fatalf("no %s event", typ)
			return models.AuditEvent{}
		}
		if e := byType("membership.email_refused"); e.IP != "198.51.100.1" || !strings.Contains(e.Details, ref) || !strings.Contains(e.Details, bob) {
			t.Errorf("an administrator's event lost its IP or her reference: %+v", e)
		}
		if e := byType("role.created"); !strings.Contains(e.Details, "Ada Lovelace") {
			t.Errorf("an event about a role lost the role's name: %+v", e)
		}
		if n := count("SELECT COUNT(*) FROM audit_events WHERE subject_user_id = ? OR actor_user_id = ?", ref, ref); n != 5 {
			t.Errorf("%d events name the pseudonym, want 5 (her sign-in, her creation, the link, the re-check, the deletion)", n)
		}
		if n := count("SELECT COUNT(*) FROM audit_events WHERE actor_user_id = ? AND ip = '192.0.2.1'", bob); n != 1 {
			t.Error("another person's event changed")
		}
	})
}

// TestDeleteUserRefusals: who may not be deleted, and by whom.
func TestDeleteUserRefusals(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		adminActor := f.member("abe@example.com", models.AdminOrgID, models.RoleAdminID)
		orgAdmin := f.member("lea@example.com", f.acme, models.RoleAdminID)
		olga := f.member("olga@example.com", f.beta, models.RoleOwnerID) // beta's only owner
		mia := f.user("mia@example.com")
		cases := []struct {
			name   string
			actor  admin.Actor
			target string
			want   error
			has    string
		}{
			{"yourself", f.root, f.root.UserID, admin.ErrForbidden, "yourself"},
			{"unknown user", f.root, "no-such-user", admin.ErrNotFound, ""},
			{"an administrator above your level", adminActor, f.root.UserID, admin.ErrForbidden, "above your own level"},
			{"an organization's admin", orgAdmin, mia, admin.ErrForbidden, "administrators only"},
			{"the last owner of an organization", f.root, olga.UserID, admin.ErrConflict, "last active owner"},
		}
		for _, tc := range cases {
			_, err := f.svc.DeleteUser(f.ctx, tc.actor, tc.target)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.has) {
				t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.want, tc.has)
			}
		}
		if _, err := f.store.FindUser(f.ctx, olga.UserID); err != nil {
			t.Fatalf("a refused deletion deleted: %v", err)
		}
		// Once beta has another owner, Olga may go; twice is not found.
		f.join(f.user("otto@example.com"), f.beta, models.RoleOwnerID, models.MembershipActive)
		if _, err := f.svc.DeleteUser(f.ctx, adminActor, olga.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.DeleteUser(f.ctx, adminActor, olga.UserID); !errors.Is(err, admin.ErrNotFound) {
			t.Fatalf("double delete: %v", err)
		}
		// The console has no actor and no level, and says so in the trail.
		res, err := f.svc.ConsoleDeleteUser(f.ctx, mia)
		if err != nil {
			t.Fatal(err)
		}
		events, err := f.store.ListAuditEvents(f.ctx, models.AuditFilter{Type: admin.AuditUserDeleted, SubjectUserID: res.Reference}, 0, 10)
		if err != nil || len(events) != 1 || events[0].ActorUserID != nil || !strings.Contains(events[0].Details, `"by":"console"`) {
			t.Fatalf("console deletion events = %+v, %v", events, err)
		}
		if _, err := f.svc.ConsoleDeleteUser(f.ctx, mia); !errors.Is(err, admin.ErrNotFound) {
			t.Fatalf("console double delete: %v", err)
		}
	})
}

// TestFindUserRef: the console names a user by id or by an email exactly
// one user has.
func TestFindUserRef(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		ada := f.user("ada@example.com")
		f.user("twin@example.com")
		f.userVia("lax", "twin@example.com")
		for _, tc := range []struct {
			ref, want string
			err       error
		}{
			{ada, ada, nil},
			{" ADA@example.com ", ada, nil},
			{"nobody@example.com", "", admin.ErrNotFound},
			{"no-such-id", "", admin.ErrNotFound},
			{"twin@example.com", "", admin.ErrConflict},
		} {
			u, err := f.svc.FindUserRef(f.ctx, tc.ref)
			if !errors.Is(err, tc.err) || u.ID != tc.want {
				t.Errorf("FindUserRef(%q) = %q, %v; want %q, %v", tc.ref, u.ID, err, tc.want, tc.err)
			}
		}
	})
}

func ptrOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestDeleteUserErasesEscapedEmails: an email that JSON escapes in the
// audit details ('&' is written \u0026) is erased from the events that
// name it without being about the person, such as the invitation an
// administrator sent to it, like any other email.
func TestDeleteUserErasesEscapedEmails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		for _, email := range []string{"r&d@example.com", "o'hara&co@example.com"} {
			id := f.user(email)
			if err := f.store.RecordAudit(f.ctx, &models.AuditEvent{Type: "invitation.created", ActorUserID: &f.root.UserID},
				map[string]any{"email": email, "role": "member"}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.DeleteUser(f.ctx, f.root, id); err != nil {
				t.Fatal(err)
			}
			var events []models.AuditEvent
			if err := f.store.Gorm().Where("type = ?", "invitation.created").Find(&events).Error; err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				low := strings.ToLower(e.Details)
				if strings.Contains(low, "example.com") || !strings.Contains(e.Details, admin.Erased) {
					t.Errorf("%s: invitation event still names the email: %s", email, e.Details)
				}
			}
		}
	})
}
