package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/web"
)

// This file is the one place errors become HTTP. An error states what
// went wrong as a fault.Kind; the table below says, per kind, the status,
// the "error" code of a JSON answer, and the page a person sees in a
// browser flow. The client or person sees the table's text (or the
// message the error explains itself with, fault.Explain); the detail goes
// to the log with the request id.
//
// A transient database fault (a lost connection, a restarting server, a
// serialization failure or deadlock, an exhausted pool: the models
// package classifies them) that no more specific kind claimed is
// fault.Unavailable: 503 with Retry-After, never 500.

// retryAfterUnavailable is the Retry-After of a 503 for a transient
// fault. It is below the default refresh-token reuse grace (2 s) so that a
// client retrying a refresh whose answer was lost after its rotation
// committed is served by the grace window (see tokens/refresh.go).
const retryAfterUnavailable = time.Second

// retryAfterBusy is the Retry-After of a 503 that waits on work in
// flight or elsewhere: every SAML validation slot taken, a sign-in cut
// short by a fault, an identity provider that cannot be reached.
const retryAfterBusy = 2 * time.Second

// retryAfterUnconfirmed is the Retry-After of a refresh an upstream
// re-check could not confirm, when the error does not say (the pause
// between two re-check attempts, provisioning.RecheckLease).
const retryAfterUnconfirmed = 30 * time.Second

// answer is what one kind of failure looks like from outside.
type answer struct {
	status int
	// code and description are a JSON answer's "error" and
	// "error_description" (the error's own message replaces description).
	code, description string
	// title and message are the page a person sees (the error's own
	// message replaces message); startOver offers to begin again at "/".
	title, message string
	startOver      bool
	retryAfter     time.Duration
	// challenge is the WWW-Authenticate header.
	challenge string
	// fixedText: the row's texts are shown whatever message the error
	// offers (a server fault, or a page whose wording matters more).
	fixedText bool
	// level and logAs are how the detail is logged.
	level slog.Level
	logAs string
}

const (
	genericRefusal   = "The request could not be completed."
	genericSignInMsg = "The identity provider could not sign you in. Please try again."
	unavailableDesc  = "the service is briefly unavailable; try again shortly"
	bearerChallenge  = `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is invalid, expired or revoked"`
)

func refusal(kind fault.Kind, description string) answer {
	return answer{status: http.StatusBadRequest, code: string(kind), description: description,
		title: "Request refused", message: genericRefusal, level: slog.LevelInfo}
}

func page(status int, title, message string) answer {
	code := "invalid_request"
	if status >= 500 {
		code = string(fault.Unavailable)
	}
	return answer{status: status, code: code, description: message, title: title, message: message, level: slog.LevelInfo}
}

