package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// Keys signs and verifies Gatehouse's own tokens.
type Keys interface {
	Sign(claims any, typ string) (string, error)
	SignIDToken(claims tokens.IDClaims, accessToken string) (string, error)
	VerifyAccessToken(token, issuer string, now time.Time) (*tokens.AccessClaims, error)
	VerifyIDTokenHint(token, issuer string) (*tokens.IDClaims, error)
}

// Sessions keeps sessions, refresh tokens and authorization codes.
type Sessions interface {
	CreateSession(ctx context.Context, ns tokens.NewSession) (*models.Session, error)
	IssueRefreshToken(ctx context.Context, sessionID, clientID string) (string, error)
	RedeemRefreshTokenWith(ctx context.Context, token, clientID string, opts tokens.RedeemOptions) (*tokens.Redeemed, error)
	EndSession(ctx context.Context, sessionID, reason string) (bool, error)
	RevokeRefreshTokenSession(ctx context.Context, token, clientID string) (*models.Session, bool, error)
	SessionActive(ctx context.Context, sessionID string) (bool, error)
	LookupRefreshToken(ctx context.Context, token string) (*tokens.RefreshInfo, error)
	SetActiveOrg(ctx context.Context, sessionID string, orgID *string) error
	GetSession(ctx context.Context, id string) (*models.Session, error)
	IssueCode(ctx context.Context, nc tokens.NewCode) (string, error)
	RedeemCode(ctx context.Context, code, clientID, redirectURI string) (*models.AuthorizationCode, error)
}

// Provisioner turns an upstream sign-in into a user with memberships,
// and says whose email Gatehouse may state verified.
type Provisioner interface {
	Provision(ctx context.Context, in provisioning.Login) (*provisioning.Result, error)
	EmailVerified(ctx context.Context, u *models.User) (bool, error)
	TrustsEmail(provider string) bool
	// TrustedEmailProviders names the providers whose verified emails
	// count: a refresh reads whether one vouches for the user's email
	// with its token (tokens.RedeemOptions), deciding as EmailVerified.
	TrustedEmailProviders() []string
}

// Store is the storage the authorization server reads directly.
type Store interface {
	FindUser(ctx context.Context, id string) (*models.User, error)
	ActiveGrants(ctx context.Context, userID, orgID string) (*models.Grants, error)
	ListIdentities(ctx context.Context, userID string) ([]models.Identity, error)
	ListUserMemberships(ctx context.Context, userID string) ([]models.UserMembership, error)
	// FindIdentityByID and UserOrgRoles read what the groups claim and
	// preferred_username state (models.Store).
	FindIdentityByID(ctx context.Context, id string) (*models.Identity, error)
	UserOrgRoles(ctx context.Context, userID string) ([]string, error)
	RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error
	// RevokeBrowserSession ends a browser session and every session
	// opened under it (models.Store.RevokeBrowserSession).
	RevokeBrowserSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
}

// Rechecks applies upstream re-checks to refreshes
// (provisioning.Service.BeforeRefresh): it runs before the refresh token
// rotates, reports whether a re-check ran, and refuses the refresh with an
// error of kind invalid_grant or temporarily_unavailable.
type Rechecks interface {
	BeforeRefresh(ctx context.Context, g *models.RefreshGrant, meta provisioning.Meta) (bool, error)
}

// Hooks observe outcomes (metrics); every field may be nil. Sign-in
// outcomes are the signin package's (signin.Hooks).
type Hooks struct {
	TokenIssued  func(grantType string)
	RefreshReuse func()
	// ClientsChanged is told, after every change of the registered
	// clients (the file's or the stored ones), each client's
	// backchannel_logout_uri by id; it must not call back into the
	// Service.
	ClientsChanged func(backchannelEndpoints map[string]string)
	// ClientsLoaded is told, each time the set of clients changes (the
	// file's at start-up and at a reload, the stored ones at a sync), the
	// longest access or ID token lifetime any of them has, so that
	// signing keys stay published at least that long after they retire
	// (a stored client may have been allowed a lifetime the file in
	// force no longer has).
	ClientsLoaded func(longestTokenTTL time.Duration)
}

// Options assemble a Service.
type Options struct {
	Config *config.Config
	// Providers are the configured upstreams: a client names one in an
	// authorization request, and token exchange validates its tokens.
	Providers   *providers.Set
	Keys        Keys
	Sessions    Sessions
	Provisioner Provisioner
	Store       Store
	// APIKeys resolves API keys for introspection and token exchange;
	// nil: API keys are never active.
	APIKeys APIKeys
	// Rechecks re-checks upstream identities at refreshes; nil: never.
	Rechecks Rechecks
	// Clients reads the clients stored in the database (SyncClients);
	// nil: only the configuration file's.
	Clients ClientStore
	Log     *slog.Logger
	Hooks   Hooks
	Now     func() time.Time

	// AssertionJTIs is the replay store of private_key_jwt client
	// assertions; nil refuses every assertion (a server error).
	AssertionJTIs AssertionJTIs
	// ClientKeysHTTP fetches the jwks_uri of private_key_jwt clients;
	// nil: a client with a timeout that follows no redirects.
	ClientKeysHTTP *http.Client
	// Devices keeps device authorizations (RFC 8628); nil: the device
	// grant answers every device code as invalid.
	Devices DeviceStore
}

// Service is the authorization server.
type Service struct {
	issuer      string
	cfg         *config.Config
	registry    registry
	providers   *providers.Set
	keys        Keys
	sessions    Sessions
	provisioner Provisioner
	store       Store
	apiKeys     APIKeys
	rechecks    Rechecks
	devices     DeviceStore
	// userCodeKey keys the HMAC user codes are stored as.
	userCodeKey  []byte
	log          *slog.Logger
	hooks        Hooks
	now          func() time.Time
	authFailures *authFailures
	jtis         AssertionJTIs
	clientKeys   *clientKeys
}

// New builds the authorization server.
func New(opts Options) *Service {
	s := &Service{
		issuer: opts.Config.Issuer, cfg: opts.Config, providers: opts.Providers,
		keys: opts.Keys, sessions: opts.Sessions, provisioner: opts.Provisioner, store: opts.Store, apiKeys: opts.APIKeys, rechecks: opts.Rechecks,
		devices: opts.Devices, userCodeKey: tokens.DeriveKey(opts.Config.SecretKey, "device-user-code"),
		log: opts.Log, hooks: opts.Hooks, now: opts.Now, jtis: opts.AssertionJTIs,
	}
	if s.now == nil {
		s.now = func() time.Time { return time.Now().UTC() }
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.registry.store = opts.Clients
	s.registry.current.Store(&clientSnapshot{cfg: opts.Config})
	s.authFailures = newAuthFailures(nil, s.now, s.audit)
	// config.Load validated the file's clients.
	s.setConfiguredClients(opts.Config)
	s.clientKeys = newClientKeys(opts.ClientKeysHTTP, s.now)
	return s
}

func (s *Service) endpoint(path string) string {
	return strings.TrimSuffix(s.issuer, "/") + path
}

// audit records an event; failures are logged, never returned, so an
// audit outage cannot turn into a login outage.
func (s *Service) audit(ctx context.Context, e models.AuditEvent, details map[string]any) {
	if err := s.store.RecordAudit(ctx, &e, details); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", slog.String("type", e.Type), slog.String("error", err.Error()))
	}
}

func ptr[T any](v T) *T { return &v }

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
