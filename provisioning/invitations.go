package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Invitation statuses, as ListInvitations reports them.
const (
	InvitationPending  = models.InvitationPending
	InvitationAccepted = models.InvitationAccepted
	InvitationRevoked  = models.InvitationRevoked
	// InvitationExpired is also reported for a pending invitation past
	// its expiry.
	InvitationExpired = models.InvitationExpired
)

// NewInvitation invites an email address to an organization with a role.
type NewInvitation struct {
	OrganizationID string
	Email          string
	// Role is a role name: the organization's own role of that name, else
	// the system role (owner, admin, member, viewer).
	Role string
	// InvitedBy is the inviting user's id, if any.
	InvitedBy string
	// TTL is how long the invitation is valid; zero means the service's
	// InvitationTTL.
	TTL time.Duration
}

// Invite creates a pending invitation. The first sign-in with that email,
// verified by a provider trusted for email, activates the membership. A second invitation
// of the same email to the same organization is ErrAlreadyInvited while
// the first is pending.
func (s *Service) Invite(ctx context.Context, in NewInvitation, meta Meta) (*models.Invitation, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		return nil, &InputError{Field: "email", Reason: fmt.Sprintf("%q is not an email address such as ada@example.com", in.Email)}
	}
	ttl := in.TTL
	if ttl == 0 {
		ttl = s.opts.InvitationTTL
	}
	if ttl < 0 {
		return nil, &InputError{Field: "ttl", Reason: "must be positive"}
	}
	now := s.now()
	inv := &models.Invitation{OrganizationID: in.OrganizationID, Email: email, ExpiresAt: now.Add(ttl)}
	if in.InvitedBy != "" {
		inv.InvitedBy = &in.InvitedBy
	}
	err := s.store.InTx(ctx, func(tx *models.Store) error {
		if _, err := tx.FindOrganization(ctx, in.OrganizationID); err != nil {
			return err
		}
		roles, err := tx.FindRolesByNames(ctx, []string{in.OrganizationID}, []string{in.Role})
		if err != nil {
			return err
		}
		role := Directory{Roles: roles}.role(in.OrganizationID, in.Role)
		if role == nil {
			return &InputError{Field: "role", Reason: fmt.Sprintf("no role %q in this organization", in.Role)}
		}
		inv.RoleID = role.ID
		if err := tx.CreateInvitation(ctx, inv, now); err != nil {
			if errors.Is(err, models.ErrConflict) {
				return fmt.Errorf("%s to organization %s: %w", email, in.OrganizationID, ErrAlreadyInvited)
			}
			return err
		}
		return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditInvitationCreated, OrganizationID: &inv.OrganizationID},
			map[string]any{"invitation_id": inv.ID, "email": email, "role": role.Name, "expires_at": inv.ExpiresAt})
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// ListInvitations returns an organization's invitations, newest first;
// a pending one past its expiry has Status InvitationExpired.
func (s *Service) ListInvitations(ctx context.Context, orgID string) ([]models.Invitation, error) {
	list, err := s.store.ListInvitations(ctx, orgID)
	now := s.now()
	for i := range list {
		if list[i].Status == models.InvitationPending && !list[i].ExpiresAt.After(now) {
			list[i].Status = InvitationExpired
		}
	}
	return list, err
}

// RevokeInvitation withdraws a pending invitation: ErrNotFound when the
// organization has no such invitation, ErrNotPending when it was already
// accepted or revoked.
func (s *Service) RevokeInvitation(ctx context.Context, orgID, invitationID string, meta Meta) error {
	return s.store.InTx(ctx, func(tx *models.Store) error {
		inv, err := tx.RevokeInvitation(ctx, orgID, invitationID, s.now())
		if errors.Is(err, models.ErrConflict) {
			return fmt.Errorf("%w: %w", ErrNotPending, err)
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditInvitationRevoked, OrganizationID: &orgID},
			map[string]any{"invitation_id": inv.ID, "email": inv.Email})
	})
}

// acceptInvitations turns the pending, unexpired invitations of the
// identity's verified email into active memberships made by hand (sync
// never touches them), replacing the membership the user had in those
// organizations (current), except one an invitation must not change: a
// suspended membership stays suspended, and one whose role is above the
// invited role keeps it (keptMembership). Whoever invites may assign the
// invited role, not necessarily lift a suspension or lower a role above
// their own. A provider not trusted for email accepts none: each
// invitation stays pending, for a sign-in through a trusted one, and the
// refusal is audited. It returns how many memberships it made or changed.
func (s *Service) acceptInvitations(ctx context.Context, tx *models.Store, user *models.User, id *providers.Identity, current []models.Membership, meta Meta, now time.Time) (int, error) {
	invs, err := tx.PendingInvitations(ctx, id.Email, now)
	if err != nil {
		return 0, err
	}
	if !s.TrustsEmail(id.Provider) {
		for _, inv := range invs {
			err := s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditInvitationRefused, Outcome: models.OutcomeFailure,
				Provider: id.Provider, SubjectUserID: &user.ID, OrganizationID: &inv.OrganizationID},
				map[string]any{"invitation_id": inv.ID, "email": inv.Email, "reason": NotTrustedReason})
			if err != nil {
				return 0, err
			}
		}
		return 0, nil
	}
	held := map[string]*models.Membership{}
	for i := range current {
		held[current[i].OrganizationID] = &current[i]
	}
	n := 0
	for _, inv := range invs {
		ok, err := tx.AcceptInvitation(ctx, inv.ID, now)
		if err != nil {
			return n, err
		}
		if !ok {
			continue // accepted by a concurrent login
		}
		kept, err := keptMembership(ctx, tx, held[inv.OrganizationID], inv.RoleID)
		if err != nil {
			return n, err
		}
		if kept != "" {
			err = s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditInvitationAccepted, Provider: id.Provider,
				SubjectUserID: &user.ID, OrganizationID: &inv.OrganizationID},
				map[string]any{"invitation_id": inv.ID, "role_id": inv.RoleID, "membership_kept": kept})
			if err != nil {
				return n, err
			}
			continue
		}
		m := &models.Membership{UserID: user.ID, OrganizationID: inv.OrganizationID, RoleID: inv.RoleID,
			Status: models.MembershipActive, Source: models.SourceManual}
		if err := tx.UpsertMembership(ctx, m); err != nil {
			return n, err
		}
		n++
		err = s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditInvitationAccepted, Provider: id.Provider,
			SubjectUserID: &user.ID, OrganizationID: &inv.OrganizationID},
			map[string]any{"invitation_id": inv.ID, "role_id": inv.RoleID})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// keptMembership says why an accepted invitation leaves the existing
// membership m as it is, or "" when the invitation's role replaces it.
func keptMembership(ctx context.Context, tx *models.Store, m *models.Membership, invitedRoleID string) (string, error) {
	switch {
	case m == nil:
		return "", nil
	case m.Status != models.MembershipActive:
		return "the membership is suspended; an invitation does not lift a suspension", nil
	case m.RoleID == invitedRoleID:
		return "", nil
	}
	held, err := tx.FindRole(ctx, m.RoleID)
	if err != nil {
		return "", err
	}
	invited, err := tx.FindRole(ctx, invitedRoleID)
	if err != nil {
		return "", err
	}
	if held.Level > invited.Level {
		return fmt.Sprintf("the membership's role %q is above the invited role %q; an invitation does not lower a role", held.Name, invited.Name), nil
	}
	return "", nil
}
