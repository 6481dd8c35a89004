package oauth

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// AuthorizeParams is a validated authorization request.
type AuthorizeParams struct {
	ClientID            string `json:"c"`
	RedirectURI         string `json:"u"`
	State               string `json:"s,omitempty"`
	Nonce               string `json:"n,omitempty"`
	Scope               string `json:"sc,omitempty"`
	CodeChallenge       string `json:"cc,omitempty"`
	CodeChallengeMethod string `json:"cm,omitempty"`
	Organization        string `json:"o,omitempty"`
	LoginHint           string `json:"h,omitempty"`
	Prompt              string `json:"pr,omitempty"`
	Provider            string `json:"p,omitempty"`
	// MaxAge is the client's max_age in seconds (nil: none): a sign-in
	// older than this is not reused, and 0 always signs in again.
	MaxAge *int `json:"ma,omitempty"`
	// ACRValues are the client's acr_values, passed to upstreams that
	// understand them.
	ACRValues string `json:"acr,omitempty"`
	// HintSubject is the user an id_token_hint named (verified as an ID
	// token Gatehouse issued; it may have expired); empty: no hint.
	HintSubject string `json:"hs,omitempty"`
}

// Prompts returns the request's prompt values.
func (p *AuthorizeParams) Prompts() []string { return strings.Fields(p.Prompt) }

// HasPrompt reports whether the request's prompt holds value.
func (p *AuthorizeParams) HasPrompt(value string) bool { return slices.Contains(p.Prompts(), value) }

// RequestMeta describes the browser request, for audit events.
type RequestMeta struct {
	IP        string
	RequestID string
}

type requestMetaKey struct{}

// WithRequestMeta returns ctx carrying meta, for audit events recorded
// below the authorization server (the session service's).
func WithRequestMeta(ctx context.Context, meta RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, meta)
}

// RequestMetaFrom returns the RequestMeta WithRequestMeta put in ctx.
func RequestMetaFrom(ctx context.Context) (RequestMeta, bool) {
	m, ok := ctx.Value(requestMetaKey{}).(RequestMeta)
	return m, ok
}

var codeChallengeSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// maxAgeSyntax is a max_age: a non-negative integer of seconds (ten
// digits are three centuries).
var maxAgeSyntax = regexp.MustCompile(`^[0-9]{1,10}$`)

// maxParamLen bounds every authorization parameter; real values are short.
const maxParamLen = 2048

