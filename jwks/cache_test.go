package jwks_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// upstreamFreshness are the bounds the providers package uses.
var upstreamFreshness = jwks.Freshness{Min: 5 * time.Minute, Default: time.Hour, Max: 24 * time.Hour}

// issuer is a fake JWKS endpoint with one current RS256 key, counting
// the fetches it answers.
type issuer struct {
	t       testing.TB
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool

	mu     sync.Mutex
	key    *rsa.PrivateKey
	kid    string
	n      int
	maxAge time.Duration // 0 sends no Cache-Control
	pad    int           // bytes of padding in the answer
}

func newIssuer(t testing.TB, maxAge time.Duration) *issuer {
	t.Helper()
	is := &issuer{t: t, maxAge: maxAge}
	is.rotate()
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		if is.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig"}}}
		maxAge, pad := is.maxAge, is.pad
		is.mu.Unlock()
		if maxAge > 0 {
			w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())))
		}
		b, _ := json.Marshal(set)
		if pad > 0 {
			b = append(b[:len(b)-1], []byte(`,"padding":"`+strings.Repeat("a", pad)+`"}`)...)
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// rotate replaces the published key: tokens of the old one stop verifying.
func (is *issuer) rotate() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.n++
	is.key, is.kid = key, fmt.Sprintf("key-%d", is.n)
}

func (is *issuer) url() string { return is.srv.URL + "/jwks.json" }

// sign returns a compact JWS over payload with the current key, under kid
// when kid is not empty (else the key's own).
func (is *issuer) sign(kid string) string {
	is.t.Helper()
	is.mu.Lock()
	key := is.key
	if kid == "" {
		kid = is.kid
	}
	is.mu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		is.t.Fatal(err)
	}
	obj, err := s.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		is.t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// clock is a settable time source safe for the cache's goroutines.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newCache is a warm cache on the issuer's JWKS with a manual clock; it
// counts the fetch outcomes it is told about.
func newCache(t *testing.T, is *issuer, minRefetch time.Duration) (*jwks.Cache, *clock, *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clk := &clock{t: time.Now()}
	outcomes := &atomic.Int64{}
	c := jwks.New(jwks.Options{Fetch: jwks.HTTPFetcher(http.DefaultClient, is.url(), upstreamFreshness), MinRefetch: minRefetch,
		Algorithms: []string{"RS256"}, Context: ctx, Now: clk.now, OnFetch: func(error) { outcomes.Add(1) }})
	c.Warm()
	wait(t, c)
	return c, clk, outcomes
}

func wait(t testing.TB, c *jwks.Cache) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("the key set is not loaded: %v", err)
	}
}