// answers is the table: every fault.Kind has a row (TestEveryKindAnswered).
var answers = map[fault.Kind]answer{
	fault.Internal: {status: http.StatusInternalServerError, code: "server_error", description: "internal error",
		title:     "Something went wrong",
		message:   "Sign-in failed because of a problem on our side. Please try again; if it keeps happening, quote the reference below.",
		fixedText: true, level: slog.LevelError, logAs: "internal error"},

	fault.InvalidRequest:         refusal(fault.InvalidRequest, "the request is not valid"),
	fault.InvalidClient:          withChallenge(refusal(fault.InvalidClient, "client authentication failed"), http.StatusUnauthorized, `Basic realm="gatehouse"`),
	fault.InvalidGrant:           refusal(fault.InvalidGrant, "the grant is invalid, expired or revoked"),
	fault.UnauthorizedClient:     refusal(fault.UnauthorizedClient, "the client may not use this grant"),
	fault.UnsupportedGrantType:   refusal(fault.UnsupportedGrantType, "unsupported grant_type"),
	fault.UnsupportedResponse:    refusal(fault.UnsupportedResponse, "unsupported response_type"),
	fault.InvalidScope:           refusal(fault.InvalidScope, "the scope is invalid"),
	fault.InvalidTarget:          refusal(fault.InvalidTarget, "the target is invalid"),
	fault.UnsupportedToken:       refusal(fault.UnsupportedToken, "unsupported token type"),
	fault.RequestNotSupported:    refusal(fault.RequestNotSupported, "request objects are not supported"),
	fault.RequestURINotSupported: refusal(fault.RequestURINotSupported, "request_uri is not supported"),
	fault.AccessDenied:           withStatus(refusal(fault.AccessDenied, "access denied"), http.StatusForbidden),
	fault.LoginRequired:          refusal(fault.LoginRequired, "the person must sign in"),
	fault.AuthorizationPending:   refusal(fault.AuthorizationPending, "the person has not yet approved the device"),
	fault.SlowDown:               refusal(fault.SlowDown, "polling too fast: wait longer between requests"),
	fault.ExpiredToken:           refusal(fault.ExpiredToken, "the device code expired"),
	fault.DeviceDenied:           refusal(fault.AccessDenied, "the person denied the device"),
	fault.InvalidToken: withChallenge(refusal(fault.InvalidToken, "the access token is invalid, expired or revoked"),
		http.StatusUnauthorized, bearerChallenge),
	fault.TooLarge: {status: http.StatusRequestEntityTooLarge, code: "invalid_request", description: "request body too large",
		title: "Request too large", message: "What was sent is too large.", level: slog.LevelInfo},
	fault.RateLimited: {status: http.StatusTooManyRequests, code: "too_many_requests", description: "too many requests, retry later",
		title: "Too many requests", message: "Too many requests came from here. Please wait a moment and try again.", level: slog.LevelDebug},
	fault.NoSuchEndpoint: {status: http.StatusNotFound, code: "not_found", description: "no such endpoint",
		title: "Not found", message: "There is nothing at this address.", level: slog.LevelDebug},
	fault.MethodNotAllowed: {status: http.StatusMethodNotAllowed, code: "method_not_allowed", description: "method not allowed on this endpoint",
		title: "Not allowed", message: "This address does not accept that kind of request.", level: slog.LevelDebug},

	fault.NotFound:   withStatus(refusal("not_found", "no such resource"), http.StatusNotFound),
	fault.Forbidden:  withStatus(refusal(fault.Forbidden, "not allowed"), http.StatusForbidden),
	fault.Conflict:   withStatus(refusal(fault.Conflict, "the change conflicts with the current state"), http.StatusConflict),
	fault.NoMetadata: withStatus(refusal("not_found", "no SAML provider of that name"), http.StatusNotFound),

	fault.Unavailable: {status: http.StatusServiceUnavailable, code: string(fault.Unavailable), description: unavailableDesc,
		title: "Temporarily unavailable", retryAfter: retryAfterUnavailable, fixedText: true, level: slog.LevelWarn, logAs: "temporarily unavailable",
		message: "This step could not finish because of a brief problem on our side. Please wait a moment and try again, " +
			"or start again from the application."},
	fault.Busy: {status: http.StatusServiceUnavailable, code: string(fault.Unavailable), description: unavailableDesc,
		title: "Busy", retryAfter: retryAfterBusy, fixedText: true, level: slog.LevelInfo,
		message: "Too many sign-ins are being checked right now. Please reload this page in a moment to try again."},

	// A refresh the identity provider must confirm first: the error says
	// why, and when a retry may pass (the re-check's lease, RetryAfterOf).
	fault.UpstreamUnconfirmed: withRetry(page(http.StatusServiceUnavailable, "Temporarily unavailable",
		"The identity provider cannot confirm this account right now; retry later."), retryAfterUnconfirmed),

	fault.MalformedSignIn:      page(http.StatusBadRequest, "Invalid sign-in request", "The application sent a malformed sign-in request."),
	fault.UnknownClient:        page(http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered with this sign-in service."),
	fault.UnregisteredRedirect: page(http.StatusBadRequest, "Invalid redirect address", "The application asked to return you to an address it has not registered, so the sign-in was stopped."),
	fault.UnknownProvider:      page(http.StatusNotFound, "Unknown sign-in method", "This sign-in method does not exist."),
	fault.NoProvider:           page(http.StatusServiceUnavailable, "No sign-in method", "No way to sign in is configured for this application yet."),
	fault.LoginExpired:         withStartOver(page(http.StatusBadRequest, "Sign-in expired", "The sign-in link expired or was already used, please start again.")),
	fault.OtherBrowser: withStartOver(page(http.StatusBadRequest, "Sign-in not completed",
		"This sign-in was started in another browser or on another device, or this browser did not keep the cookie it needs. "+
			"Nobody was signed in. Start again from the application, in this browser.")),
	fault.SignInInterrupted: fixed(withRetry(withStartOver(page(http.StatusServiceUnavailable, "Sign-in not completed",
		"The sign-in service had a brief problem and this sign-in cannot be resumed. Nobody was signed in. "+
			"Please start again from the application in a moment.")), retryAfterBusy)),
	fault.AccountDisabled:    page(http.StatusForbidden, "Account disabled", "Your account is disabled, so you cannot sign in. Contact your administrator."),
	fault.LogoutUnverified:   page(http.StatusBadRequest, "Sign-out failed", "The sign-out request could not be verified."),
	fault.LogoutWrongClient:  page(http.StatusBadRequest, "Sign-out failed", "The sign-out request names another application than the one you signed in to."),
	fault.LogoutUnregistered: page(http.StatusBadRequest, "Sign-out failed", "The application asked to send you to an address it has not registered, so nothing was done: you are still signed in."),
	fault.LogoutCrossSite: page(http.StatusForbidden, "Sign-out not confirmed",
		"The sign-out was not confirmed on this sign-in service's own page, so nothing was done: you are still signed in."),

	fault.UpstreamUnavailable: withRetry(page(http.StatusServiceUnavailable, "Sign-in unavailable",
		"The identity provider cannot be reached right now, please try again in a moment."), retryAfterBusy),
	fault.UpstreamDenied:  page(http.StatusForbidden, "Sign-in failed", genericSignInMsg),
	fault.UpstreamInvalid: page(http.StatusBadRequest, "Sign-in failed", genericSignInMsg),
	fault.UpstreamFailed:  withCode(page(http.StatusBadGateway, "Sign-in failed", genericSignInMsg), "server_error"),
}

func withStatus(a answer, status int) answer { a.status = status; return a }
func withChallenge(a answer, status int, challenge string) answer {
	a.status, a.challenge = status, challenge
	return a
}
func fixed(a answer) answer                          { a.fixedText = true; return a }
func withStartOver(a answer) answer                  { a.startOver = true; return a }
func withRetry(a answer, after time.Duration) answer { a.retryAfter = after; return a }
func withCode(a answer, code string) answer          { a.code = code; return a }
func lookup(kind fault.Kind) answer {
	if a, ok := answers[kind]; ok {
		return a
	}
	return answers[fault.Internal]
}

// logMessage is the log line's message for this row: its own, else
// refused.
func (a answer) logMessage(refused string) string {
	if a.logAs != "" {
		return a.logAs
	}
	return refused
}

// answerOf is the table's row for err, with the error's own message for
// the caller in place of the row's when it has one, and its own
// Retry-After (fault.WithRetryAfter) in place of the row's when the row
// asks for a retry.
func answerOf(err error) answer {
	a := lookup(fault.Of(err))
	if m := fault.MessageOf(err); m != "" && !a.fixedText {
		a.description, a.message = m, m
	}
	if d := fault.RetryAfterOf(err); d > 0 && a.retryAfter > 0 {
		a.retryAfter = d
	}
	return a
}

func init() {
	// Reading past the body limit is the client's doing, wherever it is
	// read.
	fault.RegisterClassifier(func(err error) (fault.Kind, bool) { return fault.TooLarge, IsBodyTooLarge(err) })
}

// setHeaders sends an answer's Retry-After and WWW-Authenticate.
func setHeaders(c *gin.Context, a answer) {
	if a.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(a.retryAfter.Seconds()))))
	}
	if a.challenge != "" {
		c.Header("WWW-Authenticate", a.challenge)
	}
}

