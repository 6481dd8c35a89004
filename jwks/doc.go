// Package jwks is the JSON Web Key Set cache Gatehouse uses wherever it
// trusts keys an issuer publishes: the upstream identity providers
// (package providers, through go-oidc) and Gatehouse itself as a backend
// sees it (package rbac). It imports nothing of Gatehouse.
//
// It closes the gaps of go-oidc's RemoteKeySet, which refetches on every
// token it cannot verify and never expires a key:
//
//   - a token with an unknown kid triggers a refetch, but at most one is
//     in flight and at most one starts per Options.MinRefetch: forged
//     tokens cannot turn into traffic at the issuer;
//   - a kid still unknown after a refetch is remembered (negative cache)
//     for MinRefetch and refused without asking again;
//   - a known kid with a bad signature is refused without a refetch;
//   - the key set's freshness (Cache-Control max-age, clamped by the
//     owner's Freshness) is honoured by a background refresh that never
//     blocks a verification, so keys the issuer withdraws stop being
//     accepted;
//   - a failed fetch keeps the cached keys (verifications go on while the
//     JWKS endpoint is down) and is retried no sooner than MinRefetch;
//   - fetches run detached from the request that caused them, so one
//     cancelled request does not fail the others waiting for the keys.
package jwks
