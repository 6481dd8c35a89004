// Package provisioning turns upstream identities into Gatehouse users and
// owns the policy around them (DESIGN.md §4): just-in-time creation,
// profile refresh, linking by verified email, refusing disabled users,
// invitations, and org sync. Providers report; this package decides, and
// records every decision as an audit event.
package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Errors callers branch on; they arrive wrapped with details.
var (
	// ErrUserDisabled: the person's Gatehouse user is disabled.
	ErrUserDisabled = errors.New("user is disabled")
	// ErrLastIdentity: unlinking would leave a user without any identity.
	ErrLastIdentity = errors.New("a user must keep at least one identity")
	// ErrAlreadyInvited: the email has a pending invitation to the organization.
	ErrAlreadyInvited = errors.New("already invited")
	// ErrNotPending: the invitation was already accepted or revoked.
	ErrNotPending = errors.New("invitation is no longer pending")
	// ErrNotFound: the user, identity, organization or invitation does not exist.
	ErrNotFound = models.ErrNotFound
	// ErrInvalid is wrapped by every *InputError.
	ErrInvalid = errors.New("invalid input")
)

// InputError names the input that is wrong and says why.
type InputError struct {
	Field  string
	Reason string
}

// Error is "field: reason".
func (e *InputError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *InputError) Unwrap() error { return ErrInvalid }

// Kind says the request was invalid.
func (e *InputError) Kind() fault.Kind { return fault.InvalidRequest }

// PublicMessage names the field and says what is wrong with it.
func (e *InputError) PublicMessage() string { return e.Error() }

// errLostRace: a concurrent first login of the same identity committed
// first; the transaction is rolled back and the login retried, finding it.
var errLostRace = errors.New("identity created concurrently")

// Options configure a Service.
type Options struct {
	// LinkByEmail names the providers (by configured name) whose first
	// sign-ins join the existing user with the same verified email. Only
	// trusted providers link, whatever this says.
	LinkByEmail map[string]bool
	// TrustedEmail names the providers (by configured name) whose
	// verified emails count: only a sign-in through one of them accepts
	// an invitation or links, and only users whose email one of them
	// verified are linked to or matched by email. A provider not named
	// is not trusted.
	TrustedEmail map[string]bool
	// Sync is the org-sync policy.
	Sync SyncPolicy
	// InvitationTTL is how long an invitation stays valid when its creator
	// names no lifetime; zero means DefaultInvitationTTL.
	InvitationTTL time.Duration
	// Now is the clock (UTC); nil means time.Now.
	Now func() time.Time
	// Providers are the configured upstreams, whose re-check policies and
	// re-checks (recheck.go) apply to refreshes; nil: none re-checks.
	Providers *providers.Set
	// RecheckKey seals what providers keep for re-checks (32 bytes,
	// tokens.DeriveKey); nil keeps nothing.
	RecheckKey []byte
	// OnRecheck, when set, observes each re-check with the provider name
	// and its outcome (metrics).
	OnRecheck func(provider, outcome string)
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
}

// DefaultInvitationTTL is the lifetime of an invitation by default.
const DefaultInvitationTTL = 7 * 24 * time.Hour

// Service provisions users. Its reads and writes go straight to
// *models.Store because each login is one read-decide-write transaction
// (Store.InTx), which a narrower interface could not express.
type Service struct {
	store *models.Store
	opts  Options
	// policy is what the configuration file sets (Options.LinkByEmail,
	// TrustedEmail and Sync), replaced whole by SetPolicy.
	policy atomic.Pointer[policy]
	now    func() time.Time
}

// New returns a provisioning service.
func New(store *models.Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	if opts.InvitationTTL <= 0 {
		opts.InvitationTTL = DefaultInvitationTTL
	}
	s := &Service{store: store, opts: opts, now: now}
	s.SetPolicy(Policy{LinkByEmail: opts.LinkByEmail, TrustedEmail: opts.TrustedEmail, Sync: opts.Sync})
	return s
}

// SyncRuleTargeting returns the first org-sync rule that may place
// people in an organization with this slug (SyncPolicy.RuleTargeting).
func (s *Service) SyncRuleTargeting(slug string) (Rule, bool) {
	return s.policy.Load().sync.RuleTargeting(slug)
}

