package providers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// This file is the OpenID Connect plumbing the google, auth0 and oidc
// kinds share: settings, discovery retried in the background, the code
// flow with PKCE and nonce, upstream token validation, UserInfo, and
// token exchange. A kind contributes only what differs (oidcKind).
//
// go-oidc checks the signature (through keySet, oidckeys.go, on the
// shared JWKS cache of package jwks) and the algorithm allow-list;
// Gatehouse checks everything go-oidc leaves out or gets too loose:
// issuer, audience, expiry and not-before with a bounded clock skew, iat,
// nonce, azp and typ.

// oidcSettings are the YAML fields every OpenID Connect kind accepts;
// each kind inlines them into its own settings.
type oidcSettings struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
	DisplayName  string   `yaml:"display_name"`
	// Claims names the claims the identity is read from.
	Claims claimSettings `yaml:"claims"`
	// SigningAlgorithms upstream tokens may use; default RS256.
	SigningAlgorithms []string `yaml:"signing_algorithms"`
	// ClockSkew tolerated on exp, nbf and iat; default 60s, at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JWKSRefetchInterval is the least time between two key fetches
	// triggered by tokens with an unknown kid; default 30s.
	JWKSRefetchInterval time.Duration `yaml:"jwks_refetch_interval"`
	// ExchangeClientIDs are the upstream applications whose tokens token
	// exchange accepts (ID token aud, access token azp); default client_id.
	ExchangeClientIDs []string `yaml:"exchange_client_ids"`
	// InsecureAllowHTTP permits a plain-HTTP issuer (tests, local IdPs).
	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`
}

// claimSettings name the upstream claims an identity is read from.
type claimSettings struct {
	Email         string     `yaml:"email"`
	EmailVerified string     `yaml:"email_verified"`
	Name          string     `yaml:"name"`
	Picture       string     `yaml:"picture"`
	Groups        stringList `yaml:"groups"`
}

// stringList is a YAML string or list of strings.
type stringList []string

// UnmarshalYAML accepts `groups: roles` as well as `groups: [a, b]`.
func (l *stringList) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return errors.New("must be a claim name or a list of claim names")
	}
	*l = many
	return nil
}

// Defaults and bounds of the shared settings.
const (
	defaultClockSkew      = 60 * time.Second
	maxClockSkew          = 5 * time.Minute
	defaultJWKSRefetch    = 30 * time.Second
	maxUpstreamTokenBytes = 16 << 10
	maxUserInfoBytes      = 1 << 20
	maxGroupLen           = 256
)

// asymmetricAlgs are the algorithms signing_algorithms may name: never
// "none" or an HMAC, whose key would be the public key everyone has.
var asymmetricAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA}

// oidcConfig is a validated configuration of one OpenID Connect provider.
type oidcConfig struct {
	issuer          string
	clientID        string
	clientSecret    string
	scopes          []string
	displayName     string
	algs            []string
	skew            time.Duration
	minRefetch      time.Duration
	exchangeClients []string
	claims          claimSettings
	insecureHTTP    bool
	// audience, when set, makes access tokens for this API audience
	// acceptable in token exchange; empty refuses access tokens.
	audience string
}

// check validates the shared settings for a provider whose issuer is
// issuer (named issuerField in messages) and fills in the defaults.
func (s *oidcSettings) check(e *SettingsError, env Env, issuerField, issuer, defaultDisplay string) oidcConfig {
	c := oidcConfig{issuer: issuer, clientID: s.ClientID, clientSecret: s.ClientSecret, scopes: s.Scopes,
		displayName: s.DisplayName, algs: s.SigningAlgorithms, skew: s.ClockSkew, minRefetch: s.JWKSRefetchInterval,
		exchangeClients: s.ExchangeClientIDs, claims: s.Claims, insecureHTTP: s.InsecureAllowHTTP}
	if c.clientID == "" {
		e.add("client_id", "is required (the client id of Gatehouse's application at the identity provider)")
	}
	if c.clientSecret == "" {
		e.add("client_secret", "is required; write it as ${NAME} to read it from the environment")
	}
	if len(c.scopes) == 0 {
		c.scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	} else if !slices.Contains(c.scopes, oidc.ScopeOpenID) {
		e.add("scopes", "must include openid")
	}
	if c.displayName == "" {
		c.displayName = defaultDisplay
	}
	if len(c.algs) == 0 {
		c.algs = []string{oidc.RS256}
	}
	for _, a := range c.algs {
		if !slices.Contains(asymmetricAlgs, a) {
			e.add("signing_algorithms", "%q is not allowed; use asymmetric algorithms only (%s)", a, strings.Join(asymmetricAlgs, ", "))
		}
	}
	switch {
	case c.skew == 0:
		c.skew = defaultClockSkew
	case c.skew < 0 || c.skew > maxClockSkew:
		e.add("clock_skew", "must be between 1s and %s", maxClockSkew)
	}
	switch {
	case c.minRefetch == 0:
		c.minRefetch = defaultJWKSRefetch
	case c.minRefetch < time.Second || c.minRefetch > time.Hour:
		e.add("jwks_refetch_interval", "must be between 1s and 1h")
	}
	if len(c.exchangeClients) == 0 {
		c.exchangeClients = []string{c.clientID}
	}
	if c.insecureHTTP && env.Production {
		e.add("insecure_allow_http", "not allowed with GATEHOUSE_ENV=production")
	}
	if issuer == "" {
		e.add(issuerField, "is required")
	} else if u, err := url.Parse(issuer); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		(u.Scheme != "https" && u.Scheme != "http") {
		e.add(issuerField, "must be an https URL such as https://idp.example.com")
	} else if u.Scheme == "http" && !c.insecureHTTP {
		e.add(issuerField, "must use https (plain HTTP only with insecure_allow_http, outside production)")
	}
	c.claims.Email = cmpOr(c.claims.Email, "email")
	c.claims.EmailVerified = cmpOr(c.claims.EmailVerified, "email_verified")
	c.claims.Name = cmpOr(c.claims.Name, "name")
	c.claims.Picture = cmpOr(c.claims.Picture, "picture")
	return c
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// oidcKind is what distinguishes the OpenID Connect kinds.
type oidcKind struct {
	typ string
	// authParams returns extra authorization request parameters; it may
	// record what it asked for in saved (e.g. the Auth0 organization).
	authParams func(req BeginRequest, saved *oidcSaved) url.Values
	// accept applies the kind's rules to a verified token's claims and
	// completes the identity (groups). requestedOrg is what the sign-in
	// asked the upstream for ("" for token exchange).
	accept func(c claimSet, id *Identity, requestedOrg string) error
}

// oidcSaved is the per-login data sealed into the login-state cookie.
type oidcSaved struct {
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Org      string `json:"o,omitempty"`
}

// oidcProvider is one configured OpenID Connect upstream of any kind.
type oidcProvider struct {
	name   string
	cfg    oidcConfig
	kind   oidcKind
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	onJWKS func(provider, outcome string)

	ctx        context.Context
	cancel     context.CancelFunc
	firstRetry time.Duration

	mu      sync.Mutex
	disc    *discovered
	discErr error
	// attempt is closed when the discovery attempt in progress ends; nil
	// while waiting to retry.
	attempt chan struct{}
}

// discovered is what discovery yields.
type discovered struct {
	endpoint oauth2.Endpoint
	userinfo string
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	// issParam: the upstream advertises that its authorization responses
	// carry iss (RFC 9207), so a callback without one is not its answer.
	issParam bool
}

// Discovery retry schedule: the first retry after discoveryFirstRetry,
// doubling up to discoveryMaxRetry, with jitter.
var (
	discoveryFirstRetry = 500 * time.Millisecond
	discoveryMaxRetry   = 30 * time.Second
)

// newOIDCProvider starts discovery in the background: start-up does not
// fail when an upstream is briefly down; the provider reports unavailable
// until discovery succeeds.
func newOIDCProvider(name string, cfg oidcConfig, kind oidcKind, env Env) *oidcProvider {
	client := env.HTTPClient
	if client == nil || client.Timeout == 0 {
		// go-oidc and x/oauth2 otherwise use http.DefaultClient, which
		// waits forever on an upstream that accepts and never answers.
		client = &http.Client{Timeout: 10 * time.Second}
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &oidcProvider{name: name, cfg: cfg, kind: kind, client: client, log: log.With(slog.String("provider", name)),
		now: time.Now, onJWKS: env.OnJWKSFetch, ctx: ctx, cancel: cancel, firstRetry: discoveryFirstRetry,
		attempt: make(chan struct{})}
	go p.discoverLoop()
	return p
}

// Name is the configured instance name.
func (p *oidcProvider) Name() string { return p.name }

// Type is the kind.
func (p *oidcProvider) Type() string { return p.kind.typ }

// DisplayName is what the provider chooser shows.
func (p *oidcProvider) DisplayName() string { return p.cfg.displayName }

// Close stops background discovery and key refreshes.
func (p *oidcProvider) Close() error {
	p.cancel()
	return nil
}

// Ready reports whether discovery has succeeded.
func (p *oidcProvider) Ready(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return nil
	}
	if p.discErr != nil {
		return fmt.Errorf("discovery of %s has not succeeded yet: %w", p.cfg.issuer, p.discErr)
	}
	return fmt.Errorf("discovery of %s in progress", p.cfg.issuer)
}

func (p *oidcProvider) discoverLoop() {
	delay := p.firstRetry
	for {
		p.mu.Lock()
		if p.attempt == nil {
			p.attempt = make(chan struct{})
		}
		attempt := p.attempt
		p.mu.Unlock()
		d, err := p.discover()
		p.mu.Lock()
		p.disc, p.discErr, p.attempt = d, err, nil
		p.mu.Unlock()
		close(attempt)
		if err == nil {
			p.log.Info("upstream discovery succeeded", slog.String("issuer", p.cfg.issuer))
			return
		}
		if p.ctx.Err() != nil {
			return // closed
		}
		wait := delay/2 + mrand.N(delay/2+1)
		p.log.Warn("upstream discovery failed; the provider is unavailable until it succeeds",
			slog.String("issuer", p.cfg.issuer), slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, discoveryMaxRetry)
	}
}

// discover fetches the discovery document and prepares the key set and
// verifier (built once: go-oidc's VerifierContext would build a new key
// set each call).
func (p *oidcProvider) discover() (*discovered, error) {
	// go-oidc reads the document whole: bound what it can read.
	ctx := oidc.ClientContext(p.ctx, boundedClient(p.client, maxDiscoveryBytes, "discovery document"))
	op, err := oidc.NewProvider(ctx, p.cfg.issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("the discovery document names issuer %q; configure exactly that (trailing slash included)", mismatch.Discovered)
		}
		return nil, err
	}
	var meta struct {
		JWKS        string   `json:"jwks_uri"`
		UserInfo    string   `json:"userinfo_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		IssParam    bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	ep := op.Endpoint()
	for field, u := range map[string]string{"authorization_endpoint": ep.AuthURL, "token_endpoint": ep.TokenURL, "jwks_uri": meta.JWKS} {
		if err := p.checkEndpoint(u); err != nil {
			return nil, fmt.Errorf("discovery document: %s %w", field, err)
		}
	}
	if meta.UserInfo != "" && p.checkEndpoint(meta.UserInfo) != nil {
		meta.UserInfo = ""
	}
	// RFC 8414: without the field, client_secret_basic is the default.
	switch {
	case len(meta.AuthMethods) == 0 || slices.Contains(meta.AuthMethods, "client_secret_basic"):
		ep.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(meta.AuthMethods, "client_secret_post"):
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	var onFetch func(string)
	if p.onJWKS != nil {
		onFetch = func(outcome string) { p.onJWKS(p.name, outcome) }
	}
	keys := newKeySet(p.ctx, p.name, p.cfg.algs, p.cfg.minRefetch, p.now, httpJWKSFetcher(p.client, meta.JWKS), onFetch, p.log)
	keys.Warm()
	return &discovered{
		endpoint: ep, userinfo: meta.UserInfo, keys: keys, issParam: meta.IssParam,
		// Issuer, audience and times are checked in verify, with the
		// skew and the exchange audiences go-oidc cannot express.
		verifier: oidc.NewVerifier(p.cfg.issuer, keys, &oidc.Config{SupportedSigningAlgs: p.cfg.algs,
			SkipClientIDCheck: true, SkipExpiryCheck: true, SkipIssuerCheck: true}),
	}, nil
}

