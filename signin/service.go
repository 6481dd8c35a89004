package signin

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// AuthorizationServer is what sign-in needs of the OAuth server
// (*oauth.Service): it validates the authorization request a sign-in
// begins with, knows the clients, refuses a request to the client,
// issues the authorization code a completed sign-in ends with, and
// checks and carries out an RP-initiated logout.
type AuthorizationServer interface {
	ParseAuthorize(q url.Values) (*oauth.AuthorizeParams, error)
	Client(id string) (*oauth.Client, bool)
	ErrorRedirect(p *oauth.AuthorizeParams, e *oauth.Error) *oauth.RedirectError
	IssueCode(ctx context.Context, in oauth.CodeRequest) (*oauth.IssuedCode, error)
	Logout(ctx context.Context, req oauth.LogoutRequest, meta oauth.RequestMeta) (*oauth.LogoutResult, error)

	// The device authorization grant's approval (RFC 8628).
	DeviceByUserCode(ctx context.Context, typed string, meta oauth.RequestMeta) (*oauth.DeviceRequest, error)
	PendingDevice(ctx context.Context, id string) (*oauth.DeviceRequest, error)
	ApproveDevice(ctx context.Context, id string, in oauth.CodeRequest, meta oauth.RequestMeta) error
	DenyDevice(ctx context.Context, id, userID string, meta oauth.RequestMeta) error
}

// Provisioner turns an upstream sign-in into a user with memberships
// (*provisioning.Service); it audits what it refuses. Resume is a
// single sign-on without an upstream answer: the stored user and
// memberships, refusing a disabled user.
type Provisioner interface {
	Provision(ctx context.Context, in provisioning.Login) (*provisioning.Result, error)
	Resume(ctx context.Context, userID string) (*provisioning.Result, error)
}

// Rechecks applies the upstream re-check rules to a single sign-on
// (*provisioning.Service.BeforeSSO): an error of kind invalid_grant,
// upstream_unconfirmed (on_recheck_unavailable: deny) or
// temporarily_unavailable means the upstream must be asked again.
type Rechecks interface {
	BeforeSSO(ctx context.Context, bs *models.BrowserSession, meta provisioning.Meta) error
}

// Store is the storage sign-in writes directly: the audit trail, the
// pending logins that bind an upstream's cross-site POST to one sign-in,
// and the browser sessions of single sign-on (*models.Store).
type Store interface {
	RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error
	CreatePendingLogin(ctx context.Context, p *models.PendingLogin) error
	ConsumePendingLogin(ctx context.Context, id string, now time.Time) (*models.PendingLogin, error)

	CreateBrowserSession(ctx context.Context, b *models.BrowserSession) error
	LiveBrowserSession(ctx context.Context, tokenHash string, now, idleSince time.Time) (*models.BrowserSession, error)
	TouchBrowserSession(ctx context.Context, id string, now time.Time) (bool, error)
	RenewBrowserSession(ctx context.Context, b *models.BrowserSession, now time.Time) (bool, error)
	RevokeBrowserSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
}

// Hooks observe outcomes (metrics); every field may be nil.
type Hooks struct {
	// Login counts a sign-in's outcome at a provider: "success",
	// "sso" (a code from a live browser session, no upstream round
	// trip), "cancelled", "refused", "error" or "state_rejected".
	Login func(provider, outcome string)
}

// Options assemble a Service.
type Options struct {
	// Issuer is Gatehouse's issuer URL: the base of the callback URLs,
	// and https makes login cookies Secure.
	Issuer string
	// SecretKey is the key login states are sealed under (a key derived
	// from it, used for nothing else).
	SecretKey string
	// LoginStateTTL is how long a sign-in may take, begin to callback.
	LoginStateTTL time.Duration
	// SSOIdleTTL ends a browser session unused this long;
	// SSOAbsoluteTTL ends it this long after its upstream sign-in. Zero
	// takes the configuration defaults (12 hours, 7 days).
	SSOIdleTTL     time.Duration
	SSOAbsoluteTTL time.Duration
	Providers      *providers.Set
	Server         AuthorizationServer
	Provisioner    Provisioner
	// Rechecks holds single sign-on to the upstream re-check rules; nil:
	// none apply.
	Rechecks Rechecks
	Store    Store
	Log      *slog.Logger
	Hooks    Hooks
	Now      func() time.Time
}

