package providers

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// The saml provider makes Gatehouse a SAML 2.0 service provider for one
// identity provider (crewjam/saml's ServiceProvider, used directly: the
// samlsp middleware's cookie tracking does not survive the cross-site POST).
// Requests go out by the HTTP-Redirect binding, signed with RSA-SHA256;
// answers come back by HTTP-POST to the ACS. Which parts of the answer must
// be signed, how the person is identified and which attributes carry their
// email, name and groups are configured per instance.
type samlProvider struct {
	name        string
	displayName string
	entityID    string
	acsURL      url.URL
	metadataURL url.URL
	// recheck holds max_session_age (SAML cannot re-check).
	recheck     RecheckPolicy
	key         *rsa.PrivateKey
	cert        *x509.Certificate
	signRequest bool
	idp         *idpMetadata
	policy      samlPolicy
	replay      ReplayCache
	idpInit     *IdPInitiatedLogin
	log         *slog.Logger
	now         func() time.Time
}

// samlPolicy is what a response must satisfy beyond the SAML rules, and
// how its attributes map to an Identity.
type samlPolicy struct {
	// signed is "either", "assertion" or "response".
	signed            string
	requireEncryption bool
	// nameIDFormat is requested from the IdP and, unless the subject comes
	// from an attribute, required of the NameID.
	nameIDFormat saml.NameIDFormat
	attrs        samlAttributeNames
	trustEmail   bool
	// allowSHA1 accepts XML signatures and digests made with SHA-1
	// (insecure_allow_sha1_signatures).
	allowSHA1 bool
	// maxResponse bounds the posted SAMLResponse (base64, whitespace
	// excluded); the element bound follows from it.
	maxResponse int
}

type samlSettings struct {
	DisplayName     string `yaml:"display_name"`
	IdPMetadataURL  string `yaml:"idp_metadata_url"`
	IdPMetadataFile string `yaml:"idp_metadata_file"`
	// IdPEntityID picks one IdP from metadata that lists several.
	IdPEntityID string `yaml:"idp_entity_id"`
	// MetadataRefresh is how often metadata from a URL is fetched again.
	MetadataRefresh string `yaml:"metadata_refresh"`
	// InsecureHTTPMetadata allows a plain-HTTP metadata URL (metadata is
	// not signed, so only TLS protects the IdP's certificate in transit).
	InsecureHTTPMetadata bool   `yaml:"insecure_http_metadata"`
	EntityID             string `yaml:"entity_id"`
	SPCertificate        string `yaml:"sp_certificate"`
	SPCertificateFile    string `yaml:"sp_certificate_file"`
	SPKey                string `yaml:"sp_key"`
	SPKeyFile            string `yaml:"sp_key_file"`
	SignRequests         *bool  `yaml:"sign_requests"`
	// RequireSignature says which element the IdP must sign: either
	// (default), assertion or response.
	RequireSignature           string              `yaml:"require_signature"`
	RequireEncryptedAssertions bool                `yaml:"require_encrypted_assertions"`
	Preset                     string              `yaml:"preset"`
	NameIDFormat               string              `yaml:"name_id_format"`
	Attributes                 samlAttributeConfig `yaml:"attributes"`
	TrustEmail                 bool                `yaml:"trust_email"`
	IdPInitiated               *struct {
		ClientID    string `yaml:"client_id"`
		RedirectURI string `yaml:"redirect_uri"`
		Scope       string `yaml:"scope"`
	} `yaml:"idp_initiated"`
	// InsecureAllowSHA1Signatures accepts RSA-SHA1 (and other SHA-1) XML
	// signatures and digests; refused in production.
	InsecureAllowSHA1Signatures bool `yaml:"insecure_allow_sha1_signatures"`
	// MaxResponseBytes bounds the base64 SAMLResponse an answer may post.
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// MaxSessionAge: SAML cannot ask the IdP again about a person, so a
	// refresh is refused once the last sign-in through this IdP is older
	// than this (0: no limit but the session's own lifetime).
	MaxSessionAge time.Duration `yaml:"max_session_age"`
}

// samlAttributeConfig names the attributes that carry each field.
type samlAttributeConfig struct {
	Subject   string `yaml:"subject"`
	Email     string `yaml:"email"`
	Name      string `yaml:"name"`
	FirstName string `yaml:"first_name"`
	LastName  string `yaml:"last_name"`
	Groups    string `yaml:"groups"`
	// Username names the attribute read as the person's username
	// (preferred_username downstream).
	Username string `yaml:"username"`
}

func init() { Register("saml", newSAML) }

