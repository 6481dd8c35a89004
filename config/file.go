package config

import (
	"crypto/sha256"
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-id/gatehouse/claims"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// File is the YAML configuration named by GATEHOUSE_CONFIG.
type File struct {
	Clients   []Client   `yaml:"clients"`
	Providers []Provider `yaml:"providers"`
	OrgSync   OrgSync    `yaml:"org_sync"`
}

// Grant types a client may be allowed.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantDeviceCode is the device authorization grant (RFC 8628): a
	// client opts in by listing it.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// Client is a registered downstream application.
type Client struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	Public bool   `yaml:"public"`
	// Secret is read from the file and replaced by SecretHash at load, so
	// the plaintext is not kept in memory longer than needed.
	Secret                 string   `yaml:"secret"`
	SecretHash             [32]byte `yaml:"-"`
	RedirectURIs           []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	GrantTypes             []string `yaml:"grant_types"`
	AllowedProviders       []string `yaml:"allowed_providers"`
	// Audience is the `aud` of access tokens minted for this client;
	// empty means the client id.
	Audience []string `yaml:"audience"`
	// Scopes the client may be granted beyond the OpenID Connect ones
	// (openid, profile, email, offline_access): in user flows
	// (authorization code, refresh, token exchange) and as what
	// client_credentials tokens carry. A requested scope outside them is
	// invalid_scope.
	Scopes []string `yaml:"scopes"`
	// Permissions granted to client_credentials tokens (resource:action).
	Permissions    []string `yaml:"permissions"`
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	IDTokenTTL     Duration `yaml:"id_token_ttl"`
	// IntrospectAny lets this confidential client (a resource server)
	// learn through introspection that any client's token is active.
	// Without it, introspection answers active only for the client's
	// own tokens and access tokens whose aud names it.
	IntrospectAny bool `yaml:"introspect_any"`
	// IDTokenOnRefresh: a refresh of a session granted openid answers an
	// ID token too, as the code exchange did. Unset means true (as Dex and
	// Keycloak do); false leaves it out, as OpenID Connect Core §12.2
	// allows, for a client that does not read a refreshed ID token: one
	// signature fewer per refresh. See RefreshIDToken.
	IDTokenOnRefresh *bool `yaml:"id_token_on_refresh"`
	// BackchannelLogoutURI receives a signed logout token (OpenID Connect
	// Back-Channel Logout 1.0) whenever one of the client's sessions ends;
	// empty: the client is not told.
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri"`
	// BackchannelLogoutSessionRequired: the client needs the sid claim in
	// logout tokens (and ID tokens). Gatehouse always sends it; the field
	// is accepted for registration parity.
	BackchannelLogoutSessionRequired bool `yaml:"backchannel_logout_session_required"`
	// Groups says which groups the client's `groups` claim carries
	// (GroupsClaim); nil: the client may not ask for the groups scope.
	Groups *GroupsClaim `yaml:"groups"`
	// TokenEndpointAuthMethod fixes how the client authenticates at the
	// token, revocation and introspection endpoints (Auth… constants).
	// Empty: a confidential client may use client_secret_basic or
	// client_secret_post, a public client none.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method" json:"token_endpoint_auth_method,omitempty"`
	// JWKS (inline) or JWKSURI (fetched and cached) hold the public keys
	// a private_key_jwt client signs its assertions with (RFC 7523).
	JWKS    JWKS   `yaml:"jwks" json:"jwks,omitempty"`
	JWKSURI string `yaml:"jwks_uri" json:"jwks_uri,omitempty"`
}

// RefreshIDToken reports whether a refresh answers an ID token (when the
// scope has openid): id_token_on_refresh, true unless set false.
func (c *Client) RefreshIDToken() bool { return c.IDTokenOnRefresh == nil || *c.IDTokenOnRefresh }

// AllowsGrant reports whether the client may use the grant type.
func (c *Client) AllowsGrant(grant string) bool {
	for _, g := range c.GrantTypes {
		if g == grant {
			return true
		}
	}
	return false
}

