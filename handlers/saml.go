package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
)

// samlMetadata serves a SAML provider's SP metadata, for the IdP admin.
func (h *OAuth) samlMetadata(c *gin.Context) {
	prov, ok := h.Svc.Provider(c.Param("provider"))
	mp, publishes := prov.(providers.MetadataPublisher)
	if !ok || !publishes {
		writeJSONError(c, h.Log, fault.New(fault.NoMetadata, errors.New("no SAML provider of that name")))
		return
	}
	doc, mediaType, err := mp.Metadata(c.Request.Context())
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, mediaType, doc)
}

// samlACS is the assertion consumer service: the IdP's POST, answered
// with a page that posts the same fields again from Gatehouse's origin,
// and that second POST, which carries the login cookie and completes the
// sign-in.
func (h *OAuth) samlACS(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		if IsBodyTooLarge(err) {
			renderPage(c, h.Log, h.Pages, err)
			return
		}
		renderPage(c, h.Log, h.Pages, &oauth.PageError{Status: http.StatusBadRequest, Title: "Sign-in failed",
			Message: "The identity provider's answer could not be read.", Cause: err})
		return
	}
	ans, err := h.Svc.AcceptPost(c.Request.Context(), c.Param("provider"), c.Request, meta(c))
	if ans != nil && ans.ClearCookie != nil {
		http.SetCookie(c.Writer, ans.ClearCookie)
	}
	switch {
	case err != nil:
		renderPage(c, h.Log, h.Pages, err)
	case ans.Form != nil:
		showPage(c, h.Log, h.Pages, http.StatusOK, "autopost.html", ans.Form)
	default:
		c.Redirect(http.StatusSeeOther, ans.RedirectURL)
	}
}
