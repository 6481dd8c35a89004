package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/web"
)

// This file is the one place errors become HTTP: OAuth JSON errors,
// bearer-token challenges, and pages for browser flows. The person or
// client sees a generic message; the detail goes to the log with the
// request id.
//
// A transient database fault (models.IsTransient: a lost connection, a
// restarting server, a serialization failure or deadlock, an exhausted
// pool) that no more specific kind claimed is 503 with Retry-After, never
// 500: {"error":"temporarily_unavailable"} on the OAuth, bearer and admin
// JSON endpoints, a page asking to try again in browser flows.

// retryAfterSeconds is the Retry-After of a 503 for a transient fault. It
// is below the default refresh-token reuse grace (2 s) so that a client
// retrying a refresh whose answer was lost after its rotation committed
// is served by the grace window (see tokens/refresh.go).
const retryAfterSeconds = "1"

// unavailableDescription is the error_description of those 503s.
const unavailableDescription = "the service is briefly unavailable; try again shortly"

// writeUnavailable answers a JSON endpoint for a transient fault.
func writeUnavailable(c *gin.Context, log *slog.Logger, err error) {
	logDetail(c, log, slog.LevelWarn, "temporarily unavailable", err)
	c.Header("Retry-After", retryAfterSeconds)
	c.JSON(http.StatusServiceUnavailable, gin.H{"error": "temporarily_unavailable", "error_description": unavailableDescription,
		"request_id": RequestID(c.Request.Context())})
}

// writeOAuthError answers a JSON endpoint (RFC 6749 §5.2).
func writeOAuthError(c *gin.Context, log *slog.Logger, err error) {
	var oe *oauth.Error
	var pe *oauth.PageError
	switch {
	case errors.As(err, &oe):
		if oe.Cause != nil {
			logDetail(c, log, slog.LevelInfo, "oauth request refused", err)
		}
		switch oe.Status {
		case http.StatusUnauthorized:
			c.Header("WWW-Authenticate", `Basic realm="gatehouse"`)
		case http.StatusServiceUnavailable:
			c.Header("Retry-After", retryAfterSeconds)
		}
		c.JSON(oe.Status, gin.H{"error": oe.Code, "error_description": oe.Description})
	case errors.As(err, &pe) && pe.Status >= 400 && pe.Status < 500:
		// A browser-flow refusal asked for as JSON (a logout with a bearer
		// token or Accept: application/json): the request was refused, no
		// server error.
		logDetail(c, log, slog.LevelInfo, "request refused", err)
		c.JSON(pe.Status, gin.H{"error": "invalid_request", "error_description": pe.Message})
	case IsBodyTooLarge(err):
		c.JSON(http.StatusRequestEntityTooLarge, gin.H{"error": "invalid_request", "error_description": "request body too large"})
	case models.IsTransient(err):
		writeUnavailable(c, log, err)
	default:
		writeInternal(c, log, err)
	}
}

// writeInternal answers 500 with the request id and logs the detail.
func writeInternal(c *gin.Context, log *slog.Logger, err error) {
	logDetail(c, log, slog.LevelError, "internal error", err)
	c.JSON(http.StatusInternalServerError, gin.H{"error": "server_error", "error_description": "internal error",
		"request_id": RequestID(c.Request.Context())})
}

// writeBearerError answers a protected resource (RFC 6750 §3).
func writeBearerError(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, errNoBearer):
		c.Header("WWW-Authenticate", `Bearer realm="gatehouse"`)
		c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": "a bearer access token is required"})
	case errors.Is(err, oauth.ErrInvalidToken):
		logDetail(c, log, slog.LevelInfo, "bearer token refused", err)
		c.Header("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token", error_description="the access token is invalid, expired or revoked"`)
		c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid_token", "error_description": "the access token is invalid, expired or revoked"})
	default:
		writeOAuthError(c, log, err)
	}
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
// authorization errors, a readable page for everything else.
func renderPage(c *gin.Context, log *slog.Logger, pages *web.Pages, err error) {
	var re *oauth.RedirectError
	var pe *oauth.PageError
	rid := RequestID(c.Request.Context())
	switch {
	case errors.As(err, &re):
		logDetail(c, log, slog.LevelInfo, "authorization request refused", err)
		c.Redirect(http.StatusFound, re.RedirectURL)
	case errors.As(err, &pe):
		logDetail(c, log, slog.LevelInfo, "browser flow refused", err)
		if pe.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(pe.RetryAfter.Seconds()))))
		}
		showPage(c, log, pages, pe.Status, "error.html", pageData{Title: pe.Title, Message: pe.Message, StartOver: pe.StartOver, RequestID: rid})
	case IsBodyTooLarge(err):
		showPage(c, log, pages, http.StatusRequestEntityTooLarge, "error.html", pageData{Title: "Request too large",
			Message: "What was sent is too large.", RequestID: rid})
	case models.IsTransient(err):
		logDetail(c, log, slog.LevelWarn, "temporarily unavailable", err)
		c.Header("Retry-After", retryAfterSeconds)
		showPage(c, log, pages, http.StatusServiceUnavailable, "error.html", pageData{Title: "Temporarily unavailable",
			Message: "This step could not finish because of a brief problem on our side. Please wait a moment and try again, " +
				"or start again from the application.", RequestID: rid})
	default:
		logDetail(c, log, slog.LevelError, "internal error", err)
		showPage(c, log, pages, http.StatusInternalServerError, "error.html", pageData{Title: "Something went wrong",
			Message: "Sign-in failed because of a problem on our side. Please try again; if it keeps happening, quote the reference below.", RequestID: rid})
	}
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

// writeAdminError answers the admin API: 400 naming the field, 403 when
// the role hierarchy forbids the change, 404, 409 for conflicts with the
// current state, 503 with Retry-After for a transient database fault,
// 500 (detail logged) for anything else.
func writeAdminError(c *gin.Context, log *slog.Logger, err error) {
	var ie *admin.InputError
	var pe *admin.PermissionError
	switch {
	case errors.As(err, &ie):
		c.JSON(http.StatusBadRequest, gin.H{"error": "invalid_request", "field": ie.Field, "error_description": ie.Error()})
	case errors.As(err, &pe):
		c.JSON(http.StatusForbidden, gin.H{"error": "insufficient_permission", "required": pe.Required, "error_description": pe.Reason})
	case errors.Is(err, admin.ErrForbidden):
		c.JSON(http.StatusForbidden, gin.H{"error": "insufficient_permission", "error_description": reason(err, admin.ErrForbidden)})
	case errors.Is(err, admin.ErrNotFound):
		c.JSON(http.StatusNotFound, gin.H{"error": "not_found", "error_description": "no such resource"})
	case errors.Is(err, admin.ErrConflict):
		c.JSON(http.StatusConflict, gin.H{"error": "conflict", "error_description": reason(err, admin.ErrConflict)})
	case IsBodyTooLarge(err):
		c.JSON(http.StatusRequestEntityTooLarge, gin.H{"error": "invalid_request", "error_description": "request body too large"})
	case models.IsTransient(err):
		writeUnavailable(c, log, err)
	default:
		writeInternal(c, log, err)
	}
}

// reason is the message of a service error without its sentinel prefix.
func reason(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}
