package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/rbac/ginrbac"
)

// Admin serves the admin API under /api/v1/admin. It wires the rule
// admin.Guard applies (see admin/authorize.go) and nothing more: the rbac
// middleware verifies the token like in any backend and runs the guard's
// credential and organization checks; then each route's admin.Route
// (its permission, held now, and whether it is instance-wide) goes to
// Guard.Authorize before the handler parses, calls the service and
// renders.
type Admin struct {
	Svc   *admin.Service
	Guard *admin.Guard
	RBAC  *rbac.Middleware
	Log   *slog.Logger
}

// Register adds the admin routes to r.
func (h *Admin) Register(r *gin.Engine) {
	org := func(action string) gin.HandlerFunc { return h.authorize(admin.OrgRoute(action)) }
	instance := func(action string) gin.HandlerFunc { return h.authorize(admin.InstanceRoute(action)) }
	api := r.Group("/api/v1/admin", ginrbac.New(h.RBAC).Authenticate(), h.plainTextInput)

	api.GET("/orgs", instance("orgs-read"), h.listOrgs)
	api.POST("/orgs", instance("orgs-write"), h.createOrg)
	api.GET("/orgs/:org_id", org("orgs-read"), h.getOrg)
	api.GET("/orgs/:org_id/sync-rules", org("orgs-read"), h.orgSyncRules)
	api.PATCH("/orgs/:org_id", org("orgs-write"), h.updateOrg)
	api.DELETE("/orgs/:org_id", org("orgs-delete"), h.deleteOrg)

	api.GET("/orgs/:org_id/members", org("members-read"), h.listMembers)
	api.POST("/orgs/:org_id/members", org("members-write"), h.addMember)
	api.PATCH("/orgs/:org_id/members/:user_id", org("members-write"), h.updateMember)
	api.DELETE("/orgs/:org_id/members/:user_id", org("members-write"), h.removeMember)

	api.GET("/orgs/:org_id/roles", org("roles-read"), h.listRoles)
	api.POST("/orgs/:org_id/roles", org("roles-write"), h.createRole)
	api.PATCH("/orgs/:org_id/roles/:role_id", org("roles-write"), h.updateRole)
	api.DELETE("/orgs/:org_id/roles/:role_id", org("roles-write"), h.deleteRole)

	api.GET("/orgs/:org_id/invitations", org("invitations-read"), h.listInvitations)
	api.POST("/orgs/:org_id/invitations", org("invitations-write"), h.invite)
	api.DELETE("/orgs/:org_id/invitations/:invitation_id", org("invitations-write"), h.revokeInvitation)

	api.GET("/orgs/:org_id/api-keys", org("api-keys-read"), h.listAPIKeys)
	api.POST("/orgs/:org_id/api-keys", org("api-keys-write"), h.createAPIKey)
	api.PATCH("/orgs/:org_id/api-keys/:key_id", org("api-keys-write"), h.updateAPIKey)
	api.DELETE("/orgs/:org_id/api-keys/:key_id", org("api-keys-write"), h.deleteAPIKey)

	api.GET("/orgs/:org_id/audit-events", org("audit-read"), h.listOrgAudit)

	api.GET("/users", instance("users-read"), h.listUsers)
	api.GET("/users/:user_id", instance("users-read"), h.getUser)
	api.POST("/users/:user_id/disable", instance("users-write"), h.disableUser)
	api.POST("/users/:user_id/enable", instance("users-write"), h.enableUser)
	api.DELETE("/users/:user_id", instance("users-delete"), h.deleteUser)
	api.DELETE("/users/:user_id/identities/:identity_id", instance("users-write"), h.unlink)
	api.POST("/users/:user_id/recheck", instance("users-write"), h.recheckUser)
	api.GET("/users/:user_id/sessions", instance("sessions-read"), h.listSessions)
	api.DELETE("/users/:user_id/sessions", instance("sessions-write"), h.revokeAllSessions)
	api.DELETE("/users/:user_id/sessions/:session_id", instance("sessions-write"), h.revokeSession)
	api.GET("/users/:user_id/browser-sessions", instance("sessions-read"), h.listBrowserSessions)
	api.DELETE("/users/:user_id/browser-sessions/:browser_session_id", instance("sessions-write"), h.revokeBrowserSession)

	api.GET("/clients", instance("clients-read"), h.listClients)
	api.POST("/clients", instance("clients-write"), h.createClient)
	api.GET("/clients/:client_id", instance("clients-read"), h.getClient)
	api.PATCH("/clients/:client_id", instance("clients-write"), h.updateClient)
	api.DELETE("/clients/:client_id", instance("clients-write"), h.deleteClient)
	api.POST("/clients/:client_id/rotate-secret", instance("clients-write"), h.rotateClientSecret)

	// The one deliberate exception (see admin.OrgRoute): with ?org_id=
	// naming the token's own organization, an organization's admin reads
	// that organization's events.
	api.GET("/audit-events", org("audit-read"), h.listAudit)

	h.registerInstance(api, instance)
}

// authorize runs Guard.Authorize for the route before its handler.
func (h *Admin) authorize(route admin.Route) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h.Guard.Authorize(c.Request.Context(), actor(c), route); err != nil {
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
	raw, err := checkBodyText(c.Request.Body)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
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

func (h *Admin) orgSyncRules(c *gin.Context) {
	out, err := h.Svc.OrgSyncRules(c.Request.Context(), c.Param("org_id"))
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
		ActorUserID: c.Query("actor_user_id"), SubjectUserID: c.Query("subject_user_id"), ClientID: c.Query("client_id"), Since: c.Query("since"), Until: c.Query("until")}
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
	out, err := h.Svc.ListUsers(c.Request.Context(), actor(c), admin.UserQuery{Email: c.Query("email"), Disabled: c.Query("disabled"), Search: c.Query("q")}, pageOf(c))
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

func (h *Admin) deleteUser(c *gin.Context) {
	out, err := h.Svc.DeleteUser(c.Request.Context(), actor(c), c.Param("user_id"))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) unlink(c *gin.Context) {
	h.answer(c, http.StatusNoContent, nil, h.Svc.Unlink(c.Request.Context(), actor(c), c.Param("user_id"), c.Param("identity_id")))
}

func (h *Admin) recheckUser(c *gin.Context) {
	out, err := h.Svc.RecheckUser(c.Request.Context(), actor(c), c.Param("user_id"))
	h.answer(c, http.StatusOK, gin.H{"identities": out}, err)
}

func (h *Admin) listSessions(c *gin.Context) {
	out, err := h.Svc.ListSessions(c.Request.Context(), actor(c), c.Param("user_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) revokeSession(c *gin.Context) {
	err := h.Svc.RevokeSession(c.Request.Context(), actor(c), c.Param("user_id"), c.Param("session_id"))
	h.answer(c, http.StatusNoContent, nil, err)
}

func (h *Admin) listBrowserSessions(c *gin.Context) {
	out, err := h.Svc.ListBrowserSessions(c.Request.Context(), actor(c), c.Param("user_id"), pageOf(c))
	h.answer(c, http.StatusOK, out, err)
}

func (h *Admin) revokeBrowserSession(c *gin.Context) {
	err := h.Svc.RevokeBrowserSession(c.Request.Context(), actor(c), c.Param("user_id"), c.Param("browser_session_id"))
	h.answer(c, http.StatusNoContent, nil, err)
}

func (h *Admin) revokeAllSessions(c *gin.Context) {
	n, err := h.Svc.RevokeAllSessions(c.Request.Context(), actor(c), c.Param("user_id"))
	h.answer(c, http.StatusOK, gin.H{"sessions_revoked": n}, err)
}
