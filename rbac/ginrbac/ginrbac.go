// Package ginrbac is the Gin flavour of package rbac's middleware, apart
// so that a net/http backend importing rbac does not pull in Gin. Its
// handlers behave exactly like rbac's net/http ones (same checks, same
// 401, 403 and 503 answers, through the same Options.WriteError and
// Options.OnRefusal) and read the organization from the route parameter
// named by Options.OrgParam (":org_id"), else the query.
//
//	m, err := rbac.New(ctx, rbac.Options{Issuer: "https://auth.example.com", Audience: "kb-api"})
//	g := ginrbac.New(m)
//	r.GET("/orgs/:org_id/kb", g.RequirePermission("kb", "read"), kbHandler)
package ginrbac

import (
	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// Middleware hands out Gin handlers enforcing rbac rules with the
// verification and options of one rbac.Middleware. It is safe for
// concurrent use.
type Middleware struct{ m *rbac.Middleware }

// New returns the Gin middleware of m.
func New(m *rbac.Middleware) *Middleware { return &Middleware{m: m} }

// Authenticate requires a valid credential; see rbac.Middleware.Authenticate.
func (g *Middleware) Authenticate() gin.HandlerFunc { return g.handler(rbac.AnyCredentialRule()) }

// RequirePermission requires resource:action; see
// rbac.Middleware.RequirePermission. It panics on a malformed permission.
func (g *Middleware) RequirePermission(resource, action string) gin.HandlerFunc {
	return g.handler(rbac.PermissionRule(resource, action))
}

// RequireAnyPermission requires one of perms; see
// rbac.Middleware.RequireAnyPermission.
func (g *Middleware) RequireAnyPermission(perms ...string) gin.HandlerFunc {
	return g.handler(rbac.AnyPermissionRule(perms...))
}

// RequireRole requires one of roles; see rbac.Middleware.RequireRole.
func (g *Middleware) RequireRole(roles ...string) gin.HandlerFunc {
	return g.handler(rbac.RoleRule(roles...))
}

// RequireScope requires every one of scopes in the access token's scope
// claim (API keys and webhooks carry none); see
// rbac.Middleware.RequireScope. It panics on none or a malformed scope.
func (g *Middleware) RequireScope(scopes ...string) gin.HandlerFunc {
	return g.handler(rbac.ScopeRule(scopes...))
}

// Webhook requires one of the webhook's secrets and puts the sender's
// principal in the request; Require… handlers after it check that
// principal. See rbac.Webhook.Authenticate.
//
//	hook, err := m.Webhook(rbac.WebhookOptions{Name: "chainhook", Secrets: secrets, Permissions: []string{"chainhook:deliver"}})
//	r.POST("/webhooks/chainhook", g.Webhook(hook), g.RequirePermission("chainhook", "deliver"), h)
func (g *Middleware) Webhook(w *rbac.Webhook) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, ok := w.Enforce(c.Writer, c.Request)
		if !ok {
			c.Abort()
			return
		}
		c.Request = r
		c.Next()
	}
}

func (g *Middleware) handler(rule *rbac.Rule) gin.HandlerFunc {
	m, param := g.m, g.m.OrgParam()
	return func(c *gin.Context) {
		r, ok := m.Enforce(c.Writer, c.Request, c.Param(param), rule)
		if !ok {
			c.Abort()
			return
		}
		c.Request = r
		c.Next()
	}
}

// Principal returns the principal the middleware authenticated for the
// request.
func Principal(c *gin.Context) (*rbac.Principal, bool) {
	return rbac.PrincipalFrom(c.Request.Context())
}
