package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxBodyBytes bounds the JWKS document HTTPFetcher reads: an answer
// larger than that fails the fetch instead of being read into memory.
// Real key sets are a few kilobytes.
const MaxBodyBytes = 1 << 20

// Freshness says how long a fetched key set stays fresh: the
// Cache-Control max-age, clamped to [Min, Max]; Default without one.
type Freshness struct {
	Min, Default, Max time.Duration
}

// MaxAge reads max-age from a Cache-Control header value, clamped to the
// bounds. no-cache and no-store ask for the shortest time, Min.
func (f Freshness) MaxAge(cacheControl string) time.Duration {
	age := f.Default
	for d := range strings.SplitSeq(cacheControl, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		} else if d == "no-cache" || d == "no-store" {
			age = 0
		}
	}
	return min(max(age, f.Min), f.Max)
}

// HTTPFetcher downloads the JWKS document at url with client (at most
// MaxBodyBytes, status 200), keeps the keys ParseSet keeps and reads
// their freshness from Cache-Control. Its errors name the URL, never a
// key.
func HTTPFetcher(client *http.Client, url string, fresh Freshness) Fetcher {
	return HTTPFetcherLimit(client, url, fresh, MaxBodyBytes)
}

// HTTPFetcherLimit is HTTPFetcher reading at most maxBytes (for key sets
// that must be small, such as a client's).
func HTTPFetcherLimit(client *http.Client, url string, fresh Freshness, maxBytes int) Fetcher {
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
		body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBytes)+1))
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", url, err)
		}
		if len(body) > maxBytes {
			return nil, 0, fmt.Errorf("GET %s: key set larger than %d bytes", url, maxBytes)
		}
		keys, err := ParseSet(body)
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", url, err)
		}
		return keys, fresh.MaxAge(resp.Header.Get("Cache-Control")), nil
	}
}

// ParseSet decodes a JWKS document and keeps the public signing keys
// go-jose understands: RSA, EC and Ed25519 keys whose use is "sig" or
// unset. Other keys, symmetric keys and malformed entries are skipped, as
// RFC 7517 §5 asks; a private key published by mistake is kept as its
// public half. It fails only when body is not a key set at all.
func ParseSet(body []byte) ([]jose.JSONWebKey, error) {
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
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys = append(keys, k)
		}
	}
	return keys, nil
}