// SAMLPaths returns the metadata and ACS paths of a SAML provider.
func SAMLPaths(name string) (metadata, acs string) {
	base := "/auth/saml/" + url.PathEscape(name)
	return base + "/metadata", base + "/acs"
}

var nameIDFormats = map[string]saml.NameIDFormat{
	"persistent":   saml.PersistentNameIDFormat,
	"emailAddress": saml.EmailAddressNameIDFormat,
	"unspecified":  saml.UnspecifiedNameIDFormat,
}

func newSAML(name string, settings Settings, env Env) (Provider, error) {
	var s samlSettings
	if settings != nil {
		if err := settings.Decode(&s); err != nil {
			return nil, err
		}
	}
	if env.Replay == nil {
		return nil, errors.New("saml needs a replay cache (internal: Env.Replay)")
	}
	p := &samlProvider{name: name, displayName: s.DisplayName, replay: env.Replay,
		log: env.Log, now: func() time.Time { return time.Now().UTC() }}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.displayName == "" {
		p.displayName = "Single sign-on (" + name + ")"
	}
	base := strings.TrimSuffix(env.BaseURL, "/")
	mdPath, acsPath := SAMLPaths(name)
	for _, u := range []struct {
		dst *url.URL
		raw string
	}{{&p.metadataURL, base + mdPath}, {&p.acsURL, base + acsPath}} {
		parsed, err := url.Parse(u.raw)
		if err != nil {
			return nil, fmt.Errorf("issuer URL: %w", err)
		}
		*u.dst = *parsed
	}
	p.entityID = s.EntityID
	if p.entityID == "" {
		p.entityID = p.metadataURL.String()
	}
	var err error
	if p.policy, err = samlPolicyFrom(&s); err != nil {
		return nil, err
	}
	ae := &SettingsError{}
	if p.recheck = checkMaxSessionAge(s.MaxSessionAge, ae); ae.err() != nil {
		return nil, ae
	}
	if s.InsecureAllowSHA1Signatures && env.Production {
		return nil, errors.New("insecure_allow_sha1_signatures cannot be used with GATEHOUSE_ENV=production: SHA-1 collisions are practical, so an SHA-1 signature no longer proves who wrote what it covers")
	}
	p.signRequest = s.SignRequests == nil || *s.SignRequests
	if s.IdPInitiated != nil {
		t := s.IdPInitiated
		if t.ClientID == "" || t.RedirectURI == "" {
			return nil, errors.New("idp_initiated needs client_id and redirect_uri (the client that receives IdP-initiated sign-ins)")
		}
		if t.Scope == "" {
			t.Scope = "openid email profile"
		}
		p.idpInit = &IdPInitiatedLogin{ClientID: t.ClientID, RedirectURI: t.RedirectURI, Scope: t.Scope}
	}
	if p.idp, err = newIDPMetadata(&s, env); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if p.key, p.cert, err = loadSPCredentials(ctx, name, p.entityID, &s, env.Secrets); err != nil {
		return nil, err
	}
	if err := p.idp.load(ctx); err != nil {
		// A file that cannot be read or parsed is a configuration error; an
		// IdP that is down at start is not: sign-ins wait for its metadata.
		if p.idp.file != "" {
			return nil, err
		}
		p.log.Warn("SAML IdP metadata not loaded yet; sign-ins at this provider fail until it is",
			slog.String("provider", name), slog.String("error", err.Error()))
	}
	p.log.Info("SAML service provider: register these at the identity provider",
		slog.String("provider", name), slog.String("entity_id", p.entityID),
		slog.String("acs_url", p.acsURL.String()), slog.String("metadata_url", p.metadataURL.String()))
	return p, nil
}

func samlPolicyFrom(s *samlSettings) (samlPolicy, error) {
	pol := samlPolicy{signed: s.RequireSignature, requireEncryption: s.RequireEncryptedAssertions, trustEmail: s.TrustEmail,
		allowSHA1: s.InsecureAllowSHA1Signatures, maxResponse: s.MaxResponseBytes}
	switch {
	case pol.maxResponse == 0:
		pol.maxResponse = defaultMaxResponseBytes
	case pol.maxResponse < minMaxResponseBytes || pol.maxResponse > maxMaxResponseBytes:
		return pol, fmt.Errorf("max_response_bytes must be between %d and %d, not %d", minMaxResponseBytes, maxMaxResponseBytes, pol.maxResponse)
	}
	switch pol.signed {
	case "":
		pol.signed = "either"
	case "either", "assertion", "response":
	default:
		return pol, fmt.Errorf("require_signature must be either, assertion or response, not %q", pol.signed)
	}
	preset, ok := samlPresets[s.Preset]
	if !ok {
		return pol, fmt.Errorf("preset must be one of okta, entra, google, adfs (or empty), not %q", s.Preset)
	}
	pol.attrs = preset.attrs.override(s.Attributes)
	format := s.NameIDFormat
	if format == "" {
		format = preset.nameIDFormat
	}
	if format == "" && pol.attrs.subject != nil {
		format = "unspecified"
	}
	if format == "" {
		format = "persistent"
	}
	if f, ok := nameIDFormats[format]; ok {
		pol.nameIDFormat = f
	} else {
		return pol, fmt.Errorf("name_id_format must be persistent, emailAddress or unspecified, not %q (a transient NameID changes at every sign-in)", format)
	}
	return pol, nil
}

