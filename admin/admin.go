// Package admin is the service behind Gatehouse's admin API: it owns the
// rules (who may call which route, who may grant which role, what an API
// key may hold, what is owner-only) and records every change as an audit
// event. Guard (authorize.go) is the authorization rule every route
// passes; Service runs the operations. Handlers parse and render; storage
// is models.Store behind the Store interface.
package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// Errors the HTTP layer maps; they arrive wrapped with details that are
// safe to show. The authorization rule's refusals, ErrAdministratorsOnly
// and *PermissionError, are in authorize.go.
var (
	// ErrNotFound: no such organization, user, role, key, session...
	ErrNotFound = models.ErrNotFound
	// ErrConflict: the change contradicts the current state (a taken
	// slug, the last owner, a role still in use).
	ErrConflict = fault.New(fault.Conflict, errors.New("conflict"))
	// ErrForbidden: the actor's level or grants do not allow the change.
	ErrForbidden = fault.New(fault.Forbidden, errors.New("not allowed"))
	// ErrInvalid is wrapped by every *InputError.
	ErrInvalid = provisioning.ErrInvalid
)

// Classified gives an error the admin API's meaning where storage has
// none: a row that does not exist is fault.NotFound (404). Anything else
// passes unchanged. The admin API's answers go through it; elsewhere a
// missing row means what the caller says it means.
func Classified(err error) error {
	if errors.Is(err, ErrNotFound) && fault.Of(err) == fault.Internal {
		return fault.New(fault.NotFound, err)
	}
	return err
}

// InputError names the input that is wrong and says why.
type InputError = provisioning.InputError

// refusal is one of the sentinels above with a reason that is safe to
// show the caller.
type refusal struct {
	sentinel error
	reason   string
}

func (r *refusal) Error() string         { return r.sentinel.Error() + ": " + r.reason }
func (r *refusal) Unwrap() error         { return r.sentinel }
func (r *refusal) PublicMessage() string { return r.reason }