// writeJSONError answers a JSON endpoint (RFC 6749 §5.2, RFC 6750 §3):
// status, code and headers from the table, the error's own message as the
// description when it has one. A 5xx carries the request id, so that the
// logged detail can be found.
func writeJSONError(c *gin.Context, log *slog.Logger, err error) {
	a := answerOf(err)
	if oe, ok := err.(*oauth.Error); !ok || oe.Cause != nil || a.status >= 500 {
		// An OAuth refusal without a cause says all there is in its
		// answer: logging it would only repeat the access log.
		logDetail(c, log, a.level, a.logMessage("request refused"), err)
	}
	writeAnswer(c, a, err)
}

// writeAnswer sends a row of the table as JSON; err (which may be nil)
// adds the fields of addDetails.
func writeAnswer(c *gin.Context, a answer, err error) {
	setHeaders(c, a)
	body := gin.H{"error": a.code, "error_description": a.description}
	if a.status >= 500 {
		body["request_id"] = RequestID(c.Request.Context())
	}
	addDetails(body, err)
	c.AbortWithStatusJSON(a.status, body)
}

// addDetails adds the fields some errors carry beyond the table's: the
// admin API names the wrong field or the permission a route requires.
func addDetails(body gin.H, err error) {
	var ie *admin.InputError
	var pe *admin.PermissionError
	switch {
	case errors.As(err, &ie):
		body["field"] = ie.Field
	case errors.As(err, &pe):
		body["required"] = pe.Required
	}
}