// SyncRulesFor lists the org-sync rules that place people in org
// (SyncPolicy.RulesFor), with its bindings and upstream mappings read now.
func (s *Service) SyncRulesFor(ctx context.Context, org *models.Organization) ([]RuleTarget, error) {
	p := s.policy.Load().sync
	var targets []string
	for _, r := range p.Rules {
		if !strings.Contains(r.Org, config.OrgPlaceholder) {
			targets = append(targets, r.Org)
		}
	}
	bindings, mapped, err := s.store.OrgSyncLinks(ctx, org.ID, targets)
	if err != nil {
		return nil, err
	}
	return p.RulesFor(*org, bindings, mapped), nil
}

// TrustedEmailProviders names the providers whose verified emails count,
// sorted.
func (s *Service) TrustedEmailProviders() []string { return slices.Clone(s.policy.Load().trusted) }

// TrustsEmail reports whether the provider's verified emails count
// (config `trusted_email`).
func (s *Service) TrustsEmail(provider string) bool { return s.policy.Load().trustedEmail[provider] }

// EmailVerified reports whether Gatehouse states the user's email
// verified downstream (email_verified in ID and access tokens, UserInfo
// and /auth/me): true only when one of the user's identities, of a
// provider trusted for email as configured now, reports this very address
// verified. It is derived from the identities at each call, not from the
// stored users.email_verified, so it follows trust settings changed since
// the user last signed in, and users stored before this rule.
func (s *Service) EmailVerified(ctx context.Context, u *models.User) (bool, error) {
	if u.Email == "" {
		return false, nil
	}
	emails, err := s.store.TrustedVerifiedEmails(ctx, u.ID, s.policy.Load().trusted)
	return slices.Contains(emails, u.Email), err
}

// NotTrustedReason is the reason audited when a sign-in's verified email
// is not taken at its word because its provider is not trusted for email.
const NotTrustedReason = "the provider is not trusted for email (trusted_email is off)"

// Meta says who asked and from where, for audit events.
type Meta struct {
	// ActorUserID is the user acting (an administrator); "" for the
	// system or the person signing in.
	ActorUserID string
	ClientID    string
	IP          string
	RequestID   string
}

// Login is one completed upstream sign-in.
type Login struct {
	Identity *providers.Identity
	Meta
	// Recheck marks an upstream re-check rather than a sign-in: the
	// identity must exist already (it is never created or linked), and
	// the last-login times stay as they are.
	Recheck bool
}

// Result is a provisioned login.
type Result struct {
	User *models.User
	// IdentityID is the identity the login came through (empty for
	// Resume, which names none).
	IdentityID string
	// Memberships are the user's memberships after invitations and sync,
	// every status, oldest first.
	Memberships []models.Membership
	// Created: this login created the user. Linked: it joined a new
	// identity to an existing user by verified email.
	Created bool
	Linked  bool
}

// Audit event types this package records.
const (
	AuditUserCreated        = "user.created"
	AuditIdentityLinked     = "identity.linked"
	AuditIdentityNotLinked  = "identity.link_refused"
	AuditIdentityUnlinked   = "identity.unlinked"
	AuditLoginRefused       = "login.refused"
	AuditOrgCreated         = "organization.created"
	AuditOrgMapped          = "organization.mapped"
	AuditOrgBound           = "organization.bound"
	AuditMembershipAdded    = "membership.added"
	AuditMembershipRole     = "membership.role_changed"
	AuditMembershipRevived  = "membership.reactivated"
	AuditMembershipRemoved  = "membership.removed"
	AuditMembershipSuspend  = "membership.suspended"
	AuditSyncRuleSkipped    = "org_sync.rule_skipped"
	AuditSyncRemovalSkipped = "org_sync.removal_skipped"
	AuditInvitationCreated  = "invitation.created"
	AuditInvitationRevoked  = "invitation.revoked"
	AuditInvitationAccepted = "invitation.accepted"
	AuditInvitationRefused  = "invitation.accept_refused"
	AuditRoleCreated        = "role.created"
)