// RecheckPolicy holds max_session_age: SAML cannot re-check.
func (p *samlProvider) RecheckPolicy() RecheckPolicy { return p.recheck }

func (p *samlProvider) Name() string        { return p.name }
func (p *samlProvider) Type() string        { return "saml" }
func (p *samlProvider) DisplayName() string { return p.displayName }

// PostURL is the ACS: the IdP answers with a POST from its own site.
func (p *samlProvider) PostURL() string { return p.acsURL.String() }

// CheckPost reads the SAMLResponse and RelayState of an answer and refuses,
// without decoding anything, one that is not a single base64
// SAMLResponse within max_response_bytes. A RelayState longer than the
// 80 bytes SAML allows (ours are 43) is dropped, not posted again: it
// cannot name a sign-in of ours.
func (p *samlProvider) CheckPost(form url.Values) (map[string]string, string, error) {
	relay := form.Get("RelayState")
	if len(relay) > maxRelayStateBytes || len(form["RelayState"]) > 1 {
		relay = ""
	}
	if form.Get("SAMLart") != "" {
		// Artifact resolution would make Gatehouse call out on the sender's
		// behalf; only the POST binding is offered in our metadata.
		return nil, relay, samlFail(failMalformed, "artifact binding is not supported")
	}
	encoded, err := p.encodedResponse(form)
	if err != nil {
		return nil, relay, err
	}
	fields := map[string]string{"SAMLResponse": encoded}
	if relay != "" {
		fields["RelayState"] = relay
	}
	return fields, relay, nil
}

// IdPInitiatedTarget reports where unsolicited sign-ins go, if anywhere.
func (p *samlProvider) IdPInitiatedTarget() (IdPInitiatedLogin, bool) {
	if p.idpInit == nil {
		return IdPInitiatedLogin{}, false
	}
	return *p.idpInit, true
}

