package rbac

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Machine reasons of a 403, the "reason" member of its body. Clients
// branch on these; the sentence in "error_description" is for people.
const (
	// ReasonNoActiveOrganization: the access token acts in no
	// organization (minted before the person chose one) while the route
	// needs one, or the request names one; the client refreshes its token
	// with organization=<organization id>. (Other credentials without an
	// organization get missing_… or other_organization: they cannot be
	// refreshed.)
	ReasonNoActiveOrganization = "no_active_organization"
	// ReasonOtherOrganization: the request names another organization
	// than the one the credential acts in.
	ReasonOtherOrganization = "other_organization"
	// ReasonMembershipInactive: the backend's Options.Check says the
	// membership behind the credential is suspended or gone (it returns
	// Forbid(ReasonMembershipInactive, ...)).
	ReasonMembershipInactive = "membership_inactive"
	// ReasonMissingPermission: the credential's grants cover none of the
	// permissions the route requires (RequirePermission,
	// RequireAnyPermission).
	ReasonMissingPermission = "missing_permission"
	// ReasonMissingRole: the credential holds none of the roles the route
	// requires (RequireRole).
	ReasonMissingRole = "missing_role"
	// ReasonMissingScope: the credential was not granted every scope the
	// route requires (RequireScope); API keys and webhooks carry none.
	ReasonMissingScope = "missing_scope"
)

// Error codes of the answers ("error" in the body).
const (
	CodeInvalidToken           = "invalid_token"
	CodeInsufficientPermission = "insufficient_permission"
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// RetryAfterSeconds is the Retry-After of every 503 the middleware
// answers.
const RetryAfterSeconds = 5

// Refusal is one request the middleware refused, as Options.OnRefusal
// and Options.WriteError receive it: everything the default answer
// (WriteRefusal) is made of, typed. It is built for that request; treat
// it as read-only (its slices may be shared with other refusals).
type Refusal struct {
	// Status is 401 (no or a refused credential), 403 (a valid credential
	// that may not do this) or 503 (the credential cannot be checked right
	// now: the issuer's keys are not loaded yet, Gatehouse cannot be
	// asked about an API key, or Options.Check could not decide).
	Status int
	// Code is the body's "error": CodeInvalidToken,
	// CodeInsufficientPermission or CodeTemporarilyUnavailable.
	Code string
	// Reason is the machine reason of a 403 (the Reason… constants, or
	// what Forbid was given); "" for 401 and 503.
	Reason string
	// Description is one sentence for a person ("error_description"). It
	// never holds a credential, nor the text of an error the backend's
	// Options.Check returned (unless made by Refuse or Forbid).
	Description string
	// Required, RequiredAny, RequiredRole and RequiredScope say what the
	// route requires (RequirePermission, RequireAnyPermission,
	// RequireRole, RequireScope); set on 403s only.
	Required      string
	RequiredAny   []string
	RequiredRole  []string
	RequiredScope []string
	// Challenge is the WWW-Authenticate header of a 401 ("" otherwise).
	Challenge string
	// RetryAfter is the Retry-After of a 503, in seconds (0 otherwise).
	RetryAfter int
	// Principal is who the refused credential authenticated as: set on
	// 403s, nil on 401s and 503s.
	Principal *Principal
	// Cause is why a 401 or 503 was answered, for logs and metrics: it
	// may hold the text of an error the backend's Options.Check returned
	// (a storage error, say), never a credential. Nil on 403s unless made
	// by Forbid. Never send it to the client.
	Cause error

	body []byte // prepared answer, when known
}

// refusalBody is the JSON of an answer, in this order.
type refusalBody struct {
	Error         string   `json:"error"`
	Reason        string   `json:"reason,omitempty"`
	Description   string   `json:"error_description,omitempty"`
	Required      string   `json:"required,omitempty"`
	RequiredAny   []string `json:"required_any,omitempty"`
	RequiredRole  []string `json:"required_role,omitempty"`
	RequiredScope []string `json:"required_scope,omitempty"`
}

// Body is the JSON answer of the refusal: {"error", "reason",
// "error_description", "required"/"required_any"/"required_role"/
// "required_scope"}, each member left out when empty.
func (f *Refusal) Body() []byte {
	if f.body != nil {
		return f.body
	}
	return f.encode()
}

func (f *Refusal) encode() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "organization=<organization id>" stays readable
	_ = enc.Encode(refusalBody{Error: f.Code, Reason: f.Reason, Description: f.Description, Required: f.Required,
		RequiredAny: f.RequiredAny, RequiredRole: f.RequiredRole, RequiredScope: f.RequiredScope})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// prepared returns f with its body encoded once, for refusals built at
// route set-up and copied per request.
func prepared(f Refusal) *Refusal {
	f.body = f.encode()
	return &f
}

// WriteRefusal writes the default answer to a refusal: its status, JSON
// body (Body), Content-Type application/json, Cache-Control no-store,
// WWW-Authenticate on a 401 and Retry-After on a 503. A custom
// Options.WriteError may call it after adding headers of its own.
func WriteRefusal(w http.ResponseWriter, f *Refusal) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if f.Challenge != "" {
		h.Set("WWW-Authenticate", f.Challenge)
	}
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	w.WriteHeader(f.Status)
	_, _ = w.Write(f.Body())
}

