package handlers

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
)

// The admin API's clients routes (admin/clients.go has the rules).

func (h *Admin) listClients(c *gin.Context) {
	out, err := h.Svc.ListClients(c.Request.Context(), actor(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) getClient(c *gin.Context) {
	out, err := h.Svc.GetClient(c.Request.Context(), actor(c), c.Param("client_id"))
	h.answer(c, http.StatusOK, out, err)
}

// createClient answers 201 with the client and, for a confidential one,
// client_secret, shown this once.
func (h *Admin) createClient(c *gin.Context) {
	withBody(h, c, http.StatusCreated, func(ctx context.Context, in map[string]any) (any, error) {
		return h.Svc.CreateClient(ctx, actor(c), in)
	})
}

func (h *Admin) updateClient(c *gin.Context) {
	withBody(h, c, http.StatusOK, func(ctx context.Context, in map[string]any) (any, error) {
		return h.Svc.UpdateClient(ctx, actor(c), c.Param("client_id"), in)
	})
}

func (h *Admin) deleteClient(c *gin.Context) {
	out, err := h.Svc.DeleteClient(c.Request.Context(), actor(c), c.Param("client_id"))
	h.answer(c, http.StatusOK, out, err)
}

// rotateInput is the body of rotate-secret: the overlap during which the
// replaced secret still works (default 24h).
type rotateInput struct {
	Overlap string `json:"overlap"`
}

func (h *Admin) rotateClientSecret(c *gin.Context) {
	var in rotateInput
	if c.Request.ContentLength != 0 {
		if err := readJSON(c, &in); err != nil {
			writeAdminError(c, h.Log, err)
			return
		}
	}
	overlap, err := admin.ParseSecretOverlap(in.Overlap)
	if err != nil {
		writeAdminError(c, h.Log, err)
		return
	}
	out, err := h.Svc.RotateClientSecret(c.Request.Context(), actor(c), c.Param("client_id"), overlap)
	h.answer(c, http.StatusOK, out, err)
}