func (p *oidcProvider) checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "" || err != nil || u.Host == "":
		return errors.New("is missing or not an absolute URL")
	case u.Scheme == "https", u.Scheme == "http" && p.cfg.insecureHTTP:
		return nil
	}
	return errors.New("must use https")
}

// ready returns the discovery result, waiting for an attempt in progress
// (so the first sign-ins after start-up do not fail needlessly).
func (p *oidcProvider) ready(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	d, attempt := p.disc, p.attempt
	p.mu.Unlock()
	if d == nil && attempt != nil {
		select {
		case <-attempt:
		case <-ctx.Done():
		}
		p.mu.Lock()
		d = p.disc
		p.mu.Unlock()
	}
	if d == nil {
		return nil, fmt.Errorf("%w: %s (%v)", ErrUnavailable, p.name, p.Ready(ctx))
	}
	return d, nil
}

func (p *oidcProvider) oauth2Config(d *discovered, callback string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.clientID, ClientSecret: p.cfg.clientSecret, Endpoint: d.endpoint,
		RedirectURL: callback, Scopes: p.cfg.scopes}
}

// Begin sends the browser to the upstream's authorization endpoint with
// PKCE (S256), a nonce, and the hints the kind supports.
func (p *oidcProvider) Begin(ctx context.Context, req BeginRequest) (*Challenge, error) {
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	saved := oidcSaved{Nonce: randomString(32), Verifier: oauth2.GenerateVerifier()}
	params := url.Values{}
	if req.LoginHint != "" {
		params.Set("login_hint", req.LoginHint)
	}
	if req.Prompt != "" {
		params.Set("prompt", req.Prompt)
	}
	if p.kind.authParams != nil {
		for k, v := range p.kind.authParams(req, &saved) {
			params[k] = v
		}
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(saved.Verifier), oidc.Nonce(saved.Nonce)}
	for k := range params {
		opts = append(opts, oauth2.SetAuthURLParam(k, params.Get(k)))
	}
	raw, err := json.Marshal(saved)
	if err != nil {
		return nil, err
	}
	return &Challenge{RedirectURL: p.oauth2Config(d, req.CallbackURL).AuthCodeURL(req.State, opts...), Saved: string(raw)}, nil
}

