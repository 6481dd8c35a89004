// Package fault names what went wrong, so that one table at the HTTP edge
// (handlers/errors.go) decides the status, the OAuth error code and the
// text a person sees, instead of every package choosing its own. An error
// states its kind with a Kind method anywhere in its chain; errors from
// outside Gatehouse (a database driver, the network) are given a kind by
// the classifiers the packages that understand them register.
//
// fault is a leaf package: it imports nothing of Gatehouse, so providers,
// storage and services can all use it.
package fault

import (
	"errors"
	"sync"
	"time"
)

// Kind is what went wrong, in terms a caller can act on. For the kinds
// that are OAuth error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
// RFC 8693 §2.2.2, OpenID Connect Core §3.1.2.6) the value is that code.
type Kind string

// The kinds. Internal is the kind of an error nothing more specific claims.
const (
	Internal Kind = "server_error"

	// The request, as an OAuth client or a browser sent it.
	InvalidRequest         Kind = "invalid_request"
	InvalidClient          Kind = "invalid_client"
	InvalidGrant           Kind = "invalid_grant"
	UnauthorizedClient     Kind = "unauthorized_client"
	UnsupportedGrantType   Kind = "unsupported_grant_type"
	UnsupportedResponse    Kind = "unsupported_response_type"
	InvalidScope           Kind = "invalid_scope"
	InvalidTarget          Kind = "invalid_target"
	UnsupportedToken       Kind = "unsupported_token_type"
	RequestNotSupported    Kind = "request_not_supported"
	RequestURINotSupported Kind = "request_uri_not_supported"
	AccessDenied           Kind = "access_denied"
	LoginRequired          Kind = "login_required"
	InvalidToken           Kind = "invalid_token"
	TooLarge               Kind = "request_too_large"
	RateLimited            Kind = "too_many_requests"
	NoSuchEndpoint         Kind = "not_found"
	MethodNotAllowed       Kind = "method_not_allowed"

	// The device authorization grant's answers at the token endpoint
	// (RFC 8628 §3.5). DeviceDenied is access_denied there, a 400 like
	// every token endpoint error.
	AuthorizationPending Kind = "authorization_pending"
	SlowDown             Kind = "slow_down"
	ExpiredToken         Kind = "expired_token"
	DeviceDenied         Kind = "device_access_denied"

	// What the request asks for, against current state (the admin API).
	NotFound   Kind = "no_such_resource"
	Forbidden  Kind = "insufficient_permission"
	Conflict   Kind = "conflict"
	NoMetadata Kind = "no_metadata"

	// Something Gatehouse depends on. Unavailable is Gatehouse's own
	// storage failing in a way that may pass by itself (a lost connection,
	// a deadlock); Busy is Gatehouse refusing work it has no capacity for
	// right now.
	Unavailable Kind = "temporarily_unavailable"
	Busy        Kind = "busy"
	// UpstreamUnconfirmed: a refresh the identity provider must confirm
	// first (an upstream re-check under on_recheck_unavailable: deny)
	// could not be confirmed now; retry later (RetryAfterOf says when).
	UpstreamUnconfirmed Kind = "upstream_unconfirmed"

	// Browser sign-in and sign-out: each is a page a person reads.
	MalformedSignIn      Kind = "malformed_sign_in"
	UnknownClient        Kind = "unknown_client"
	UnregisteredRedirect Kind = "unregistered_redirect"
	UnknownProvider      Kind = "unknown_provider"
	NoProvider           Kind = "no_provider"
	LoginExpired         Kind = "login_expired"
	OtherBrowser         Kind = "other_browser"
	SignInInterrupted    Kind = "sign_in_interrupted"
	AccountDisabled      Kind = "account_disabled"
	LogoutUnverified     Kind = "logout_unverified"
	LogoutWrongClient    Kind = "logout_wrong_client"
	LogoutUnregistered   Kind = "logout_unregistered_redirect"
	LogoutCrossSite      Kind = "logout_cross_site"

	// The identity provider: it could not be reached (UpstreamUnavailable),
	// it or a provider rule refused the person (UpstreamDenied), its answer
	// was invalid or the person cancelled (UpstreamInvalid), or anything
	// else went wrong there (UpstreamFailed).
	UpstreamUnavailable Kind = "upstream_unavailable"
	UpstreamDenied      Kind = "upstream_denied"
	UpstreamInvalid     Kind = "upstream_invalid"
	UpstreamFailed      Kind = "upstream_failed"
)

