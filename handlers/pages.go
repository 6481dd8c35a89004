package handlers

import (
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/signin"
	"github.com/gatehouse-id/gatehouse/web"
)

// Pages serves the landing page and, in development, the demo app.
type Pages struct {
	Svc   *signin.Service
	Pages *web.Pages
	Log   *slog.Logger
	// Demo serves /demo (the demo client is registered in development).
	Demo bool
}

type landingProvider struct {
	DisplayName, Type, Callback string
}

// demoSilentPage is the demo's silent-renewal redirect target: the one
// page Gatehouse lets a page of its own origin frame (the demo's hidden
// iframe); every other page may not be framed at all.
const demoSilentPage = "/silent.html"

// Register adds / and /demo/.
func (h *Pages) Register(r *gin.Engine) {
	r.GET("/", h.landing)
	if !h.Demo {
		return
	}
	demo, _ := fs.Sub(web.Static(), "demo")
	files := http.StripPrefix("/demo", http.FileServer(http.FS(demo)))
	serve := func(c *gin.Context) {
		if c.Param("filepath") == demoSilentPage {
			frameableBySameOrigin(c.Writer.Header())
		}
		files.ServeHTTP(c.Writer, c.Request)
	}
	r.GET("/demo", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/demo/") })
	r.GET("/demo/*filepath", serve)
	r.HEAD("/demo/*filepath", serve)
}

// frameableBySameOrigin relaxes the security headers' framing rule to
// pages of the same origin (X-Frame-Options SAMEORIGIN, CSP
// frame-ancestors 'self'), keeping the rest of the policy.
func frameableBySameOrigin(h http.Header) {
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "frame-ancestors 'none'", "frame-ancestors 'self'", 1))
}

func (h *Pages) landing(c *gin.Context) {
	var provs []landingProvider
	for _, m := range h.Svc.Methods() {
		provs = append(provs, landingProvider{DisplayName: m.DisplayName, Type: m.Type, Callback: m.CallbackURL})
	}
	showPage(c, h.Log, h.Pages, http.StatusOK, "landing.html", gin.H{"Issuer": h.Svc.Issuer(), "Providers": provs, "Demo": h.Demo})
}