// verifyFailed is what a person sees when an upstream answer fails
// validation; the reason goes to the log and audit.
const verifyFailed = "The identity provider's answer could not be verified. Please try again."

// Complete redeems the code (with the PKCE verifier), validates the ID
// token, completes its claims from UserInfo when they are missing, and
// applies the kind's rules.
func (p *oidcProvider) Complete(ctx context.Context, req CompleteRequest) (*Identity, error) {
	q := req.HTTP.URL.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("%w: upstream error %q", ErrCancelled, truncate(e, 64))
	}
	// RFC 9207: an upstream that names itself must be the one we asked.
	if iss := q.Get("iss"); iss != "" && iss != p.cfg.issuer {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback iss is not the configured issuer", ErrInvalidResponse)}
	}
	code := q.Get("code")
	var saved oidcSaved
	if code == "" || json.Unmarshal([]byte(req.Saved), &saved) != nil || saved.Nonce == "" || saved.Verifier == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback without code or login state", ErrInvalidResponse)}
	}
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	// RFC 9207 §2.4: an upstream that says it names itself in every
	// response did not send one that does not (a mix-up attacker's).
	if d.issParam && q.Get("iss") == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback without iss from an issuer that advertises authorization_response_iss_parameter_supported", ErrInvalidResponse)}
	}
	tok, err := p.oauth2Config(d, req.CallbackURL).Exchange(oidc.ClientContext(ctx, p.client), code, oauth2.VerifierOption(saved.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			// Only the error code: the body is not ours to log.
			return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: token endpoint answered %s (%s)",
				ErrInvalidResponse, truncate(re.ErrorCode, 64), truncate(re.ErrorDescription, 200))}
		}
		return nil, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, redactURLError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: no id_token in the token response", ErrInvalidResponse)}
	}
	vt, err := p.verify(ctx, d, rawID, tokenCheck{idToken: true, audiences: []string{p.cfg.clientID},
		parties: []string{p.cfg.clientID}, nonce: saved.Nonce})
	if err == nil && vt.idt.AccessTokenHash != "" && vt.idt.VerifyAccessToken(tok.AccessToken) != nil {
		err = &rejection{reason: "the ID token's at_hash does not match the access token", err: ErrInvalidResponse}
	}
	if err != nil {
		return nil, p.loginError(err)
	}
	if p.incomplete(vt.claims) && d.userinfo != "" && tok.AccessToken != "" {
		if err := p.completeFromUserInfo(ctx, d, tok.AccessToken, vt.claims); err != nil {
			return nil, p.loginError(err)
		}
	}
	return p.identity(vt.claims, saved.Org)
}

