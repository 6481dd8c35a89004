package rbac

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-id/gatehouse/claims"
)

// ErrUnavailable reports that a credential cannot be checked right now:
// the issuer's keys or discovery document are not loaded yet (New keeps
// fetching them in the background) or cannot be fetched, Gatehouse could
// not be asked about an API key (network error, 5xx), or Options.Check
// could not decide (its error wraps ErrUnavailable). The request is
// answered 503 with Retry-After, not 401, and nothing is cached.
var ErrUnavailable = errors.New("gatehouse unavailable")

const maxCachedKeys = 10000

// apiKeyCache answers "whose key is this?" from a short-lived cache, and
// otherwise from Gatehouse. It keys entries by the SHA-256 of the key,
// so the keys themselves are not kept in memory; concurrent requests
// with the same uncached key share one introspection call.
type apiKeyCache struct {
	resolveFn func(ctx context.Context, key string) (*Principal, error)
	ttl, nttl time.Duration
	now       func() time.Time

	mu       sync.Mutex
	entries  map[[32]byte]apiKeyEntry
	inflight map[[32]byte]*apiKeyCall
}

type apiKeyEntry struct {
	p       *Principal // nil: refused
	err     error
	expires time.Time
}

type apiKeyCall struct {
	done chan struct{}
	p    *Principal
	err  error
}

// newAPIKeyCache checks the options; endpoint returns the introspection
// endpoint once it is known ("" while discovery has not succeeded yet:
// such requests answer 503).
func newAPIKeyCache(o APIKeyOptions, endpoint func() string, client *http.Client, now func() time.Time) (*apiKeyCache, error) {
	if o.CacheTTL <= 0 {
		o.CacheTTL = DefaultAPIKeyCacheTTL
	}
	if o.NegativeCacheTTL <= 0 {
		o.NegativeCacheTTL = o.CacheTTL
	}
	c := &apiKeyCache{resolveFn: o.ResolveAPIKey, ttl: o.CacheTTL, nttl: o.NegativeCacheTTL, now: now,
		entries: map[[32]byte]apiKeyEntry{}, inflight: map[[32]byte]*apiKeyCall{}}
	if c.resolveFn == nil {
		if o.ClientID == "" || o.ClientSecret == "" {
			return nil, errors.New("rbac: APIKeys: ClientID and ClientSecret of a confidential client are required for introspection")
		}
		c.resolveFn = introspector(client, endpoint, o.ClientID, o.ClientSecret)
	}
	return c, nil
}

// resolve returns the key's principal or the cached refusal.
func (c *apiKeyCache) resolve(ctx context.Context, key string) (*Principal, error) {
	h := sha256.Sum256([]byte(key))
	now := c.now()
	c.mu.Lock()
	if e, ok := c.entries[h]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.p, e.err
	}
	call := c.inflight[h]
	if call == nil {
		call = &apiKeyCall{done: make(chan struct{})}
		c.inflight[h] = call
		c.mu.Unlock()
		c.ask(h, key, call)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-call.done:
		return call.p, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// ask resolves the key detached from the asking request, so that its
// cancellation does not fail the others waiting, and caches the answer.
func (c *apiKeyCache) ask(h [32]byte, key string, call *apiKeyCall) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p, err := c.resolveFn(ctx, key)
	if err != nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	now := c.now()
	c.mu.Lock()
	delete(c.inflight, h)
	if !errors.Is(err, ErrUnavailable) {
		e := apiKeyEntry{p: p, err: err, expires: now.Add(c.nttl)}
		if err == nil {
			e.expires = now.Add(c.ttl)
			if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(e.expires) {
				e.expires = p.ExpiresAt
			}
		}
		if len(c.entries) >= maxCachedKeys {
			c.pruneLocked(now)
		}
		c.entries[h] = e
	}
	c.mu.Unlock()
	call.p, call.err = p, err
	close(call.done)
}

// pruneLocked drops expired entries, and everything if that is not enough.
func (c *apiKeyCache) pruneLocked(now time.Time) {
	for h, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, h)
		}
	}
	if len(c.entries) >= maxCachedKeys {
		clear(c.entries)
	}
}

var (
	errNotDiscovered  = unavailableErr("the issuer's discovery document is not loaded yet; try again shortly")
	errAPIKeyInactive = tokenErr("the API key is unknown, disabled or expired")
	errAPIKeyNotKey   = tokenErr("the X-API-Key header does not hold an API key")
)

// introspection is an RFC 7662 answer as Gatehouse gives it.
type introspection struct {
	Active bool `json:"active"`
	claims.Introspected
}

// introspector asks Gatehouse's introspection endpoint about a key,
// authenticating as a confidential client (client_secret_basic).
func introspector(client *http.Client, endpointOf func() string, id, secret string) func(ctx context.Context, key string) (*Principal, error) {
	return func(ctx context.Context, key string) (*Principal, error) {
		endpoint := endpointOf()
		if endpoint == "" {
			return nil, errNotDiscovered
		}
		form := url.Values{"token": {key}, "token_type_hint": {"api_key"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w: introspection: %v", ErrUnavailable, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// 401 here means our client credentials are wrong: not the caller's fault.
			return nil, fmt.Errorf("%w: introspection answered %s", ErrUnavailable, resp.Status)
		}
		var in introspection
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&in); err != nil {
			return nil, fmt.Errorf("%w: introspection: malformed answer", ErrUnavailable)
		}
		switch {
		case !in.Active:
			return nil, errAPIKeyInactive
		case in.TokenType != claims.TokenTypeAPIKey:
			return nil, errAPIKeyNotKey
		}
		p := NewPrincipal(Principal{Kind: KindAPIKey, Subject: in.Sub, OrgID: in.OrgID, Roles: in.Roles,
			Permissions: in.Permissions, TokenID: in.Jti, ClientID: in.ClientID, Scope: in.Scope, Name: in.Username})
		if in.Exp != 0 {
			p.ExpiresAt = time.Unix(in.Exp, 0)
		}
		return p, nil
	}
}
