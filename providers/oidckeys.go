package providers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/jwks"
)

// An upstream's JWKS freshness: a Cache-Control max-age is clamped to
// these bounds, and a response without one counts as defaultJWKSMaxAge.
const (
	minJWKSMaxAge     = 5 * time.Minute
	maxJWKSMaxAge     = 24 * time.Hour
	defaultJWKSMaxAge = time.Hour
	maxJWKSBytes      = jwks.MaxBodyBytes
)

var upstreamJWKSFreshness = jwks.Freshness{Min: minJWKSMaxAge, Default: defaultJWKSMaxAge, Max: maxJWKSMaxAge}

// keySet is the JWKS cache of one upstream issuer (package jwks: throttled
// refetch on an unknown kid, negative cache, max-age, cached keys kept
// while the endpoint fails), handed to go-oidc as its oidc.KeySet. Its
// fetches run under the provider's context: Close stops them.
type keySet struct {
	*jwks.Cache
}

// sigTrace carries the key set's reason for a failure out through
// go-oidc, whose errors do not wrap it.
type sigTrace struct{ err error }

type sigTraceKey struct{}

func newKeySet(ctx context.Context, provider string, algs []string, minRefetch time.Duration, now func() time.Time,
	fetch jwks.Fetcher, onFetch func(string), log *slog.Logger) *keySet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &keySet{jwks.New(jwks.Options{Fetch: fetch, MinRefetch: minRefetch, Algorithms: algs, Context: ctx, Now: now,
		OnFetch: func(err error) {
			outcome := "success"
			if err != nil {
				outcome = "error"
				log.Warn("upstream JWKS fetch failed; cached keys stay in use", slog.String("provider", provider),
					slog.String("error", err.Error()))
			}
			if onFetch != nil {
				onFetch(outcome)
			}
		}})}
}

// VerifySignature implements oidc.KeySet, recording why a check failed in
// the context's sigTrace.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := ks.Cache.VerifySignature(ctx, raw)
	if err != nil {
		if tr, ok := ctx.Value(sigTraceKey{}).(*sigTrace); ok {
			tr.err = err
		}
	}
	return payload, err
}

// httpJWKSFetcher downloads an upstream's JWKS document with client
// (jwks.HTTPFetcher: public signing keys only, at most maxJWKSBytes).
func httpJWKSFetcher(client *http.Client, url string) jwks.Fetcher {
	return jwks.HTTPFetcher(client, url, upstreamJWKSFreshness)
}
