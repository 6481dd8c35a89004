package handlers

import (
	"net/http/httptest"
	"testing"
)

// TestConsoleCSP: every answer under /admin/ — the page, its script and
// style, a file that does not exist, a HEAD — carries the console's
// Content-Security-Policy exactly (no inline script or style, fetches to
// Gatehouse only), replacing the general one, and no directory is listed.
func TestConsoleCSP(t *testing.T) {
	r := testRouter(t, RouterOptions{})
	RegisterConsole(r)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/admin/", 200},
		{"GET", "/admin/console.js", 200},
		{"GET", "/admin/console.css", 200},
		{"HEAD", "/admin/", 200},
		{"GET", "/admin/nope.js", 404},
		{"GET", "/admin/../admin/console.js", 0},
		{"GET", "/admin/index.html", 301},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if tc.status != 0 && w.Code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, w.Code, tc.status)
		}
		if got := w.Header().Values("Content-Security-Policy"); w.Code < 300 || w.Code >= 400 {
			if len(got) != 1 || got[0] != ConsoleCSP {
				t.Errorf("%s %s (%d): CSP %q, want %q", tc.method, tc.path, w.Code, got, ConsoleCSP)
			}
		}
	}
	if ConsoleCSP != "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; "+
		"frame-ancestors 'none'; base-uri 'none'; object-src 'none'" {
		t.Errorf("console CSP changed: %q", ConsoleCSP)
	}
	// The general policy stays on other pages.
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if got := w.Header().Get("Content-Security-Policy"); got == ConsoleCSP || got == "" {
		t.Errorf("/healthz CSP %q", got)
	}
}
