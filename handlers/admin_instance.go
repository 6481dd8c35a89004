package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
)

// registerInstance adds the instance routes the admin console reads:
// sign-in activity aggregated from the audit trail, and the signing keys.
func (h *Admin) registerInstance(api *gin.RouterGroup, instance func(string) gin.HandlerFunc) {
	api.GET("/activity", instance("audit-read"), h.activity)
	api.GET("/signing-keys", instance("keys-read"), h.listSigningKeys)
	api.POST("/signing-keys/rotate", instance("keys-write"), h.rotateSigningKey)
}

func (h *Admin) activity(c *gin.Context) {
	out, err := h.Svc.Activity(c.Request.Context(), actor(c),
		admin.ActivityQuery{Since: c.Query("since"), Until: c.Query("until"), Bucket: c.Query("bucket")})
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) listSigningKeys(c *gin.Context) {
	out, err := h.Svc.SigningKeys(c.Request.Context(), actor(c))
	h.answer(c, http.StatusOK, out, err)
}

// rotateSigningKey takes no body: `{}` or nothing.
func (h *Admin) rotateSigningKey(c *gin.Context) {
	out, err := h.Svc.RotateSigningKey(c.Request.Context(), actor(c))
	h.answer(c, http.StatusCreated, out, err)
}