func invalid(field, format string, args ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &refusal{ErrForbidden, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &refusal{ErrConflict, fmt.Sprintf(format, args...)}
}

// OwnerLevel is the owner role's level: owner-only actions require it.
const OwnerLevel = provisioning.OwnerLevel

// Actor is who asks: a person, through an access token of their session.
type Actor struct {
	UserID string
	// OrgID is the organization the token acts in; models.AdminOrgID
	// makes the actor a Gatehouse administrator, acting in every
	// organization with their level there.
	OrgID     string
	ClientID  string
	IP        string
	RequestID string
	// Via says how a change without a person came, for the audit trail's
	// "by" (default "console"): "registration" for Dynamic Client
	// Registration.
	Via string
}

func (a Actor) meta() provisioning.Meta {
	return provisioning.Meta{ActorUserID: a.UserID, ClientID: a.ClientID, IP: a.IP, RequestID: a.RequestID}
}

// Store is the storage the service needs; *models.Store provides it
// through NewStore.
type Store interface {
	InTx(ctx context.Context, fn func(tx Store) error) error
	RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error

	CreateOrganization(ctx context.Context, o *models.Organization) error
	FindOrganization(ctx context.Context, id string) (*models.Organization, error)
	ListOrganizations(ctx context.Context, p models.Page) ([]models.Organization, error)
	UpdateOrganization(ctx context.Context, o *models.Organization) error
	DeleteOrganization(ctx context.Context, id string) error

	ActiveGrants(ctx context.Context, userID, orgID string) (*models.Grants, error)
	FindMember(ctx context.Context, orgID, userID string) (*models.Member, error)
	ListMembers(ctx context.Context, orgID string, p models.Page) ([]models.Member, error)
	CreateMembership(ctx context.Context, m *models.Membership) error
	UpsertMembership(ctx context.Context, m *models.Membership) error
	UpdateMembership(ctx context.Context, id, roleID, status string, now time.Time) error
	DeleteMembership(ctx context.Context, id string) error
	CountActiveAtLevel(ctx context.Context, orgID string, level int) (int64, error)
	ListMemberships(ctx context.Context, userID string) ([]models.Membership, error)

	FindRole(ctx context.Context, id string) (*models.Role, error)
	FindRolesByNames(ctx context.Context, orgIDs, names []string) ([]models.Role, error)
	ListRoles(ctx context.Context, orgID string, afterLevel int, afterID string, limit int) ([]models.Role, error)
	RolePermissions(ctx context.Context, roleIDs []string) (map[string][]string, error)
	UpdateRole(ctx context.Context, r *models.Role, permissions []string) error
	DeleteRole(ctx context.Context, orgID, id string) error

	FindUser(ctx context.Context, id string) (*models.User, error)
	UsersWithVerifiedEmail(ctx context.Context, email string, trusted []string) ([]models.EmailUser, error)
	ListUsers(ctx context.Context, f models.UserFilter, p models.Page) ([]models.User, error)
	SetUserDisabled(ctx context.Context, id string, disabled bool, now time.Time) (bool, error)
	ListIdentities(ctx context.Context, userID string) ([]models.Identity, error)
	LockUser(ctx context.Context, userID string) error
	DeleteUser(ctx context.Context, id string) error
	ListAPIKeysCreatedBy(ctx context.Context, userID string) ([]models.APIKey, error)
	DeleteInvitationsTo(ctx context.Context, emails []string) (int64, error)
	ReplaceAuditUser(ctx context.Context, userID, ref string) (int64, error)
	AuditEventsMentioning(ctx context.Context, ref string, needles []string, afterID int64, limit int) ([]models.AuditEvent, error)
	SetAuditDetails(ctx context.Context, id int64, details string) error
	SetLogoutDeliveriesAuditSubject(ctx context.Context, userID, ref string) (int64, error)

	FindSession(ctx context.Context, id string) (*models.Session, error)
	ListUserSessionsPage(ctx context.Context, userID string, p models.Page) ([]models.Session, error)
	RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
	RevokeUserSessions(ctx context.Context, userID, reason string, now time.Time) (int64, error)

	FindBrowserSession(ctx context.Context, id string) (*models.BrowserSession, error)
	ListUserBrowserSessionsPage(ctx context.Context, userID string, p models.Page) ([]models.BrowserSession, error)
	RevokeBrowserSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
	RevokeUserBrowserSessions(ctx context.Context, userID, reason string, now time.Time) (int64, error)

	ListInvitationsPage(ctx context.Context, orgID string, p models.Page) ([]models.Invitation, error)

	CreateAPIKey(ctx context.Context, k *models.APIKey) error
	FindAPIKey(ctx context.Context, orgID, id string) (*models.APIKey, error)
	ListAPIKeys(ctx context.Context, orgID string, p models.Page) ([]models.APIKey, error)
	SetAPIKeyDisabled(ctx context.Context, orgID, id string, disabled bool, now time.Time) error
	DeleteAPIKey(ctx context.Context, orgID, id string) error

	ListAuditEvents(ctx context.Context, f models.AuditFilter, beforeID int64, limit int) ([]models.AuditEvent, error)
	ActivityCounts(ctx context.Context, q models.ActivityQuery) ([]models.ActivityCount, error)
	CountActiveSessions(ctx context.Context, now time.Time) (int64, error)

	ListStoredClients(ctx context.Context) ([]models.StoredClient, error)
	CountStoredClients(ctx context.Context, origin string) (int64, error)
	LockStoredClients(ctx context.Context) error
	FindStoredClient(ctx context.Context, id string) (*models.StoredClient, error)
	CreateStoredClient(ctx context.Context, c *models.StoredClient) error
	UpdateStoredClient(ctx context.Context, c *models.StoredClient) error
	DeleteStoredClient(ctx context.Context, id, reason string, now time.Time) (int64, error)
}

// modelStore adapts *models.Store, whose InTx hands out *models.Store.
type modelStore struct{ *models.Store }

// NewStore wraps the database store for the service.
func NewStore(s *models.Store) Store { return modelStore{s} }

// InTx runs fn in one transaction with a Store bound to it.
func (m modelStore) InTx(ctx context.Context, fn func(tx Store) error) error {
	return m.Store.InTx(ctx, func(tx *models.Store) error { return fn(modelStore{tx}) })
}

// Provisioner is the part of the provisioning service the admin API
// reuses: invitations, organization roles and unlinking follow its rules.
type Provisioner interface {
	Invite(ctx context.Context, in provisioning.NewInvitation, meta provisioning.Meta) (*models.Invitation, error)
	RevokeInvitation(ctx context.Context, orgID, invitationID string, meta provisioning.Meta) error
	CreateRole(ctx context.Context, in provisioning.NewRole, meta provisioning.Meta) (*models.Role, error)
	Unlink(ctx context.Context, userID, identityID string, meta provisioning.Meta) error
	// RecheckUser re-checks the user's identities at their upstreams now.
	RecheckUser(ctx context.Context, userID string, meta provisioning.Meta) ([]provisioning.RecheckReport, error)
	// TrustedEmailProviders names the providers whose verified emails
	// count when a user is found by email.
	TrustedEmailProviders() []string
	// SyncRuleTargeting returns the first org-sync rule that may place
	// people in an organization with this slug.
	SyncRuleTargeting(slug string) (provisioning.Rule, bool)
	// SyncRulesFor lists the org-sync rules that place people in org.
	SyncRulesFor(ctx context.Context, org *models.Organization) ([]provisioning.RuleTarget, error)
}

// Service runs the admin API's operations.
type Service struct {
	store Store
	prov  Provisioner
	now   func() time.Time
	// browserIdleTTL is GATEHOUSE_SSO_IDLE_TTL, for whether a browser
	// session is active (0: idle expiry not judged).
	browserIdleTTL time.Duration
	// keys are the signing keys (SetKeyRing); nil in the CLI.
	keys KeyRing
	// clients connects the client operations (SetClients).
	clients ClientOptions
}

// New returns the service; now nil means time.Now in UTC.
func New(store Store, prov Provisioner, now func() time.Time) *Service {
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &Service{store: store, prov: prov, now: func() time.Time { return now().UTC().Truncate(time.Microsecond) }}
}

// audit records a change made by the actor.
func audit(ctx context.Context, st Store, a Actor, typ, orgID, subjectUserID string, details map[string]any) error {
	e := models.AuditEvent{Type: typ, ClientID: a.ClientID, IP: a.IP, RequestID: a.RequestID}
	if a.UserID != "" {
		e.ActorUserID = &a.UserID
	}
	if orgID != "" {
		e.OrganizationID = &orgID
	}
	if subjectUserID != "" {
		e.SubjectUserID = &subjectUserID
	}
	return st.RecordAudit(ctx, &e, details)
}

// usersByEmail returns the users whose email a provider trusted for email
// verified, and the ids of those holding it verified only by providers
// that are not trusted, which matching by email passes over.
func (s *Service) usersByEmail(ctx context.Context, st Store, email string) ([]models.User, []string, error) {
	all, err := st.UsersWithVerifiedEmail(ctx, email, s.prov.TrustedEmailProviders())
	var untrusted []string
	for _, u := range all {
		if !u.Trusted {
			untrusted = append(untrusted, u.ID)
		}
	}
	return models.TrustedOnly(all), untrusted, err
}

// untrustedEmailReason is why matching by email passed over users.
const untrustedEmailReason = "the email is verified only by providers not trusted for email (trusted_email is off)"

// auditEmailRefused records that matching by email passed over the users
// holding it only through providers not trusted for email.
func auditEmailRefused(ctx context.Context, st Store, a Actor, orgID, email string, untrusted []string) error {
	e := models.AuditEvent{Type: AuditMemberEmailRefused, Outcome: models.OutcomeFailure, OrganizationID: &orgID,
		ClientID: a.ClientID, IP: a.IP, RequestID: a.RequestID}
	if a.UserID != "" {
		e.ActorUserID = &a.UserID
	}
	return st.RecordAudit(ctx, &e, map[string]any{"email": email, "reason": untrustedEmailReason,
		"users_with_email": untrusted[:min(len(untrusted), 5)]})
}

// Limits of a page.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// PageRequest is a list request: limit and the opaque cursor of the
// previous answer's next_cursor.
type PageRequest struct {
	Limit  string
	Cursor string
}

// List is one page of a list; NextCursor is empty on the last page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// cursor is what an opaque cursor holds: the sort key of the last row.
type cursor struct {
	T time.Time `json:"t,omitzero"`
	I string    `json:"i"`
	L int       `json:"l,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parse reads limit and cursor.
func (r PageRequest) parse() (int, cursor, error) {
	limit := DefaultLimit
	if r.Limit != "" {
		n, err := strconv.Atoi(r.Limit)
		if err != nil || n < 1 || n > MaxLimit {
			return 0, cursor{}, invalid("limit", "must be a whole number from 1 to %d", MaxLimit)
		}
		limit = n
	}
	var c cursor
	if r.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(r.Cursor)
		if err != nil || json.Unmarshal(b, &c) != nil || c.I == "" {
			return 0, cursor{}, invalid("cursor", "is not a cursor this API returned; start again without it")
		}
	}
	return limit, c, nil
}

// page turns a cursor into a models.Page.
func (r PageRequest) page(desc bool) (models.Page, error) {
	limit, c, err := r.parse()
	return models.Page{Limit: limit, AfterTime: c.T, AfterID: c.I, Desc: desc}, err
}

// finish trims the extra row a query fetched and builds the next cursor
// from the last row kept.
func finish[M, V any](rows []M, limit int, key func(M) cursor, view func(M) V) List[V] {
	out := List[V]{Items: make([]V, 0, min(len(rows), limit))}
	for i, r := range rows {
		if i == limit {
			out.NextCursor = key(rows[limit-1]).encode()
			break
		}
		out.Items = append(out.Items, view(r))
	}
	return out
}

// orgList lists rows of one organization: it checks the organization
// exists, reads a page and builds the answer.
func orgList[M, V any](ctx context.Context, s *Service, orgID string, req PageRequest, desc bool,
	list func(ctx context.Context, orgID string, p models.Page) ([]M, error), key func(M) cursor, view func(M) V) (List[V], error) {
	p, err := req.page(desc)
	if err != nil {
		return List[V]{}, err
	}
	if _, err := s.store.FindOrganization(ctx, orgID); err != nil {
		return List[V]{}, err
	}
	rows, err := list(ctx, orgID, p)
	return finish(rows, p.Limit, key, view), err
}
