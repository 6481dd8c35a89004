package providers

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Why a signature check failed, as the key set reports it.
var (
	errTokenMalformed  = errors.New("malformed token")
	errUnknownKey      = errors.New("signed with a key the identity provider does not publish")
	errBadSignature    = errors.New("bad signature")
	errKeysUnavailable = errors.New("the identity provider's signing keys cannot be fetched")
)

// JWKS freshness bounds: a Cache-Control max-age is clamped to them, and
// a response without one counts as defaultJWKSMaxAge.
const (
	minJWKSMaxAge     = 5 * time.Minute
	maxJWKSMaxAge     = 24 * time.Hour
	defaultJWKSMaxAge = time.Hour
	maxJWKSBytes      = 1 << 20
	maxUnknownKids    = 1024
)

// keySet is the JWKS cache of one upstream issuer, handed to go-oidc as
// its oidc.KeySet. It closes the gaps of go-oidc's RemoteKeySet, which
// refetches on every token it cannot verify and never expires a key:
//
//   - a token with an unknown kid triggers a refetch, but at most one is
//     in flight and at most one starts per minRefetch (forged tokens
//     cannot turn into upstream traffic);
//   - a kid still unknown after a refetch is remembered (negative cache)
//     for minRefetch, so it is refused without any lock contention;
//   - a known kid with a bad signature is refused without a refetch;
//   - Cache-Control max-age is honoured with a background refresh that
//     never blocks a verification, so keys the upstream withdraws stop
//     being accepted;
//   - a failed fetch keeps the cached keys: logins continue while the
//     JWKS endpoint is down.
type keySet struct {
	provider   string
	algs       []jose.SignatureAlgorithm
	minRefetch time.Duration
	now        func() time.Time
	// fetch downloads the key set and its max-age.
	fetch   func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error)
	onFetch func(outcome string)
	log     *slog.Logger
	ctx     context.Context

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	staleAt     time.Time
	lastRefetch time.Time
	// lastErr is the outcome of the latest fetch.
	lastErr  error
	inflight *fetchCall
	unknown  map[string]time.Time
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// sigTrace carries the key set's reason for a failure out through
// go-oidc, whose errors do not wrap it.
type sigTrace struct{ err error }

type sigTraceKey struct{}

func newKeySet(ctx context.Context, provider string, algs []string, minRefetch time.Duration, now func() time.Time,
	fetch func(context.Context) ([]jose.JSONWebKey, time.Duration, error), onFetch func(string), log *slog.Logger) *keySet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ks := &keySet{provider: provider, minRefetch: minRefetch, now: now, fetch: fetch, onFetch: onFetch, log: log,
		ctx: ctx, unknown: map[string]time.Time{}}
	for _, a := range algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	return ks
}

// warm starts the first fetch without waiting for it; verifications that
// arrive meanwhile join it.
func (ks *keySet) warm() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.inflight == nil {
		ks.startFetchLocked()
	}
}

// VerifySignature implements oidc.KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := ks.verify(ctx, raw)
	if err != nil {
		if tr, ok := ctx.Value(sigTraceKey{}).(*sigTrace); ok {
			tr.err = err
		}
	}
	return payload, err
}

func (ks *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, ks.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errTokenMalformed
	}
	kid := jws.Signatures[0].Header.KeyID
	if payload, found, err := verifyWith(jws, ks.snapshot(), kid); found {
		return payload, err
	}
	if err := ks.refetchFor(ctx, kid); err != nil {
		return nil, err
	}
	if payload, found, err := verifyWith(jws, ks.snapshot(), kid); found {
		return payload, err
	}
	ks.rememberUnknown(kid)
	return nil, errUnknownKey
}

// verifyWith checks jws against the keys. found reports whether a key
// answered for its kid (or, without a kid, whether any key verified): if
// not, the caller may refetch.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, found bool, err error) {
	alg := jws.Signatures[0].Header.Algorithm
	for i := range keys {
		k := &keys[i]
		if kid != "" {
			if k.KeyID != kid {
				continue
			}
			found = true
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if p, err := jws.Verify(k); err == nil {
			return p, true, nil
		}
	}
	if found {
		return nil, true, errBadSignature
	}
	return nil, false, nil
}

