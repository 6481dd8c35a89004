// Package providers turns an upstream sign-in (a browser round trip or a
// presented upstream token) into a normalized Identity. Each upstream kind
// lives in its own file behind one small interface; providers decide
// nothing about users or organizations (provisioning does) and import
// nothing else from Gatehouse.
package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-id/gatehouse/fault"
)

// Identity is what an upstream says about the person who signed in.
type Identity struct {
	// Provider is the configured provider name (not its type).
	Provider      string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	AvatarURL     string
	// Username is the person's username at the upstream (the GitHub
	// login, the OIDC preferred_username claim, the SAML attribute mapped
	// to it): what Gatehouse states as preferred_username. Empty when the
	// upstream names none or names one that is not a plausible username
	// (see CleanUsername).
	Username string
	// Groups are typed strings for org sync, e.g. "github:org:acme".
	Groups []string
	// GroupsPartial says the upstream left some of the person's groups out
	// of its answer (GitHub hides organizations enforcing SAML single
	// sign-on the app is not authorized for), so a group missing from
	// Groups may still be the person's. The zero value means Groups is
	// complete: kinds whose answer always is need not set it.
	GroupsPartial bool
	// Claims are the upstream claims as received, for auditing and mapping.
	Claims map[string]any
	// AMR lists how the person authenticated upstream ("pwd", "mfa", ...).
	AMR []string
	// ACR is the authentication context class the upstream reports (an
	// OIDC acr claim, a SAML AuthnContextClassRef); empty: none.
	ACR string
	// AuthTime is when the person last authenticated at the upstream, as
	// the upstream reports it (an OIDC auth_time, a SAML AuthnInstant):
	// earlier than this sign-in when the upstream had a session already.
	// Zero: the upstream did not say.
	AuthTime time.Time
	// UpstreamLogout is what an upstream logout of this sign-in needs
	// (see UpstreamLogout), opaque to the caller, which keeps it sealed;
	// empty when the provider offers none.
	UpstreamLogout string
	// Recheck is what a later re-check of this person needs (see
	// Rechecker: an upstream refresh token, a GitHub access token),
	// opaque to the caller, which keeps it sealed; empty when the kind
	// cannot re-check or the upstream gave nothing to re-check with.
	Recheck string
}

// BeginRequest is what a login starts from.
type BeginRequest struct {
	// State is an opaque random value the upstream must echo back.
	State string
	// CallbackURL is where the upstream returns the browser.
	CallbackURL string
	// Optional hints passed upstream where the kind supports them.
	LoginHint    string
	Prompt       string
	Organization string
	// MaxAge, when not nil, is the client's max_age in seconds: kinds
	// that can ask the upstream to re-authenticate older sign-ins pass
	// it on.
	MaxAge *int
	// ACRValues are the client's acr_values (space-separated), passed on
	// by kinds whose upstream understands them.
	ACRValues string
}

// Challenge sends the browser upstream: a redirect, or a form the browser
// posts automatically (SAML POST binding).
type Challenge struct {
	RedirectURL string
	Form        *AutoPostForm
	// Saved is private per-login data (a PKCE verifier, a nonce, a SAML
	// request id) that the caller keeps sealed and hands back to Complete.
	Saved string
}

// AutoPostForm is an HTML form the browser submits without user action.
type AutoPostForm struct {
	Action string
	Fields map[string]string
}

// CompleteRequest carries the upstream's answer.
type CompleteRequest struct {
	HTTP        *http.Request
	CallbackURL string
	Saved       string
	// Unsolicited marks an answer no sign-in of Gatehouse asked for (SAML
	// IdP-initiated SSO); only kinds implementing IdPInitiated accept it.
	Unsolicited bool
}

// Provider is one configured upstream.
type Provider interface {
	// Name is the configured instance name, used in URLs.
	Name() string
	// Type is the kind ("google", "github", "auth0", "oidc", "saml", "dev").
	Type() string
	// DisplayName is what the provider chooser shows.
	DisplayName() string
	Begin(ctx context.Context, req BeginRequest) (*Challenge, error)
	Complete(ctx context.Context, req CompleteRequest) (*Identity, error)
}

