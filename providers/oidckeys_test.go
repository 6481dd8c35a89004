package providers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// clock is a settable time source safe for the key set's goroutines.
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

// newTestKeySet is a key set on the fake's JWKS with a manual clock.
func newTestKeySet(t *testing.T, fake *providertest.Server, minRefetch time.Duration) (*keySet, *clock, *atomic.Int64) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clk := &clock{t: time.Now()}
	outcomes := &atomic.Int64{}
	ks := newKeySet(ctx, "up", []string{"RS256"}, minRefetch, clk.now,
		httpJWKSFetcher(http.DefaultClient, fake.URL+"/jwks.json"), func(string) { outcomes.Add(1) }, nil)
	ks.warm()
	waitKeySet(t, ks)
	return ks, clk, outcomes
}

// TestKeySetForgedKidsCostOneFetch: a storm of tokens with made-up kids
// costs at most one fetch per interval; a kid still unknown after a
// refetch is refused from the negative cache.
func TestKeySetForgedKidsCostOneFetch(t *testing.T) {
	fake := providertest.New(t, providertest.Options{})
	ks, clk, _ := newTestKeySet(t, fake, 30*time.Second)
	ctx := context.Background()
	// Forgers need no valid signature: a made-up kid is the whole attack.
	_, rest, _ := strings.Cut(fake.Sign(nil, map[string]any{"sub": "x"}), ".")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": fmt.Sprintf("forged-%d", i)})
			tok := base64.RawURLEncoding.EncodeToString(h) + "." + rest
			if _, err := ks.VerifySignature(ctx, tok); !errors.Is(err, errUnknownKey) {
				t.Errorf("forged kid: %v", err)
			}
		})
	}
	wg.Wait()
	if n := fake.JWKSFetches(); n != 2 {
		t.Fatalf("fetches after 200 forged kids = %d, want 2 (warm-up and one refetch)", n)
	}
	genuine := fake.Sign(nil, map[string]any{"sub": "x"})
	if _, err := ks.VerifySignature(ctx, genuine); err != nil {
		t.Fatalf("genuine token during the storm: %v", err)
	}
	clk.advance(31 * time.Second)
	tok := fake.Sign(map[string]any{"kid": "forged-again"}, map[string]any{"sub": "x"})
	for range 3 {
		if _, err := ks.VerifySignature(ctx, tok); !errors.Is(err, errUnknownKey) {
			t.Fatal(err)
		}
	}
	if n := fake.JWKSFetches(); n != 3 {
		t.Fatalf("fetches after the interval = %d, want 3 (one more refetch, then the negative cache)", n)
	}
}

// TestKeySetHonoursMaxAge: past the JWKS max-age a verification starts a
// background refresh without waiting for it; a key the upstream withdrew
// then stops verifying.
func TestKeySetHonoursMaxAge(t *testing.T) {
	fake := providertest.New(t, providertest.Options{JWKSMaxAge: 10 * time.Minute})
	ks, clk, outcomes := newTestKeySet(t, fake, 30*time.Second)
	ctx := context.Background()
	old := fake.Sign(nil, map[string]any{"sub": "x"})
	if _, err := ks.VerifySignature(ctx, old); err != nil {
		t.Fatal(err)
	}
	fake.RotateKey(false)
	clk.advance(9 * time.Minute)
	if _, err := ks.VerifySignature(ctx, old); err != nil || fake.JWKSFetches() != 1 {
		t.Fatalf("within max-age: %v, fetches %d", err, fake.JWKSFetches())
	}
	clk.advance(2 * time.Minute)
	if _, err := ks.VerifySignature(ctx, old); err != nil {
		t.Fatalf("the stale key set still serves while it refreshes: %v", err)
	}
	waitFetches(t, fake, 2)
	deadline := time.Now().Add(5 * time.Second)
	for outcomes.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := ks.VerifySignature(ctx, old); !errors.Is(err, errUnknownKey) {
		t.Fatalf("a withdrawn key after the refresh: %v", err)
	}
	if _, err := ks.VerifySignature(ctx, fake.Sign(nil, map[string]any{"sub": "x"})); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSMaxAgeParsing(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                                   defaultJWKSMaxAge,
		"public, max-age=21600":              6 * time.Hour,
		"max-age=15, stale-while-revalidate": minJWKSMaxAge,
		"no-store":                           minJWKSMaxAge,
		"max-age=99999999":                   maxJWKSMaxAge,
		"max-age=junk":                       defaultJWKSMaxAge,
	} {
		if got := jwksMaxAge(cc); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
}

func TestParseJWKSSkipsWhatItCannotUse(t *testing.T) {
	keys, err := parseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"X448","x":"AAAA"},{"kty":"oct","k":"c2VjcmV0"},` +
		`{"kty":"EC","crv":"P-256","use":"enc","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},` +
		`{"kty":"EC","crv":"P-256","kid":"ok","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`))
	if err != nil || len(keys) != 1 || keys[0].KeyID != "ok" {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
	if _, err := parseJWKS([]byte("<html>")); err == nil {
		t.Fatal("HTML accepted as a key set")
	}
}