// ParseAuthorize validates an authorization request. Problems with the
// client or redirect URI are errors with a page kind (never redirected: no open
// redirects); the rest are *RedirectError for the client.
func (s *Service) ParseAuthorize(q url.Values) (*AuthorizeParams, error) {
	for k, v := range q {
		if len(v) > 1 {
			// RFC 6749 §3.1: parameters must not be repeated. Checked
			// before anything else, so a repeated redirect_uri cannot be
			// used to smuggle a second value.
			if k == "client_id" || k == "redirect_uri" {
				return nil, fault.New(fault.MalformedSignIn, fmt.Errorf("repeated %s", k))
			}
		}
		for _, one := range v {
			if len(one) > maxParamLen {
				return nil, fault.New(fault.MalformedSignIn, fmt.Errorf("%s too long", k))
			}
		}
	}
	p := &AuthorizeParams{
		ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"), State: q.Get("state"),
		Nonce: q.Get("nonce"), Scope: strings.Join(strings.Fields(q.Get("scope")), " "),
		CodeChallenge: q.Get("code_challenge"), CodeChallengeMethod: q.Get("code_challenge_method"),
		Organization: q.Get("organization"), LoginHint: q.Get("login_hint"), Prompt: q.Get("prompt"),
		Provider: q.Get("provider"),
	}
	client, ok := s.Client(p.ClientID)
	if !ok {
		return nil, fault.New(fault.UnknownClient, fmt.Errorf("unknown client_id"))
	}
	if p.RedirectURI == "" && len(client.RedirectURIs) == 1 {
		p.RedirectURI = client.RedirectURIs[0]
	}
	if !client.RegisteredRedirect(p.RedirectURI) {
		return nil, fault.New(fault.UnregisteredRedirect, fmt.Errorf("unregistered redirect_uri for client %s", client.ID))
	}
	fail := func(e *Error) error { return s.ErrorRedirect(p, e) }
	for k, v := range q {
		if len(v) > 1 {
			return nil, fail(invalidRequest("parameter %s is repeated", k))
		}
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			return nil, fail(invalidRequest("response_type is required"))
		}
		return nil, fail(oauthErr("unsupported_response_type", "only response_type=code is supported"))
	}
	if !client.AllowsGrant("authorization_code") {
		return nil, fail(unauthorizedClient("this client may not use the authorization code flow"))
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		return nil, fail(invalidRequest("only response_mode=query is supported"))
	}
	// OpenID Connect Core §6: request objects are not supported, and
	// saying so beats silently ignoring parameters the client relies on.
	if q.Has("request") {
		return nil, fail(oauthErr("request_not_supported", "request objects are not supported"))
	}
	if q.Has("request_uri") {
		return nil, fail(oauthErr("request_uri_not_supported", "request_uri is not supported"))
	}
	// An unknown scope is refused, not dropped (RFC 6749 §4.1.2.1): it is
	// a mismatch between the client and its registration that should show
	// now, not as a puzzling 403 from a backend later.
	scope, e := client.requestedScope(p.Scope)
	if e != nil {
		return nil, fail(e)
	}
	p.Scope = scope
	switch {
	case p.CodeChallenge == "" && client.Public:
		return nil, fail(invalidRequest("code_challenge is required: public clients must use PKCE with S256"))
	case p.CodeChallenge == "" && p.CodeChallengeMethod != "":
		return nil, fail(invalidRequest("code_challenge_method without code_challenge"))
	case p.CodeChallenge != "" && p.CodeChallengeMethod != "S256":
		return nil, fail(invalidRequest("code_challenge_method must be S256"))
	case p.CodeChallenge != "" && !codeChallengeSyntax.MatchString(p.CodeChallenge):
		return nil, fail(invalidRequest("code_challenge must be the base64url SHA-256 of the verifier (43 characters)"))
	}
	prompts := p.Prompts()
	for _, pr := range prompts {
		switch pr {
		case "none", "login", "consent", "select_account":
		default:
			return nil, fail(invalidRequest("unsupported prompt value %q", pr))
		}
	}
	if slices.Contains(prompts, "none") && len(prompts) > 1 {
		// OIDC Core §3.1.2.1: none with any other value is an error.
		return nil, fail(invalidRequest("prompt=none cannot be combined with other prompt values"))
	}
	p.Prompt = strings.Join(prompts, " ")
	if v := q.Get("max_age"); v != "" {
		if !maxAgeSyntax.MatchString(v) {
			return nil, fail(invalidRequest("max_age must be a non-negative integer of seconds"))
		}
		n, _ := strconv.Atoi(v)
		p.MaxAge = &n
	}
	p.ACRValues = strings.Join(strings.Fields(q.Get("acr_values")), " ")
	if hint := q.Get("id_token_hint"); hint != "" {
		// Any ID token this issuer signed names its user, expired or
		// not, whichever client it was issued to; anything else (forged,
		// another issuer's, not an ID token) is refused rather than
		// ignored: a client that sends a hint relies on it.
		if s.keys == nil {
			return nil, fail(invalidRequest("id_token_hint is not an ID token of this issuer"))
		}
		c, err := s.keys.VerifyIDTokenHint(hint, s.issuer)
		if err != nil || c.Subject == "" {
			return nil, fail(invalidRequest("id_token_hint is not an ID token of this issuer"))
		}
		p.HintSubject = c.Subject
	}
	if p.Provider != "" {
		if _, ok := s.providers.Get(p.Provider); !ok || !client.AllowsProvider(p.Provider) {
			return nil, fail(invalidRequest("unknown provider %q", p.Provider))
		}
	}
	return p, nil
}

// CodeRequest is a sign-in that completed for an authorization request:
// the person provisioning made of the upstream identity, and how they
// authenticated.
type CodeRequest struct {
	// Request is the validated authorization request the sign-in began
	// with (ParseAuthorize), or the target of an unsolicited sign-in.
	Request *AuthorizeParams
	// Provider is the name of the provider the person signed in at.
	Provider string
	// Provisioned is the user and memberships provisioning returned.
	Provisioned *provisioning.Result
	// AMR says how the person authenticated upstream; empty is "ext".
	AMR []string
	// ACR is the authentication context class the upstream reported.
	ACR string
	// AuthTime is when the person authenticated upstream (a reused
	// browser session's sign-in time); zero: now.
	AuthTime time.Time
	// BrowserSessionID is the browser session the sign-in came through
	// (empty: none, as for an unsolicited sign-in).
	BrowserSessionID string
}