// Provision runs a login: it finds the user of (provider, subject) and
// refreshes their profile, or creates the user and identity (joining an
// existing user by verified email where the provider allows it and is
// trusted for email); then it accepts pending invitations of the verified
// email, if the provider is trusted for email, and syncs the
// provider's memberships with the upstream groups. All of it is one
// transaction. Concurrent first logins of one person yield one user and
// no error. A disabled user gets ErrUserDisabled and nothing changes
// except the audit trail.
func (s *Service) Provision(ctx context.Context, in Login) (*Result, error) {
	id := normalize(in.Identity)
	var err error
	for range 3 {
		var res *Result
		res, err = s.provisionOnce(ctx, id, in.Meta, in.Recheck)
		if errors.Is(err, ErrUserDisabled) {
			// Recorded outside the rolled-back transaction, so it stays; a
			// failure to record must not change the answer.
			_ = s.audit(ctx, s.store, in.Meta, models.AuditEvent{Type: AuditLoginRefused, Outcome: models.OutcomeFailure,
				Provider: id.Provider, SubjectUserID: &res.User.ID}, map[string]any{"reason": "user disabled"})
			return nil, fmt.Errorf("provision %s identity: %w", id.Provider, ErrUserDisabled)
		}
		if !errors.Is(err, errLostRace) {
			return res, err
		}
	}
	return nil, fmt.Errorf("provision %s identity: %w (three times)", id.Provider, err)
}

func (s *Service) provisionOnce(ctx context.Context, id *providers.Identity, meta Meta, recheck bool) (*Result, error) {
	res := &Result{}
	fields := identityFields(id)
	err := s.store.InTx(ctx, func(tx *models.Store) error {
		now := s.now()
		lu, err := tx.FindLoginUser(ctx, id.Provider, id.Subject)
		switch {
		case err == nil:
			res.User, res.IdentityID = &lu.User, lu.IdentityID
			if res.User.Disabled {
				return ErrUserDisabled
			}
			if recheck {
				if err := s.recheckProfile(ctx, tx, res.User, lu.IdentityID, id, fields, now); err != nil {
					return err
				}
				break
			}
			if err := tx.UpdateIdentityLogin(ctx, lu.IdentityID, fields, now); err != nil {
				return err
			}
			profile, err := s.refreshProfile(ctx, tx, res.User, id)
			if err != nil {
				return err
			}
			if err := tx.UpdateUserLogin(ctx, res.User.ID, profile, now); err != nil {
				return err
			}
			res.User.LastLoginAt = &now
		case errors.Is(err, models.ErrNotFound) && recheck:
			return ErrIdentityGone
		case errors.Is(err, models.ErrNotFound):
			if err := s.firstLogin(ctx, tx, id, fields, meta, now, res); err != nil {
				return err
			}
		default:
			return err
		}
		// The upstream vouched for the person now: what a re-check needs.
		if err := s.saveUpstreamCheck(ctx, tx, id.Provider, res.IdentityID, id.Recheck, now); err != nil {
			return err
		}
		ms, err := tx.ListMemberships(ctx, res.User.ID)
		if err != nil {
			return err
		}
		changed := false
		if id.EmailVerified && id.Email != "" {
			n, err := s.acceptInvitations(ctx, tx, res.User, id, ms, meta, now)
			if err != nil {
				return err
			}
			if n > 0 {
				changed = true
				if ms, err = tx.ListMemberships(ctx, res.User.ID); err != nil {
					return err
				}
			}
		}
		n, err := s.syncOrgs(ctx, tx, res.User, id, ms, meta, now)
		if err != nil {
			return err
		}
		if changed || n > 0 {
			ms, err = tx.ListMemberships(ctx, res.User.ID)
		}
		res.Memberships = ms
		return err
	})
	return res, err
}

