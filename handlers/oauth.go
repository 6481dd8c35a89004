package handlers

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/web"
)

// JWKSource publishes the public signing keys.
type JWKSource interface {
	JWKS() jose.JSONWebKeySet
}

// OAuth serves the OpenID Provider endpoints; browser sign-in's are
// SignIn's.
type OAuth struct {
	Svc        *oauth.Service
	Keys       JWKSource
	SigningAlg string
	JWKSMaxAge time.Duration
	Pages      *web.Pages
	Log        *slog.Logger
	Limiter    *RateLimiter
}

// Register adds the endpoints to r.
func (h *OAuth) Register(r *gin.Engine) {
	r.GET("/.well-known/openid-configuration", h.discovery)
	r.GET("/.well-known/jwks.json", h.jwks)
	r.POST("/auth/token", h.Limiter.PerIP("token"), h.token)
	r.POST("/auth/device", h.Limiter.PerIP("token"), h.deviceAuthorization)
	r.POST("/auth/revoke", h.Limiter.PerIP("token"), h.revoke)
	r.POST("/auth/introspect", h.Limiter.PerIP("introspect"), h.introspect)
	r.GET("/auth/userinfo", h.userinfo)
	r.POST("/auth/userinfo", h.userinfo)
	r.GET("/auth/me", h.me)
	r.StaticFS("/static", http.FS(web.Static()))
}

func (h *OAuth) discovery(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	algs := []string{}
	for _, k := range h.Keys.JWKS().Keys {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	if len(algs) == 0 {
		algs = append(algs, h.SigningAlg)
	}
	c.JSON(http.StatusOK, h.Svc.Discovery(algs))
}

func (h *OAuth) jwks(c *gin.Context) {
	c.Header("Cache-Control", fmt.Sprintf("public, max-age=%d", int(h.JWKSMaxAge.Seconds())))
	c.Header("Content-Type", "application/jwk-set+json")
	c.JSON(http.StatusOK, h.Keys.JWKS())
}

func meta(c *gin.Context) oauth.RequestMeta {
	return oauth.RequestMeta{IP: c.ClientIP(), RequestID: RequestID(c.Request.Context())}
}

// postForm parses an application/x-www-form-urlencoded POST body only:
// credentials and tokens in the query string are not accepted.
func postForm(c *gin.Context) (url.Values, error) {
	const form = "application/x-www-form-urlencoded"
	mt := c.GetHeader("Content-Type")
	if mt != form { // the common spelling needs no parsing
		mt, _, _ = mime.ParseMediaType(mt)
	}
	if mt != form {
		return nil, &oauth.Error{Code: "invalid_request",
			Description: "the body must be application/x-www-form-urlencoded"}
	}
	if err := c.Request.ParseForm(); err != nil {
		if IsBodyTooLarge(err) {
			return nil, err
		}
		return nil, &oauth.Error{Code: "invalid_request", Description: "malformed form body", Cause: err}
	}
	return c.Request.PostForm, nil
}

// clientCredentials reads client_secret_basic, client_secret_post or
// private_key_jwt (client_assertion_type and client_assertion).
func clientCredentials(c *gin.Context, form url.Values) oauth.ClientCredentials {
	cred := oauth.ClientCredentials{ID: form.Get("client_id"), Secret: form.Get("client_secret"),
		AssertionType: form.Get("client_assertion_type"), Assertion: form.Get("client_assertion")}
	assertion := cred.Assertion != "" || cred.AssertionType != ""
	cred.BothMethods = assertion && cred.Secret != ""
	if user, pass, ok := c.Request.BasicAuth(); ok {
		id, secret, ok := oauth.ParseBasicAuth(user, pass)
		if !ok {
			return oauth.ClientCredentials{}
		}
		cred.BothMethods = assertion || form.Get("client_secret") != "" || (cred.ID != "" && cred.ID != id)
		cred.ID, cred.Secret, cred.Basic = id, secret, true
	}
	return cred
}

// authenticatedClient reads the form of a token, revocation or
// introspection request and authenticates its client. Only an
// authenticated confidential client spends its own bucket of group:
// anyone can name a public client, and naming one (or failing to
// authenticate as one) must not lock its users out. The per-IP limit in
// front of these routes counts every request, failed authentications
// included. It has answered when ok is false.
func (h *OAuth) authenticatedClient(c *gin.Context, group string) (client *oauth.Client, form url.Values, ok bool) {
	form, err := postForm(c)
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return nil, nil, false
	}
	client, err = h.Svc.AuthenticateClient(c.Request.Context(), clientCredentials(c, form), meta(c))
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return nil, nil, false
	}
	if !client.Public && !h.Limiter.check(c, group, "client", client.ID) {
		return nil, nil, false
	}
	return client, form, true
}

func (h *OAuth) token(c *gin.Context) {
	client, form, ok := h.authenticatedClient(c, "token")
	if !ok {
		return
	}
	resp, err := h.Svc.TokenFor(c.Request.Context(), client, form, meta(c))
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

func (h *OAuth) revoke(c *gin.Context) {
	client, form, ok := h.authenticatedClient(c, "token")
	if !ok {
		return
	}
	if err := h.Svc.RevokeFor(c.Request.Context(), client, form, meta(c)); err != nil {
		writeOAuthError(c, h.Log, err)
		return
	}
	c.Status(http.StatusOK)
}

func (h *OAuth) introspect(c *gin.Context) {
	client, form, ok := h.authenticatedClient(c, "introspect")
	if !ok {
		return
	}
	out, err := h.Svc.IntrospectFor(c.Request.Context(), client, form)
	if err != nil {
		writeOAuthError(c, h.Log, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *OAuth) userinfo(c *gin.Context) {
	token, err := bearerToken(c)
	if err != nil {
		writeBearerError(c, h.Log, err)
		return
	}
	out, err := h.Svc.UserInfo(c.Request.Context(), token)
	if err != nil {
		writeBearerError(c, h.Log, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

func (h *OAuth) me(c *gin.Context) {
	token, err := bearerToken(c)
	if err != nil {
		writeBearerError(c, h.Log, err)
		return
	}
	out, err := h.Svc.Me(c.Request.Context(), token)
	if err != nil {
		writeBearerError(c, h.Log, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