// LocalForm is implemented by providers whose sign-in form Gatehouse
// itself renders (the dev provider): the callback URL shows the form on
// GET and completes on POST.
type LocalForm interface {
	LocalForm()
}

// CrossSitePost is implemented by providers whose upstream answers with a
// form POST from its own site (SAML's HTTP-POST binding to the ACS). A
// SameSite=Lax login cookie does not arrive with that cross-site POST, so
// the caller answers it with a page that posts the same fields again from
// its own origin: that second POST carries the cookie, which binds the
// answer to the browser that started the sign-in before Complete looks
// at it.
type CrossSitePost interface {
	// PostURL is the absolute URL the upstream posts its answer to.
	PostURL() string
	// CheckPost reads an answer's form without validating it: the fields
	// to post again unchanged, and the state the answer names (the
	// RelayState; "" for none). It refuses, cheaply and before anything
	// else looks at the form, one that cannot be an answer (too large, not
	// the binding's syntax); the state is returned even then, when the
	// form names one.
	CheckPost(form url.Values) (fields map[string]string, state string, err error)
}

// UpstreamLogout is implemented by providers that can end the person's
// session at the upstream too (an OpenID Connect provider with
// upstream_logout: true and an end_session_endpoint).
type UpstreamLogout interface {
	// LogoutURL is where to send the browser to sign out upstream: saved
	// is the Identity.UpstreamLogout of the sign-in being ended (may be
	// empty), and the upstream returns the browser to
	// postLogoutRedirectURI with state. An error means no upstream logout
	// is possible now (the caller goes on without it).
	LogoutURL(ctx context.Context, saved, postLogoutRedirectURI, state string) (string, error)
}

// MetadataPublisher is implemented by providers that publish metadata for
// the upstream to register (a SAML service provider's descriptor).
type MetadataPublisher interface {
	// Metadata returns the document and its media type.
	Metadata(ctx context.Context) ([]byte, string, error)
}

// IdPInitiated is implemented by providers that can accept sign-ins the
// upstream starts on its own (SAML IdP-initiated SSO).
type IdPInitiated interface {
	// IdPInitiatedTarget returns the downstream client and redirect URI an
	// unsolicited sign-in is delivered to, and false when the provider does
	// not accept unsolicited sign-ins (the default).
	IdPInitiatedTarget() (target IdPInitiatedLogin, enabled bool)
}

// IdPInitiatedLogin is where an unsolicited sign-in is delivered.
type IdPInitiatedLogin struct {
	ClientID    string
	RedirectURI string
	Scope       string
}

// Subject token types a TokenExchanger accepts (RFC 8693 §3).
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// ExchangeRequest is an upstream token presented at Gatehouse's token
// endpoint (RFC 8693 token exchange).
type ExchangeRequest struct {
	// SubjectToken is the upstream token; it is never logged or echoed.
	SubjectToken string
	// SubjectTokenType is TokenTypeAccessToken or TokenTypeIDToken.
	SubjectTokenType string
}

// TokenExchanger is implemented by providers that accept upstream tokens
// presented directly (an SPA that already holds an Auth0 access token).
// Refusals are *UserError whose Message is safe to return to the client.
type TokenExchanger interface {
	ExchangeToken(ctx context.Context, req ExchangeRequest) (*Identity, error)
}

// ReadinessChecker is implemented by providers that depend on an upstream
// being reachable once (discovery); Ready returns nil when the provider
// can serve sign-ins.
type ReadinessChecker interface {
	Ready(ctx context.Context) error
}

// MaxUsernameLen bounds a username an upstream may report (bytes).
const MaxUsernameLen = 256

// CleanUsername returns s as an Identity's Username: trimmed of spaces,
// or "" when it is longer than MaxUsernameLen bytes, not valid UTF-8, or
// holds a control character. A username is an identifier downstream
// (Kubernetes takes it as the user's name), so it is dropped, never cut
// short: two long names must not end up the same.
func CleanUsername(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > MaxUsernameLen || !utf8.ValidString(s) {
		return ""
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return s
}

// maxGroups bounds the groups one sign-in may report, whatever the kind.
const maxGroups = 1000

// redactURLError drops the URL from a transport error: it is Gatehouse's
// own configuration, and a wrapped *url.Error would otherwise repeat it
// with every query parameter.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Errors a caller branches on; wrap them with details. Each states its
// fault kind, which decides what the person or client is answered.
var (
	// ErrDenied: the upstream or a provider rule refused this person.
	ErrDenied = fault.New(fault.UpstreamDenied, errors.New("sign-in refused"))
	// ErrUnavailable: the upstream could not be reached or answered badly.
	ErrUnavailable = fault.New(fault.UpstreamUnavailable, errors.New("identity provider unavailable"))
	// ErrInvalidResponse: the upstream's answer failed validation.
	ErrInvalidResponse = fault.New(fault.UpstreamInvalid, errors.New("invalid response from identity provider"))
	// ErrCancelled: the person cancelled at the upstream.
	ErrCancelled = fault.New(fault.UpstreamInvalid, errors.New("sign-in cancelled"))
)

// UserError is an error whose Message may be shown to the person signing
// in; Err (one of the kinds above, wrapped) is for logs and audit.
type UserError struct {
	Message string
	Err     error
}

func (e *UserError) Error() string { return e.Err.Error() }
func (e *UserError) Unwrap() error { return e.Err }

// PublicMessage is the message for the person.
func (e *UserError) PublicMessage() string { return e.Message }

// Deny returns an ErrDenied carrying a message for the person.
func Deny(message string, detail string) error {
	return &UserError{Message: message, Err: fmt.Errorf("%w: %s", ErrDenied, detail)}
}

// Settings decodes a provider's own configuration fields into a struct;
// unknown fields are errors.
type Settings interface {
	Decode(into any) error
}

// SettingsError lists what is wrong with one provider's settings, each
// problem naming its field, so start-up can report them all at once.
type SettingsError struct {
	Problems []SettingProblem
}

// SettingProblem is one invalid field of a provider's settings.
type SettingProblem struct {
	Field   string
	Message string
}

// Error lists the problems on one line.
func (e *SettingsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Field + ": " + p.Message
	}
	return strings.Join(lines, "; ")
}

// add records a problem.
func (e *SettingsError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, SettingProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns e, or nil when no problem was recorded.
func (e *SettingsError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Env is what constructors may use besides their settings.
type Env struct {
	// HTTPClient is used for every upstream call; it must have a timeout
	// (a client without one is replaced by one with a 10 s timeout).
	HTTPClient *http.Client
	// BaseURL is Gatehouse's issuer URL.
	BaseURL string
	// Production forbids dangerous kinds and knobs.
	Production bool
	// Log receives operational messages (never a secret or an assertion);
	// nil discards them.
	Log *slog.Logger
	// Secrets keeps key material a provider generates for itself; nil when
	// the caller has no storage (kinds that need it refuse to start).
	Secrets SecretStore
	// Replay remembers one-time upstream message ids; nil when the caller
	// has no storage (kinds that need it refuse to start).
	Replay ReplayCache
	// OnJWKSFetch, when set, observes every upstream JWKS fetch with the
	// provider name and "success" or "error" (metrics).
	OnJWKSFetch func(provider, outcome string)
}

// SecretStore keeps key material a provider generated, encrypted at rest
// and shared by every replica.
type SecretStore interface {
	// LoadOrCreate returns the value stored under (provider, name), storing
	// create's value first when there is none. Every replica gets the same
	// value, whichever created it.
	LoadOrCreate(ctx context.Context, provider, name string, create func() ([]byte, error)) ([]byte, error)
}

// ReplayCache remembers one-time message ids, such as SAML assertion ids,
// across replicas.
type ReplayCache interface {
	// Remember records id for provider until expiresAt and reports false
	// when it was already recorded (a replay).
	Remember(ctx context.Context, provider, id string, expiresAt time.Time) (bool, error)
}

// Constructor builds a provider of one kind, validating its settings.
type Constructor func(name string, settings Settings, env Env) (Provider, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Constructor{}
)

// Register makes a kind available by its config `type`.
func Register(kind string, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[kind] = c
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds a provider of the given kind.
func New(kind, name string, settings Settings, env Env) (Provider, error) {
	registryMu.RLock()
	c, ok := registry[kind]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown provider type %q (known: %v)", kind, Kinds())
	}
	return c(name, settings, env)
}