// Kinds lists every kind, for the tables that must cover them all.
var Kinds = []Kind{
	Internal,
	InvalidRequest, InvalidClient, InvalidGrant, UnauthorizedClient, UnsupportedGrantType, UnsupportedResponse,
	InvalidScope, InvalidTarget, UnsupportedToken, RequestNotSupported, RequestURINotSupported, AccessDenied, LoginRequired, InvalidToken,
	TooLarge, RateLimited, NoSuchEndpoint, MethodNotAllowed,
	AuthorizationPending, SlowDown, ExpiredToken, DeviceDenied,
	NotFound, Forbidden, Conflict, NoMetadata,
	Unavailable, Busy, UpstreamUnconfirmed,
	MalformedSignIn, UnknownClient, UnregisteredRedirect, UnknownProvider, NoProvider, LoginExpired, OtherBrowser,
	SignInInterrupted, AccountDisabled, LogoutUnverified, LogoutWrongClient, LogoutUnregistered, LogoutCrossSite,
	UpstreamUnavailable, UpstreamDenied, UpstreamInvalid, UpstreamFailed,
}

// kinded is an error that states its kind.
type kinded interface {
	error
	Kind() Kind
}

// Error gives a cause a kind, and optionally a message for the caller.
// Its Error() is the cause's: the kind and message are for the caller,
// the cause for the log.
type Error struct {
	kind    Kind
	message string
	err     error
}

// New returns err with kind k; nil stays nil.
func New(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{kind: k, err: err}
}

// Explain returns err with kind k and a message that may be shown to the
// caller instead of the kind's own text (a provider's words for the
// person, an admin rule's reason). The message must hold no secret.
func Explain(k Kind, message string, err error) error {
	if err == nil {
		err = errors.New(message)
	}
	return &Error{kind: k, message: message, err: err}
}

// PublicMessage returns the message given by Explain, or "".
func (e *Error) PublicMessage() string { return e.message }

// Error returns the cause's message.
func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// Kind returns the kind given to the cause.
func (e *Error) Kind() Kind { return e.kind }

// explained is an error that carries a message the caller may see.
type explained interface {
	error
	PublicMessage() string
}

// MessageOf returns the message err's chain offers the caller for its
// kind, or "" when none does (the kind's own text applies): the outermost
// non-empty message at or above the error that decided the kind (Of), so
// that a message written for one kind never speaks for another. An error
// whose kind came from a classifier (or none) has no message.
func MessageOf(err error) string {
	for err != nil {
		if e, ok := err.(explained); ok && e.PublicMessage() != "" {
			return e.PublicMessage()
		}
		if _, ok := err.(kinded); ok {
			return "" // the kind was decided here, without a message
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if m := MessageOf(inner); m != "" {
					return m
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

var (
	classifiersMu sync.RWMutex
	classifiers   []func(error) (Kind, bool)
)

// RegisterClassifier adds a function that gives a kind to errors that do
// not state one (a database driver's): it returns the kind and true, or
// false to pass. Packages register in init, before any request.
func RegisterClassifier(classify func(error) (Kind, bool)) {
	classifiersMu.Lock()
	defer classifiersMu.Unlock()
	classifiers = append(classifiers, classify)
}

// Of returns err's kind: the kind stated by the outermost error in its
// chain that states one, else the first a classifier gives, else
// Internal. The outermost wins because it knows the most about what the
// caller was doing (an invalid grant whose cause was a missing row).
func Of(err error) Kind {
	if err == nil {
		return ""
	}
	if k, ok := errors.AsType[kinded](err); ok {
		return k.Kind()
	}
	classifiersMu.RLock()
	defer classifiersMu.RUnlock()
	for _, classify := range classifiers {
		if k, ok := classify(err); ok {
			return k
		}
	}
	return Internal
}

// retryAfter is an error that says when a retry may succeed.
type retryAfter struct {
	error
	after time.Duration
}

func (e *retryAfter) Unwrap() error { return e.error }

// WithRetryAfter returns err saying that a retry may succeed after d (the
// answer's Retry-After, in place of its kind's); nil stays nil, and d of
// zero or less adds nothing. The kind and message are err's.
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfter{error: err, after: d}
}

// RetryAfterOf returns the outermost delay WithRetryAfter gave err's
// chain, or 0.
func RetryAfterOf(err error) time.Duration {
	if r, ok := errors.AsType[*retryAfter](err); ok {
		return r.after
	}
	return 0
}
