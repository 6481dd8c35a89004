package jwks_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/jwks"
)

func TestMaxAgeParsing(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                                   time.Hour,
		"public, max-age=21600":              6 * time.Hour,
		"max-age=15, stale-while-revalidate": 5 * time.Minute,
		"no-store":                           5 * time.Minute,
		"max-age=99999999":                   24 * time.Hour,
		"max-age=junk":                       time.Hour,
		"Max-Age=600":                        10 * time.Minute,
	} {
		if got := upstreamFreshness.MaxAge(cc); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
	// rbac's bounds for Gatehouse's own keys.
	own := jwks.Freshness{Min: time.Minute, Default: 5 * time.Minute, Max: 24 * time.Hour}
	for cc, want := range map[string]time.Duration{"": 5 * time.Minute, "max-age=15": time.Minute, "public, max-age=3600": time.Hour} {
		if got := own.MaxAge(cc); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
}

func TestParseSetSkipsWhatItCannotUse(t *testing.T) {
	keys, err := jwks.ParseSet([]byte(`{"keys":[{"kty":"OKP","crv":"X448","x":"AAAA"},{"kty":"oct","k":"c2VjcmV0"},` +
		`{"kty":"EC","crv":"P-256","use":"enc","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},` +
		`{"kty":"EC","crv":"P-256","kid":"ok","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`))
	if err != nil || len(keys) != 1 || keys[0].KeyID != "ok" {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
	if _, err := jwks.ParseSet([]byte("<html>")); err == nil {
		t.Fatal("HTML accepted as a key set")
	}
}

// TestOversizedKeySetRefused: a key set larger than MaxBodyBytes fails
// the fetch with an error naming the bound; one just under it is read.
func TestOversizedKeySetRefused(t *testing.T) {
	is := newIssuer(t, 0)
	fetch := jwks.HTTPFetcher(&http.Client{Timeout: 5 * time.Second}, is.url(), upstreamFreshness)
	is.mu.Lock()
	is.pad = jwks.MaxBodyBytes
	is.mu.Unlock()
	if _, _, err := fetch(context.Background()); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("key set larger than %d bytes", jwks.MaxBodyBytes)) {
		t.Fatalf("oversized key set: %v", err)
	}
	is.mu.Lock()
	is.pad = jwks.MaxBodyBytes - 64<<10
	is.mu.Unlock()
	if keys, _, err := fetch(context.Background()); err != nil || len(keys) != 1 {
		t.Fatalf("key set under the bound: %d keys, %v", len(keys), err)
	}
	is.down.Store(true)
	if _, _, err := fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("an error status: %v", err)
	}
}

// FuzzParseSet: any document parses without panicking, and every key
// kept is a public signing key.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"ok","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := jwks.ParseSet(body)
		if err != nil {
			return
		}
		for _, k := range keys {
			if !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
				t.Fatalf("kept %+v", k)
			}
		}
	})
}
