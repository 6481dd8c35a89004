package handlers

import (
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/web"
)

// ConsoleCSP is the Content-Security-Policy of the admin console's
// files: scripts, styles and fetches from Gatehouse's own origin only,
// nothing inline, no frames, no plugins, no forms posting elsewhere.
const ConsoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// RegisterConsole serves the admin console at /admin/ from the embedded
// files under web/static/admin: a single-page app that signs in as the
// public client gatehouse-admin-console and talks to the admin API.
func RegisterConsole(r *gin.Engine) {
	files, _ := fs.Sub(web.Static(), "admin")
	server := http.StripPrefix("/admin", http.FileServer(http.FS(files)))
	serve := func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", ConsoleCSP)
		// The console shows what it fetched with a token; no cache keeps it.
		h.Set("Cache-Control", "no-cache")
		server.ServeHTTP(c.Writer, c.Request)
	}
	r.GET("/admin", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/admin/") })
	r.GET("/admin/*filepath", serve)
	r.HEAD("/admin/*filepath", serve)
}
