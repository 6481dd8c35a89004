package ginrbac_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/rbac/ginrbac"
)

const testIssuer = "https://auth.example.com"

// issuer signs access tokens with one RS256 key the middleware gets in
// process (Options.Keys), so no discovery is needed.
type issuer struct {
	t   testing.TB
	key *rsa.PrivateKey
}

func newMiddleware(t testing.TB) (*rbac.Middleware, *issuer) {
	return newMiddlewareWith(t, nil)
}

func newMiddlewareWith(t testing.TB, edit func(*rbac.Options)) (*rbac.Middleware, *issuer) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{t: t, key: key}
	opts := rbac.Options{Issuer: testIssuer, Audience: "kb-api",
		Keys: func(context.Context) (jose.JSONWebKeySet, error) {
			return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}, nil
		}}
	if edit != nil {
		edit(&opts)
	}
	m, err := rbac.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, is
}

func (is *issuer) token(perms ...string) string {
	return is.tokenWithScope("", perms...)
}

func (is *issuer) tokenWithScope(scope string, perms ...string) string {
	is.t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: is.key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		is.t.Fatal(err)
	}
	now := time.Now().Unix()
	payload, _ := json.Marshal(map[string]any{"iss": testIssuer, "sub": "user-1", "aud": []string{"kb-api"}, "exp": now + 300,
		"iat": now, "nbf": now, "jti": "tok-1", "client_id": "spa", "sid": "sess-1", "org_id": "org-a",
		"roles": []string{"member"}, "permissions": perms, "scope": scope})
	obj, err := s.Sign(payload)
	if err != nil {
		is.t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func TestGinMiddleware(t *testing.T) {
	m, is := newMiddleware(t)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	g := ginrbac.New(m)
	r.GET("/orgs/:org_id/kb", g.RequirePermission("kb", "read"), func(c *gin.Context) {
		p, _ := ginrbac.Principal(c)
		c.String(200, p.Subject)
	})
	api := r.Group("/api", g.Authenticate())
	api.POST("/kb", g.RequirePermission("kb", "write"), func(c *gin.Context) { c.Status(201) })
	api.DELETE("/kb", g.RequireAnyPermission("kb:delete", "kb:admin"), func(c *gin.Context) { c.Status(204) })
	api.GET("/billing", g.RequireRole("owner"), func(c *gin.Context) { c.Status(200) })
	cases := []struct {
		method, path string
		perms        []string
		want         int
		body         string
	}{
		{"GET", "/orgs/org-a/kb", []string{"kb:read"}, 200, "user-1"},
		{"GET", "/orgs/org-b/kb", []string{"kb:read"}, 403, `"reason":"other_organization"`},
		{"GET", "/orgs/org-a/kb", []string{"kb:write"}, 403, `"reason":"missing_permission","error_description":"the credential's permissions do not grant kb:read","required":"kb:read"`},
		{"POST", "/api/kb", []string{"kb:w*"}, 201, ""},
		{"POST", "/api/kb", []string{"kb:read"}, 403, `"required":"kb:write"`},
		{"POST", "/api/kb?org_id=org-b", []string{"*"}, 403, "another organization"},
		{"DELETE", "/api/kb", []string{"kb:admin"}, 204, ""},
		{"DELETE", "/api/kb", []string{"kb:read"}, 403, `"required_any":["kb:delete","kb:admin"]`},
		{"GET", "/api/billing", nil, 403, `"reason":"missing_role","error_description":"the credential does not hold the role owner","required_role":["owner"]`},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+is.token(tc.perms...))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("%s %s with %v = %d %s, want %d with %s", tc.method, tc.path, tc.perms, rec.Code, rec.Body, tc.want, tc.body)
		}
	}
	req := httptest.NewRequest("GET", "/orgs/org-a/kb", nil)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	// No credential at all: a challenge without an error code (RFC 6750 §3.1).
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no token = %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

// TestGinScopesWebhooksAndRefusals: RequireScope, webhook routes, and
// refusals through the backend's writer and callback, as with net/http.
func TestGinScopesWebhooksAndRefusals(t *testing.T) {
	var reasons []string
	m, is := newMiddlewareWith(t, func(o *rbac.Options) {
		o.OnRefusal = func(_ *http.Request, f *rbac.Refusal) { reasons = append(reasons, fmt.Sprint(f.Status, " ", f.Reason)) }
		o.WriteError = func(w http.ResponseWriter, r *http.Request, f *rbac.Refusal) {
			w.Header().Set("X-Reason", f.Reason)
			rbac.WriteRefusal(w, f)
		}
	})
	secret := strings.Repeat("w", 40)
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "dao", Secrets: []string{secret}, Permissions: []string{"dao_events:create"}})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	g := ginrbac.New(m)
	r.GET("/kb", g.RequireScope("kb.read"), func(c *gin.Context) { c.Status(200) })
	r.POST("/webhooks/dao", g.Webhook(hook), g.RequirePermission("dao_events", "create"), func(c *gin.Context) {
		p, _ := ginrbac.Principal(c)
		c.String(200, p.Subject)
	})
	r.POST("/webhooks/kb", g.Webhook(hook), g.RequirePermission("kb", "write"), func(c *gin.Context) { c.Status(200) })
	cases := []struct {
		method, path, auth string
		want               int
		body, reason       string
	}{
		{"GET", "/kb", "Bearer " + is.tokenWithScope("openid kb.read"), 200, "", ""},
		{"GET", "/kb", "Bearer " + is.tokenWithScope("openid"), 403, `"required_scope":["kb.read"]`, "missing_scope"},
		{"POST", "/webhooks/dao", "Bearer " + secret, 200, "webhook:dao", ""},
		{"POST", "/webhooks/dao", "Bearer " + strings.Repeat("v", 40), 401, "the webhook secret is not accepted", ""},
		{"POST", "/webhooks/dao", "Bearer " + is.token("*"), 401, "the webhook secret is not accepted", ""},
		{"POST", "/webhooks/kb", "Bearer " + secret, 403, `"required":"kb:write"`, "missing_permission"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("Authorization", tc.auth)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.body) || rec.Header().Get("X-Reason") != tc.reason {
			t.Errorf("%s %s = %d %s %v, want %d with %s", tc.method, tc.path, rec.Code, rec.Body, rec.Header(), tc.want, tc.body)
		}
	}
	if got := strings.Join(reasons, ","); got != "403 missing_scope,401 ,401 ,403 missing_permission" {
		t.Fatalf("refusals seen: %s", got)
	}
}

// nopWriter discards the answer without recording it.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware is rbac's BenchmarkMiddleware for the Gin flavour:
// Authenticate()+RequirePermission() around an empty handler, warm keys.
func BenchmarkMiddleware(b *testing.B) {
	m, is := newMiddleware(b)
	req := httptest.NewRequest(http.MethodGet, "/kb?org_id=org-a", nil)
	req.Header.Set("Authorization", "Bearer "+is.token("kb:read", "kb:write", "docs:*"))
	w := &nopWriter{h: http.Header{}}
	b.Run("gin", func(b *testing.B) {
		gin.SetMode(gin.ReleaseMode)
		r := gin.New()
		g := ginrbac.New(m)
		ok := false
		r.GET("/kb", g.Authenticate(), g.RequirePermission("kb", "read"), func(*gin.Context) { ok = true })
		b.ReportAllocs()
		for b.Loop() {
			ok = false
			r.ServeHTTP(w, req)
			if !ok {
				b.Fatal("refused")
			}
		}
	})
}