// snapshot returns the cached keys, starting a background refresh once
// their max-age has passed.
func (ks *keySet) snapshot() []jose.JSONWebKey {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.keys != nil && ks.inflight == nil && !ks.now().Before(ks.staleAt) {
		ks.startFetchLocked()
	}
	return ks.keys
}

// refetchFor fetches the keys for an unknown kid, joining a fetch in
// flight, or refuses when the kid is known to be unknown or a refetch
// started less than minRefetch ago.
func (ks *keySet) refetchFor(ctx context.Context, kid string) error {
	ks.mu.Lock()
	now := ks.now()
	if until, ok := ks.unknown[kid]; ok && now.Before(until) {
		ks.mu.Unlock()
		return errUnknownKey
	}
	call := ks.inflight
	if call == nil {
		if !ks.lastRefetch.IsZero() && now.Sub(ks.lastRefetch) < ks.minRefetch {
			// While the endpoint fails, nobody knows whether the kid is real.
			failing := ks.keys == nil || ks.lastErr != nil
			ks.mu.Unlock()
			if failing {
				return errKeysUnavailable
			}
			return errUnknownKey
		}
		ks.lastRefetch = now
		call = ks.startFetchLocked()
	}
	ks.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", errKeysUnavailable, ctx.Err())
	}
	if call.err != nil {
		// The cached keys, if any, are all there is, and they do not know this kid.
		return errKeysUnavailable
	}
	return nil
}

func (ks *keySet) rememberUnknown(kid string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if len(ks.unknown) >= maxUnknownKids {
		clear(ks.unknown)
	}
	ks.unknown[kid] = ks.now().Add(ks.minRefetch)
}

// startFetchLocked starts one fetch; ks.mu is held.
func (ks *keySet) startFetchLocked() *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	ks.inflight = call
	go func() {
		keys, maxAge, err := ks.fetch(ks.ctx)
		ks.mu.Lock()
		ks.lastErr = err
		if err == nil {
			ks.keys = keys
			ks.staleAt = ks.now().Add(maxAge)
			for _, k := range keys {
				delete(ks.unknown, k.KeyID)
			}
		} else {
			// Retry a failing endpoint no sooner than minRefetch, keeping the keys.
			ks.staleAt = ks.now().Add(ks.minRefetch)
		}
		ks.inflight = nil
		ks.mu.Unlock()
		call.err = err
		close(call.done)
		if ks.ctx.Err() != nil {
			return // the provider was closed
		}
		outcome := "success"
		if err != nil {
			outcome = "error"
			ks.log.Warn("upstream JWKS fetch failed; cached keys stay in use", slog.String("provider", ks.provider),
				slog.String("error", err.Error()))
		}
		if ks.onFetch != nil {
			ks.onFetch(outcome)
		}
	}()
	return call
}

// httpJWKSFetcher downloads a JWKS document with client, keeping the
// public signing keys go-jose understands (others, and symmetric keys, are
// skipped, as RFC 7517 §5 asks) and reading the max-age from Cache-Control.
func httpJWKSFetcher(client *http.Client, url string) func(context.Context) ([]jose.JSONWebKey, time.Duration, error) {
	return func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, 0, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", url, err)
		}
		if len(body) > maxJWKSBytes {
			return nil, 0, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSBytes)
		}
		keys, err := parseJWKS(body)
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", url, err)
		}
		return keys, jwksMaxAge(resp.Header.Get("Cache-Control")), nil
	}
}

func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("not a JSON Web Key Set")
	}
	keys := []jose.JSONWebKey{}
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil || !k.Valid() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if !k.IsPublic() {
			k = k.Public() // a private key published by mistake
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// jwksMaxAge reads max-age from a Cache-Control header, clamped.
func jwksMaxAge(cc string) time.Duration {
	age := defaultJWKSMaxAge
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		} else if d == "no-cache" || d == "no-store" {
			age = 0
		}
	}
	return min(max(age, minJWKSMaxAge), maxJWKSMaxAge)
}