// refuse hands a refusal to the backend's callback, then writes it.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, f *Refusal) {
	if m.onRefusal != nil {
		m.onRefusal(r, f)
	}
	if m.writeError != nil {
		m.writeError(w, r, f)
		return
	}
	WriteRefusal(w, f)
}

// ForbiddenError is a refusal with 403 that Options.Check returns (made
// by Forbid): the credential is valid, but the backend knows it may not
// act (its membership is suspended, say). The client reads Reason and
// Description.
type ForbiddenError struct {
	// Reason is the machine reason, such as ReasonMembershipInactive.
	Reason string
	// Description is one sentence for the caller.
	Description string
}

// Error is the reason and the sentence.
func (e *ForbiddenError) Error() string { return "forbidden: " + e.Reason + ": " + e.Description }

// Forbid returns an error for Options.Check that refuses the request
// with 403 insufficient_permission, the machine reason (use
// ReasonMembershipInactive for a suspended membership, or a reason of
// the backend's own: 1 to 64 lowercase letters, digits and underscores)
// and one sentence the caller reads, which must hold no secret. It
// panics on a malformed reason: that is a programming error.
func Forbid(reason, description string) error {
	if !validReason(reason) {
		panic("rbac.Forbid: reason " + strconv.Quote(reason) + " must be 1 to 64 lowercase letters, digits and underscores")
	}
	return &ForbiddenError{Reason: reason, Description: description}
}

func validReason(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// unauthorized is the refusal of a credential: 401 with an RFC 6750
// challenge, 403 when Options.Check forbade it (Forbid), or 503 when the
// credential could not be checked right now.
func unauthorized(err error) *Refusal {
	if errors.Is(err, ErrUnavailable) {
		return &Refusal{Status: http.StatusServiceUnavailable, Code: CodeTemporarilyUnavailable, RetryAfter: RetryAfterSeconds,
			Description: unavailableReason(err), Cause: err}
	}
	if ce, ok := errors.AsType[credentialError](err); ok && (ce == errNoCredential || ce == errWebhookNone) {
		// No credential at all: a challenge without an error code (RFC
		// 6750 §3.1).
		return &Refusal{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Challenge: "Bearer",
			Description: string(ce), Cause: err}
	}
	desc := publicReason(err)
	return &Refusal{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, Cause: err,
		Challenge: `Bearer error="invalid_token", error_description="` + challengeText(desc) + `"`}
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

// unavailableReason is what a 503 says: rbac's own reason when it made
// the error, else a sentence that holds none of the error's text.
func unavailableReason(err error) string {
	if re, ok := errors.AsType[*refusedError](err); ok {
		return re.reason
	}
	return "the credential cannot be checked right now; try again shortly"
}

// challengeText makes a description safe inside the quoted
// error_description of a WWW-Authenticate header: a double quote becomes
// a single one and a control character (a line break above all) a space.
// Other bytes pass as they are (UTF-8), as the Node middleware sends them.
func challengeText(desc string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < 0x20 || r == 0x7f:
			return ' '
		}
		return r
	}, desc)
}
