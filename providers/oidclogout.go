package providers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/fault"
)

// ErrNoUpstreamLogout: the upstream cannot be sent a logout now (its
// discovery names no usable end_session_endpoint, or has not succeeded
// yet), or what the logout would send is not this upstream's.
var ErrNoUpstreamLogout = fault.New(fault.UpstreamUnavailable, errors.New("upstream logout unavailable"))

// oidcLogoutProvider is an OpenID Connect provider configured with
// upstream_logout: true. Only this type implements UpstreamLogout, so a
// provider without the option never looks as if it could log out
// upstream; with the option, LogoutURL still fails when discovery found
// no end_session_endpoint (warned about in the log when discovery
// succeeds).
type oidcLogoutProvider struct {
	*oidcProvider
}

// LogoutURL builds the RP-Initiated Logout 1.0 request to the upstream's
// end_session_endpoint: id_token_hint (saved, the raw upstream ID token of
// the sign-in; omitted when empty), client_id, post_logout_redirect_uri
// and state. The hint is only a hint (an expired one is fine) but it must
// be an ID token this upstream issued to Gatehouse: a token of another
// upstream is never sent here. postLogoutRedirectURI must be an absolute
// http(s) URL, registered at the upstream.
func (p *oidcLogoutProvider) LogoutURL(ctx context.Context, saved, postLogoutRedirectURI, state string) (string, error) {
	d, err := p.ready(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: discovery has not succeeded", ErrNoUpstreamLogout)
	}
	if d.endSession == "" {
		return "", fmt.Errorf("%w: the discovery document of %s names no usable end_session_endpoint", ErrNoUpstreamLogout, p.name)
	}
	if post, err := url.Parse(postLogoutRedirectURI); postLogoutRedirectURI != "" &&
		(err != nil || post.Host == "" || (post.Scheme != "https" && post.Scheme != "http") || post.Fragment != "") {
		return "", fmt.Errorf("%w: post_logout_redirect_uri is not an absolute URL", ErrNoUpstreamLogout)
	}
	if saved != "" && !p.ownIDToken(saved) {
		return "", fmt.Errorf("%w: the saved id_token_hint is not an ID token this upstream issued to Gatehouse", ErrNoUpstreamLogout)
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return "", fmt.Errorf("%w: end_session_endpoint: %v", ErrNoUpstreamLogout, err)
	}
	q := u.Query() // an endpoint may carry parameters of its own
	if saved != "" {
		q.Set("id_token_hint", saved)
	}
	q.Set("client_id", p.cfg.clientID)
	if postLogoutRedirectURI != "" {
		q.Set("post_logout_redirect_uri", postLogoutRedirectURI)
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// ownIDToken reports whether raw looks like an ID token this upstream
// issued to Gatehouse: a bounded three-part JWT whose iss is the
// configured issuer and whose aud contains the client id. The signature
// was checked at sign-in; this only keeps a mixed-up or tampered value
// (another upstream's token) from being sent to this upstream.
func (p *oidcProvider) ownIDToken(raw string) bool {
	if len(raw) > maxUpstreamTokenBytes {
		return false
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c claimSet
	if err != nil || json.Unmarshal(body, &c) != nil {
		return false
	}
	return c.str("iss") == p.cfg.issuer && slices.Contains(c.audience(), p.cfg.clientID)
}

// checkEndSession validates an end_session_endpoint from discovery: an
// absolute https URL (http only with insecure_allow_http), no fragment.
func (p *oidcProvider) checkEndSession(raw string) error {
	if raw == "" {
		return errors.New("is missing")
	}
	if err := p.checkEndpoint(raw); err != nil {
		return err
	}
	if u, _ := url.Parse(raw); u.Fragment != "" {
		return errors.New("must not carry a fragment")
	}
	return nil
}
