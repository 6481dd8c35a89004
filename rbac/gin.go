package rbac

import (
	"github.com/gin-gonic/gin"
)

// GinMiddleware is the Gin flavour of the middleware; get it with
// Middleware.Gin. Its handlers behave exactly like the net/http ones and
// read the organization from the route parameter OrgParam (":org_id")
// or the query.
type GinMiddleware struct{ m *Middleware }

// Gin returns the Gin middleware.
func (m *Middleware) Gin() *GinMiddleware { return m.gin }

// Authenticate requires a valid credential; see Middleware.Authenticate.
func (g *GinMiddleware) Authenticate() gin.HandlerFunc { return g.handler(authenticated) }

// RequirePermission requires resource:action; see Middleware.RequirePermission.
func (g *GinMiddleware) RequirePermission(resource, action string) gin.HandlerFunc {
	return g.handler(permissionRequirement(resource, action))
}

// RequireAnyPermission requires one of perms; see Middleware.RequireAnyPermission.
func (g *GinMiddleware) RequireAnyPermission(perms ...string) gin.HandlerFunc {
	return g.handler(anyPermissionRequirement(perms))
}

// RequireRole requires one of roles; see Middleware.RequireRole.
func (g *GinMiddleware) RequireRole(roles ...string) gin.HandlerFunc {
	return g.handler(roleRequirement(roles))
}

func (g *GinMiddleware) handler(req *requirement) gin.HandlerFunc {
	m := g.m
	return func(c *gin.Context) {
		p, ok := PrincipalFrom(c.Request.Context())
		if !ok {
			var err error
			if p, err = m.AuthenticateRequest(c.Request); err != nil {
				write(c.Writer, unauthorized(err))
				c.Abort()
				return
			}
			c.Request = c.Request.WithContext(WithPrincipal(c.Request.Context(), p))
		}
		org := c.Param(m.orgParam)
		if org == "" {
			org = m.queryOrg(c.Request)
		}
		if f := m.decide(p, org, req); f != nil {
			write(c.Writer, f)
			c.Abort()
			return
		}
		c.Next()
	}
}

// GinPrincipal returns the principal the middleware authenticated for
// the request.
func GinPrincipal(c *gin.Context) (*Principal, bool) { return PrincipalFrom(c.Request.Context()) }
