// Package rbac is what Go backends import to trust Gatehouse: it verifies
// Gatehouse access tokens locally against the issuer's published keys,
// checks API keys with Gatehouse, and enforces permissions with the same
// wildcard grammar Gatehouse uses.
//
//	m, err := rbac.New(ctx, rbac.Options{Issuer: "https://auth.example.com", Audience: "kb-api"})
//	mux.Handle("GET /kb", m.RequirePermission("kb", "read")(kbHandler))        // net/http
//	r.GET("/kb", ginrbac.New(m).RequirePermission("kb", "read"), kbHandler)    // Gin (rbac/ginrbac)
//
// New discovers the issuer, loads its keys and caches them; a request
// costs no network call. A token with an unknown key id triggers a
// refetch, at most one at a time and one per Options.RefetchInterval.
//
// Credentials: "Authorization: Bearer <access token>" (exactly that
// scheme and one space); "X-API-Key: <key>" when Options.APIKeys is set
// (answers are cached for a short time, refusals too); and the query
// parameter token on WebSocket upgrade requests only, which browsers
// cannot send headers with. The token parameter is removed from the
// request URL in every case, so logs written after the middleware never
// hold it.
//
// Answers: 401 with `WWW-Authenticate: Bearer error="invalid_token"` for
// a missing, malformed, expired or unknown credential; 403
// {"error":"insufficient_permission","required":"kb:read"} when the
// credential lacks the grant, or when the request names an organization
// (path or query parameter org_id) other than the credential's. Handlers
// read the principal with PrincipalFrom (or ginrbac.Principal).
//
// The package depends on go-jose and Gatehouse's leaf packages jwks (the
// key cache) and claims (the token's claims) only: never on Gatehouse's
// storage, providers or tokens, nor on Gin, whose adapter is the package
// rbac/ginrbac. Adapters for other routers build on Middleware.Enforce.
package rbac