// loginError turns a validation failure into what the sign-in page shows.
func (p *oidcProvider) loginError(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &UserError{Message: verifyFailed, Err: err}
}

// ExchangeToken validates an upstream ID token (aud one of
// exchange_client_ids) or access token (aud the configured API audience,
// azp one of exchange_client_ids) and yields its identity.
func (p *oidcProvider) ExchangeToken(ctx context.Context, req ExchangeRequest) (*Identity, error) {
	var check tokenCheck
	switch req.SubjectTokenType {
	case TokenTypeIDToken:
		check = tokenCheck{idToken: true, audiences: p.cfg.exchangeClients, parties: p.cfg.exchangeClients}
	case TokenTypeAccessToken:
		if p.cfg.audience == "" {
			return nil, &UserError{Message: "this provider accepts ID tokens only (no API audience is configured for access tokens)",
				Err: fmt.Errorf("%w: access token presented, no audience configured", ErrInvalidResponse)}
		}
		check = tokenCheck{audiences: []string{p.cfg.audience}, parties: p.cfg.exchangeClients, requireParty: true}
	default:
		return nil, &UserError{Message: "unsupported subject_token_type", Err: fmt.Errorf("%w: subject_token_type", ErrInvalidResponse)}
	}
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	vt, err := p.verify(ctx, d, req.SubjectToken, check)
	if err != nil {
		var r *rejection
		if errors.As(err, &r) && !errors.Is(err, ErrUnavailable) {
			return nil, &UserError{Message: r.reason, Err: r.err}
		}
		return nil, err
	}
	return p.identity(vt.claims, "")
}