// serviceProvider returns a ServiceProvider bound to the current IdP
// metadata; each call gets its own copy, so per-request hooks never leak
// between requests.
func (p *samlProvider) serviceProvider(ctx context.Context) (*saml.ServiceProvider, error) {
	md, err := p.idp.get(ctx)
	if err != nil {
		return nil, &UserError{Message: "The identity provider's metadata cannot be loaded right now, please try again in a moment.",
			Err: fmt.Errorf("%w: idp metadata: %v", ErrUnavailable, err)}
	}
	sp := &saml.ServiceProvider{
		EntityID: p.entityID, Key: p.key, Certificate: p.cert,
		MetadataURL: p.metadataURL, AcsURL: p.acsURL, IDPMetadata: md,
		AuthnNameIDFormat: p.policy.nameIDFormat,
	}
	if p.signRequest {
		// RSA-SHA256: crewjam's default for RSA keys would be SHA-1.
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	return sp, nil
}

// relayStateSyntax is what may go into the RelayState unescaped (crewjam
// appends it to the redirect URL as is).
var relayStateSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{16,80}$`)

// Begin sends an AuthnRequest by the redirect binding; the state travels
// as the RelayState, and the request id (for InResponseTo) and max_age
// are Saved.
func (p *samlProvider) Begin(ctx context.Context, req BeginRequest) (*Challenge, error) {
	if !relayStateSyntax.MatchString(req.State) {
		return nil, fmt.Errorf("saml: state must be base64url, 16 to 80 characters")
	}
	sp, err := p.serviceProvider(ctx)
	if err != nil {
		return nil, err
	}
	if forceAuthn(req) {
		force := true
		sp.ForceAuthn = &force
	}
	location := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	areq, err := sp.MakeAuthenticationRequest(location, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return nil, fmt.Errorf("saml: authentication request: %w", err)
	}
	u, err := areq.Redirect(req.State, sp)
	if err != nil {
		return nil, fmt.Errorf("saml: redirect: %w", err)
	}
	saved, err := samlSaved{RequestID: areq.ID, MaxAge: req.MaxAge}.encode()
	if err != nil {
		return nil, err
	}
	return &Challenge{RedirectURL: u.String(), Saved: saved}, nil
}

// forceAuthn reports whether the AuthnRequest must ask the IdP to
// authenticate the person again rather than reuse its own session:
// prompt=login, prompt=consent (which Gatehouse honours as a sign-in),
// or any max_age. SAML cannot ask for "a sign-in no older than N", only
// for a fresh one; Complete checks the AuthnInstant against max_age in
// case the IdP ignores ForceAuthn.
func forceAuthn(req BeginRequest) bool {
	for _, v := range strings.Fields(req.Prompt) {
		if v == "login" || v == "consent" {
			return true
		}
	}
	return req.MaxAge != nil
}

// samlSaved is the per-login data of a SAML sign-in, sealed by the caller
// and handed back to Complete: the AuthnRequest id the answer must be in
// response to, and the client's max_age the AuthnInstant must satisfy.
type samlSaved struct {
	RequestID string `json:"i"`
	MaxAge    *int   `json:"m,omitempty"`
}

// encode is the bare request id when there is no max_age (the form login
// states had before max_age was carried), JSON otherwise.
func (s samlSaved) encode() (string, error) {
	if s.MaxAge == nil {
		return s.RequestID, nil
	}
	age := max(*s.MaxAge, 0)
	s.MaxAge = &age
	b, err := json.Marshal(s)
	return string(b), err
}

// decodeSAMLSaved reads what encode wrote. A request id never starts
// with "{" (crewjam's are "id-" and hex), so the two forms cannot be
// confused; JSON that does not parse, or names no request, is refused.
func decodeSAMLSaved(saved string) (samlSaved, error) {
	if !strings.HasPrefix(saved, "{") {
		return samlSaved{RequestID: saved}, nil
	}
	var s samlSaved
	if err := json.Unmarshal([]byte(saved), &s); err != nil || s.RequestID == "" {
		return samlSaved{}, samlFail(failRequest, "the saved sign-in data cannot be read")
	}
	return s, nil
}

// Complete validates the POSTed SAMLResponse (the caller has parsed the
// form). Saved (what Begin returned) names the AuthnRequest the answer
// must be in response to, unless the request is Unsolicited, and the
// max_age its AuthnInstant must satisfy.
func (p *samlProvider) Complete(ctx context.Context, req CompleteRequest) (*Identity, error) {
	r := req.HTTP
	if r.Method != "POST" {
		return nil, samlFail(failMalformed, "the ACS expects a POST")
	}
	if r.PostForm == nil {
		if err := r.ParseForm(); err != nil {
			return nil, samlFail(failMalformed, "form: "+err.Error())
		}
	}
	fields, _, err := p.CheckPost(r.PostForm)
	if err != nil {
		return nil, err
	}
	if req.Unsolicited && p.idpInit == nil {
		return nil, samlFail(failUnsolicited, "IdP-initiated sign-in is not enabled")
	}
	var saved samlSaved
	if !req.Unsolicited {
		if saved, err = decodeSAMLSaved(req.Saved); err != nil {
			return nil, err
		}
		if saved.RequestID == "" {
			return nil, samlFail(failRequest, "no request id to match InResponseTo")
		}
	}
	// The cheap checks (size, base64, a streaming scan of the XML) come
	// before the metadata, the tree and any signature.
	raw, err := p.decodeResponse(fields["SAMLResponse"])
	if err != nil {
		return nil, err
	}
	sp, err := p.serviceProvider(ctx)
	if err != nil {
		return nil, err
	}
	return p.validate(ctx, sp, raw, saved, req.Unsolicited)
}

// Metadata serves the SP descriptor: entity id, ACS (POST binding only),
// and the certificate for signatures and encryption.
func (p *samlProvider) Metadata(ctx context.Context) ([]byte, string, error) {
	sp := &saml.ServiceProvider{EntityID: p.entityID, Key: p.key, Certificate: p.cert,
		MetadataURL: p.metadataURL, AcsURL: p.acsURL, AuthnNameIDFormat: p.policy.nameIDFormat}
	if p.signRequest {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	md := sp.Metadata()
	for i := range md.SPSSODescriptors {
		d := &md.SPSSODescriptors[i]
		var acs []saml.IndexedEndpoint
		for _, e := range d.AssertionConsumerServices {
			if e.Binding == saml.HTTPPostBinding {
				acs = append(acs, e)
			}
		}
		d.AssertionConsumerServices = acs
	}
	out, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, "", err
	}
	return append([]byte(xml.Header), out...), "application/samlmetadata+xml", nil
}
