// Package rbac is what Go backends import to trust Gatehouse: it verifies
// Gatehouse access tokens locally against the issuer's published keys,
// checks API keys with Gatehouse, authenticates webhook senders by their
// secrets, and enforces permissions, roles and scopes with the same
// wildcard grammar Gatehouse uses.
//
//	m, err := rbac.New(ctx, rbac.Options{Issuer: "https://auth.example.com", Audience: "kb-api"})
//	defer m.Close()
//	mux.Handle("GET /kb", m.RequirePermission("kb", "read")(kbHandler))        // net/http
//	r.GET("/kb", ginrbac.New(m).RequirePermission("kb", "read"), kbHandler)    // Gin (rbac/ginrbac)
//
// New discovers the issuer, loads its keys and caches them; a request
// costs no network call. A token with an unknown key id triggers a
// refetch, at most one at a time and one per Options.RefetchInterval.
// When the issuer cannot be reached, New still returns and keeps trying
// in the background with backoff; until the keys are loaded, requests
// with a credential are answered 503 with Retry-After, and Ready and
// ReadyHandler tell when that is over. Close stops the background work.
//
// Credentials: "Authorization: Bearer <access token>" (exactly that
// scheme and one space); "X-API-Key: <key>" when Options.APIKeys is set
// (answers are cached for a short time, refusals too); and, on WebSocket
// upgrade requests only, which browsers cannot send headers with, the
// query parameter token (an access token) or key (an API key). Exactly
// one credential per request. Both parameters are removed from the
// request URL in every case, so logs written after the middleware never
// hold them. Webhook routes (Middleware.Webhook) take a sender's static
// secret instead, and nothing else.
//
// Answers: 401 with `WWW-Authenticate: Bearer error="invalid_token"` for
// a missing, malformed, expired or unknown credential; 403
// {"error":"insufficient_permission","reason":"missing_permission",
// "error_description":"...","required":"kb:read"} when the credential may
// not do this, the reason saying why (see the Reason… constants: missing
// permission, role or scope, no active organization, another
// organization, an inactive membership reported by Options.Check through
// Forbid); 503 when the credential cannot be checked right now. Every
// refusal is a typed Refusal: Options.OnRefusal learns each one and
// Options.WriteError may answer it differently; rbac itself logs none.
// Handlers read the principal with PrincipalFrom (or ginrbac.Principal).
//
// Options.InsecureDevPrincipal lets a backend run in development with no
// credential at all; New refuses it in production.
//
// The package depends on go-jose and Gatehouse's leaf packages jwks (the
// key cache) and claims (the token's claims) only: never on Gatehouse's
// storage, providers or tokens, nor on Gin, whose adapter is the package
// rbac/ginrbac. Adapters for other routers build on Middleware.Enforce
// and Webhook.Enforce.
package rbac
