package jwks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Why a key could not be found or a signature not be checked. Their text
// never contains the token.
var (
	// ErrMalformed: the input is not a JWS with exactly one signature in
	// an accepted algorithm.
	ErrMalformed = errors.New("malformed token")
	// ErrUnknownKey: no key of the issuer answers for the token's kid,
	// even after a refetch (or a refetch was not allowed yet).
	ErrUnknownKey = errors.New("signed with a key the issuer does not publish")
	// ErrBadSignature: a key with the token's kid is published, and the
	// signature does not verify with it.
	ErrBadSignature = errors.New("bad signature")
	// ErrKeysUnavailable: the key set could not be fetched, so whether
	// the kid is genuine cannot be told right now.
	ErrKeysUnavailable = errors.New("the issuer's signing keys cannot be fetched")
)

// maxUnknownKids bounds the negative cache; when it is full it is
// emptied, which costs at most one more refetch per MinRefetch.
const maxUnknownKids = 1024

// Fetcher downloads an issuer's key set and says how long it stays fresh.
// It must return only keys it is willing to verify with.
type Fetcher func(ctx context.Context) (keys []jose.JSONWebKey, maxAge time.Duration, err error)

// Options configure a Cache. Fetch is required.
type Options struct {
	// Fetch downloads the key set (HTTPFetcher, or an in-process source).
	Fetch Fetcher
	// MinRefetch is the least time between two fetches caused by tokens
	// with an unknown kid, how long a kid still unknown afterwards is
	// refused without asking again, and how soon a failed fetch is
	// retried in the background.
	MinRefetch time.Duration
	// Algorithms are the JWS algorithms VerifySignature accepts in token
	// headers; Key does not read them.
	Algorithms []string
	// Context bounds every fetch (default context.Background()). Once it
	// is done, fetches fail and OnFetch is no longer called: its owner has
	// closed.
	Context context.Context
	// FetchTimeout, when positive, bounds each fetch.
	FetchTimeout time.Duration
	// OnFetch, when set, learns the outcome of every fetch (nil: success),
	// on the fetch's goroutine after the keys are in place.
	OnFetch func(err error)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cache holds the public keys of one issuer. It is safe for concurrent
// use; looking up a cached key takes no lock.
type Cache struct {
	fetch      Fetcher
	minRefetch time.Duration
	algs       []jose.SignatureAlgorithm
	ctx        context.Context
	timeout    time.Duration
	onFetch    func(error)
	now        func() time.Time

	snap       atomic.Pointer[snapshot]
	refreshing atomic.Bool

	mu          sync.Mutex
	inflight    *fetchCall
	lastErr     error // outcome of the latest fetch
	lastRefetch time.Time
	unknown     map[string]time.Time
}

// snapshot is an immutable view of the cached keys: verifications read it
// with one atomic load.
type snapshot struct {
	keys    []jose.JSONWebKey // in the issuer's order
	byKID   map[string]*jose.JSONWebKey
	staleAt time.Time
	gen     uint64 // counts successful fetches; a failed one keeps it
}

// generation is 0 before the first successful fetch.
func (s *snapshot) generation() uint64 {
	if s == nil {
		return 0
	}
	return s.gen
}

type fetchCall struct {
	done chan struct{} // closed when the fetch ends
	err  error
}

// New returns an empty cache; nothing is fetched until Load, Warm or the
// first verification.
func New(o Options) *Cache {
	c := &Cache{fetch: o.Fetch, minRefetch: o.MinRefetch, ctx: o.Context, timeout: o.FetchTimeout,
		onFetch: o.OnFetch, now: o.Now, unknown: map[string]time.Time{}}
	if c.ctx == nil {
		c.ctx = context.Background()
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, a := range o.Algorithms {
		c.algs = append(c.algs, jose.SignatureAlgorithm(a))
	}
	return c
}

// Load fetches the key set and waits for it (at start). It counts as a
// refetch: a token with an unknown kid right after it waits MinRefetch.
func (c *Cache) Load(ctx context.Context) error {
	c.mu.Lock()
	c.lastRefetch = c.now()
	call := c.inflight
	if call == nil {
		call = c.startLocked()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return call.err
}

// Warm starts the first fetch without waiting for it; verifications that
// arrive meanwhile join it.
func (c *Cache) Warm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight == nil {
		c.startLocked()
	}
}

// Wait returns once no fetch is in flight; it fails with
// ErrKeysUnavailable when no fetch has succeeded yet, or with ctx's error.
func (c *Cache) Wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		call, held := c.inflight, c.snap.Load() != nil
		c.mu.Unlock()
		if call == nil {
			if !held {
				return ErrKeysUnavailable
			}
			return nil
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Key returns the public key with the given kid, refetching the key set
// for a kid it does not know (within the limits described in the package
// documentation). Errors: ErrUnknownKey, ErrKeysUnavailable.
func (c *Cache) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	seen := c.current()
	if seen != nil {
		if k := seen.byKID[kid]; k != nil {
			return k, nil
		}
	}
	if err := c.refetchFor(ctx, kid, seen); err != nil {
		return nil, err
	}
	if s := c.snap.Load(); s != nil {
		if k := s.byKID[kid]; k != nil {
			return k, nil
		}
	}
	c.rememberUnknown(kid)
	return nil, ErrUnknownKey
}

// VerifySignature checks a JWS (compact or JSON serialization, exactly
// one signature, an algorithm among Options.Algorithms) with the key its
// kid names, or without a kid with any cached key, and returns the
// payload. A key that states an algorithm is used for that algorithm
// only. It satisfies go-oidc's oidc.KeySet. Errors: ErrMalformed,
// ErrUnknownKey, ErrBadSignature, ErrKeysUnavailable.
func (c *Cache) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, c.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	kid := jws.Signatures[0].Header.KeyID
	seen := c.current()
	if payload, found, err := verifyWith(jws, seen.list(), kid); found {
		return payload, err
	}
	if err := c.refetchFor(ctx, kid, seen); err != nil {
		return nil, err
	}
	if payload, found, err := verifyWith(jws, c.snap.Load().list(), kid); found {
		return payload, err
	}
	c.rememberUnknown(kid)
	return nil, ErrUnknownKey
}

func (s *snapshot) list() []jose.JSONWebKey {
	if s == nil {
		return nil
	}
	return s.keys
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
		return nil, true, ErrBadSignature
	}
	return nil, false, nil
}

