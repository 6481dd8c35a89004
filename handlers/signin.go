package handlers

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/signin"
	"github.com/gatehouse-id/gatehouse/web"
)

// SignIn serves browser sign-in: the authorization endpoint, the
// upstreams' callbacks and the SAML service provider's endpoints.
type SignIn struct {
	Svc     *signin.Service
	Pages   *web.Pages
	Log     *slog.Logger
	Limiter *RateLimiter
	// CodeLimiter counts user codes entered at /device per client IP
	// (nil: no limit).
	CodeLimiter *RateLimiter
}

// Register adds the sign-in routes to r.
func (h *SignIn) Register(r *gin.Engine) {
	r.GET("/auth/login", h.Limiter.PerIP("login"), h.login)
	r.GET("/auth/callback/:provider", h.Limiter.PerIP("callback"), h.callback)
	r.POST("/auth/callback/:provider", h.Limiter.PerIP("callback"), h.callback)
	r.GET("/auth/saml/:provider/metadata", h.samlMetadata)
	r.POST("/auth/saml/:provider/acs", h.Limiter.PerIP("callback"), h.samlACS)
	r.GET("/auth/logout", h.Limiter.PerIP("logout"), h.logout)
	r.POST("/auth/logout", h.Limiter.PerIP("logout"), h.logout)
	r.GET(signin.UpstreamLogoutReturnPath, h.Limiter.PerIP("logout"), h.upstreamLogoutReturn)
	h.registerDevice(r)
}

// upstreamLogoutReturn is where an upstream sends the browser back after
// an upstream logout.
func (h *SignIn) upstreamLogoutReturn(c *gin.Context) {
	h.render(c, h.Svc.UpstreamLogoutReturn(c.Request.Context(), c.Request))
}

// login is the authorization endpoint.
func (h *SignIn) login(c *gin.Context) {
	h.render(c, h.Svc.Login(c.Request.Context(), c.Request, meta(c)))
}

// logout is RP-initiated logout. An API caller (a bearer token, or
// asking for JSON) is refused in JSON, a browser with a page.
func (h *SignIn) logout(c *gin.Context) {
	var bearer string
	if token, err := bearerToken(c); err == nil {
		bearer = token
	}
	out := h.Svc.Logout(c.Request.Context(), c.Request, bearer, meta(c))
	if out.Err != nil && (bearer != "" || strings.Contains(c.GetHeader("Accept"), "application/json")) {
		h.setCookies(c, out.Cookies)
		writeBearerError(c, h.Log, out.Err)
		return
	}
	h.render(c, out)
}

// callback receives the upstream's answer (and shows the dev form).
func (h *SignIn) callback(c *gin.Context) {
	h.render(c, h.Svc.Callback(c.Request.Context(), c.Param("provider"), c.Request, meta(c)))
}

// samlACS is the assertion consumer service: the IdP's POST, answered
// with a page that posts the same fields again from Gatehouse's origin,
// and that second POST, which carries the login cookie and completes the
// sign-in.
func (h *SignIn) samlACS(c *gin.Context) {
	h.render(c, h.Svc.AssertionPost(c.Request.Context(), c.Param("provider"), c.Request, meta(c)))
}

// samlMetadata serves a SAML provider's SP metadata, for the IdP admin.
func (h *SignIn) samlMetadata(c *gin.Context) {
	doc, mediaType, err := h.Svc.Metadata(c.Request.Context(), c.Param("provider"))
	if err != nil {
		writeJSONError(c, h.Log, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, mediaType, doc)
}

// setCookies writes an outcome's cookies.
func (h *SignIn) setCookies(c *gin.Context, cookies []signin.Cookie) {
	for _, ck := range cookies {
		hc := &http.Cookie{Name: ck.Name, Value: ck.Value, Path: ck.Path, Expires: ck.Expires, MaxAge: ck.MaxAge,
			HttpOnly: ck.HTTPOnly, Secure: ck.Secure}
		if ck.SameSiteLax {
			hc.SameSite = http.SameSiteLaxMode
		}
		http.SetCookie(c.Writer, hc)
	}
}

// render writes a sign-in outcome: its cookies, then its one answer.
func (h *SignIn) render(c *gin.Context, out signin.Outcome) {
	h.setCookies(c, out.Cookies)
	switch {
	case out.Err != nil:
		renderPage(c, h.Log, h.Pages, out.Err)
	case out.Chooser != nil:
		showPage(c, h.Log, h.Pages, out.Status, "chooser.html", gin.H{"Providers": out.Chooser.Providers, "Client": out.Chooser.Client,
			"Continue": out.Chooser.Continue})
	case out.LogoutConfirm != nil:
		showPage(c, h.Log, h.Pages, out.Status, "logoutconfirm.html", out.LogoutConfirm)
	case out.Device != nil:
		showPage(c, h.Log, h.Pages, out.Status, "device.html", out.Device)
	case out.SignedOut:
		showPage(c, h.Log, h.Pages, out.Status, "signedout.html", nil)
	case out.Form != nil:
		showPage(c, h.Log, h.Pages, out.Status, "autopost.html", out.Form)
	case out.DevForm != nil:
		f := out.DevForm
		showPage(c, h.Log, h.Pages, out.Status, "devlogin.html", gin.H{
			"Action": f.Action, "State": f.State, "Error": f.Error, "Email": f.Email, "Name": f.Name, "Groups": f.Groups})
	default:
		c.Redirect(out.Status, out.RedirectURL)
	}
}
