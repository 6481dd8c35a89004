package rbac

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// Key cache bounds. Gatehouse publishes a new key GATEHOUSE_KEY_PUBLISH_LEAD
// (≥ its JWKS max-age) before it signs, so honouring max-age is enough to
// know keys in time; the unknown-kid refetch covers clock differences.
const (
	minKeysMaxAge     = time.Minute
	maxKeysMaxAge     = 24 * time.Hour
	defaultKeysMaxAge = 5 * time.Minute
	// keysFetchTimeout bounds one fetch of the keys, which runs detached
	// from the request that caused it.
	keysFetchTimeout = 30 * time.Second
	// maxDocumentBytes bounds the discovery document rbac reads (the JWKS
	// is bounded by jwks.MaxBodyBytes, the same size).
	maxDocumentBytes = 1 << 20
)

var keysFreshness = jwks.Freshness{Min: minKeysMaxAge, Default: defaultKeysMaxAge, Max: maxKeysMaxAge}

// newKeyCache returns the cache of the issuer's keys (package jwks): a
// kid it does not know triggers a refetch, but one at a time and at most
// one per minRefetch, and a kid still unknown afterwards is refused
// without another fetch for minRefetch; stale keys are refreshed in the
// background, never on the request path; a failed fetch keeps the keys
// there are. Closing ctx (Middleware.Close) stops its fetches.
func newKeyCache(ctx context.Context, fetch jwks.Fetcher, minRefetch time.Duration, now func() time.Time, log *slog.Logger) *jwks.Cache {
	return jwks.New(jwks.Options{Fetch: fetch, MinRefetch: minRefetch, Now: now, FetchTimeout: keysFetchTimeout, Context: ctx,
		OnFetch: func(err error) {
			if err != nil {
				log.Warn("rbac: fetching the issuer's keys failed; cached keys stay in use", slog.String("error", err.Error()))
			}
		}})
}

// httpKeySource downloads the issuer's JWKS document (at the jwks_uri
// discovery gave), keeping the public signature keys and reading max-age.
func (m *Middleware) httpKeySource(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
	f := m.jwksFetch.Load()
	if f == nil {
		return nil, 0, errors.New("the issuer's discovery document is not loaded yet")
	}
	return (*f)(ctx)
}

// localKeySource adapts an in-process key set (Gatehouse's own).
func localKeySource(keys func(ctx context.Context) (jose.JSONWebKeySet, error)) jwks.Fetcher {
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

// getJSON GETs url and returns its body (at most maxDocumentBytes).
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxDocumentBytes)
	}
	return body, resp.Header, nil
}
