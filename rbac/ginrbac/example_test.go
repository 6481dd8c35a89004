package ginrbac_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/rbac/ginrbac"
)

// A Gin backend builds the rbac middleware once and hands out Gin
// handlers with ginrbac.New: the same checks and answers as net/http,
// the organization read from the route parameter :org_id.
func ExampleNew() {
	keys, mint := exampleKeys() // a stand-in for Gatehouse's published keys
	m, err := rbac.New(context.Background(), rbac.Options{
		Issuer: "https://auth.example.com", Audience: "kb-api",
		Keys: keys, // a real backend leaves Keys out: New discovers the issuer's JWKS
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	hook, err := m.Webhook(rbac.WebhookOptions{Name: "dao", Secrets: []string{"a-webhook-secret-Qm4pXr8sTz2w"}, Permissions: []string{"dao_events:create"}})
	if err != nil {
		log.Fatal(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	g := ginrbac.New(m)
	api := r.Group("/orgs/:org_id", g.Authenticate())
	api.GET("/kb", g.RequirePermission("kb", "read"), func(c *gin.Context) {
		p, _ := ginrbac.Principal(c)
		c.String(http.StatusOK, "articles of %s for %s", p.OrgID, p.Subject)
	})
	api.DELETE("/kb/:id", g.RequireAnyPermission("kb:delete", "kb:admin"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	api.GET("/billing", g.RequireRole("owner"), func(c *gin.Context) { c.Status(http.StatusOK) })
	api.POST("/kb", g.RequireScope("kb.write"), g.RequirePermission("kb", "write"), func(c *gin.Context) { c.Status(http.StatusCreated) })
	r.POST("/webhooks/dao", g.Webhook(hook), g.RequirePermission("dao_events", "create"), func(c *gin.Context) { c.Status(http.StatusAccepted) })

	tok := mint([]string{"kb:read"}, "openid")
	for _, req := range []struct{ method, path, auth string }{
		{"GET", "/orgs/org-a/kb", "Bearer " + tok},
		{"GET", "/orgs/org-b/kb", "Bearer " + tok},
		{"POST", "/orgs/org-a/kb", "Bearer " + mint([]string{"kb:*"}, "openid kb.write")},
		{"POST", "/webhooks/dao", "Bearer a-webhook-secret-Qm4pXr8sTz2w"},
		{"GET", "/orgs/org-a/kb", ""},
	} {
		rq := httptest.NewRequest(req.method, req.path, nil)
		if req.auth != "" {
			rq.Header.Set("Authorization", req.auth)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, rq)
		fmt.Println(strings.TrimSpace(fmt.Sprint(rec.Code, " ", rec.Body.String())))
	}
	// Output:
	// 200 articles of org-a for user-1
	// 403 {"error":"insufficient_permission","reason":"other_organization","error_description":"the credential acts in another organization than this request concerns"}
	// 201
	// 202
	// 401 {"error":"invalid_token","error_description":"a bearer access token is required"}
}

// exampleKeys returns an in-process key set and a function minting
// access tokens for user-1 in org-a as Gatehouse would.
func exampleKeys() (func(context.Context) (jose.JSONWebKeySet, error), func(perms []string, scope string) string) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	keys := func(context.Context) (jose.JSONWebKeySet, error) {
		return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}}, nil
	}
	mint := func(perms []string, scope string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
		if err != nil {
			panic(err)
		}
		now := time.Now().Unix()
		payload, _ := json.Marshal(map[string]any{"iss": "https://auth.example.com", "sub": "user-1", "aud": []string{"kb-api"},
			"exp": now + 300, "iat": now, "jti": "tok-1", "client_id": "kb-web", "org_id": "org-a", "permissions": perms, "scope": scope})
		obj, err := s.Sign(payload)
		if err != nil {
			panic(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	return keys, mint
}
