// Package oauth is Gatehouse's authorization server: the registered
// clients and their scopes, authorization-request validation, the
// authorization codes of completed sign-ins, the grants (authorization
// code, refresh, client credentials, token exchange, API keys), and the
// token, revocation, introspection, UserInfo, /auth/me, logout and
// discovery endpoints (RFC 6749, 7009, 7636, 7662, 8693, 9068, OpenID
// Connect Core). Browser sign-in (the provider round trip, the login
// state, the SAML POST binding) is the signin package's, which calls this
// one; this package never imports it, and its API speaks no HTTP types.
package oauth

import (
	"errors"
	"fmt"

	"github.com/gatehouse-id/gatehouse/fault"
)

// Error is an OAuth error response (RFC 6749 §5.2). Code is the error
// code, which is also its fault kind: the HTTP layer's table gives the
// status. Description is shown to the client and never holds a token,
// code or secret.
type Error struct {
	Code        string
	Description string
	// Cause is for logs only.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s (%v)", e.Code, e.Description, e.Cause)
	}
	return e.Code + ": " + e.Description
}

func (e *Error) Unwrap() error { return e.Cause }

// Kind is the OAuth error code as a fault kind: the HTTP layer's table
// decides the status from it.
func (e *Error) Kind() fault.Kind { return fault.Kind(e.Code) }

// PublicMessage is the description, which is written for the client.
func (e *Error) PublicMessage() string { return e.Description }

func oauthErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

func invalidRequest(format string, args ...any) *Error {
	return oauthErr("invalid_request", format, args...)
}

func invalidGrant(format string, args ...any) *Error {
	return oauthErr("invalid_grant", format, args...)
}

func invalidClient(format string, args ...any) *Error {
	return oauthErr("invalid_client", format, args...)
}

func unauthorizedClient(format string, args ...any) *Error {
	return oauthErr("unauthorized_client", format, args...)
}

// ErrInvalidToken is a bearer-token failure (RFC 6750 §3.1): the caller
// answers 401 with WWW-Authenticate.
var ErrInvalidToken = fault.New(fault.InvalidToken, errors.New("invalid_token"))

// RedirectError is an authorization error delivered to the client's
// registered redirect URI (RFC 6749 §4.1.2.1).
type RedirectError struct {
	Err         *Error
	RedirectURL string
}

func (e *RedirectError) Error() string { return e.Err.Error() }
func (e *RedirectError) Unwrap() error { return e.Err }
