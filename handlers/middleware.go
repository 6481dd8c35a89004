// Package handlers holds Gatehouse's thin Gin handlers and the middleware
// every request passes through: parse, call a service, render.
package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/fault"
)

type ctxKey struct{}

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-ID"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// RequestID returns the id of the request being served ("" outside one).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// requestID accepts a well-formed incoming id (so a proxy's id follows the
// request through) and otherwise makes one.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			var b [12]byte
			var out [24]byte
			_, _ = rand.Read(b[:])
			hex.Encode(out[:], b[:])
			id = string(out[:])
		}
		c.Header(RequestIDHeader, id)
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), ctxKey{}, id))
		c.Next()
	}
}

// accessLog writes one JSON line per request. It logs the path only: query
// strings of auth endpoints carry codes, states and tokens.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", RequestID(c.Request.Context())),
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", c.FullPath()),
			slog.Int("status", status),
			slog.Int("bytes", c.Writer.Size()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("client_ip", c.ClientIP()),
		}
		if len(c.Errors) > 0 {
			attrs = append(attrs, slog.String("error", c.Errors.Last().Error()))
		}
		log.LogAttrs(c.Request.Context(), level, "request", attrs...)
	}
}

// recovery turns a panic into a JSON 500 that reveals nothing internal;
// the panic value and stack go to the log with the request id.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if err, ok := rec.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(rec)
			}
			log.ErrorContext(c.Request.Context(), "panic while serving request",
				slog.String("request_id", RequestID(c.Request.Context())),
				slog.Any("panic", rec),
				slog.String("stack", string(debug.Stack())))
			if !c.Writer.Written() {
				c.Header("Cache-Control", "no-store")
				writeAnswer(c, lookup(fault.Internal), nil)
				return
			}
			c.Abort()
		}()
		c.Next()
	}
}

// securityHeaders sets conservative defaults for every response; auth
// responses are never cached (RFC 6749 §5.1). The values are shared by
// every response (built once, not allocated per request): a header's
// slice is only ever replaced or appended to (which copies it, its
// capacity being its length), never written in place.
func securityHeaders(hsts bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h["X-Content-Type-Options"] = hdrNosniff
		h["X-Frame-Options"] = hdrDeny
		h["Referrer-Policy"] = hdrNoReferrer
		h["Cross-Origin-Opener-Policy"] = hdrSameOrigin
		// No form-action: the sign-in form's POST redirects to client origins.
		h["Content-Security-Policy"] = hdrCSP
		if hsts {
			h["Strict-Transport-Security"] = hdrHSTS
		}
		if strings.HasPrefix(c.Request.URL.Path, "/auth/") || strings.HasPrefix(c.Request.URL.Path, "/api/") {
			h["Cache-Control"] = hdrNoStore
			h["Pragma"] = hdrNoCache
		}
		c.Next()
	}
}

// The values securityHeaders sets (see there why they may be shared).
var (
	hdrNosniff    = []string{"nosniff"}
	hdrDeny       = []string{"DENY"}
	hdrNoReferrer = []string{"no-referrer"}
	hdrSameOrigin = []string{"same-origin"}
	hdrCSP        = []string{"default-src 'self'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"}
	hdrHSTS       = []string{"max-age=63072000; includeSubDomains"}
	hdrNoStore    = []string{"no-store"}
	hdrNoCache    = []string{"no-cache"}
)

// bodyLimit refuses bodies over max bytes with 413, whether declared by
// Content-Length or discovered while reading.
func bodyLimit(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > max {
			c.Header("Connection", "close")
			writeAnswer(c, lookup(fault.TooLarge), nil)
			return
		}
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, max)
		}
		c.Next()
	}
}

// IsBodyTooLarge reports whether err came from reading past the body limit.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