// writeOAuthError answers the token, revocation, introspection and
// metadata endpoints.
func writeOAuthError(c *gin.Context, log *slog.Logger, err error) { writeJSONError(c, log, err) }

// writeBearerError answers a protected resource (RFC 6750 §3): no token
// at all is a challenge without an error code.
func writeBearerError(c *gin.Context, log *slog.Logger, err error) {
	if errors.Is(err, errNoBearer) {
		c.Header("WWW-Authenticate", `Bearer realm="gatehouse"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": "a bearer access token is required"})
		return
	}
	writeJSONError(c, log, err)
}

// writeAdminError answers the admin API, where a missing row is a 404.
func writeAdminError(c *gin.Context, log *slog.Logger, err error) {
	writeJSONError(c, log, admin.Classified(err))
}

var errNoBearer = errors.New("no bearer token")

// bearerToken reads "Authorization: Bearer <token>" (scheme
// case-insensitive, one space, RFC 6750 §2.1).
func bearerToken(c *gin.Context) (string, error) {
	h := c.GetHeader("Authorization")
	if len(h) < 8 || !equalFoldASCII(h[:7], "bearer ") || h[7:] == "" {
		return "", errNoBearer
	}
	return h[7:], nil
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// pageData is what error.html shows.
type pageData struct {
	Title     string
	Message   string
	StartOver string
	RequestID string
}

// renderPage answers a browser flow: a redirect to the client for
// authorization errors (RFC 6749 §4.1.2.1), a readable page from the
// table for everything else.
func renderPage(c *gin.Context, log *slog.Logger, pages *web.Pages, err error) {
	var re *oauth.RedirectError
	if errors.As(err, &re) {
		logDetail(c, log, slog.LevelInfo, "authorization request refused", err)
		c.Redirect(http.StatusFound, re.RedirectURL)
		return
	}
	a := answerOf(err)
	logDetail(c, log, a.level, a.logMessage("browser flow refused"), err)
	setHeaders(c, a)
	data := pageData{Title: a.title, Message: a.message, RequestID: RequestID(c.Request.Context())}
	if a.startOver {
		data.StartOver = "/"
	}
	showPage(c, log, pages, a.status, "error.html", data)
}

func showPage(c *gin.Context, log *slog.Logger, pages *web.Pages, status int, name string, data any) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := pages.Render(c.Writer, name, data); err != nil {
		logDetail(c, log, slog.LevelError, "render page", err)
	}
}

func logDetail(c *gin.Context, log *slog.Logger, level slog.Level, msg string, err error) {
	log.Log(c.Request.Context(), level, msg, slog.String("request_id", RequestID(c.Request.Context())),
		slog.String("route", c.FullPath()), slog.String("error", fmt.Sprint(err)))
	_ = c.Error(err)
}
