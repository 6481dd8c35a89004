package rbac

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
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key cache bounds. Gatehouse publishes a new key GATEHOUSE_KEY_PUBLISH_LEAD
// (≥ its JWKS max-age) before it signs, so honouring max-age is enough to
// know keys in time; the unknown-kid refetch covers clock differences.
const (
	minKeysMaxAge     = time.Minute
	maxKeysMaxAge     = 24 * time.Hour
	defaultKeysMaxAge = 5 * time.Minute
	maxJWKSBytes      = 1 << 20
	maxUnknownKIDs    = 1024
)

var (
	errUnknownKID      = errors.New("signed with an unknown key")
	errKeysUnavailable = errors.New("the issuer's keys cannot be fetched")
)

// keySource fetches the current key set and how long it stays fresh.
type keySource func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error)

// keySnapshot is an immutable view of the cached keys: the request path
// reads it with one atomic load and a map lookup, no lock.
type keySnapshot struct {
	byKID   map[string]*jose.JSONWebKey
	staleAt time.Time
}

// keyCache holds an issuer's public keys. A kid it does not know triggers
// a refetch, but one at a time and at most one per minRefetch, and a kid
// still unknown afterwards is refused without another fetch for
// minRefetch: forged tokens cannot be turned into traffic at the issuer.
// Stale keys are refreshed in the background, never on the request path;
// a failed fetch keeps the keys there are.
type keyCache struct {
	fetch      keySource
	minRefetch time.Duration
	now        func() time.Time
	log        *slog.Logger

	snap       atomic.Pointer[keySnapshot]
	refreshing atomic.Bool

	mu          sync.Mutex
	inflight    chan struct{} // closed when the running fetch ends
	fetchErr    error         // outcome of the latest fetch
	lastRefetch time.Time
	unknown     map[string]time.Time
}

func newKeyCache(fetch keySource, minRefetch time.Duration, now func() time.Time, log *slog.Logger) *keyCache {
	return &keyCache{fetch: fetch, minRefetch: minRefetch, now: now, log: log, unknown: map[string]time.Time{}}
}

// key returns the public key with the given kid.
func (c *keyCache) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if s := c.snap.Load(); s != nil {
		if !c.now().Before(s.staleAt) && c.refreshing.CompareAndSwap(false, true) {
			go c.refreshInBackground()
		}
		if k := s.byKID[kid]; k != nil {
			return k, nil
		}
	}
	if err := c.refetchFor(ctx, kid); err != nil {
		return nil, err
	}
	if k := c.snap.Load().byKID[kid]; k != nil {
		return k, nil
	}
	c.mu.Lock()
	if len(c.unknown) >= maxUnknownKIDs {
		clear(c.unknown)
	}
	c.unknown[kid] = c.now().Add(c.minRefetch)
	c.mu.Unlock()
	return nil, errUnknownKID
}

// refetchFor fetches the keys for an unknown kid: it joins a fetch in
// flight, or starts one unless the kid is known to be unknown or the last
// refetch is younger than minRefetch.
func (c *keyCache) refetchFor(ctx context.Context, kid string) error {
	c.mu.Lock()
	now := c.now()
	if until, ok := c.unknown[kid]; ok && now.Before(until) {
		c.mu.Unlock()
		return errUnknownKID
	}
	done := c.inflight
	if done == nil {
		if !c.lastRefetch.IsZero() && now.Sub(c.lastRefetch) < c.minRefetch {
			failing := c.snap.Load() == nil || c.fetchErr != nil
			c.mu.Unlock()
			if failing {
				return errKeysUnavailable
			}
			return errUnknownKID
		}
		c.lastRefetch = now
		done = c.startLocked()
	}
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", errKeysUnavailable, ctx.Err())
	}
	c.mu.Lock()
	err := c.fetchErr
	c.mu.Unlock()
	if err != nil && c.snap.Load() == nil {
		return errKeysUnavailable
	}
	return nil
}

func (c *keyCache) refreshInBackground() {
	defer c.refreshing.Store(false)
	c.mu.Lock()
	done := c.inflight
	if done == nil {
		done = c.startLocked()
	}
	c.mu.Unlock()
	<-done
}

// load fetches the keys once, synchronously (at start).
func (c *keyCache) load(ctx context.Context) error {
	c.mu.Lock()
	c.lastRefetch = c.now()
	done := c.startLocked()
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetchErr
}

// startLocked runs one fetch in its own goroutine, detached from the
// request that caused it (a cancelled request must not fail it for the
// others waiting). c.mu is held.
func (c *keyCache) startLocked() chan struct{} {
	done := make(chan struct{})
	c.inflight = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		keys, maxAge, err := c.fetch(ctx)
		cancel()
		c.mu.Lock()
		c.fetchErr = err
		if err == nil {
			s := &keySnapshot{byKID: make(map[string]*jose.JSONWebKey, len(keys)), staleAt: c.now().Add(maxAge)}
			for i := range keys {
				s.byKID[keys[i].KeyID] = &keys[i]
				delete(c.unknown, keys[i].KeyID)
			}
			c.snap.Store(s)
		} else if s := c.snap.Load(); s != nil {
			// Keep the keys; try again no sooner than minRefetch.
			c.snap.Store(&keySnapshot{byKID: s.byKID, staleAt: c.now().Add(c.minRefetch)})
		}
		c.inflight = nil
		c.mu.Unlock()
		close(done)
		if err != nil {
			c.log.Warn("rbac: fetching the issuer's keys failed; cached keys stay in use", slog.String("error", err.Error()))
		}
	}()
	return done
}

// httpKeySource downloads a JWKS document, keeping the public signature
// keys (RFC 7517 §5: skip what is not understood) and reading max-age.
func httpKeySource(client *http.Client, url string) keySource {
	return func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
		body, header, err := getJSON(ctx, client, url)
		if err != nil {
			return nil, 0, err
		}
		var raw struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, 0, fmt.Errorf("GET %s: not a JSON Web Key Set", url)
		}
		return publicSigningKeys(raw.Keys), keysMaxAge(header.Get("Cache-Control")), nil
	}
}

// localKeySource adapts an in-process key set (Gatehouse's own).
func localKeySource(keys func(ctx context.Context) (jose.JSONWebKeySet, error)) keySource {
	return func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
		set, err := keys(ctx)
		if err != nil {
			return nil, 0, err
		}
		out := make([]jose.JSONWebKey, 0, len(set.Keys))
		for _, k := range set.Keys {
			if k.Valid() && k.IsPublic() && k.Use != "enc" {
				out = append(out, k)
			}
		}
		return out, minKeysMaxAge, nil
	}
}

func publicSigningKeys(raw []json.RawMessage) []jose.JSONWebKey {
	keys := []jose.JSONWebKey{}
	for _, r := range raw {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil || !k.Valid() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, k)
		}
	}
	return keys
}

// keysMaxAge reads max-age from Cache-Control, clamped to sane bounds.
func keysMaxAge(cc string) time.Duration {
	age := defaultKeysMaxAge
	for d := range strings.SplitSeq(cc, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(age, minKeysMaxAge), maxKeysMaxAge)
}

// getJSON GETs url and returns its body (at most maxJWKSBytes).
func getJSON(ctx context.Context, client *http.Client, url string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxJWKSBytes)
	}
	return body, resp.Header, nil
}
