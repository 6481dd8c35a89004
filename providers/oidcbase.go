package providers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// This file holds the OpenID Connect provider the google, auth0 and oidc
// kinds share, and how a kind is built from its settings. A kind
// contributes only what differs (oidcKind). The plumbing is split by job:
//
//   - oidcsettings.go: the YAML settings every kind inlines, validated;
//   - oidcdiscovery.go: discovery, retried in the background, and the
//     key set and verifier it prepares;
//   - oidcflow.go: the code flow with PKCE and nonce, and UserInfo;
//   - oidcexchange.go: token exchange of upstream ID and access tokens;
//   - oidcclaims.go: upstream token validation and reading claims.
//
// go-oidc checks the signature (through keySet, oidckeys.go, on the
// shared JWKS cache of package jwks) and the algorithm allow-list;
// Gatehouse checks everything go-oidc leaves out or gets too loose:
// issuer, audience, expiry and not-before with a bounded clock skew, iat,
// nonce, azp and typ.

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
	p := newOIDCProvider(name, cfg, kind, env)
	if cfg.upstreamLogout {
		return &oidcLogoutProvider{p}, nil
	}
	return p, nil
}