// Resume is a sign-in without an upstream answer (single sign-on from
// a live browser session): the user as stored, with their memberships as
// stored (Result.IdentityID is left empty: the caller knows the identity
// its browser session came through). Nothing is refreshed, no invitation accepted and no org sync
// run, since no upstream said anything new. A disabled user gets
// ErrUserDisabled; an unknown one ErrNotFound.
func (s *Service) Resume(ctx context.Context, userID string) (*Result, error) {
	u, err := s.store.FindUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, fmt.Errorf("resume user %s: %w", userID, ErrUserDisabled)
	}
	ms, err := s.store.ListMemberships(ctx, userID)
	if err != nil {
		return nil, err
	}
	return &Result{User: u, Memberships: ms}, nil
}

// firstLogin links the new identity to the existing user with the same
// verified email, when the provider allows it, is trusted for email, and
// exactly one user has that email verified by a trusted provider; or it
// creates a new user.
func (s *Service) firstLogin(ctx context.Context, tx *models.Store, id *providers.Identity, fields models.Identity, meta Meta, now time.Time, res *Result) error {
	pol := s.policy.Load() // one policy for the whole decision
	var candidates []models.EmailUser
	if id.Email != "" {
		var err error
		if candidates, err = tx.UsersWithVerifiedEmail(ctx, id.Email, pol.trusted); err != nil {
			return err
		}
	}
	// Only users whose email a trusted provider verified are linked to:
	// an address an untrusted provider vouched for proves nothing.
	trusted := models.TrustedOnly(candidates)
	notLinked := ""
	switch {
	case len(candidates) == 0:
	case !pol.linkByEmail[id.Provider]:
		notLinked = "linking by email is not enabled for this provider"
	case !pol.trustedEmail[id.Provider]:
		notLinked = NotTrustedReason
	case !id.EmailVerified:
		notLinked = "the provider did not verify the email"
	case len(trusted) == 0:
		notLinked = "no user has this email verified by a trusted provider"
	case len(trusted) > 1:
		notLinked = fmt.Sprintf("%d users have this email verified by a trusted provider", len(trusted))
	default:
		user := &trusted[0]
		res.User = user
		if user.Disabled {
			return ErrUserDisabled
		}
		fields.UserID, fields.LastLoginAt = user.ID, &now
		if ok, err := tx.InsertIdentityIfAbsent(ctx, &fields); err != nil || !ok {
			return cmpErr(err, errLostRace)
		}
		profile, err := s.refreshProfile(ctx, tx, user, id)
		if err != nil {
			return err
		}
		if err := tx.UpdateUserLogin(ctx, user.ID, profile, now); err != nil {
			return err
		}
		user.LastLoginAt = &now
		res.Linked, res.IdentityID = true, fields.ID
		return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditIdentityLinked, Provider: id.Provider, SubjectUserID: &user.ID},
			map[string]any{"identity_id": fields.ID, "by": "verified email"})
	}
	user := &models.User{Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name, AvatarURL: id.AvatarURL, LastLoginAt: &now}
	if err := tx.InsertUser(ctx, user); err != nil {
		return err
	}
	fields.UserID, fields.LastLoginAt = user.ID, &now
	if ok, err := tx.InsertIdentityIfAbsent(ctx, &fields); err != nil || !ok {
		return cmpErr(err, errLostRace)
	}
	res.User, res.Created, res.IdentityID = user, true, fields.ID
	err := s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditUserCreated, Provider: id.Provider, SubjectUserID: &user.ID},
		map[string]any{"identity_id": fields.ID, "email_verified": id.EmailVerified})
	if err != nil || notLinked == "" {
		return err
	}
	ids := make([]string, 0, 5)
	for _, c := range candidates[:min(len(candidates), 5)] {
		ids = append(ids, c.ID)
	}
	return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditIdentityNotLinked, Provider: id.Provider, SubjectUserID: &user.ID},
		map[string]any{"identity_id": fields.ID, "reason": notLinked, "users_with_email": ids})
}

// cmpErr is err, or fallback when err is nil.
func cmpErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// RevokeReasonIdentityUnlinked is the revoke reason of sessions ended by
// Unlink.
const RevokeReasonIdentityUnlinked = "identity_unlinked"