// waitFetches waits until the issuer has received n fetches (they may
// still be in flight).
func waitFetches(t testing.TB, is *issuer, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for is.fetches.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("JWKS fetches = %d, want %d", is.fetches.Load(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestForgedKidsCostOneFetch: a storm of tokens with made-up kids costs
// at most one fetch per interval; a kid still unknown after a refetch is
// refused from the negative cache.
func TestForgedKidsCostOneFetch(t *testing.T) {
	is := newIssuer(t, 0)
	c, clk, _ := newCache(t, is, 30*time.Second)
	ctx := context.Background()
	// Forgers need no valid signature: a made-up kid is the whole attack.
	_, rest, _ := strings.Cut(is.sign(""), ".")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": fmt.Sprintf("forged-%d", i)})
			tok := base64.RawURLEncoding.EncodeToString(h) + "." + rest
			if _, err := c.VerifySignature(ctx, tok); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Errorf("forged kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("fetches after 200 forged kids = %d, want 2 (warm-up and one refetch)", n)
	}
	if _, err := c.VerifySignature(ctx, is.sign("")); err != nil {
		t.Fatalf("genuine token during the storm: %v", err)
	}
	clk.advance(31 * time.Second)
	tok := is.sign("forged-again")
	for range 3 {
		if _, err := c.VerifySignature(ctx, tok); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := is.fetches.Load(); n != 3 {
		t.Fatalf("fetches after the interval = %d, want 3 (one more refetch, then the negative cache)", n)
	}
}

// TestHonoursMaxAge: past the JWKS max-age a verification starts a
// background refresh without waiting for it; a key the issuer withdrew
// then stops verifying.
func TestHonoursMaxAge(t *testing.T) {
	is := newIssuer(t, 10*time.Minute)
	c, clk, outcomes := newCache(t, is, 30*time.Second)
	ctx := context.Background()
	old := is.sign("")
	if _, err := c.VerifySignature(ctx, old); err != nil {
		t.Fatal(err)
	}
	is.rotate()
	clk.advance(9 * time.Minute)
	if _, err := c.VerifySignature(ctx, old); err != nil || is.fetches.Load() != 1 {
		t.Fatalf("within max-age: %v, fetches %d", err, is.fetches.Load())
	}
	clk.advance(2 * time.Minute)
	if _, err := c.VerifySignature(ctx, old); err != nil {
		t.Fatalf("the stale key set still serves while it refreshes: %v", err)
	}
	waitFetches(t, is, 2)
	deadline := time.Now().Add(5 * time.Second)
	for outcomes.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.VerifySignature(ctx, old); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("a withdrawn key after the refresh: %v", err)
	}
	if _, err := c.VerifySignature(ctx, is.sign("")); err != nil {
		t.Fatal(err)
	}
}

// TestKeyAfterLoad: Load counts as a refetch, so an unknown kid right
// after it costs nothing; after the interval one refetch, then the
// negative cache; a published kid is found without any fetch.
func TestKeyAfterLoad(t *testing.T) {
	is := newIssuer(t, 0)
	clk := &clock{t: time.Now()}
	c := jwks.New(jwks.Options{Fetch: jwks.HTTPFetcher(http.DefaultClient, is.url(), upstreamFreshness),
		MinRefetch: time.Minute, Now: clk.now})
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	kid := is.kid
	is.mu.Unlock()
	for range 10 {
		if k, err := c.Key(ctx, kid); err != nil || k.KeyID != kid {
			t.Fatalf("published kid: %v", err)
		}
		if _, err := c.Key(ctx, "forged"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatalf("forged kid: %v", err)
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1 (the load)", n)
	}
	clk.advance(61 * time.Second)
	for range 3 {
		if _, err := c.Key(ctx, "forged"); !errors.Is(err, jwks.ErrUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("fetches after the interval = %d, want 2", n)
	}
}

// TestBadSignatureNoRefetch: a known kid whose signature does not verify
// is refused at once, without asking the issuer.
func TestBadSignatureNoRefetch(t *testing.T) {
	is := newIssuer(t, 0)
	c, _, _ := newCache(t, is, 30*time.Second)
	tok := is.sign("")
	tok = tok[:len(tok)-6] + "AAAAAA"
	for range 3 {
		if _, err := c.VerifySignature(context.Background(), tok); !errors.Is(err, jwks.ErrBadSignature) {
			t.Fatalf("tampered signature: %v", err)
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	for _, raw := range []string{"", "a.b", "a.b.c", tok + "." + tok} {
		if _, err := c.VerifySignature(context.Background(), raw); !errors.Is(err, jwks.ErrMalformed) {
			t.Fatalf("%q: %v", raw, err)
		}
	}
}

// TestEndpointDownKeepsKeys: while the JWKS endpoint fails, the cached
// keys keep verifying; an unknown kid is then "unavailable" (nobody can
// tell whether it is genuine), not "unknown"; the background retry waits
// the interval, and recovery brings new keys.
func TestEndpointDownKeepsKeys(t *testing.T) {
	is := newIssuer(t, 10*time.Minute)
	c, clk, outcomes := newCache(t, is, 30*time.Second)
	ctx := context.Background()
	good := is.sign("")
	is.down.Store(true)
	clk.advance(11 * time.Minute)
	if _, err := c.VerifySignature(ctx, good); err != nil {
		t.Fatalf("stale keys while refreshing: %v", err)
	}
	waitFetches(t, is, 2)
	for outcomes.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.VerifySignature(ctx, good); err != nil {
		t.Fatalf("cached keys with the endpoint down: %v", err)
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d: a failed refresh was retried before the interval", n)
	}
	clk.advance(31 * time.Second)
	if _, err := c.Key(ctx, "new-kid"); !errors.Is(err, jwks.ErrKeysUnavailable) {
		t.Fatalf("unknown kid with the endpoint down: %v", err)
	}
	if _, err := c.Key(ctx, "other-new-kid"); !errors.Is(err, jwks.ErrKeysUnavailable) {
		t.Fatalf("unknown kid within the interval, endpoint down: %v", err)
	}
	is.down.Store(false)
	is.rotate()
	clk.advance(31 * time.Second)
	if _, err := c.VerifySignature(ctx, is.sign("")); err != nil {
		t.Fatalf("new key after recovery: %v", err)
	}
}

// TestNeverLoaded: without any successful fetch every kid is
// unavailable, and Load and Wait say so.
func TestNeverLoaded(t *testing.T) {
	is := newIssuer(t, 0)
	is.down.Store(true)
	c := jwks.New(jwks.Options{Fetch: jwks.HTTPFetcher(http.DefaultClient, is.url(), upstreamFreshness), MinRefetch: time.Hour})
	ctx := context.Background()
	if err := c.Load(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("load with the endpoint down: %v", err)
	}
	if err := c.Wait(ctx); !errors.Is(err, jwks.ErrKeysUnavailable) {
		t.Fatalf("wait: %v", err)
	}
	if _, err := c.Key(ctx, "k"); !errors.Is(err, jwks.ErrKeysUnavailable) {
		t.Fatalf("key: %v", err)
	}
}

// TestFetchOutlivesItsRequest: a request that gives up waiting gets
// "unavailable", but the fetch it started completes for the others.
func TestFetchOutlivesItsRequest(t *testing.T) {
	release := make(chan struct{})
	var fetches atomic.Int64
	c := jwks.New(jwks.Options{MinRefetch: time.Hour, Fetch: func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
		fetches.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		return []jose.JSONWebKey{{KeyID: "k", Key: []byte("not used")}}, time.Hour, nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Key(ctx, "k"); !errors.Is(err, jwks.ErrKeysUnavailable) {
		t.Fatalf("cancelled request: %v", err)
	}
	close(release)
	if k, err := c.Key(context.Background(), "k"); err != nil || k.KeyID != "k" {
		t.Fatalf("after the fetch: %v", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
}

// TestClosedStopsReporting: once the owner's context is done, fetch
// outcomes are no longer reported.
func TestClosedStopsReporting(t *testing.T) {
	is := newIssuer(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var reported atomic.Int64
	c := jwks.New(jwks.Options{Fetch: jwks.HTTPFetcher(http.DefaultClient, is.url(), upstreamFreshness), MinRefetch: time.Hour,
		Context: ctx, OnFetch: func(error) { reported.Add(1) }})
	if err := c.Load(context.Background()); err != nil || reported.Load() != 1 {
		// OnFetch runs after Load returns; give it a moment.
		time.Sleep(50 * time.Millisecond)
		if err != nil || reported.Load() != 1 {
			t.Fatalf("load: %v, reported %d", err, reported.Load())
		}
	}
	cancel()
	if err := c.Load(context.Background()); err == nil {
		t.Fatal("a fetch after close succeeded")
	}
	time.Sleep(50 * time.Millisecond)
	if n := reported.Load(); n != 1 {
		t.Fatalf("outcomes reported after close: %d", n-1)
	}
}

// TestRotationStormAllVerify: after the issuer rotates, every token of
// the new key verifies, also for a verification that looked in the old
// keys just before the one refetch finished (it must look again, not call
// the new kid unknown).
func TestRotationStormAllVerify(t *testing.T) {
	is := newIssuer(t, 0)
	for round := range 20 {
		c, _, _ := newCache(t, is, time.Hour)
		is.rotate()
		tok := is.sign("")
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 64 {
			wg.Go(func() {
				if _, err := c.VerifySignature(context.Background(), tok); err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			t.Fatalf("round %d: %d of 64 verifications of the rotated key failed", round, n)
		}
	}
}
