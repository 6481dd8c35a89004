package rbac

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MinWebhookSecretLen is the shortest webhook secret accepted, in bytes.
// Generate secrets of 32 random bytes, base64url-encoded (43
// characters): `openssl rand -base64 32 | tr '+/' '-_' | tr -d '='`.
const MinWebhookSecretLen = 16

// WebhookOptions configure the credential of a webhook sender: a static
// secret the sender presents on every delivery.
type WebhookOptions struct {
	// Name names the sender ("chainhook"): lowercase letters, digits,
	// hyphens and underscores, like a permission's part. The principal's
	// Subject is "webhook:"+Name.
	Name string
	// Secrets are the secrets accepted, any one of them: one, or two
	// during a rotation (add the new one, deploy, switch the sender,
	// remove the old one). Each is at least MinWebhookSecretLen bytes of
	// printable ASCII without spaces. Only their SHA-256 hashes are kept;
	// a presented secret is hashed and compared with each in constant
	// time. Errors name a secret by its position, never by its value.
	Secrets []string
	// Permissions are the grants the sender's principal holds (such as
	// "chainhook:deliver"), for RequirePermission after the webhook's
	// middleware.
	Permissions []string
	// OrgID is the organization the principal acts in ("" for none: a
	// request naming an organization is then refused).
	OrgID string
	// Header names the header that carries the secret as its whole value
	// (such as "X-Webhook-Token"); default "Authorization: Bearer
	// <secret>". It may not be X-API-Key.
	Header string
}

// Webhook authenticates deliveries of one webhook sender by its secrets.
// Its middleware puts the sender's principal (Kind KindWebhook) in the
// request context; wrap Middleware.RequirePermission (or any Require…)
// inside it to check the permissions the backend assigned. It is safe
// for concurrent use.
type Webhook struct {
	m          *Middleware
	hashes     [][sha256.Size]byte
	principals []*Principal // per secret: TokenID is its position
	header     string       // "" = Authorization: Bearer
}

// Webhook refusals; none holds a secret.
var (
	errWebhookNone      = credentialError("a webhook secret is required")
	errWebhookNotBearer = credentialError("the Authorization header must be the Bearer scheme, one space and the webhook secret")
	errWebhookRefused   = credentialError("the webhook secret is not accepted")
	errWebhookTwo       = credentialError("send one credential: the webhook secret alone")
)

// Webhook returns the authenticator of one webhook sender, whose
// refusals go through the middleware's Options.OnRefusal and
// Options.WriteError like any other. It fails on a malformed name,
// permission or header, and on no, a short, a malformed or a repeated
// secret.
func (m *Middleware) Webhook(o WebhookOptions) (*Webhook, error) {
	if reason := checkPart(o.Name, false, true); o.Name == "" || reason != "" {
		if o.Name == "" {
			reason = "is required"
		}
		return nil, fmt.Errorf("rbac: WebhookOptions.Name %q %s", o.Name, reason)
	}
	if len(o.Secrets) == 0 {
		return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Secrets: at least one secret is required", o.Name)
	}
	for _, g := range o.Permissions {
		if err := ValidateGrant(g); err != nil {
			return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Permissions: %w", o.Name, err)
		}
	}
	w := &Webhook{m: m}
	if o.Header != "" {
		w.header = http.CanonicalHeaderKey(o.Header)
		switch {
		case !validHeaderName(o.Header):
			return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Header %q is not a header name", o.Name, o.Header)
		case w.header == http.CanonicalHeaderKey(APIKeyHeader):
			return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Header may not be %s, which carries API keys", o.Name, APIKeyHeader)
		case w.header == "Authorization", w.header == "":
			w.header = "" // the default: Bearer
		}
	}
	for i, s := range o.Secrets {
		if reason := checkWebhookSecret(s); reason != "" {
			return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Secrets[%d] %s", o.Name, i, reason)
		}
		h := sha256.Sum256([]byte(s))
		for j, seen := range w.hashes {
			if seen == h {
				return nil, fmt.Errorf("rbac: webhook %s: WebhookOptions.Secrets[%d] repeats Secrets[%d]", o.Name, i, j)
			}
		}
		w.hashes = append(w.hashes, h)
		w.principals = append(w.principals, NewPrincipal(Principal{Kind: KindWebhook, Subject: WebhookSubjectPrefix + o.Name,
			OrgID: o.OrgID, Permissions: append([]string(nil), o.Permissions...), TokenID: strconv.Itoa(i)}))
	}
	return w, nil
}

