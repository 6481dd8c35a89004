package rbac

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// refusal is a prepared answer to a request that may not proceed.
type refusal struct {
	status    int
	challenge string // WWW-Authenticate
	body      []byte
}

func write(w http.ResponseWriter, f *refusal) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if f.challenge != "" {
		h.Set("WWW-Authenticate", f.challenge)
	}
	if f.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(f.status)
	_, _ = w.Write(f.body)
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// unauthorized answers a refused credential: 401 with an RFC 6750
// challenge, or 503 when the credential could not be checked right now
// (Gatehouse could not be asked about an API key, or Options.Check could
// not decide).
func unauthorized(err error) *refusal {
	if errors.Is(err, ErrUnavailable) {
		return &refusal{status: http.StatusServiceUnavailable, body: jsonBody(map[string]string{
			"error": "temporarily_unavailable", "error_description": "the credential cannot be checked right now; try again shortly"})}
	}
	if errors.Is(err, errNoCredential) {
		// No credential at all: a challenge without an error code (RFC
		// 6750 §3.1).
		return &refusal{status: http.StatusUnauthorized, challenge: "Bearer",
			body: jsonBody(map[string]string{"error": "invalid_token", "error_description": errNoCredential.Error()})}
	}
	desc := publicReason(err)
	return &refusal{
		status:    http.StatusUnauthorized,
		challenge: `Bearer error="invalid_token", error_description="` + strings.ReplaceAll(desc, `"`, "'") + `"`,
		body:      jsonBody(map[string]string{"error": "invalid_token", "error_description": desc}),
	}
}

// publicReason is what a refused credential's answer says: rbac's own
// reasons and those given with Refuse; never the text of another error
// (an Options.Check hook's storage error, say).
func publicReason(err error) string {
	if re, ok := errors.AsType[*refusedError](err); ok {
		return re.reason
	}
	if ce, ok := errors.AsType[credentialError](err); ok {
		return string(ce)
	}
	return "the credential was refused"
}

// Rule is one authorization requirement with its prepared refusals: what
// Authenticate, RequirePermission, RequireAnyPermission and RequireRole
// enforce. Adapters for other routers (rbac/ginrbac) build a Rule once,
// at route set-up, and pass it to Middleware.Enforce per request.
type Rule struct {
	allow     func(p *Principal) bool
	forbidden *refusal // the grant or role is missing
	otherOrg  *refusal // the request names another organization
}

func newRule(allow func(*Principal) bool, body map[string]any) *Rule {
	other := map[string]any{"error_description": "the credential acts in another organization than this request concerns"}
	for k, v := range body {
		other[k] = v
	}
	return &Rule{
		allow:     allow,
		forbidden: &refusal{status: http.StatusForbidden, body: jsonBody(body)},
		otherOrg:  &refusal{status: http.StatusForbidden, body: jsonBody(other)},
	}
}

// authenticated is the rule of Authenticate: any valid credential (the
// organization check still applies).
var authenticated = newRule(func(*Principal) bool { return true },
	map[string]any{"error": "insufficient_permission"})

// AnyCredentialRule is the rule of Authenticate: any valid credential;
// the organization check still applies.
func AnyCredentialRule() *Rule { return authenticated }

// PermissionRule is the rule of RequirePermission: a grant of the
// principal covers resource:action. It panics on a malformed permission.
func PermissionRule(resource, action string) *Rule {
	perm := resource + ":" + action
	if err := ValidatePermission(perm); err != nil {
		panic("rbac.RequirePermission: " + err.Error())
	}
	return newRule(func(p *Principal) bool { return p.Can(resource, action) },
		map[string]any{"error": "insufficient_permission", "required": perm})
}

// AnyPermissionRule is the rule of RequireAnyPermission: a grant covers
// one of perms. It panics on none or a malformed one.
func AnyPermissionRule(perms ...string) *Rule {
	if len(perms) == 0 {
		panic("rbac.RequireAnyPermission: no permission given")
	}
	type rp struct{ res, act string }
	parsed := make([]rp, len(perms))
	for i, perm := range perms {
		if err := ValidatePermission(perm); err != nil {
			panic("rbac.RequireAnyPermission: " + err.Error())
		}
		parsed[i].res, parsed[i].act, _ = strings.Cut(perm, ":")
	}
	return newRule(func(p *Principal) bool {
		for _, x := range parsed {
			if p.Can(x.res, x.act) {
				return true
			}
		}
		return false
	}, map[string]any{"error": "insufficient_permission", "required_any": perms})
}

