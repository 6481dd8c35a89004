package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// deviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1): the client authenticates as at the token endpoint.
func (h *OAuth) deviceAuthorization(c *gin.Context) {
	client, form, ok := h.authenticatedClient(c, "token")
	if !ok {
		return
	}
	resp, err := h.Svc.AuthorizeDevice(c.Request.Context(), client, form, meta(c))
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, resp)
}

// registerDevice adds the device verification pages (/device).
func (h *SignIn) registerDevice(r *gin.Engine) {
	r.GET("/device", h.Limiter.PerIP("login"), h.deviceEntry)
	r.POST("/device", h.Limiter.PerIP("login"), h.deviceSubmit)
	r.GET("/device/login", h.Limiter.PerIP("login"), h.deviceLogin)
	r.GET("/device/approve", h.Limiter.PerIP("login"), h.deviceApproval)
	r.POST("/device/approve", h.Limiter.PerIP("login"), h.deviceDecide)
}

func (h *SignIn) deviceEntry(c *gin.Context) {
	h.render(c, h.Svc.DeviceEntry(c.Request.Context(), c.Request))
}

// deviceSubmit is a user code entered. Every entry from a client IP
// spends one of its device_code attempts (GATEHOUSE_DEVICE_CODE_ATTEMPTS
// a minute), before the code is looked up: guessing codes is slow from
// any one address, whatever the general rate limit.
func (h *SignIn) deviceSubmit(c *gin.Context) {
	if !h.CodeLimiter.check(c, "device_code", "ip", c.ClientIP()) {
		return
	}
	h.render(c, h.Svc.DeviceSubmit(c.Request.Context(), c.Request, meta(c)))
}

func (h *SignIn) deviceLogin(c *gin.Context) {
	h.render(c, h.Svc.DeviceLogin(c.Request.Context(), c.Request))
}

func (h *SignIn) deviceApproval(c *gin.Context) {
	h.render(c, h.Svc.DeviceApproval(c.Request.Context(), c.Request, meta(c)))
}

func (h *SignIn) deviceDecide(c *gin.Context) {
	h.render(c, h.Svc.DeviceDecide(c.Request.Context(), c.Request, meta(c)))
}