// identity builds the Identity from verified claims and applies the
// kind's rules. A configured claim name that is absent falls back to the
// standard one, so namespaced claims added to access tokens (Auth0
// Actions) and the standard claims of ID tokens both work.
func (p *oidcProvider) identity(c claimSet, requestedOrg string) (*Identity, error) {
	names := p.cfg.claims
	id := &Identity{
		Provider: p.name, Subject: c.str("sub"),
		Email:  strings.ToLower(strings.TrimSpace(c.first(names.Email, "email"))),
		Name:   truncate(strings.TrimSpace(c.first(names.Name, "name")), 200),
		Claims: c, AMR: c.strs("amr", 10, 32),
	}
	if len(id.Email) > 254 || !strings.Contains(id.Email, "@") {
		id.Email = ""
	}
	id.EmailVerified = id.Email != "" && c.firstBool(names.EmailVerified, "email_verified")
	if pic := c.first(names.Picture, "picture"); len(pic) <= 2048 && strings.HasPrefix(pic, "https://") {
		id.AvatarURL = pic
	}
	for _, claim := range names.Groups {
		id.Groups = appendGroups(id.Groups, p.kind.typ+":group:", c.strs(claim, maxGroups, maxGroupLen))
	}
	if p.kind.accept != nil {
		if err := p.kind.accept(c, id, requestedOrg); err != nil {
			return nil, err
		}
	}
	return id, nil
}