// Service is browser sign-in. Its methods answer one route each with an
// Outcome for the handler to render.
type Service struct {
	issuer        string
	loginStateTTL time.Duration
	providers     *providers.Set
	server        AuthorizationServer
	provisioner   Provisioner
	rechecks      Rechecks
	store         Store
	log           *slog.Logger
	hooks         Hooks
	now           func() time.Time
	loginKey      []byte
	// deviceKey seals the device page's cookie; deviceCSRFKey derives
	// its forms' tokens.
	deviceKey     []byte
	deviceCSRFKey []byte
	secureCookies bool
	// sso is the browser session's cookie and lifetimes.
	sso ssoSettings
	// answers holds a token per upstream answer being validated.
	answers chan struct{}
}

// New builds the sign-in service.
func New(opts Options) *Service {
	s := &Service{
		issuer: opts.Issuer, loginStateTTL: opts.LoginStateTTL, providers: opts.Providers, server: opts.Server,
		provisioner: opts.Provisioner, rechecks: opts.Rechecks, store: opts.Store, log: opts.Log, hooks: opts.Hooks, now: opts.Now,
		loginKey:      tokens.DeriveKey(opts.SecretKey, "login-state"),
		deviceKey:     tokens.DeriveKey(opts.SecretKey, "device-page"),
		deviceCSRFKey: tokens.DeriveKey(opts.SecretKey, "device-csrf"),
		secureCookies: strings.HasPrefix(opts.Issuer, "https://"),
		answers:       make(chan struct{}, answerSlots()),
		sso:           newSSOSettings(opts),
	}
	if s.now == nil {
		s.now = func() time.Time { return time.Now().UTC() }
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Issuer is Gatehouse's issuer URL.
func (s *Service) Issuer() string { return s.issuer }

// Method is a configured way to sign in, as the landing page lists it.
type Method struct {
	Name        string
	DisplayName string
	// Type is the provider kind ("oidc", "saml", "dev", ...).
	Type string
	// CallbackURL is where the upstream returns the browser, for the
	// upstream's registration.
	CallbackURL string
}

// Methods lists the configured providers in configuration order.
func (s *Service) Methods() []Method {
	var out []Method
	for _, p := range s.providers.All() {
		out = append(out, Method{Name: p.Name(), DisplayName: p.DisplayName(), Type: p.Type(), CallbackURL: s.callbackURL(p.Name())})
	}
	return out
}

// ErrNoMetadata is Metadata's answer for a name that is no provider
// publishing metadata.
var ErrNoMetadata = fault.New(fault.NoMetadata, errors.New("no provider of that name publishes metadata"))

// Metadata returns the document provider name publishes for its upstream
// to register (a SAML service provider's descriptor) and its media type.
func (s *Service) Metadata(ctx context.Context, name string) (doc []byte, mediaType string, err error) {
	prov, ok := s.providers.Get(name)
	mp, publishes := prov.(providers.MetadataPublisher)
	if !ok || !publishes {
		return nil, "", ErrNoMetadata
	}
	return mp.Metadata(ctx)
}

// callbackURL is where an upstream returns the browser for provider.
func (s *Service) callbackURL(provider string) string {
	return strings.TrimSuffix(s.issuer, "/") + "/auth/callback/" + url.PathEscape(provider)
}

// audit records an event; failures are logged, never returned, so an
// audit outage cannot turn into a login outage.
func (s *Service) audit(ctx context.Context, e models.AuditEvent, details map[string]any) {
	if err := s.store.RecordAudit(ctx, &e, details); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", slog.String("type", e.Type), slog.String("error", err.Error()))
	}
}

func (s *Service) countLogin(provider, outcome string) {
	if s.hooks.Login != nil {
		s.hooks.Login(provider, outcome)
	}
}

// causeOf is the detail behind an error this package gave a kind (for
// audit), else err itself. Only the outermost error counts: a provider's
// error wraps a kinded sentinel whose own text says less than err's.
func causeOf(err error) error {
	if fe, ok := err.(*fault.Error); ok && fe.Unwrap() != nil {
		return fe.Unwrap()
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func ptr[T any](v T) *T { return &v }
