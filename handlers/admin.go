package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/rbac/ginrbac"
)

// Admin serves the admin API under /api/v1/admin. Every route needs a
// person's access token for the admin audience, verified by the rbac
// package like in any backend (signature, audience, live session, the
// organization the request names), and an "admin:..." permission that
// the person holds now: Admin.authorize reads it from the database, not
// from the token, whose grants may be minutes old. The instance-wide
// routes also need a token acting in the administrators' organization;
// the service then applies the role hierarchy.
type Admin struct {
	Svc  *admin.Service
	RBAC *rbac.Middleware
	Log  *slog.Logger
}

// Register adds the admin routes to r.
func (h *Admin) Register(r *gin.Engine) {
	g := ginrbac.New(h.RBAC)
	need := func(action string) gin.HandlerFunc { return h.authorize("admin:" + action) }
	api := r.Group("/api/v1/admin", g.Authenticate())
	// Instance-wide routes: Gatehouse administrators only. The rbac
	// organization check cannot keep organization admins out of them: it
	// passes a request naming the token's own organization (?org_id=).
	instance := api.Group("", administratorsOnly(h.Log))

	instance.GET("/orgs", need("orgs-read"), h.listOrgs)
	instance.POST("/orgs", need("orgs-write"), h.createOrg)
	api.GET("/orgs/:org_id", need("orgs-read"), h.getOrg)
	api.PATCH("/orgs/:org_id", need("orgs-write"), h.updateOrg)
	api.DELETE("/orgs/:org_id", need("orgs-delete"), h.deleteOrg)

	api.GET("/orgs/:org_id/members", need("members-read"), h.listMembers)
	api.POST("/orgs/:org_id/members", need("members-write"), h.addMember)
	api.PATCH("/orgs/:org_id/members/:user_id", need("members-write"), h.updateMember)
	api.DELETE("/orgs/:org_id/members/:user_id", need("members-write"), h.removeMember)

	api.GET("/orgs/:org_id/roles", need("roles-read"), h.listRoles)
	api.POST("/orgs/:org_id/roles", need("roles-write"), h.createRole)
	api.PATCH("/orgs/:org_id/roles/:role_id", need("roles-write"), h.updateRole)
	api.DELETE("/orgs/:org_id/roles/:role_id", need("roles-write"), h.deleteRole)

	api.GET("/orgs/:org_id/invitations", need("invitations-read"), h.listInvitations)
	api.POST("/orgs/:org_id/invitations", need("invitations-write"), h.invite)
	api.DELETE("/orgs/:org_id/invitations/:invitation_id", need("invitations-write"), h.revokeInvitation)

	api.GET("/orgs/:org_id/api-keys", need("api-keys-read"), h.listAPIKeys)
	api.POST("/orgs/:org_id/api-keys", need("api-keys-write"), h.createAPIKey)
	api.PATCH("/orgs/:org_id/api-keys/:key_id", need("api-keys-write"), h.updateAPIKey)
	api.DELETE("/orgs/:org_id/api-keys/:key_id", need("api-keys-write"), h.deleteAPIKey)

	api.GET("/orgs/:org_id/audit-events", need("audit-read"), h.listOrgAudit)

	instance.GET("/users", need("users-read"), h.listUsers)
	instance.GET("/users/:user_id", need("users-read"), h.getUser)
	instance.POST("/users/:user_id/disable", need("users-write"), h.disableUser)
	instance.POST("/users/:user_id/enable", need("users-write"), h.enableUser)
	instance.DELETE("/users/:user_id/identities/:identity_id", need("users-write"), h.unlink)
	instance.GET("/users/:user_id/sessions", need("sessions-read"), h.listSessions)
	instance.DELETE("/users/:user_id/sessions", need("sessions-write"), h.revokeAllSessions)
	instance.DELETE("/users/:user_id/sessions/:session_id", need("sessions-write"), h.revokeSession)

	// The one deliberate exception: with ?org_id= naming the token's own
	// organization, an organization's admin reads that organization's
	// events (the service filters on it and checks it again); without it,
	// the rbac organization check lets only administrators through.
	api.GET("/audit-events", need("audit-read"), h.listAudit)
}

// administratorsOnly refuses every token not acting in the
// administrators' organization, whatever organization the request names.
func administratorsOnly(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if p, ok := ginrbac.Principal(c); !ok || p.OrgID != models.AdminOrgID {
			writeAdminError(c, log, admin.ErrAdministratorsOnly)
			c.Abort()
			return
		}
		c.Next()
	}
}

