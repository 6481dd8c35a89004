package rbac_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// nopWriter discards the answer without recording it.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures what a backend pays per request with a
// warm key cache: Authenticate()+RequirePermission() around an empty
// handler, against the bare go-jose parse and RS256 signature check (the
// Gin flavour is measured in rbac/ginrbac).
func BenchmarkMiddleware(b *testing.B) {
	is := newIssuer(b)
	m := newMiddleware(b, is, nil)
	tok := is.token("kb:read", "kb:write", "docs:*")
	req := httptest.NewRequest(http.MethodGet, "/kb?org_id=org-a", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	w := &nopWriter{h: http.Header{}}

	b.Run("bare-signature", func(b *testing.B) {
		algs := []jose.SignatureAlgorithm{jose.RS256}
		b.ReportAllocs()
		for b.Loop() {
			jws, err := jose.ParseSignedCompact(tok, algs)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := jws.Verify(&is.key.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		ok := false
		h := m.Authenticate()(m.RequirePermission("kb", "read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ok = true })))
		b.ReportAllocs()
		for b.Loop() {
			ok = false
			h.ServeHTTP(w, req)
			if !ok {
				b.Fatal("refused")
			}
		}
	})
}
