package admin

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// ListAPIKeys lists an organization's API keys (never their secrets).
func (s *Service) ListAPIKeys(ctx context.Context, orgID string, req PageRequest) (List[APIKey], error) {
	return orgList(ctx, s, orgID, req, false, s.store.ListAPIKeys,
		func(k models.APIKey) cursor { return cursor{T: k.CreatedAt, I: k.ID} }, apiKeyView)
}

// APIKeyInput creates a key.
type APIKeyInput struct {
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// CreateAPIKey creates a key for the organization holding a subset of
// the actor's own permissions there. The secret is in the answer and
// nowhere else: only its SHA-256 and visible prefix are stored.
func (s *Service) CreateAPIKey(ctx context.Context, a Actor, orgID string, in APIKeyInput) (NewAPIKey, error) {
	name := strings.TrimSpace(in.Name)
	switch {
	case name == "":
		return NewAPIKey{}, invalid("name", "is required: say what the key is for")
	case len(in.Permissions) == 0:
		return NewAPIKey{}, invalid("permissions", "at least one grant is required, such as kb:read")
	case in.ExpiresAt != nil && !in.ExpiresAt.After(s.now()):
		return NewAPIKey{}, invalid("expires_at", "must be in the future")
	}
	if err := checkName("name", name, 100); err != nil {
		return NewAPIKey{}, err
	}
	var out NewAPIKey
	err := s.store.InTx(ctx, func(tx Store) error {
		if _, err := tx.FindOrganization(ctx, orgID); err != nil {
			return err
		}
		st, err := s.standingIn(ctx, tx, a, orgID)
		if err != nil {
			return err
		}
		grants, err := checkGrants("permissions", in.Permissions, st)
		if err != nil {
			return err
		}
		perms, _ := json.Marshal(grants)
		now := s.now()
		k := &models.APIKey{OrganizationID: orgID, Name: name, Permissions: string(perms), CreatedBy: &a.UserID,
			CreatedAt: now, UpdatedAt: now}
		if in.ExpiresAt != nil {
			exp := in.ExpiresAt.UTC().Truncate(time.Microsecond)
			k.ExpiresAt = &exp
		}
		secret := ""
		for range 3 { // a taken 48-bit prefix is rare; draw again
			if secret, k.Prefix, k.KeyHash, err = tokens.NewAPIKey(); err != nil {
				return err
			}
			k.ID = ""
			if err = tx.CreateAPIKey(ctx, k); !errors.Is(err, models.ErrConflict) {
				break
			}
		}
		if err != nil {
			return err
		}
		out = NewAPIKey{APIKey: apiKeyView(*k), Key: secret}
		return audit(ctx, tx, a, AuditAPIKeyCreated, orgID, "", map[string]any{"api_key_id": k.ID, "name": name,
			"prefix": k.Prefix, "permissions": grants, "expires_at": k.ExpiresAt})
	})
	return out, err
}

// SetAPIKeyDisabled disables or enables a key. Backends that cache
// introspection answers notice within their cache time.
func (s *Service) SetAPIKeyDisabled(ctx context.Context, a Actor, orgID, keyID string, disabled bool) (APIKey, error) {
	var out APIKey
	err := s.store.InTx(ctx, func(tx Store) error {
		if err := tx.SetAPIKeyDisabled(ctx, orgID, keyID, disabled, s.now()); err != nil {
			return err
		}
		k, err := tx.FindAPIKey(ctx, orgID, keyID)
		if err != nil {
			return err
		}
		out = apiKeyView(*k)
		typ := AuditAPIKeyEnabled
		if disabled {
			typ = AuditAPIKeyDisabled
		}
		return audit(ctx, tx, a, typ, orgID, "", map[string]any{"api_key_id": keyID, "prefix": k.Prefix})
	})
	return out, err
}

// DeleteAPIKey deletes a key for good.
func (s *Service) DeleteAPIKey(ctx context.Context, a Actor, orgID, keyID string) error {
	return s.store.InTx(ctx, func(tx Store) error {
		k, err := tx.FindAPIKey(ctx, orgID, keyID)
		if err != nil {
			return err
		}
		if err := tx.DeleteAPIKey(ctx, orgID, keyID); err != nil {
			return err
		}
		return audit(ctx, tx, a, AuditAPIKeyDeleted, orgID, "", map[string]any{"api_key_id": keyID, "prefix": k.Prefix})
	})
}

// GrantResult says what GrantAdmin did.
type GrantResult struct {
	// UserID is set when a user with the email existed and is now an
	// owner of the administrators' organization.
	UserID string
	// InvitationID is set when no such user exists yet: the first
	// sign-in with that email, verified by a provider trusted for email,
	// makes them owner.
	InvitationID string
	// PassedOver are the users who have the email verified only by
	// providers not trusted for email: none of them was made owner.
	PassedOver []string
	// Created: the administrators' organization was created now.
	Created bool
}

// GrantAdmin makes the person with this email an owner of the
// administrators' organization (created when missing): at once when a
// user has that email verified by a provider trusted for email, else by
// an invitation that only a sign-in through such a provider accepts.
// Users whose email only untrusted providers verified are passed over,
// and that is audited. It is what `gatehouse admin grant` runs, with no
// actor: the operator at the console.
func (s *Service) GrantAdmin(ctx context.Context, email string) (GrantResult, error) {
	email = normalEmail(email)
	var res GrantResult
	err := s.store.InTx(ctx, func(tx Store) error {
		if _, err := tx.FindOrganization(ctx, models.AdminOrgID); errors.Is(err, models.ErrNotFound) {
			o := &models.Organization{ID: models.AdminOrgID, Slug: models.AdminOrgSlug, Name: "Gatehouse administrators"}
			if err := tx.CreateOrganization(ctx, o); err != nil {
				if errors.Is(err, models.ErrConflict) {
					return conflict("an organization already has the slug %q; rename it first", models.AdminOrgSlug)
				}
				return err
			}
			res.Created = true
		} else if err != nil {
			return err
		}
		users, untrusted, err := s.usersByEmail(ctx, tx, email)
		if err != nil {
			return err
		}
		switch len(users) {
		case 0:
			if len(untrusted) > 0 {
				res.PassedOver = untrusted
				if err := auditEmailRefused(ctx, tx, Actor{}, models.AdminOrgID, email, untrusted); err != nil {
					return err
				}
			}
			return nil // invitation below, outside this transaction
		case 1:
		default:
			return conflict("%d users have the email %s verified by a trusted provider", len(users), email)
		}
		res.UserID = users[0].ID
		m := &models.Membership{UserID: res.UserID, OrganizationID: models.AdminOrgID, RoleID: models.RoleOwnerID,
			Status: models.MembershipActive, Source: models.SourceManual}
		if err := tx.UpsertMembership(ctx, m); err != nil {
			return err
		}
		return audit(ctx, tx, Actor{}, AuditAdminGranted, models.AdminOrgID, res.UserID, map[string]any{"email": email, "by": "console"})
	})
	if err != nil || res.UserID != "" {
		return res, err
	}
	inv, err := s.prov.Invite(ctx, provisioning.NewInvitation{OrganizationID: models.AdminOrgID, Email: email, Role: "owner"},
		provisioning.Meta{})
	if errors.Is(err, provisioning.ErrAlreadyInvited) {
		return res, conflict("%s already has a pending invitation to administer Gatehouse", email)
	}
	if err != nil {
		return res, err
	}
	res.InvitationID = inv.ID
	return res, nil
}