// checkWebhookSecret says what is wrong with a secret, without its value.
func checkWebhookSecret(s string) string {
	if strings.HasPrefix(strings.ToLower(s), "bearer ") {
		return `starts with "Bearer ": give the secret alone; the sender sends "Authorization: Bearer <secret>"`
	}
	if len(s) < MinWebhookSecretLen {
		return fmt.Sprintf("is shorter than %d bytes", MinWebhookSecretLen)
	}
	if len(s) > maxTokenLen {
		return fmt.Sprintf("is longer than %d bytes", maxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return "holds a space, a control character or a non-ASCII byte: printable ASCII only"
		}
	}
	return ""
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// AuthenticateRequest returns the sender's principal when the request
// carries one of the secrets, and nothing else that is a credential
// (another Authorization or X-API-Key header, or a token or key query
// parameter, which are removed from the URL). Errors wrap
// ErrInvalidToken and never hold the presented value.
func (w *Webhook) AuthenticateRequest(r *http.Request) (*Principal, error) {
	q := stripQueryCredentials(r)
	auth, keys := r.Header.Values("Authorization"), r.Header.Values(APIKeyHeader)
	var values []string
	others := len(keys) + q.tokens + q.keys
	if w.header == "" {
		values = auth
	} else {
		values = r.Header.Values(w.header)
		others += len(auth)
	}
	switch {
	case len(values) == 0:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errWebhookNone)
	case len(values) != 1 || others > 0:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errWebhookTwo)
	}
	secret := values[0]
	if w.header == "" {
		var ok bool
		if secret, ok = strings.CutPrefix(secret, "Bearer "); !ok {
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errWebhookNotBearer)
		}
	}
	if len(secret) > maxTokenLen {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errWebhookRefused)
	}
	h := sha256.Sum256([]byte(secret))
	// Every stored hash is compared, whichever matches: the time taken
	// says nothing about which secret, or how much of one, was right.
	match := -1
	for i := range w.hashes {
		eq := subtle.ConstantTimeCompare(h[:], w.hashes[i][:])
		unset := subtle.ConstantTimeEq(int32(match), -1)
		match = subtle.ConstantTimeSelect(eq&unset, i, match)
	}
	if match < 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errWebhookRefused)
	}
	return w.principals[match], nil
}

// Enforce authenticates r by the webhook's secrets, for adapters of other
// routers (rbac/ginrbac). On refusal (401) it hands the Refusal to
// Options.OnRefusal, writes it (Options.WriteError, else WriteRefusal)
// and returns false; otherwise it returns r with the sender's principal
// in its context, replacing any other.
func (w *Webhook) Enforce(rw http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	p, err := w.AuthenticateRequest(r)
	if err != nil {
		w.m.refuse(rw, r, unauthorized(err))
		return r, false
	}
	return r.WithContext(WithPrincipal(r.Context(), p)), true
}

// Authenticate returns net/http middleware that requires one of the
// webhook's secrets and puts the sender's principal in the request
// context; Require… middleware inside it checks that principal:
//
//	hook, err := m.Webhook(rbac.WebhookOptions{Name: "chainhook", Secrets: secrets, Permissions: []string{"chainhook:deliver"}})
//	mux.Handle("POST /webhooks/chainhook", hook.Authenticate()(m.RequirePermission("chainhook", "deliver")(h)))
//
// Such a route takes no Gatehouse credential, and InsecureDevPrincipal
// does not apply to it.
func (w *Webhook) Authenticate() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r, ok := w.Enforce(rw, r); ok {
				next.ServeHTTP(rw, r)
			}
		})
	}
}