// appendGroups adds prefix+value for each value not already present.
func appendGroups(groups []string, prefix string, values []string) []string {
	for _, v := range values {
		if g := prefix + v; v != "" && len(groups) < maxGroups && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}

// incomplete reports whether claims an identity is read from are missing
// (many certified providers put email and profile only in UserInfo).
func (p *oidcProvider) incomplete(c claimSet) bool {
	n := p.cfg.claims
	has := func(names ...string) bool {
		return slices.ContainsFunc(names, func(name string) bool { _, ok := c[name]; return ok })
	}
	if !has(n.Email, "email") || !has(n.Name, "name") {
		return true
	}
	return slices.ContainsFunc(n.Groups, func(g string) bool { return !has(g) })
}

// completeFromUserInfo adds the UserInfo claims the ID token lacks; the
// ID token's claims win, and UserInfo must be about the same subject.
func (p *oidcProvider) completeFromUserInfo(ctx context.Context, d *discovered, accessToken string, c claimSet) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.userinfo, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json, application/jwt")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: userinfo: %v", ErrUnavailable, redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfoBytes+1))
	if err != nil {
		return fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
	}
	if len(body) > maxUserInfoBytes {
		return &rejection{reason: "the UserInfo response is too large", err: tooLarge("UserInfo answer", maxUserInfoBytes)}
	}
	if resp.StatusCode != http.StatusOK {
		return &rejection{reason: "the UserInfo endpoint refused the access token", err: fmt.Errorf("%w: userinfo answered %s", ErrInvalidResponse, resp.Status)}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/jwt" {
		// A signed UserInfo response: the same keys, issuer and audience.
		if body, err = d.keys.Cache.VerifySignature(ctx, string(body)); err != nil {
			return &rejection{reason: "the signed UserInfo response does not verify", err: fmt.Errorf("%w: userinfo: %v", ErrInvalidResponse, err)}
		}
	}
	var ui claimSet
	if err := json.Unmarshal(body, &ui); err != nil {
		return &rejection{reason: "the UserInfo response is not JSON", err: ErrInvalidResponse}
	}
	if iss, ok := ui["iss"]; ok && iss != p.cfg.issuer {
		return &rejection{reason: "the UserInfo response is from another issuer", err: ErrInvalidResponse}
	}
	if _, ok := ui["aud"]; ok && !slices.Contains(ui.audience(), p.cfg.clientID) {
		return &rejection{reason: "the UserInfo response is for another audience", err: ErrInvalidResponse}
	}
	if ui.str("sub") != c.str("sub") {
		return &rejection{reason: "UserInfo describes another subject than the ID token", err: ErrInvalidResponse}
	}
	for k, v := range ui {
		if _, ok := c[k]; !ok {
			c[k] = v
		}
	}
	return nil
}

// tokenCheck says what an upstream token must satisfy beyond signature
// and issuer.
type tokenCheck struct {
	// idToken selects the ID token typ rules (else access token).
	idToken bool
	// audiences: aud must contain one of them.
	audiences []string
	// parties: azp (or client_id), when present, must be one of them.
	parties []string
	// requireParty: azp or client_id must be present.
	requireParty bool
	// nonce, when set, must equal the token's nonce.
	nonce string
}

// rejection is why an upstream token was refused. reason is safe to show
// a client (never the token); err wraps ErrInvalidResponse or
// ErrUnavailable.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + " (" + r.err.Error() + ")" }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string) error { return &rejection{reason: reason, err: ErrInvalidResponse} }

type verifiedToken struct {
	claims claimSet
	idt    *oidc.IDToken
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
}

// verify validates an upstream token: algorithm allow-list and signature
// (go-oidc with the cached key set), then issuer, audience, times with the
// configured skew, azp, typ and nonce.
func (p *oidcProvider) verify(ctx context.Context, d *discovered, raw string, c tokenCheck) (*verifiedToken, error) {
	if len(raw) > maxUpstreamTokenBytes {
		return nil, reject("the token is too large")
	}
	var h jwtHeader
	head, _, ok := strings.Cut(raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if !ok || err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, reject("the token is not a signed JWT")
	}
	if !slices.Contains(p.cfg.algs, h.Alg) {
		return nil, reject(fmt.Sprintf("the token is signed with %q, which this provider does not accept", truncate(h.Alg, 16)))
	}
	if !typAllowed(h.Typ, c.idToken) {
		return nil, reject(fmt.Sprintf("the token's typ %q is not accepted here", truncate(h.Typ, 32)))
	}
	tr := &sigTrace{}
	idt, err := d.verifier.Verify(context.WithValue(ctx, sigTraceKey{}, tr), raw)
	switch {
	case err == nil:
	case errors.Is(tr.err, jwks.ErrKeysUnavailable):
		return nil, &rejection{reason: "the identity provider's signing keys are unavailable", err: fmt.Errorf("%w: %v", ErrUnavailable, tr.err)}
	case errors.Is(tr.err, jwks.ErrUnknownKey):
		return nil, reject("the token is signed with a key the identity provider does not publish")
	case errors.Is(tr.err, jwks.ErrBadSignature):
		return nil, reject("the token's signature is invalid")
	default:
		return nil, reject("the token is malformed")
	}
	var cl claimSet
	if err := idt.Claims(&cl); err != nil {
		return nil, reject("the token's claims are malformed")
	}
	if err := p.checkClaims(cl, c); err != nil {
		return nil, err
	}
	return &verifiedToken{claims: cl, idt: idt}, nil
}

