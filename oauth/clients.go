package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
)

// Client is a registered application with its effective lifetimes.
type Client struct {
	config.Client
	AccessTTL      time.Duration
	IDTokenTTL     time.Duration
	allowedProvSet map[string]bool
}

// ClientCredentials are what a request presented to authenticate a client.
type ClientCredentials struct {
	ID     string
	Secret string
	// Basic is true when they came in the Authorization header.
	Basic bool
	// BothMethods is true when the request used more than one method,
	// which RFC 6749 §2.3 forbids.
	BothMethods bool
}

// Audience is the `aud` of this client's access tokens.
func (c *Client) Audience() []string {
	if len(c.Client.Audience) > 0 {
		return c.Client.Audience
	}
	return []string{c.ID}
}

// AllowsProvider reports whether the client may sign in through provider.
func (c *Client) AllowsProvider(name string) bool {
	return len(c.allowedProvSet) == 0 || c.allowedProvSet[name]
}

// RegisteredRedirect reports whether uri exactly matches a registered one.
func (c *Client) RegisteredRedirect(uri string) bool {
	return slices.Contains(c.RedirectURIs, uri)
}

// RegisteredPostLogout reports whether uri exactly matches a registered
// post-logout redirect URI.
func (c *Client) RegisteredPostLogout(uri string) bool {
	return slices.Contains(c.PostLogoutRedirectURIs, uri)
}

// MayIntrospect reports whether introspection may tell this client that
// a token of tokenClient with audience aud is active: its own token, an
// access token whose aud names it (it is the resource server the token
// is for), or any token when it is configured with introspect_any.
func (c *Client) MayIntrospect(tokenClient string, aud []string) bool {
	return c.IntrospectAny || (tokenClient != "" && tokenClient == c.ID) || slices.Contains(aud, c.ID)
}

// checkSecret compares in constant time against the stored hash.
func (c *Client) checkSecret(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], c.SecretHash[:]) == 1 && secret != ""
}

// AuthenticateClient resolves and authenticates the client of a token,
// revocation or introspection request (RFC 6749 §2.3,
// client_secret_basic and client_secret_post; public clients present
// only their id), so the caller can apply per-client limits to real
// clients only. A failure returns no client; failed authentication is
// invalid_client and is audited, aggregated per client and minute (see
// authFailures); meta describes the request.
func (s *Service) AuthenticateClient(ctx context.Context, cred ClientCredentials, meta RequestMeta) (*Client, error) {
	// fail refuses cred: failed authentication (not a malformed request)
	// is counted for the client the id names, if one is configured.
	fail := func(c *Client, reason string, err error) (*Client, error) {
		id := ""
		if c != nil {
			id = c.ID
		}
		s.authFailures.failed(ctx, id, reason, meta)
		return nil, err
	}
	if cred.BothMethods {
		return nil, invalidRequest("use one client authentication method only")
	}
	if cred.ID == "" {
		return fail(nil, authFailNoClientID, invalidClient("client authentication required"))
	}
	c, ok := s.Client(cred.ID)
	if !ok {
		return fail(nil, authFailUnknownClient, invalidClient("client authentication failed"))
	}
	if c.Public {
		if cred.Secret != "" {
			return fail(c, authFailPublicWithPass, invalidClient("client authentication failed"))
		}
		return c, nil
	}
	if !c.checkSecret(cred.Secret) {
		return fail(c, authFailWrongSecret, invalidClient("client authentication failed"))
	}
	return c, nil
}

// FlushClientAuthFailures writes the summary rows of failed client
// authentication for minutes that are over; all writes the current
// minute's too (at shutdown). The app calls it every minute.
func (s *Service) FlushClientAuthFailures(ctx context.Context, all bool) {
	s.authFailures.flush(ctx, all)
}

// ParseBasicAuth decodes client_secret_basic credentials, which RFC 6749
// §2.3.1 form-urlencodes before base64.
func ParseBasicAuth(user, pass string) (string, string, bool) {
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return id, secret, true
}

func newClient(c config.Client, cfg *config.Config) *Client {
	cl := &Client{Client: c, AccessTTL: cfg.AccessTokenTTL, IDTokenTTL: cfg.IDTokenTTL, allowedProvSet: map[string]bool{}}
	if c.AccessTokenTTL > 0 {
		cl.AccessTTL = time.Duration(c.AccessTokenTTL)
	}
	if c.IDTokenTTL > 0 {
		cl.IDTokenTTL = time.Duration(c.IDTokenTTL)
	}
	for _, p := range c.AllowedProviders {
		cl.allowedProvSet[strings.TrimSpace(p)] = true
	}
	return cl
}
