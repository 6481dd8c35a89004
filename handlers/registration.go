package handlers

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
)

// maxRegistrationBody bounds a registration request: metadata is small.
const maxRegistrationBody = 64 << 10

// Registration serves Dynamic Client Registration (RFC 7591 at POST
// /auth/register, RFC 7592 at /auth/register/{client_id}) when it is on;
// admin/registration.go has the rules.
type Registration struct {
	Svc    *admin.Service
	Issuer string
	Log    *slog.Logger
	// Limiter bounds requests per IP (nil: no limit), since every route
	// reads the database before the token is known to be good.
	Limiter *RateLimiter
}

// Register adds the routes, only when registration is enabled.
func (h *Registration) Register(r *gin.Engine) {
	if !h.Svc.RegistrationEnabled() {
		return
	}
	limit := h.Limiter.PerIP("register")
	r.POST("/auth/register", limit, h.register)
	r.GET("/auth/register/:client_id", limit, h.read)
	r.PUT("/auth/register/:client_id", limit, h.update)
	r.DELETE("/auth/register/:client_id", limit, h.delete)
}

func (h *Registration) register(c *gin.Context) {
	var md admin.ClientMetadata
	if !h.readMetadata(c, &md) {
		return
	}
	out, err := h.Svc.RegisterClient(c.Request.Context(), h.actor(c), bearer(c), h.Issuer, md)
	h.answer(c, http.StatusCreated, out, err)
}

func (h *Registration) read(c *gin.Context) {
	out, err := h.Svc.ReadRegistration(c.Request.Context(), c.Param("client_id"), bearer(c), h.Issuer)
	h.answer(c, http.StatusOK, out, err)
}

func (h *Registration) update(c *gin.Context) {
	var md admin.ClientMetadata
	if !h.readMetadata(c, &md) {
		return
	}
	out, err := h.Svc.UpdateRegistration(c.Request.Context(), h.actor(c), c.Param("client_id"), bearer(c), h.Issuer, md)
	h.answer(c, http.StatusOK, out, err)
}

func (h *Registration) delete(c *gin.Context) {
	err := h.Svc.DeleteRegistration(c.Request.Context(), h.actor(c), c.Param("client_id"), bearer(c))
	h.answer(c, http.StatusNoContent, nil, err)
}

func (h *Registration) actor(c *gin.Context) admin.Actor {
	return admin.Actor{IP: c.ClientIP(), RequestID: RequestID(c.Request.Context())}
}

// readMetadata decodes the JSON metadata; unknown metadata is ignored
// (RFC 7591 §2).
func (h *Registration) readMetadata(c *gin.Context, md *admin.ClientMetadata) bool {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxRegistrationBody)
	err := json.NewDecoder(c.Request.Body).Decode(md)
	switch {
	case err == nil:
		return true
	case IsBodyTooLarge(err):
		h.answer(c, 0, nil, &admin.RegistrationError{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request",
			Description: "the request body is too large"})
	default:
		h.answer(c, 0, nil, &admin.RegistrationError{Status: http.StatusBadRequest, Code: "invalid_client_metadata",
			Description: "the body must be a JSON object of client metadata"})
	}
	return false
}

// bearer is the request's bearer token ("" without one).
func bearer(c *gin.Context) string {
	v := c.GetHeader("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

func (h *Registration) answer(c *gin.Context, status int, v any, err error) {
	c.Header("Cache-Control", "no-store")
	var re *admin.RegistrationError
	switch {
	case errors.As(err, &re):
		if re.Status == http.StatusUnauthorized {
			c.Header("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
		c.JSON(re.Status, gin.H{"error": re.Code, "error_description": re.Description})
	case err != nil:
		h.Log.ErrorContext(c.Request.Context(), "client registration failed", slog.String("error", err.Error()),
			slog.String("request_id", RequestID(c.Request.Context())))
		c.JSON(http.StatusInternalServerError, gin.H{"error": "server_error", "error_description": "the registration could not be completed"})
	case v == nil:
		c.Status(status)
	default:
		c.JSON(status, v)
	}
}