// current returns the cached keys (nil before the first successful
// fetch), starting a background refresh once their max-age has passed.
func (c *Cache) current() *snapshot {
	s := c.snap.Load()
	if s != nil && !c.now().Before(s.staleAt) && c.refreshing.CompareAndSwap(false, true) {
		go c.refreshInBackground()
	}
	return s
}

func (c *Cache) refreshInBackground() {
	defer c.refreshing.Store(false)
	c.mu.Lock()
	call := c.inflight
	if call == nil {
		// A background refresh counts against the refetch interval too:
		// an unknown kid met just after it waits, rather than fetching
		// the same keys a second time.
		c.lastRefetch = c.now()
		call = c.startLocked()
	}
	c.mu.Unlock()
	<-call.done
}

// refetchFor fetches the keys for an unknown kid, joining a fetch in
// flight, or refuses when the kid is known to be unknown or a refetch
// started less than minRefetch ago. seen is the snapshot the caller
// looked in: when newer keys arrived since, it returns nil at once so the
// caller looks again (a fetch that ended between the look and this call
// must not make its kid look unknown).
func (c *Cache) refetchFor(ctx context.Context, kid string, seen *snapshot) error {
	c.mu.Lock()
	if c.snap.Load().generation() != seen.generation() {
		c.mu.Unlock()
		return nil
	}
	now := c.now()
	if until, ok := c.unknown[kid]; ok && now.Before(until) {
		c.mu.Unlock()
		return ErrUnknownKey
	}
	call := c.inflight
	if call == nil {
		if !c.lastRefetch.IsZero() && now.Sub(c.lastRefetch) < c.minRefetch {
			// While the endpoint fails, nobody knows whether the kid is real.
			failing := c.snap.Load() == nil || c.lastErr != nil
			c.mu.Unlock()
			if failing {
				return ErrKeysUnavailable
			}
			return ErrUnknownKey
		}
		c.lastRefetch = now
		call = c.startLocked()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, ctx.Err())
	}
	if call.err != nil {
		// The cached keys, if any, are all there is, and they do not know this kid.
		return ErrKeysUnavailable
	}
	return nil
}

func (c *Cache) rememberUnknown(kid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unknown) >= maxUnknownKids {
		clear(c.unknown)
	}
	c.unknown[kid] = c.now().Add(c.minRefetch)
}

// startLocked starts one fetch on its own goroutine, under the cache's
// context rather than a request's; c.mu is held.
func (c *Cache) startLocked() *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	go func() {
		ctx, cancel := c.ctx, context.CancelFunc(func() {})
		if c.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
		}
		keys, maxAge, err := c.fetch(ctx)
		cancel()
		c.mu.Lock()
		c.lastErr = err
		if err == nil {
			s := &snapshot{keys: keys, byKID: make(map[string]*jose.JSONWebKey, len(keys)), staleAt: c.now().Add(maxAge),
				gen: c.snap.Load().generation() + 1}
			for i := range keys {
				s.byKID[keys[i].KeyID] = &keys[i]
				delete(c.unknown, keys[i].KeyID)
			}
			c.snap.Store(s)
		} else if s := c.snap.Load(); s != nil {
			// Keep the keys; try again no sooner than minRefetch.
			c.snap.Store(&snapshot{keys: s.keys, byKID: s.byKID, staleAt: c.now().Add(c.minRefetch), gen: s.gen})
		}
		c.inflight = nil
		c.mu.Unlock()
		call.err = err
		close(call.done)
		if c.ctx.Err() != nil {
			return // the owner has closed
		}
		if c.onFetch != nil {
			c.onFetch(err)
		}
	}()
	return call
}
