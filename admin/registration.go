package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// OAuth 2.0 Dynamic Client Registration (RFC 7591) and its management
// protocol (RFC 7592), when config.Registration is enabled. Registering
// takes the configured initial access token; what registers is a web
// client (public with token_endpoint_auth_method none, or confidential)
// whose redirect URIs name allowed hosts and whose grant types are
// allowed, stored like any database client (origin registration). Its
// registration access token (hashed at rest) reads, replaces and deletes
// it. Nothing else of a client can be set this way: no audience, scopes,
// permissions, groups or lifetimes.

// RegistrationError is a refusal in RFC 7591 §3.2.2 / RFC 6750 terms:
// Status is the HTTP status, Code the error code.
type RegistrationError struct {
	Status      int
	Code        string
	Description string
}

func (e *RegistrationError) Error() string { return e.Code + ": " + e.Description }

func metadataError(format string, args ...any) error {
	return &RegistrationError{400, "invalid_client_metadata", fmt.Sprintf(format, args...)}
}

func redirectError(format string, args ...any) error {
	return &RegistrationError{400, "invalid_redirect_uri", fmt.Sprintf(format, args...)}
}

// errBadRegistrationToken answers any failed check of a bearer token
// alike, whether the client exists or not (RFC 7592 §2).
var errBadRegistrationToken = &RegistrationError{401, "invalid_token", "the access token is not valid for this request"}

// ClientMetadata is a registration request's metadata (RFC 7591 §2 and
// OpenID Connect Dynamic Registration's post_logout_redirect_uris).
// Other metadata is ignored, as RFC 7591 §2 allows.
type ClientMetadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
}

// RegisteredClient is the answer to a registration or a read (RFC 7591
// §3.2.1, RFC 7592 §3): the metadata in force, the client_secret once
// (at registration, or when an update made the client confidential),
// and the registration access token (at registration only).
type RegisteredClient struct {
	ClientMetadata
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

// RegistrationEnabled reports whether Dynamic Client Registration is on.
func (s *Service) RegistrationEnabled() bool {
	return s.clients.Config != nil && s.clients.Config.Registration.Enabled
}

// RegisterClient registers a client (RFC 7591) for the holder of the
// initial access token; issuer builds registration_client_uri.
func (s *Service) RegisterClient(ctx context.Context, a Actor, initialToken, issuer string, md ClientMetadata) (*RegisteredClient, error) {
	if !s.RegistrationEnabled() {
		return nil, &RegistrationError{404, "not_found", "dynamic client registration is off"}
	}
	reg := &s.clients.Config.Registration
	sum := sha256.Sum256([]byte(initialToken))
	if initialToken == "" || subtle.ConstantTimeCompare(sum[:], reg.InitialAccessTokenHash[:]) != 1 {
		return nil, errBadRegistrationToken
	}
	if md.ClientID != "" {
		return nil, metadataError("client_id is assigned by Gatehouse")
	}
	fields, err := registrationFields(reg, md)
	if err != nil {
		return nil, err
	}
	fields["client_id"] = "dcr-" + randomSecret(16)
	token := randomSecret(32)
	a.Via = "registration"
	// The limit is counted where the client is inserted, under the
	// clients' change lock: concurrent registrations cannot overrun it.
	res, err := s.createClient(ctx, a, fields, models.ClientOriginRegistration, hashSecret(token), int64(max(reg.MaxClients, 1)))
	if errors.Is(err, errClientLimit) {
		return nil, &RegistrationError{403, "access_denied", "the limit of registered clients is reached"}
	}
	if err != nil {
		return nil, registrationRefusal(err)
	}
	out := registeredView(res.Client, issuer)
	out.ClientSecret, out.RegistrationAccessToken = res.Secret, token
	return out, nil
}

// ReadRegistration returns a registered client to the holder of its
// registration access token (RFC 7592 §2.1).
func (s *Service) ReadRegistration(ctx context.Context, id, token, issuer string) (*RegisteredClient, error) {
	row, err := s.registered(ctx, id, token)
	if err != nil {
		return nil, err
	}
	return registeredView(s.storedView(*row), issuer), nil
}

// UpdateRegistration replaces a registered client's metadata (RFC 7592
// §2.2): what the request leaves out is removed. A client made
// confidential gets a secret, answered this once.
func (s *Service) UpdateRegistration(ctx context.Context, a Actor, id, token, issuer string, md ClientMetadata) (*RegisteredClient, error) {
	row, err := s.registered(ctx, id, token)
	if err != nil {
		return nil, err
	}
	if md.ClientID != id {
		return nil, metadataError("client_id must be the client's")
	}
	fields, err := registrationFields(&s.clients.Config.Registration, md)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"name", "post_logout_redirect_uris", "token_endpoint_auth_method"} {
		if _, ok := fields[k]; !ok {
			fields[k] = nil
		}
	}
	a.Via = "registration"
	// The client must still be the one whose token was checked.
	same := func(now *models.StoredClient) error {
		if now.RegistrationTokenHash != row.RegistrationTokenHash {
			return errBadRegistrationToken
		}
		return nil
	}
	res, err := s.updateStored(ctx, a, id, fields, same)
	if err != nil {
		return nil, registrationRefusal(err)
	}
	out := registeredView(res.Client, issuer)
	out.ClientSecret = res.Secret
	return out, nil
}