// Duration is a YAML duration such as "15m".
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a positive duration such as 15m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Provider is one upstream identity provider. Name, Type and the
// provisioning policy fields are common to every kind; the other fields
// belong to the kind, which decodes them with Decode.
type Provider struct {
	Name string
	Type string
	// LinkByEmail lets a first sign-in through this provider join the
	// existing user with the same verified email (`link_by_email`). It
	// requires TrustedEmail.
	LinkByEmail bool
	// TrustedEmail: the emails this provider reports as verified may
	// accept invitations, link accounts and be matched by the admin API
	// (`trusted_email`). Unset in the file, it is DefaultTrustedEmail of
	// the kind.
	TrustedEmail bool
	node         yaml.Node
}

// providerHead holds the fields common to every provider kind.
type providerHead struct {
	Name         string `yaml:"name"`
	Type         string `yaml:"type"`
	LinkByEmail  bool   `yaml:"link_by_email"`
	TrustedEmail *bool  `yaml:"trusted_email"`
}

// commonProviderFields are decoded here, and hidden from the kinds.
var commonProviderFields = map[string]bool{"name": true, "type": true, "link_by_email": true, "trusted_email": true}

// DefaultTrustedEmail reports whether a provider kind's verified emails
// are trusted when its configuration does not say: yes for google (it
// requires email_verified, and hd for Workspace domains), github (the
// verified primary address) and dev (development only, where anyone is
// anyone anyway); no for oidc, auth0 and saml, whose verified flag is
// only as good as the IdP behind them, and for any other kind.
func DefaultTrustedEmail(kind string) bool {
	switch kind {
	case "google", "github", "dev":
		return true
	}
	return false
}

// UnmarshalYAML keeps the whole mapping for the provider kind to decode.
func (p *Provider) UnmarshalYAML(n *yaml.Node) error {
	var head providerHead
	if err := n.Decode(&head); err != nil {
		return err
	}
	p.Name, p.Type, p.LinkByEmail, p.node = head.Name, head.Type, head.LinkByEmail, *n
	p.TrustedEmail = DefaultTrustedEmail(head.Type)
	if head.TrustedEmail != nil {
		p.TrustedEmail = *head.TrustedEmail
	}
	return nil
}

