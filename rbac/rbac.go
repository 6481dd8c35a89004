package rbac

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/claims"
	"github.com/gatehouse-id/gatehouse/jwks"
)

// Defaults and bounds of Options.
const (
	DefaultClockSkew       = 30 * time.Second
	MaxClockSkew           = 5 * time.Minute
	DefaultRefetchInterval = 30 * time.Second
	DefaultAPIKeyCacheTTL  = 30 * time.Second
	DefaultOrgParam        = "org_id"
)

// Options configure a Middleware. Issuer and Audience are required.
type Options struct {
	// Issuer is Gatehouse's issuer URL (GATEHOUSE_ISSUER), compared
	// exactly with the tokens' iss and the discovery document's issuer.
	Issuer string
	// Audience must be among the tokens' aud: the audience Gatehouse
	// mints for the clients whose users call this backend (a client's
	// `audience` in Gatehouse's YAML, by default its id).
	Audience string
	// Algorithms accepted in token headers; default RS256, ES256, EdDSA
	// (what Gatehouse signs with). "none" and HMAC are never accepted.
	Algorithms []string
	// ClockSkew is the leeway for exp, nbf and iat; default
	// DefaultClockSkew, at most MaxClockSkew.
	ClockSkew time.Duration
	// HTTPClient fetches discovery, keys and introspection; default a
	// client with a 10 s timeout.
	HTTPClient *http.Client
	// RefetchInterval is the least time between two fetches of the keys
	// caused by tokens with an unknown kid; default DefaultRefetchInterval.
	RefetchInterval time.Duration
	// Keys, when set, supplies the keys in process instead of fetching
	// the issuer's JWKS (Gatehouse protects its own admin API this way).
	// New loads them before it returns and fails if it cannot.
	Keys func(ctx context.Context) (jose.JSONWebKeySet, error)
	// APIKeys enables X-API-Key (and ?key= on WebSocket upgrades); nil
	// refuses API keys.
	APIKeys *APIKeyOptions
	// OrgParam names the path or query parameter that says which
	// organization a request is about; default "org_id".
	OrgParam string
	// OrgCheck decides whether a principal may act on the organization a
	// request names (requested is "" when it names none). Default: a
	// request naming an organization must name the principal's. A refusal
	// is a 403 with the reason other_organization, or
	// no_active_organization when the principal acts in none.
	OrgCheck func(p *Principal, requested string) bool
	// Check, when set, runs after a Gatehouse credential (access token,
	// API key) verified; not for webhooks, nor for InsecureDevPrincipal.
	// An error refuses the request with 401 (Gatehouse checks that the
	// session is live); one made by Forbid refuses it with 403 and the
	// reason and sentence given (a suspended membership:
	// Forbid(ReasonMembershipInactive, ...)); one wrapping ErrUnavailable
	// (the check could not be made right now) answers 503. The client
	// reads the reason of an error made by Refuse or Forbid; any other
	// error's text stays out of the answer ("the credential was refused").
	Check func(ctx context.Context, p *Principal) error
	// WriteError, when set, writes every refusal (401, 403, 503) instead
	// of WriteRefusal, the default answer; it may call WriteRefusal.
	WriteError func(w http.ResponseWriter, r *http.Request, f *Refusal)
	// OnRefusal, when set, learns every refusal before it is written, to
	// log or count it (rbac logs none by itself). On a 403, r's context
	// carries the principal, as f.Principal does.
	OnRefusal func(r *http.Request, f *Refusal)
	// Production says the process serves production: New then refuses
	// InsecureDevPrincipal. Set it from the backend's own setting; a
	// GATEHOUSE_ENV other than development does the same.
	Production bool
	// InsecureDevPrincipal, for development only, makes every request
	// act as this principal, with no credential read or needed (webhook
	// routes still check their secrets); the organization check and every
	// Require… still apply, Options.Check does not run, and nothing is
	// fetched from the issuer. Its Kind defaults to KindInsecureDev. New
	// refuses it when Options.Production is set or GATEHOUSE_ENV is set
	// to anything but "development", and logs a warning at start and
	// every minute until Close, to Options.Logger (slog.Default() when
	// none is given).
	InsecureDevPrincipal *Principal
	// Logger receives key and discovery fetch failures (and the warnings
	// of InsecureDevPrincipal); default discards.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// APIKeyOptions configure how API keys are checked: by Gatehouse's
// introspection endpoint (RFC 7662) with a confidential client's
// credentials, or in process by ResolveAPIKey.
type APIKeyOptions struct {
	ClientID     string
	ClientSecret string
	// IntrospectionURL defaults to the discovery document's
	// introspection_endpoint.
	IntrospectionURL string
	// CacheTTL is how long an answer about a key is reused (a disabled
	// key keeps working this long at most); default DefaultAPIKeyCacheTTL.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long a refused key stays refused without
	// asking again; default CacheTTL.
	NegativeCacheTTL time.Duration
	// ResolveAPIKey, when set, replaces introspection: it returns the
	// key's principal, or an error wrapping ErrInvalidToken.
	ResolveAPIKey func(ctx context.Context, key string) (*Principal, error)
}

// ErrInvalidToken is wrapped by every refusal of a credential (401).
var ErrInvalidToken = errors.New("invalid token")

// Middleware verifies Gatehouse credentials and enforces permissions. It
// is safe for concurrent use; build one per issuer and audience at start,
// and Close it when the backend stops.
type Middleware struct {
	issuer     string
	audience   string
	algs       []jose.SignatureAlgorithm
	skew       int64 // seconds
	keys       *jwks.Cache
	apiKeys    *apiKeyCache
	orgParam   string
	orgCheck   func(p *Principal, requested string) bool
	check      func(ctx context.Context, p *Principal) error
	writeError func(w http.ResponseWriter, r *http.Request, f *Refusal)
	onRefusal  func(r *http.Request, f *Refusal)
	now        func() time.Time
	log        *slog.Logger
	dev        *Principal // InsecureDevPrincipal

	start // discovery and keys, loaded in the background when need be
}

// discovery is the part of the OpenID Provider metadata rbac reads.
type discovery struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

var defaultAlgs = []string{"RS256", "ES256", "EdDSA"}

// New checks the options and returns the middleware. It discovers the
// issuer (unless keys and the introspection endpoint are given) and
// loads its keys, waiting for that first attempt at most until ctx is
// done. When the issuer cannot be reached, New still returns: it keeps
// trying in the background with backoff (1 s doubling to 1 min) until it
// succeeds or Close is called, and meanwhile answers requests with a
// credential 503 with Retry-After (Ready and ReadyHandler tell when it
// is ready). New fails for invalid options, when Options.Keys fails,
// and when the issuer answers that it is another issuer or lacks an
// endpoint rbac needs. Verifying a token needs no network call once the
// keys are loaded.
func New(ctx context.Context, opts Options) (*Middleware, error) {
	if opts.Issuer == "" {
		return nil, errors.New("rbac: Options.Issuer is required")
	}
	if opts.Audience == "" {
		return nil, errors.New("rbac: Options.Audience is required: the aud Gatehouse mints for this backend's clients")
	}
	if opts.ClockSkew == 0 {
		opts.ClockSkew = DefaultClockSkew
	}
	if opts.ClockSkew < 0 || opts.ClockSkew > MaxClockSkew {
		return nil, fmt.Errorf("rbac: Options.ClockSkew must be between 0 and %s", MaxClockSkew)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.RefetchInterval <= 0 {
		opts.RefetchInterval = DefaultRefetchInterval
	}
	devLog := opts.Logger
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
		devLog = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OrgParam == "" {
		opts.OrgParam = DefaultOrgParam
	}
	if opts.OrgCheck == nil {
		opts.OrgCheck = sameOrg
	}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = defaultAlgs
	}
	m := &Middleware{issuer: opts.Issuer, audience: opts.Audience, skew: int64(opts.ClockSkew / time.Second),
		orgParam: opts.OrgParam, orgCheck: opts.OrgCheck, check: opts.Check, writeError: opts.WriteError,
		onRefusal: opts.OnRefusal, now: opts.Now, log: opts.Logger}
	for _, a := range opts.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
			m.algs = append(m.algs, jose.SignatureAlgorithm(a))
		default:
			return nil, fmt.Errorf("rbac: algorithm %q is not accepted (asymmetric JWS algorithms only)", a)
		}
	}
	if opts.InsecureDevPrincipal != nil {
		p, err := devPrincipal(opts)
		if err != nil {
			return nil, err
		}
		m.dev = p
	}
	ak := opts.APIKeys
	m.initStart(opts.HTTPClient, opts.Keys == nil, ak != nil && ak.ResolveAPIKey == nil && ak.IntrospectionURL == "")
	source := localKeySource(opts.Keys)
	if opts.Keys == nil {
		source = m.httpKeySource
	}
	m.keys = newKeyCache(m.ctx, source, opts.RefetchInterval, opts.Now, opts.Logger)
	if ak != nil {
		explicit := ak.IntrospectionURL
		c, err := newAPIKeyCache(*ak, func() string {
			if explicit != "" {
				return explicit
			}
			if d := m.disc.Load(); d != nil {
				return d.IntrospectionEndpoint
			}
			return ""
		}, opts.HTTPClient, opts.Now)
		if err != nil {
			m.cancel()
			return nil, err
		}
		m.apiKeys = c
	}
	if m.dev != nil {
		// Nothing is verified: no fetching, and loud warnings.
		m.markReady()
		m.warnInsecure(devLog)
		return m, nil
	}
	if opts.Keys != nil {
		if err := m.keys.Load(ctx); err != nil {
			m.cancel()
			return nil, fmt.Errorf("rbac: load the issuer's keys: %w", err)
		}
		m.keysLoaded.Store(true)
	}
	if err := m.begin(ctx); err != nil {
		m.cancel()
		return nil, err
	}
	return m, nil
}

func sameOrg(p *Principal, requested string) bool { return requested == "" || requested == p.OrgID }

// errMisconfigured is wrapped by discovery errors that say the options
// do not fit the issuer: New fails on them rather than retry.
var errMisconfigured = errors.New("misconfigured")

// discover reads the issuer's discovery document; its issuer must be
// the configured one exactly (OpenID Connect Discovery §4.3).
func discover(ctx context.Context, client *http.Client, issuer string, wantJWKS, wantIntrospection bool) (*discovery, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	body, _, err := getJSON(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("rbac: discovery: %w", err)
	}
	var d discovery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("rbac: discovery: %s is not a discovery document", u)
	}
	switch {
	case d.Issuer != issuer:
		return nil, fmt.Errorf("rbac: discovery: issuer is %q, not %q (%w: Options.Issuer must be Gatehouse's issuer exactly)", d.Issuer, issuer, errMisconfigured)
	case wantJWKS && d.JWKSURI == "":
		return nil, fmt.Errorf("rbac: discovery: no jwks_uri (%w)", errMisconfigured)
	case wantIntrospection && d.IntrospectionEndpoint == "":
		return nil, fmt.Errorf("rbac: APIKeys: the discovery document has no introspection_endpoint; set IntrospectionURL (%w)", errMisconfigured)
	}
	return &d, nil
}

// Token refusals, built once: a flood of forged tokens allocates nothing
// for its errors. Their text is safe to return to the caller.
var (
	errTokenMalformed = tokenErr("the access token is malformed")
	errTokenAlg       = tokenErr("the access token's signing algorithm is not accepted")
	errTokenType      = tokenErr("not an access token (typ must be at+jwt)")
	errTokenKey       = tokenErr("the access token is signed with an unknown key")
	errTokenSignature = tokenErr("the access token's signature is invalid")
	errTokenIssuer    = tokenErr("the access token is from another issuer")
	errTokenAudience  = tokenErr("the access token is for another audience")
	errTokenExpired   = tokenErr("the access token has expired")
	errTokenNotYet    = tokenErr("the access token is not valid yet")
	errTokenNoExpiry  = tokenErr("the access token has no expiry")
	// 503s: the credential may be fine.
	errTokenUnavail = unavailableErr("the issuer's keys cannot be fetched right now; try again shortly")
	errKeysNotYet   = unavailableErr("the issuer's keys are not loaded yet; try again shortly")
)

func tokenErr(reason string) error { return &refusedError{reason: reason, prefixed: true} }

func unavailableErr(reason string) error {
	return &refusedError{reason: reason, prefixed: true, kind: ErrUnavailable}
}

// Refuse returns an error for Options.Check that refuses the credential
// (401) with a reason the client may read; it must hold no secret. Its
// Error() is the reason.
func Refuse(reason string) error { return &refusedError{reason: reason} }

// refusedError is a refusal whose reason is written for the client.
type refusedError struct {
	reason   string
	prefixed bool  // Error() starts with the text of kind
	kind     error // ErrInvalidToken (nil) or ErrUnavailable
}

func (e *refusedError) Error() string {
	if e.prefixed {
		return e.unwrapped().Error() + ": " + e.reason
	}
	return e.reason
}

func (e *refusedError) Unwrap() error { return e.unwrapped() }

func (e *refusedError) unwrapped() error {
	if e.kind == nil {
		return ErrInvalidToken
	}
	return e.kind
}

// signedRefusals are the refusals verifySigned gives, worded for one
// kind of token.
type signedRefusals struct {
	malformed, alg, typ, key, signature error
}

var accessTokenRefusals = signedRefusals{malformed: errTokenMalformed, alg: errTokenAlg, typ: errTokenType,
	key: errTokenKey, signature: errTokenSignature}

// verifySigned checks the signature layer of a token Gatehouse signed and
// returns its verified payload: at most maxTokenLen bytes, a compact JWS
// with one of the accepted algorithms, the typ header typ (or
// application/typ, in any case), a kid naming a key of the issuer's set
// whose own algorithm, when it states one, is the header's (so algorithm
// confusion fails), and a signature that verifies with that key. The
// claims are the caller's to check. A refusal is one of r, or wraps
// ErrUnavailable when the issuer's keys are not loaded yet or cannot be
// fetched for the kid (the token may be fine).
func (m *Middleware) verifySigned(ctx context.Context, token, typ string, r signedRefusals) ([]byte, error) {
	if len(token) > maxTokenLen {
		return nil, r.malformed
	}
	jws, err := jose.ParseSignedCompact(token, m.algs)
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, r.alg
		}
		return nil, r.malformed
	}
	h := jws.Signatures[0].Header
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(got, typ) && !strings.EqualFold(got, "application/"+typ) {
		return nil, r.typ
	}
	if h.KeyID == "" {
		return nil, r.key
	}
	if !m.keysLoaded.Load() {
		return nil, errKeysNotYet
	}
	key, err := m.keys.Key(ctx, h.KeyID)
	switch {
	case errors.Is(err, jwks.ErrKeysUnavailable):
		return nil, errTokenUnavail
	case err != nil:
		return nil, r.key
	case key.Algorithm != "" && key.Algorithm != h.Algorithm:
		return nil, r.alg
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, r.signature
	}
	return payload, nil
}

// Verify checks a Gatehouse access token locally and returns its
// principal: compact JWS signed by a key of the issuer with an accepted
// algorithm (the key's own, so algorithm confusion fails), typ at+jwt,
// iss, aud, exp (required), nbf and iat, with the configured skew. Every
// error wraps ErrInvalidToken and never contains the token, except when
// the issuer's keys are not loaded yet or cannot be fetched for the
// token's kid: then it wraps ErrUnavailable (503, the token may be fine).
func (m *Middleware) Verify(ctx context.Context, token string) (*Principal, error) {
	payload, err := m.verifySigned(ctx, token, "at+jwt", accessTokenRefusals)
	if err != nil {
		return nil, err
	}
	var c claims.Access
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errTokenMalformed
	}
	if c.Issuer != m.issuer {
		return nil, errTokenIssuer
	}
	if !containsString(c.Audience, m.audience) {
		return nil, errTokenAudience
	}
	now := m.now().Unix()
	switch {
	case c.Expiry == 0:
		return nil, errTokenNoExpiry
	case now-m.skew >= c.Expiry:
		return nil, errTokenExpired
	case c.NotBefore != 0 && now+m.skew < c.NotBefore:
		return nil, errTokenNotYet
	case now+m.skew < c.IssuedAt:
		return nil, errTokenNotYet
	}
	p := &Principal{Kind: KindAccessToken, Subject: c.Subject, OrgID: c.OrgID, Roles: c.Roles, Permissions: c.Permissions,
		TokenID: c.ID, ClientID: c.ClientID, SessionID: c.SessionID, Scope: c.Scope, Email: c.Email, Name: c.Name,
		ExpiresAt: time.Unix(c.Expiry, 0), grants: parseGrants(c.Permissions)}
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if p.Permissions == nil {
		p.Permissions = []string{}
	}
	return p, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// AuthenticateRequest finds the request's credential and returns its
// principal (without touching the request's context). Errors wrap
// ErrInvalidToken, except ErrUnavailable when the credential cannot be
// checked right now (keys not loaded, Gatehouse cannot be asked about an
// API key, Options.Check could not decide), and the *ForbiddenError
// Options.Check made with Forbid. With InsecureDevPrincipal it returns
// that principal.
func (m *Middleware) AuthenticateRequest(r *http.Request) (*Principal, error) {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p, nil
	}
	p, err := m.authenticate(r)
	if fc, ok := err.(*forbiddenCheck); ok {
		return nil, fc.err
	}
	return p, err
}

// forbiddenCheck is Options.Check's Forbid, with the principal it
// refused.
type forbiddenCheck struct {
	err *ForbiddenError
	p   *Principal
}

func (e *forbiddenCheck) Error() string { return e.err.Error() }
func (e *forbiddenCheck) Unwrap() error { return e.err }

// authenticate is AuthenticateRequest without the context shortcut.
func (m *Middleware) authenticate(r *http.Request) (*Principal, error) {
	if m.dev != nil {
		stripQueryCredentials(r) // nothing is read, nothing is logged either
		return m.dev, nil
	}
	cred, err := extractCredential(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	var p *Principal
	switch cred.kind {
	case KindAPIKey:
		if m.apiKeys == nil {
			return nil, errAPIKeysOff
		}
		p, err = m.apiKeys.resolve(r.Context(), cred.value)
	default:
		p, err = m.Verify(r.Context(), cred.value)
	}
	if err != nil {
		return nil, err
	}
	if m.check != nil {
		if err := m.check(r.Context(), p); err != nil {
			if fe, ok := errors.AsType[*ForbiddenError](err); ok {
				return nil, &forbiddenCheck{err: fe, p: p}
			}
			if errors.Is(err, ErrUnavailable) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
	}
	return p, nil
}

var errAPIKeysOff = tokenErr("API keys are not accepted here")