// authorize is the one place the admin API checks a route's permission:
// against the actor's grants as the database holds them now (membership
// active, its role, the role's permissions, in the organization the
// token acts in, which for Gatehouse administrators is the
// administrators' organization), never the copy in the token. Every
// route takes it, reads included, so a demoted, suspended or removed
// admin is refused (403) at their next request, not when their token
// expires.
func (h *Admin) authorize(permission string) gin.HandlerFunc {
	if err := rbac.ValidatePermission(permission); err != nil {
		panic("admin route permission: " + err.Error())
	}
	return func(c *gin.Context) {
		if err := h.Svc.Authorize(c.Request.Context(), actor(c), permission); err != nil {
			writeAdminError(c, h.Log, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// actor is the person behind the request, as the middleware verified.
func actor(c *gin.Context) admin.Actor {
	p, _ := ginrbac.Principal(c)
	return admin.Actor{UserID: p.Subject, OrgID: p.OrgID, ClientID: p.ClientID, IP: c.ClientIP(), RequestID: RequestID(c.Request.Context())}
}

func pageOf(c *gin.Context) admin.PageRequest {
	return admin.PageRequest{Limit: c.Query("limit"), Cursor: c.Query("cursor")}
}

// readJSON decodes a JSON object body into v; unknown fields and type
// mismatches are input errors naming the field.
func readJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case IsBodyTooLarge(err):
		return err
	case errors.Is(err, io.EOF):
		return &admin.InputError{Field: "body", Reason: "a JSON object is required"}
	case errors.As(err, &te):
		return &admin.InputError{Field: te.Field, Reason: "must be a JSON " + te.Type.Kind().String()}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &admin.InputError{Field: f, Reason: "is not a field of this request"}
	}
	return &admin.InputError{Field: "body", Reason: "is not valid JSON"}
}

// withBody decodes the request's JSON body, calls the service with it and
// answers.
func withBody[T any](h *Admin, c *gin.Context, status int, call func(ctx context.Context, in T) (any, error)) {
	var in T
	if err := readJSON(c, &in); err != nil {
		writeAdminError(c, h.Log, err)
		return
	}
	out, err := call(c.Request.Context(), in)
	h.answer(c, status, out, err)
}

// answer renders a service result or its error.
func (h *Admin) answer(c *gin.Context, status int, v any, err error) {
	if err != nil {
		writeAdminError(c, h.Log, err)
		return
	}
	if v == nil {
		c.Status(status)
		return
	}
	c.JSON(status, v)
}

func (h *Admin) listOrgs(c *gin.Context) {
	out, err := h.Svc.ListOrgs(c.Request.Context(), actor(c), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) createOrg(c *gin.Context) {
	withBody(h, c, http.StatusCreated, func(ctx context.Context, in admin.OrgInput) (any, error) {
		return h.Svc.CreateOrg(ctx, actor(c), in)
	})
}

func (h *Admin) getOrg(c *gin.Context) {
	out, err := h.Svc.GetOrg(c.Request.Context(), c.Param("org_id"))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) updateOrg(c *gin.Context) {
	withBody(h, c, http.StatusOK, func(ctx context.Context, in admin.OrgInput) (any, error) {
		return h.Svc.UpdateOrg(ctx, actor(c), c.Param("org_id"), in)
	})
}

func (h *Admin) deleteOrg(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.DeleteOrg(c.Request.Context(), actor(c), c.Param("org_id")))
}

func (h *Admin) listMembers(c *gin.Context) {
	out, err := h.Svc.ListMembers(c.Request.Context(), c.Param("org_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

// addMember answers 201 with the membership a Gatehouse administrator
// made, or 202 with the invitation an organization's admin made.
func (h *Admin) addMember(c *gin.Context) {
	var in admin.MemberInput
	if err := readJSON(c, &in); err != nil {
		writeAdminError(c, h.Log, err)
		return
	}
	out, err := h.Svc.AddMember(c.Request.Context(), actor(c), c.Param("org_id"), in)
	switch {
	case err != nil:
		writeAdminError(c, h.Log, err)
	case out.Invitation != nil:
		c.JSON(http.StatusAccepted, out.Invitation)
	default:
		c.JSON(http.StatusCreated, out.Member)
	}
}

func (h *Admin) updateMember(c *gin.Context) {
	withBody(h, c, http.StatusOK, func(ctx context.Context, in admin.MemberInput) (any, error) {
		return h.Svc.UpdateMember(ctx, actor(c), c.Param("org_id"), c.Param("user_id"), in)
	})
}

func (h *Admin) removeMember(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.RemoveMember(c.Request.Context(), actor(c), c.Param("org_id"), c.Param("user_id")))
}

func (h *Admin) listRoles(c *gin.Context) {
	out, err := h.Svc.ListRoles(c.Request.Context(), c.Param("org_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) createRole(c *gin.Context) {
	withBody(h, c, http.StatusCreated, func(ctx context.Context, in admin.RoleInput) (any, error) {
		return h.Svc.CreateRole(ctx, actor(c), c.Param("org_id"), in)
	})
}

func (h *Admin) updateRole(c *gin.Context) {
	withBody(h, c, http.StatusOK, func(ctx context.Context, in admin.RoleInput) (any, error) {
		return h.Svc.UpdateRole(ctx, actor(c), c.Param("org_id"), c.Param("role_id"), in)
	})
}

func (h *Admin) deleteRole(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.DeleteRole(c.Request.Context(), actor(c), c.Param("org_id"), c.Param("role_id")))
}

func (h *Admin) listInvitations(c *gin.Context) {
	out, err := h.Svc.ListInvitations(c.Request.Context(), c.Param("org_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) invite(c *gin.Context) {
	withBody(h, c, http.StatusCreated, func(ctx context.Context, in admin.InvitationInput) (any, error) {
		return h.Svc.Invite(ctx, actor(c), c.Param("org_id"), in)
	})
}

func (h *Admin) revokeInvitation(c *gin.Context) {
	err := h.Svc.RevokeInvitation(c.Request.Context(), actor(c), c.Param("org_id"), c.Param("invitation_id"))
	h.answer(c, http.StatusNoContent, nil, err)
}

func (h *Admin) listAPIKeys(c *gin.Context) {
	out, err := h.Svc.ListAPIKeys(c.Request.Context(), c.Param("org_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) createAPIKey(c *gin.Context) {
	withBody(h, c, http.StatusCreated, func(ctx context.Context, in admin.APIKeyInput) (any, error) {
		return h.Svc.CreateAPIKey(ctx, actor(c), c.Param("org_id"), in)
	})
}

func (h *Admin) updateAPIKey(c *gin.Context) {
	var in struct {
		Disabled *bool `json:"disabled"`
	}
	if err := readJSON(c, &in); err != nil {
		h.answer(c, 0, nil, err)
		return
	}
	if in.Disabled == nil {
		h.answer(c, 0, nil, &admin.InputError{Field: "disabled", Reason: "is required (true or false)"})
		return
	}
	out, err := h.Svc.SetAPIKeyDisabled(c.Request.Context(), actor(c), c.Param("org_id"), c.Param("key_id"), *in.Disabled)
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) deleteAPIKey(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.DeleteAPIKey(c.Request.Context(), actor(c), c.Param("org_id"), c.Param("key_id")))
}

func auditQuery(c *gin.Context) admin.AuditQuery {
	return admin.AuditQuery{OrganizationID: c.Query("org_id"), Type: c.Query("type"), Outcome: c.Query("outcome"),
		ActorUserID: c.Query("actor_user_id"), SubjectUserID: c.Query("subject_user_id"), Since: c.Query("since"), Until: c.Query("until")}
}

func (h *Admin) listOrgAudit(c *gin.Context) {
	q := auditQuery(c)
	q.OrganizationID = c.Param("org_id")
	out, err := h.Svc.ListAudit(c.Request.Context(), actor(c), q, pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) listAudit(c *gin.Context) {
	out, err := h.Svc.ListAudit(c.Request.Context(), actor(c), auditQuery(c), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) listUsers(c *gin.Context) {
	out, err := h.Svc.ListUsers(c.Request.Context(), actor(c), admin.UserQuery{Email: c.Query("email"), Disabled: c.Query("disabled")}, pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) getUser(c *gin.Context) {
	out, err := h.Svc.GetUser(c.Request.Context(), actor(c), c.Param("user_id"))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) disableUser(c *gin.Context) {
	out, err := h.Svc.SetUserDisabled(c.Request.Context(), actor(c), c.Param("user_id"), true)
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) enableUser(c *gin.Context) {
	out, err := h.Svc.SetUserDisabled(c.Request.Context(), actor(c), c.Param("user_id"), false)
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) unlink(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.Unlink(c.Request.Context(), actor(c), c.Param("user_id"), c.Param("identity_id")))
}

func (h *Admin) listSessions(c *gin.Context) {
	out, err := h.Svc.ListSessions(c.Request.Context(), actor(c), c.Param("user_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) revokeSession(c *gin.Context) {
	err := h.Svc.RevokeSession(c.Request.Context(), actor(c), c.Param("user_id"), c.Param("session_id"))
	h.answer(c, http.StatusNoContent, nil, err)
}

func (h *Admin) revokeAllSessions(c *gin.Context) {
	n, err := h.Svc.RevokeAllSessions(c.Request.Context(), actor(c), c.Param("user_id"))
	h.answer(c, http.StatusOK, gin.H{"sessions_revoked": n}, err)
}