// Unlink removes one of a user's identities; the last one cannot go
// (ErrLastIdentity). In the same transaction it ends the user's live
// sessions opened through the identity's provider, whose access the
// unlinking is meant to take away. Sessions record the provider, not the
// account: those of another identity of the user at the same provider
// end too, which errs on the side of signing out.
func (s *Service) Unlink(ctx context.Context, userID, identityID string, meta Meta) error {
	return s.store.InTx(ctx, func(tx *models.Store) error {
		// The row lock makes two concurrent unlinks of a user's last two
		// identities see each other.
		if err := tx.LockUser(ctx, userID); err != nil {
			return err
		}
		ids, err := tx.ListIdentities(ctx, userID)
		if err != nil {
			return err
		}
		var provider string
		for _, i := range ids {
			if i.ID == identityID {
				provider = i.Provider
			}
		}
		switch {
		case provider == "":
			return fmt.Errorf("identity %s of user %s: %w", identityID, userID, ErrNotFound)
		case len(ids) == 1:
			return ErrLastIdentity
		}
		if err := tx.DeleteIdentity(ctx, userID, identityID); err != nil {
			return err
		}
		n, err := tx.RevokeUserProviderSessions(ctx, userID, provider, RevokeReasonIdentityUnlinked, s.now())
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, meta, models.AuditEvent{Type: AuditIdentityUnlinked, Provider: provider, SubjectUserID: &userID},
			map[string]any{"identity_id": identityID, "sessions_revoked": n})
	})
}

// normalize copies the identity with its email trimmed and lowercased, so
// linking and invitations compare addresses exactly.
func normalize(in *providers.Identity) *providers.Identity {
	id := *in
	id.Email = strings.ToLower(strings.TrimSpace(id.Email))
	if id.Email == "" {
		id.EmailVerified = false
	}
	return &id
}

// identityFields is the identity row a login writes, upstream groups and
// username included.
func identityFields(id *providers.Identity) models.Identity {
	claims := []byte("{}")
	if len(id.Claims) > 0 {
		if b, err := json.Marshal(id.Claims); err == nil {
			claims = b
		}
	}
	return models.Identity{
		Provider: id.Provider, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified,
		Name: id.Name, AvatarURL: id.AvatarURL, RawClaims: string(claims),
		// What the upstream says now replaces what it said before: a group
		// it no longer reports leaves the downstream groups claim at the
		// session's next refresh.
		UpstreamGroups: models.EncodeGroups(id.Groups), Username: id.Username,
	}
}

// refreshProfile returns the user columns a login updates, and applies
// them to u; the login's identity row must be written already. Empty
// upstream values keep what is there, and an unverified email never
// replaces a verified one. Nor does an address no trusted provider
// verifies for the user replace one that such a provider does (see
// EmailVerified): a sign-in through an untrusted provider cannot take the
// verified address away from the tokens.
func (s *Service) refreshProfile(ctx context.Context, tx *models.Store, u *models.User, id *providers.Identity) (map[string]any, error) {
	up := map[string]any{}
	pol := s.policy.Load()
	replace := id.Email != "" && (id.EmailVerified || !u.EmailVerified)
	if replace && id.Email != u.Email && !(id.EmailVerified && pol.trustedEmail[id.Provider]) {
		vouched, err := tx.TrustedVerifiedEmails(ctx, u.ID, pol.trusted)
		if err != nil {
			return nil, err
		}
		replace = slices.Contains(vouched, id.Email) || !slices.Contains(vouched, u.Email)
	}
	if replace {
		u.Email, u.EmailVerified = id.Email, id.EmailVerified
		up["email"], up["email_verified"] = id.Email, id.EmailVerified
	}
	if id.Name != "" {
		u.Name, up["name"] = id.Name, id.Name
	}
	if id.AvatarURL != "" {
		u.AvatarURL, up["avatar_url"] = id.AvatarURL, id.AvatarURL
	}
	return up, nil
}

// audit records an event with the request's metadata.
func (s *Service) audit(ctx context.Context, tx *models.Store, meta Meta, e models.AuditEvent, details map[string]any) error {
	e.ClientID, e.IP, e.RequestID = meta.ClientID, meta.IP, meta.RequestID
	if meta.ActorUserID != "" {
		e.ActorUserID = &meta.ActorUserID
	}
	return tx.RecordAudit(ctx, &e, details)
}