func typAllowed(typ string, idToken bool) bool {
	switch strings.ToLower(typ) {
	case "", "jwt":
		return true
	case "at+jwt", "application/at+jwt":
		return !idToken // RFC 9068 §4: an access token is never an ID token
	}
	return false
}

func (p *oidcProvider) checkClaims(cl claimSet, c tokenCheck) error {
	iss := cl.str("iss")
	// Google's ID tokens may name the issuer without the scheme (go-oidc
	// accepts the same exception).
	if iss != p.cfg.issuer && !(p.cfg.issuer == "https://accounts.google.com" && iss == "accounts.google.com") {
		return reject("the token was issued by another issuer")
	}
	if sub := cl.str("sub"); sub == "" || len(sub) > 255 {
		return reject("the token has no valid subject")
	}
	aud := cl.audience()
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(c.audiences, a) }) {
		return reject("the token was issued for another audience")
	}
	now := p.now()
	exp, ok := cl.number("exp")
	switch {
	case !ok:
		return reject("the token has no expiry")
	case !now.Before(time.Unix(exp, 0).Add(p.cfg.skew)):
		return reject("the token has expired")
	}
	if nbf, ok := cl.number("nbf"); ok && time.Unix(nbf, 0).After(now.Add(p.cfg.skew)) {
		return reject("the token is not valid yet (nbf)")
	}
	if iat, ok := cl.number("iat"); ok && time.Unix(iat, 0).After(now.Add(p.cfg.skew)) {
		return reject("the token was issued in the future (iat)")
	}
	party := cl.str("azp")
	if party == "" && !c.idToken {
		party = cl.str("client_id") // RFC 9068 access tokens
	}
	switch {
	case party == "" && (c.requireParty || (c.idToken && len(aud) > 1)):
		// OIDC Core §3.1.3.7: several audiences need an azp.
		return reject("the token does not name the client it was issued to (azp)")
	case party != "" && !slices.Contains(c.parties, party):
		return reject("the token was issued to a client that is not accepted (azp)")
	}
	if c.nonce != "" {
		n := cl.str("nonce")
		if n == "" {
			return reject("the ID token carries no nonce")
		}
		if subtle.ConstantTimeCompare([]byte(n), []byte(c.nonce)) != 1 {
			return reject("the ID token's nonce does not match this sign-in")
		}
	}
	return nil
}

// claimSet is a token's or UserInfo's claims as decoded JSON.
type claimSet map[string]any

func (c claimSet) str(name string) string {
	s, _ := c[name].(string)
	return s
}

// first returns the first non-empty string claim among names.
func (c claimSet) first(names ...string) string {
	for _, n := range names {
		if s := c.str(n); s != "" {
			return s
		}
	}
	return ""
}

// firstBool reads the first of names that is present as a boolean.
func (c claimSet) firstBool(names ...string) bool {
	for _, n := range names {
		if _, ok := c[n]; ok {
			return c.boolean(n)
		}
	}
	return false
}

// boolean reads a boolean claim; some providers send "true" as a string.
func (c claimSet) boolean(name string) bool {
	switch v := c[name].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// number reads a NumericDate.
func (c claimSet) number(name string) (int64, bool) {
	f, ok := c[name].(float64)
	if !ok || f != f || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(f), true
}

// strs reads a string or list-of-strings claim, keeping at most n values
// of at most maxLen bytes.
func (c claimSet) strs(name string, n, maxLen int) []string {
	var out []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && len(s) <= maxLen && len(out) < n {
			out = append(out, s)
		}
	}
	switch v := c[name].(type) {
	case string:
		add(v)
	case []any:
		for _, x := range v {
			add(x)
		}
	}
	return out
}

func (c claimSet) audience() []string { return c.strs("aud", 32, 2048) }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// buildOIDC decodes a kind's settings into S, lets configure check them
// (recording every problem in e) and describe the kind, and starts the
// provider when nothing is wrong.
func buildOIDC[S any](name string, settings Settings, env Env, configure func(s *S, e *SettingsError) (oidcConfig, oidcKind)) (Provider, error) {
	if settings == nil {
		return nil, errors.New("settings are required")
	}
	var s S
	if err := settings.Decode(&s); err != nil {
		return nil, err
	}
	e := &SettingsError{}
	cfg, kind := configure(&s, e)
	if err := e.err(); err != nil {
		return nil, err
	}
	return newOIDCProvider(name, cfg, kind, env), nil
}