// Decode fills a provider kind's settings struct; unknown fields are errors.
// The common fields (name, type, link_by_email, trusted_email) are
// stripped, so kinds need not declare them.
func (p *Provider) Decode(into any) error {
	if p.node.Kind == 0 {
		return nil
	}
	n := p.node
	n.Content = nil
	for i := 0; i+1 < len(p.node.Content); i += 2 {
		if commonProviderFields[p.node.Content[i].Value] {
			continue
		}
		n.Content = append(n.Content, p.node.Content[i], p.node.Content[i+1])
	}
	raw, err := yaml.Marshal(&n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && err.Error() != "EOF" {
		return cleanYAMLError(err)
	}
	return nil
}

// OrgSync maps upstream groups to organization memberships.
type OrgSync struct {
	OnLeave        string     `yaml:"on_leave"`
	AutoCreateOrgs bool       `yaml:"auto_create_orgs"`
	Rules          []SyncRule `yaml:"rules"`
}

// SyncRule maps an upstream group (exact or glob) to an org and a role.
type SyncRule struct {
	Match string `yaml:"match"`
	// Org is an organization slug, or a pattern containing {org} (the
	// upstream organization named by the matched group).
	Org  string `yaml:"org"`
	Role string `yaml:"role"`
	// Provider, when set, limits the rule to sign-ins through the provider
	// of that name.
	Provider string `yaml:"provider"`
}

// OrgPlaceholder in a rule's org stands for the upstream organization.
const OrgPlaceholder = "{org}"

// ValidSlug reports whether s can be an organization slug: lowercase
// letters, digits and hyphens, starting with a letter or digit, at most
// 63 characters.
func ValidSlug(s string) bool { return slugSyntax.MatchString(s) }

var slugSyntax = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// readFile loads the YAML file, expanding ${NAME} from the environment.
// An unset variable is an error: an empty secret must not pass unnoticed.
func readFile(name string, lookup Lookup) (*File, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("GATEHOUSE_CONFIG: cannot read %s: %v", name, unwrapPathError(err))
	}
	var missing []string
	expanded := envRef.ReplaceAllStringFunc(string(data), func(ref string) string {
		key := envRef.FindStringSubmatch(ref)[1]
		v, ok := lookup(key)
		if !ok {
			missing = append(missing, key)
		}
		return v
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("GATEHOUSE_CONFIG: %s refers to unset environment variables: %s", name, strings.Join(missing, ", "))
	}
	var f File
	dec := yaml.NewDecoder(strings.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err.Error() != "EOF" {
		return nil, fmt.Errorf("GATEHOUSE_CONFIG: %s is not valid: %v", name, cleanYAMLError(err))
	}
	return &f, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func cleanYAMLError(err error) error {
	return fmt.Errorf("%s", strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n ", ""))
}

// apiKeySubjectPrefix starts the subject of an API key's tokens: a client
// id may not start with it, or its tokens would read as an API key's.
const apiKeySubjectPrefix = claims.APIKeySubjectPrefix

// providerName: provider names appear in URLs; same shape as a slug.
var providerName = slugSyntax

var knownGrants = map[string]bool{
	GrantAuthorizationCode: true, GrantRefreshToken: true,
	GrantClientCredentials: true, GrantTokenExchange: true, GrantDeviceCode: true,
}

func validateFile(c *Config, r *reader, unsafe func(field, msg string)) {
	f := &c.File
	seen := map[string]bool{}
	for i := range f.Clients {
		cl := &f.Clients[i]
		field := fmt.Sprintf("clients[%d].", i)
		if cl.ID != "" && seen[cl.ID] {
			r.fail(field+"id", "%q is used by another client", cl.ID)
		}
		seen[cl.ID] = true
		checkClient(r, field, cl, false, unsafe)
	}
	names := map[string]bool{}
	for i, p := range f.Providers {
		field := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			r.fail(field+".name", "is required")
		case !providerName.MatchString(p.Name):
			r.fail(field+".name", "%q must be lowercase letters, digits and hyphens (it appears in URLs)", p.Name)
		case names[p.Name]:
			r.fail(field+".name", "%q is used by another provider", p.Name)
		}
		names[p.Name] = true
		if p.Type == "" {
			r.fail(field+".type", "is required")
		}
		if p.Type == "dev" {
			unsafe(field+".type", "the dev provider lets anyone sign in as anyone")
		}
		if p.LinkByEmail && !p.TrustedEmail {
			r.fail(field+".link_by_email", "needs trusted_email: true (the default for google, github and dev only); "+
				"link only through a provider whose verified emails you trust")
		}
	}
	for i, cl := range f.Clients {
		for _, name := range cl.AllowedProviders {
			if !names[name] && !(name == "dev" && c.DevLogin) {
				r.fail(fmt.Sprintf("clients[%d].allowed_providers", i), "%q is not a configured provider", name)
			}
		}
	}
	switch f.OrgSync.OnLeave {
	case "":
		f.OrgSync.OnLeave = "remove"
	case "remove", "suspend":
	default:
		r.fail("org_sync.on_leave", "must be remove or suspend, not %q", f.OrgSync.OnLeave)
	}
	for i, rule := range f.OrgSync.Rules {
		field := fmt.Sprintf("org_sync.rules[%d]", i)
		if rule.Match == "" {
			r.fail(field+".match", "is required")
		} else if _, err := path.Match(rule.Match, ""); err != nil {
			r.fail(field+".match", "%q is not a valid glob pattern", rule.Match)
		}
		switch {
		case rule.Org == "":
			r.fail(field+".org", "is required")
		case !ValidSlug(strings.ReplaceAll(rule.Org, OrgPlaceholder, "x")):
			r.fail(field+".org", "%q must be an organization slug (lowercase letters, digits and hyphens) or a pattern with %s, such as gh-%s", rule.Org, OrgPlaceholder, OrgPlaceholder)
		}
		if rule.Role == "" {
			r.fail(field+".role", "is required")
		} else if err := rbac.ValidateRoleName(rule.Role); err != nil {
			r.fail(field+".role", "%v", err)
		}
		if rule.Provider != "" && !names[rule.Provider] && !(rule.Provider == "dev" && c.DevLogin) {
			r.fail(field+".provider", "%q is not a configured provider", rule.Provider)
		}
	}
}

// checkClient applies the rules of one client, naming fields after
// prefix. managedSecret: Gatehouse generates and keeps the secret (a
// database client), so the client carries none.
func checkClient(r *reader, prefix string, cl *Client, managedSecret bool, unsafe func(field, msg string)) {
	field := prefix
	if cl.ID == "" {
		r.fail(field+"id", "is required")
	}
	if strings.HasPrefix(cl.ID, apiKeySubjectPrefix) {
		// A client's own tokens carry its id as their subject; this
		// prefix would make backends and introspection take them for
		// an API key's.
		r.fail(field+"id", "must not start with %q: that prefix names API keys", apiKeySubjectPrefix)
	}
	switch {
	case managedSecret && cl.Secret != "":
		r.fail(field+"secret", "is generated by Gatehouse; leave it out")
	case managedSecret:
	case cl.Public && cl.Secret != "":
		r.fail(field+"secret", "a public client has no secret; remove it or set public: false")
	case cl.TokenEndpointAuthMethod == AuthPrivateKeyJWT:
		// No secret: validateClientAuth refuses one.
	case !cl.Public && len(cl.Secret) < 16:
		r.fail(field+"secret", "a confidential client needs a secret of at least 16 characters")
	}
	validateClientAuth(r, unsafe, strings.TrimSuffix(field, "."), cl)
	if cl.Public && cl.IntrospectAny {
		r.fail(field+"introspect_any", "a public client cannot introspect; give it to the resource server's confidential client")
	}
	if cl.Secret != "" {
		cl.SecretHash = sha256.Sum256([]byte(cl.Secret))
		cl.Secret = ""
	}
	if len(cl.GrantTypes) == 0 {
		cl.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	for _, g := range cl.GrantTypes {
		if !knownGrants[g] {
			r.fail(field+"grant_types", "unknown grant type %q", g)
		}
		if cl.Public && g == GrantClientCredentials {
			r.fail(field+"grant_types", "a public client cannot use client_credentials")
		}
	}
	if cl.IDTokenOnRefresh != nil && !cl.AllowsGrant(GrantRefreshToken) {
		r.fail(field+"id_token_on_refresh", "the client may not use refresh_token; remove it or add refresh_token to grant_types")
	}
	if cl.AllowsGrant(GrantAuthorizationCode) && len(cl.RedirectURIs) == 0 {
		r.fail(field+"redirect_uris", "at least one redirect URI is needed for authorization_code")
	}
	for _, u := range cl.RedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			r.fail(field+"redirect_uris", "%q %s", u, msg)
		} else if pu, _ := url.Parse(u); pu.Scheme == "http" && !IsLoopbackHost(pu.Hostname()) {
			unsafe(field+"redirect_uris", fmt.Sprintf("plain-HTTP redirect URI %s", u))
		}
	}
	for _, u := range cl.PostLogoutRedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			r.fail(field+"post_logout_redirect_uris", "%q %s", u, msg)
		}
	}
	if u := cl.BackchannelLogoutURI; u != "" {
		// The same rules as a redirect URI: absolute, no fragment.
		if msg := checkRedirectURI(u); msg != "" {
			r.fail(field+"backchannel_logout_uri", "%q %s", u, msg)
		} else if pu, _ := url.Parse(u); pu.Scheme != "https" && pu.Scheme != "http" {
			r.fail(field+"backchannel_logout_uri", "%q must be an http or https URL", u)
		} else if pu.Scheme == "http" && !IsLoopbackHost(pu.Hostname()) {
			unsafe(field+"backchannel_logout_uri", fmt.Sprintf("plain-HTTP back-channel logout URI %s", u))
		}
	}
	if cl.BackchannelLogoutSessionRequired && cl.BackchannelLogoutURI == "" {
		r.fail(field+"backchannel_logout_session_required", "needs backchannel_logout_uri")
	}
	for _, p := range cl.Permissions {
		if err := rbac.ValidateGrant(p); err != nil {
			r.fail(field+"permissions", "%v", err)
		}
	}
	validateGroups(r, field, cl)
}

// checkRedirectURI returns why u cannot be a registered redirect URI, or "".
func checkRedirectURI(u string) string {
	pu, err := url.Parse(u)
	switch {
	case err != nil || pu.Scheme == "" || (pu.Host == "" && pu.Opaque == ""):
		return "is not an absolute URL"
	case pu.Fragment != "" || strings.Contains(u, "#"):
		return "must not contain a fragment"
	case pu.Scheme == "javascript" || pu.Scheme == "data":
		return "uses a forbidden scheme"
	}
	return ""
}

// String prints the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }
