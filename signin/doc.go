// Package signin is browser sign-in: everything between a client sending
// the browser to /auth/login and Gatehouse sending it back with an
// authorization code.
//
// What lives here:
//   - begin: the provider chooser decision and the start of a sign-in at
//     one provider (Login);
//   - the login state: the sealed, per-sign-in cookie that binds the
//     upstream's answer to the browser that began it (loginstate.go);
//   - the upstream round trip at the callback URL, including the dev
//     provider's own form (Callback);
//   - the SAML POST binding: the cross-site answer posted again from
//     Gatehouse's origin, the pending login consumed by the first answer,
//     and the validation slots (AssertionPost, crosssite.go);
//   - the callback outcome: provisioning the person, the authorization
//     code (issued by the oauth package), the redirect to the client, and
//     the login.* audit events and sign-in metrics.
//
// Each route is one call returning an Outcome the handler renders: a
// redirect, a page with its data, a form to post, cookies to set or
// clear, or an error. The API speaks no net/http response or cookie
// types; it takes the *http.Request of a route whose upstream answer the
// providers read.
//
// What does not: the clients, scopes and authorization-request
// validation, the code, refresh, client-credentials and token-exchange
// grants, and the token, revocation, introspection, UserInfo, /auth/me,
// logout and discovery endpoints are the oauth package's. This package
// imports oauth, never the reverse. Providers (the upstream protocols)
// and provisioning (who the person becomes) are their own packages.
package signin
