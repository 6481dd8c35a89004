package handlers

import (
	"io/fs"
	"log/slog"
	"net/http"

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

// Register adds / and /demo/.
func (h *Pages) Register(r *gin.Engine) {
	r.GET("/", h.landing)
	if !h.Demo {
		return
	}
	demo, _ := fs.Sub(web.Static(), "demo")
	r.GET("/demo", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/demo/") })
	r.StaticFS("/demo/", http.FS(demo))
}

func (h *Pages) landing(c *gin.Context) {
	var provs []landingProvider
	for _, m := range h.Svc.Methods() {
		provs = append(provs, landingProvider{DisplayName: m.DisplayName, Type: m.Type, Callback: m.CallbackURL})
	}
	showPage(c, h.Log, h.Pages, http.StatusOK, "landing.html", gin.H{"Issuer": h.Svc.Issuer(), "Providers": provs, "Demo": h.Demo})
}
