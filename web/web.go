// Package web holds Gatehouse's embedded page templates and static files.
package web

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Static is the folder served under /static/.
func Static() fs.FS {
	sub, _ := fs.Sub(staticFS, "static")
	return sub
}

// Pages renders the server-side pages.
type Pages struct {
	t *template.Template
}

// Load parses every template; it fails only on a programming error.
func Load() (*Pages, error) {
	t, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &Pages{t: t}, nil
}

// Render writes the named page with data.
func (p *Pages) Render(w io.Writer, name string, data any) error {
	return p.t.ExecuteTemplate(w, name, data)
}