// IssuedCode answers a completed authorization request.
type IssuedCode struct {
	// RedirectURL is the client's redirect URI carrying the single-use
	// code, the client's state and iss (RFC 9207).
	RedirectURL string
	// SessionID is the session the code opens.
	SessionID string
}

// IssueCode opens the session of a completed sign-in, with the requested
// organization active when the person is an active member of it, and
// issues the authorization code bound to the request's client, redirect
// URI, scope, nonce and PKCE challenge. It records nothing itself: the
// sign-in's outcome is its caller's to count and audit.
func (s *Service) IssueCode(ctx context.Context, in CodeRequest) (*IssuedCode, error) {
	p, user := in.Request, in.Provisioned.User
	sess, err := s.openSession(ctx, in)
	if err != nil {
		return nil, err
	}
	code, err := s.sessions.IssueCode(ctx, tokens.NewCode{
		ClientID: p.ClientID, UserID: user.ID, SessionID: sess.ID, RedirectURI: p.RedirectURI,
		Scope: p.Scope, Nonce: p.Nonce, CodeChallenge: p.CodeChallenge, CodeChallengeMethod: p.CodeChallengeMethod,
	})
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(p.RedirectURI)
	q := u.Query()
	q.Set("code", code)
	if p.State != "" {
		q.Set("state", p.State)
	}
	q.Set("iss", s.issuer) // RFC 9207
	u.RawQuery = q.Encode()
	return &IssuedCode{RedirectURL: u.String(), SessionID: sess.ID}, nil
}

// openSession opens the app session of a completed sign-in (for an
// authorization code, or a device's approval): its request's client and
// scope, the requested organization active when the person is an active
// member of it, under the browser session it came through.
func (s *Service) openSession(ctx context.Context, in CodeRequest) (*models.Session, error) {
	p, user := in.Request, in.Provisioned.User
	amr := in.AMR
	if len(amr) == 0 {
		amr = []string{"ext"}
	}
	authTime := in.AuthTime
	if authTime.IsZero() {
		authTime = s.now()
	}
	var browserSession *string
	if in.BrowserSessionID != "" {
		browserSession = &in.BrowserSessionID
	}
	return s.sessions.CreateSession(ctx, tokens.NewSession{
		UserID: user.ID, ClientID: p.ClientID, Provider: in.Provider, ActiveOrgID: initialOrg(in.Provisioned, p.Organization),
		Scope: p.Scope, AMR: amr, ACR: in.ACR, AuthTime: authTime, BrowserSessionID: browserSession,
		IdentityID: in.Provisioned.IdentityID,
	})
}

// initialOrg picks the active org of a new session from the memberships
// provisioning returned: the requested one if the user is an active
// member, else the user's default org if active, else the oldest active
// membership, else none.
func initialOrg(res *provisioning.Result, requested string) *string {
	active := func(orgID string) bool {
		for _, m := range res.Memberships {
			if m.OrganizationID == orgID && m.Status == models.MembershipActive {
				return true
			}
		}
		return false
	}
	switch {
	case requested != "" && active(requested):
		return &requested
	case res.User.DefaultOrgID != nil && active(*res.User.DefaultOrgID):
		return res.User.DefaultOrgID
	}
	for _, m := range res.Memberships {
		if m.Status == models.MembershipActive {
			return &m.OrganizationID
		}
	}
	return nil
}

// ErrorRedirect delivers the refusal e of authorization request p to the
// client's registered redirect URI (RFC 6749 §4.1.2.1), with p's state
// and iss (RFC 9207). p's redirect URI must have been validated
// (ParseAuthorize): it is never checked here.
func (s *Service) ErrorRedirect(p *AuthorizeParams, e *Error) *RedirectError {
	u, _ := url.Parse(p.RedirectURI)
	q := u.Query()
	q.Set("error", e.Code)
	q.Set("error_description", e.Description)
	if p.State != "" {
		q.Set("state", p.State)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	return &RedirectError{Err: e, RedirectURL: u.String()}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