// RoleRule is the rule of RequireRole: the principal holds one of roles.
// It panics on none or a malformed one.
func RoleRule(roles ...string) *Rule {
	if len(roles) == 0 {
		panic("rbac.RequireRole: no role given")
	}
	for _, r := range roles {
		if err := ValidateRoleName(r); err != nil {
			panic("rbac.RequireRole: " + err.Error())
		}
	}
	return newRule(func(p *Principal) bool {
		for _, r := range roles {
			if p.HasRole(r) {
				return true
			}
		}
		return false
	}, map[string]any{"error": "insufficient_permission", "required_role": roles})
}

// decide applies the organization check and the rule.
func (m *Middleware) decide(p *Principal, requestedOrg string, req *Rule) *refusal {
	if !m.orgCheck(p, requestedOrg) {
		return req.otherOrg
	}
	if !req.allow(p) {
		return req.forbidden
	}
	return nil
}

// ambiguousOrg stands for a query naming the organization more than once:
// it matches no token, so such a request is refused.
const ambiguousOrg = "\x00ambiguous"

// queryOrg decodes the query exactly as handlers will (r.URL.Query and
// Gin's c.Query decode percent-encoded keys, so no shortcut on the raw
// text is safe).
func (m *Middleware) queryOrg(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	vals := r.URL.Query()[m.orgParam]
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	default:
		return ambiguousOrg
	}
}

// Authenticate returns net/http middleware that requires a valid
// credential and puts its principal in the request context
// (PrincipalFrom). A request naming an organization (OrgParam) must name
// the credential's. Wrap handlers, not the ServeMux: path values exist
// only once the mux has routed.
func (m *Middleware) Authenticate() func(http.Handler) http.Handler {
	return m.handler(authenticated)
}

// RequirePermission returns net/http middleware that authenticates the
// request (unless done already) and requires resource:action, which a
// grant of the principal must cover ("kb:*" covers "kb:read"). It panics
// on a malformed permission: that is a programming error.
func (m *Middleware) RequirePermission(resource, action string) func(http.Handler) http.Handler {
	return m.handler(PermissionRule(resource, action))
}

// RequireAnyPermission is RequirePermission for "one of these"
// ("kb:read", "kb:admin").
func (m *Middleware) RequireAnyPermission(perms ...string) func(http.Handler) http.Handler {
	return m.handler(AnyPermissionRule(perms...))
}

// RequireRole requires one of the roles in the principal's organization.
// Prefer permissions: roles are per organization and may be renamed.
func (m *Middleware) RequireRole(roles ...string) func(http.Handler) http.Handler {
	return m.handler(RoleRule(roles...))
}

func (m *Middleware) handler(rule *Rule) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Path values (Go 1.22 patterns such as /orgs/{org_id}/kb) name
			// the organization first.
			if r, ok := m.Enforce(w, r, r.PathValue(m.orgParam), rule); ok {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// Enforce does for one request what the middleware does, for adapters of
// other routers (rbac/ginrbac): it authenticates r unless its context
// already carries a principal, then checks the organization the request
// names (pathOrg, the router's value of the path parameter OrgParam, else
// the query parameter) and rule. On refusal it writes the same answer as
// the middleware (401, 403 or 503) to w and returns false; otherwise it
// returns r with the principal in its context (PrincipalFrom).
func (m *Middleware) Enforce(w http.ResponseWriter, r *http.Request, pathOrg string, rule *Rule) (*http.Request, bool) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		var err error
		if p, err = m.AuthenticateRequest(r); err != nil {
			write(w, unauthorized(err))
			return r, false
		}
		r = r.WithContext(WithPrincipal(r.Context(), p))
	}
	org := pathOrg
	if q := m.queryOrg(r); org == "" {
		org = q
	} else if q != "" && q != org {
		// The path and the query name different organizations: a handler
		// reading either must see the one that was checked.
		org = ambiguousOrg
	}
	if f := m.decide(p, org, rule); f != nil {
		write(w, f)
		return r, false
	}
	return r, true
}

// OrgParam is the name of the path or query parameter that names the
// organization a request is about (Options.OrgParam).
func (m *Middleware) OrgParam() string { return m.orgParam }