// DeleteRegistration deletes a registered client and ends its sessions
// (RFC 7592 §2.3).
func (s *Service) DeleteRegistration(ctx context.Context, a Actor, id, token string) error {
	if _, err := s.registered(ctx, id, token); err != nil {
		return err
	}
	a.Via = "registration"
	_, err := s.deleteClient(ctx, a, id)
	return err
}

// registered returns the registered client whose registration access
// token this is; any mismatch is the same 401.
func (s *Service) registered(ctx context.Context, id, token string) (*models.StoredClient, error) {
	if !s.RegistrationEnabled() {
		return nil, &RegistrationError{404, "not_found", "dynamic client registration is off"}
	}
	if _, ok := s.configuredClient(id); ok || token == "" {
		return nil, errBadRegistrationToken
	}
	row, err := s.store.FindStoredClient(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, errBadRegistrationToken
	}
	if err != nil {
		return nil, err
	}
	want, err := hex.DecodeString(row.RegistrationTokenHash)
	sum := sha256.Sum256([]byte(token))
	if err != nil || len(want) != sha256.Size || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, errBadRegistrationToken
	}
	return row, nil
}

// registrationFields turns metadata into a stored client's fields within
// the configured limits.
func registrationFields(reg *config.Registration, md ClientMetadata) (map[string]any, error) {
	public := false
	switch md.TokenEndpointAuthMethod {
	case "none":
		public = true
	case "", "client_secret_basic", "client_secret_post":
	default:
		return nil, metadataError("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
	}
	if len(md.RedirectURIs) == 0 {
		return nil, redirectError("redirect_uris is required")
	}
	for _, list := range [][]string{md.RedirectURIs, md.PostLogoutRedirectURIs} {
		for _, u := range list {
			if err := checkRegisteredURI(reg, u); err != nil {
				return nil, err
			}
		}
	}
	grants := md.GrantTypes
	if len(grants) == 0 {
		grants = []string{config.GrantAuthorizationCode}
	}
	for _, g := range grants {
		if !slices.Contains(reg.GrantTypes, g) {
			return nil, metadataError("grant type %q may not be registered here (allowed: %s)", g, strings.Join(reg.GrantTypes, ", "))
		}
	}
	if !slices.Contains(grants, config.GrantAuthorizationCode) {
		return nil, metadataError("grant_types must include authorization_code")
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return nil, metadataError("response_types may only be code")
		}
	}
	if len(md.ClientName) > 200 {
		return nil, metadataError("client_name is longer than 200 characters")
	}
	fields := map[string]any{"public": public, "redirect_uris": toAny(md.RedirectURIs), "grant_types": toAny(grants)}
	if m := md.TokenEndpointAuthMethod; m == config.AuthClientSecretBasic || m == config.AuthClientSecretPost {
		// The method registered is the one the client may use.
		fields["token_endpoint_auth_method"] = m
	}
	if md.ClientName != "" {
		fields["name"] = md.ClientName
	}
	if len(md.PostLogoutRedirectURIs) > 0 {
		fields["post_logout_redirect_uris"] = toAny(md.PostLogoutRedirectURIs)
	}
	return fields, nil
}

// checkRegisteredURI: an https URL (http only to a loopback host) on an
// allowed host.
func checkRegisteredURI(reg *config.Registration, u string) error {
	pu, err := url.Parse(u)
	switch {
	case err != nil || pu.Host == "":
		return redirectError("%q is not an absolute URL", u)
	case pu.Scheme != "https" && !(pu.Scheme == "http" && config.IsLoopbackHost(pu.Hostname())):
		return redirectError("%q must use https", u)
	case !reg.AllowsRedirectHost(pu.Hostname()):
		return redirectError("the host of %q is not one registered clients may use", u)
	}
	return nil
}

// registrationRefusal words the stored clients' refusals in RFC 7591
// terms.
func registrationRefusal(err error) error {
	var in *InputError
	if errors.As(err, &in) {
		if in.Field == "redirect_uris" || in.Field == "post_logout_redirect_uris" {
			return redirectError("%s: %s", in.Field, in.Reason)
		}
		return metadataError("%s: %s", in.Field, in.Reason)
	}
	return err
}

// registeredView answers with the client's metadata as stored, its
// token_endpoint_auth_method included (the one it must use).
func registeredView(v ClientView, issuer string) *RegisteredClient {
	id := fmt.Sprint(v["client_id"])
	out := &RegisteredClient{RegistrationClientURI: strings.TrimSuffix(issuer, "/") + "/auth/register/" + url.PathEscape(id)}
	out.ClientID = id
	out.RedirectURIs = strList(v["redirect_uris"])
	out.PostLogoutRedirectURIs = strList(v["post_logout_redirect_uris"])
	out.GrantTypes = strList(v["grant_types"])
	out.ResponseTypes = []string{"code"}
	out.ClientName, _ = v["name"].(string)
	public, _ := v["public"].(bool)
	out.TokenEndpointAuthMethod, _ = v["token_endpoint_auth_method"].(string)
	switch {
	case public:
		out.TokenEndpointAuthMethod = "none"
	case out.TokenEndpointAuthMethod == "":
		// Either secret method works; basic is RFC 7591's default.
		out.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if !public && out.TokenEndpointAuthMethod != config.AuthPrivateKeyJWT {
		never := int64(0)
		out.ClientSecretExpiresAt = &never
	}
	switch t := v["created_at"].(type) {
	case interface{ Unix() int64 }:
		out.ClientIDIssuedAt = t.Unix()
	}
	return out
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

func strList(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}
