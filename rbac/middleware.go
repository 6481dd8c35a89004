package rbac

import (
	"net/http"
	"strings"
)

// Rule is one authorization requirement with its prepared refusals: what
// Authenticate, RequirePermission, RequireAnyPermission, RequireRole and
// RequireScope enforce. Adapters for other routers (rbac/ginrbac) build a
// Rule once, at route set-up, and pass it to Middleware.Enforce per
// request.
type Rule struct {
	allow func(p *Principal) bool
	// perOrg: the requirement is about what the credential may do in its
	// organization (permissions, roles), so a credential acting in none
	// is told to get one.
	perOrg bool
	// Prepared refusals, copied per request.
	missing  *Refusal // the grant, role or scope is missing
	missingK *Refusal // the same, for an API key or a webhook (scopes)
	noOrg    *Refusal // the credential acts in no organization
	otherOrg *Refusal // the request names another organization
	forbid   Refusal  // what Forbid's 403s add: the required fields
}

// Sentences of the organization refusals.
const (
	sentenceOtherOrg = "the credential acts in another organization than this request concerns"
	sentenceNoOrg    = "the credential acts in no organization; refresh the token with organization=<organization id> to act in one"
)

// newRule prepares the refusals of a requirement; req holds its
// required fields, missing the reason and sentence of its own refusal.
func newRule(allow func(*Principal) bool, perOrg bool, req Refusal, missingReason, missingSentence string) *Rule {
	base := req
	base.Status, base.Code = http.StatusForbidden, CodeInsufficientPermission
	with := func(reason, sentence string) *Refusal {
		f := base
		f.Reason, f.Description = reason, sentence
		return prepared(f)
	}
	r := &Rule{allow: allow, perOrg: perOrg, forbid: base,
		noOrg:    with(ReasonNoActiveOrganization, sentenceNoOrg),
		otherOrg: with(ReasonOtherOrganization, sentenceOtherOrg)}
	if missingReason != "" {
		r.missing = with(missingReason, missingSentence)
		r.missingK = r.missing
	}
	return r
}

// authenticated is the rule of Authenticate: any valid credential (the
// organization check still applies).
var authenticated = newRule(func(*Principal) bool { return true }, false, Refusal{}, "", "")

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
	return newRule(func(p *Principal) bool { return p.Can(resource, action) }, true,
		Refusal{Required: perm}, ReasonMissingPermission, "the credential's permissions do not grant "+perm)
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
	perms = append([]string(nil), perms...)
	return newRule(func(p *Principal) bool {
		for _, x := range parsed {
			if p.Can(x.res, x.act) {
				return true
			}
		}
		return false
	}, true, Refusal{RequiredAny: perms}, ReasonMissingPermission,
		"the credential's permissions grant none of "+strings.Join(perms, ", "))
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
	roles = append([]string(nil), roles...)
	sentence := "the credential does not hold the role " + roles[0]
	if len(roles) > 1 {
		sentence = "the credential holds none of the roles " + strings.Join(roles, ", ")
	}
	return newRule(func(p *Principal) bool {
		for _, r := range roles {
			if p.HasRole(r) {
				return true
			}
		}
		return false
	}, true, Refusal{RequiredRole: roles}, ReasonMissingRole, sentence)
}

// ScopeRule is the rule of RequireScope: the credential was granted
// every one of scopes (its "scope" claim). API keys and webhooks carry
// no scopes, so they never pass. It panics on none or a malformed scope
// (RFC 6749 §3.3: printable ASCII without space, '"' or '\').
func ScopeRule(scopes ...string) *Rule {
	if len(scopes) == 0 {
		panic("rbac.RequireScope: no scope given")
	}
	for _, s := range scopes {
		if !validScope(s) {
			panic("rbac.RequireScope: scope " + `"` + s + `"` + " is not a scope token (printable ASCII without space, '\"' or '\\')")
		}
	}
	scopes = append([]string(nil), scopes...)
	list := strings.Join(scopes, " ")
	sentence := "the token was not granted the scope " + list
	if len(scopes) > 1 {
		sentence = "the token was not granted every one of the scopes " + list
	}
	r := newRule(func(p *Principal) bool { return p.scopable() && p.HasScopes(scopes...) }, false,
		Refusal{RequiredScope: scopes}, ReasonMissingScope, sentence)
	f := *r.missing
	f.Description = "API keys and webhooks carry no scopes; this route takes an access token granted the scope " + list
	if len(scopes) > 1 {
		f.Description = "API keys and webhooks carry no scopes; this route takes an access token granted the scopes " + list
	}
	r.missingK = prepared(f)
	return r
}

// validScope checks one scope-token (RFC 6749 §3.3).
func validScope(s string) bool {
	if s == "" || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// decide applies the organization check and the rule; it returns the
// prepared refusal, or nil.
func (m *Middleware) decide(p *Principal, requestedOrg string, rule *Rule) *Refusal {
	// Only an access token can be refreshed into one acting in an
	// organization: others are told what is missing.
	noOrg := p.OrgID == "" && p.Kind == KindAccessToken
	if !m.orgCheck(p, requestedOrg) {
		if noOrg {
			return rule.noOrg
		}
		return rule.otherOrg
	}
	if rule.allow(p) {
		return nil
	}
	switch {
	case rule.perOrg && noOrg:
		return rule.noOrg
	case !p.scopable():
		return rule.missingK
	}
	return rule.missing
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

// RequireScope returns net/http middleware that authenticates the
// request (unless done already) and requires every one of scopes in the
// access token's scope claim: what the person consented to let the client
// do, beside the permissions they hold. API keys and webhooks carry no
// scopes and are refused (403 missing_scope); pair it with
// RequirePermission on routes that must check both. It panics on none or
// a malformed scope.
func (m *Middleware) RequireScope(scopes ...string) func(http.Handler) http.Handler {
	return m.handler(ScopeRule(scopes...))
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
// the query parameter) and rule. On refusal it hands the Refusal to
// Options.OnRefusal, writes it to w (Options.WriteError, else
// WriteRefusal: 401, 403 or 503) and returns false; otherwise it returns
// r with the principal in its context (PrincipalFrom).
func (m *Middleware) Enforce(w http.ResponseWriter, r *http.Request, pathOrg string, rule *Rule) (*http.Request, bool) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		var err error
		if p, err = m.authenticate(r); err != nil {
			f := unauthorized(err)
			if fe, ok := err.(*forbiddenCheck); ok {
				f = rule.forbidden(fe)
			}
			m.refuse(w, r, f)
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
		c := *f
		c.Principal = p
		m.refuse(w, r, &c)
		return r, false
	}
	return r, true
}

// forbidden is the 403 of a Forbid refusal from Options.Check on a
// route with this rule: its reason and sentence, the rule's required
// fields.
func (rule *Rule) forbidden(fe *forbiddenCheck) *Refusal {
	f := rule.forbid
	f.Reason, f.Description, f.Principal, f.Cause = fe.err.Reason, fe.err.Description, fe.p, fe.err
	return &f
}

// OrgParam is the name of the path or query parameter that names the
// organization a request is about (Options.OrgParam).
func (m *Middleware) OrgParam() string { return m.orgParam }
