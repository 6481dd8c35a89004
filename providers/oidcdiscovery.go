package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// discovered is what discovery yields.
type discovered struct {
	endpoint oauth2.Endpoint
	userinfo string
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	// issParam: the upstream advertises that its authorization responses
	// carry iss (RFC 9207), so a callback without one is not its answer.
	issParam bool
	// endSession is the upstream's end_session_endpoint (RP-Initiated
	// Logout 1.0), kept only when upstream_logout is configured; empty:
	// none.
	endSession string
}

// Discovery retry schedule: the first retry after discoveryFirstRetry,
// doubling up to discoveryMaxRetry, with jitter.
var (
	discoveryFirstRetry = 500 * time.Millisecond
	discoveryMaxRetry   = 30 * time.Second
)

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
		EndSession  string   `json:"end_session_endpoint"`
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
	endSession := ""
	if p.cfg.upstreamLogout {
		if err := p.checkEndSession(meta.EndSession); err != nil {
			p.log.Warn("upstream_logout is configured but the discovery document's end_session_endpoint "+err.Error()+
				"; logging out will not reach this identity provider", slog.String("issuer", p.cfg.issuer))
		} else {
			endSession = meta.EndSession
		}
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
		endpoint: ep, userinfo: meta.UserInfo, keys: keys, issParam: meta.IssParam, endSession: endSession,
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
