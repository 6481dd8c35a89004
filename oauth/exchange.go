package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// defaultExchangeScope is the session scope of an exchange that asks for none.
const defaultExchangeScope = "openid email profile"

// tokenExchangeGrant implements RFC 8693 for upstream tokens: the client
// presents an access token or ID token an upstream issued (an SPA holding
// an Auth0 token) with `provider` naming that upstream. The provider
// validates it; the person is provisioned like at a sign-in and gets a
// new session and Gatehouse tokens.
func (s *Service) tokenExchangeGrant(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*TokenResponse, error) {
	subject, typ, name := form.Get("subject_token"), form.Get("subject_token_type"), form.Get("provider")
	switch {
	case subject == "":
		return nil, invalidRequest("subject_token is required")
	case typ == "":
		return nil, invalidRequest("subject_token_type is required")
	case typ != providers.TokenTypeAccessToken && typ != providers.TokenTypeIDToken && typ != TokenTypeAPIKey:
		return nil, invalidRequest("subject_token_type must be %s, %s or %s", providers.TokenTypeAccessToken, providers.TokenTypeIDToken, TokenTypeAPIKey)
	case form.Get("actor_token") != "" || form.Get("actor_token_type") != "":
		return nil, invalidRequest("delegation (actor_token) is not supported")
	case form.Get("requested_token_type") != "" && form.Get("requested_token_type") != providers.TokenTypeAccessToken:
		return nil, invalidRequest("requested_token_type must be %s", providers.TokenTypeAccessToken)
	}
	for _, param := range []string{"audience", "resource"} {
		if v := form.Get(param); v != "" && !slices.Contains(client.Audience(), v) {
			return nil, oauthErr("invalid_target", "%s %q is not an audience of this client", param, truncate(v, 80))
		}
	}
	if typ == TokenTypeAPIKey {
		return s.apiKeyExchange(ctx, client, subject, meta)
	}
	if name == "" {
		return nil, invalidRequest("provider is required: the name of the provider that issued subject_token")
	}
	// Checked before the subject token, so a refused scope provisions nothing.
	scope, e := client.requestedScope(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	if scope == "" {
		scope = defaultExchangeScope
	}
	prov, ok := s.providers.Get(name)
	if !ok || !client.AllowsProvider(name) {
		return nil, invalidRequest("unknown provider %q", truncate(name, 64))
	}
	exchanger, ok := prov.(providers.TokenExchanger)
	if !ok {
		return nil, invalidRequest("provider %q does not accept token exchange", name)
	}
	refused := func(e *Error, user *models.User) *Error {
		ev := models.AuditEvent{Type: "token_exchange.refused", Outcome: models.OutcomeFailure, Provider: name,
			ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID}
		if user != nil {
			ev.SubjectUserID = ptr(user.ID)
		}
		s.audit(ctx, ev, map[string]any{"reason": e.Description, "subject_token_type": typ})
		return e
	}
	id, err := exchanger.ExchangeToken(ctx, providers.ExchangeRequest{SubjectToken: subject, SubjectTokenType: typ})
	if err != nil {
		return nil, refused(exchangeRefusal(name, err), nil)
	}
	res, err := s.provisioner.Provision(ctx, provisioning.Login{Identity: id,
		Meta: provisioning.Meta{ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID}})
	if errors.Is(err, provisioning.ErrUserDisabled) {
		// Provisioning audited the refusal with the user.
		return nil, refused(invalidGrant("user is disabled"), nil)
	}
	if err != nil {
		return nil, err
	}
	user := res.User
	amr := id.AMR
	if len(amr) == 0 {
		amr = []string{"ext"}
	}
	sess, err := s.sessions.CreateSession(ctx, tokens.NewSession{
		UserID: user.ID, ClientID: client.ID, Provider: name, ActiveOrgID: initialOrg(res, form.Get("organization")),
		Scope: scope, AMR: amr, AuthTime: s.now(), IdentityID: res.IdentityID,
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, models.AuditEvent{Type: "token_exchange", Provider: name, SubjectUserID: ptr(user.ID), ActorUserID: ptr(user.ID),
		ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID},
		map[string]any{"session_id": sess.ID, "subject_token_type": typ})
	resp, err := s.issueForSession(ctx, client, sess, user, issueOptions{noIDToken: true})
	if err != nil {
		return nil, err
	}
	resp.IssuedTokenType = providers.TokenTypeAccessToken
	return resp, nil
}

// exchangeRefusal maps a provider's refusal of a subject token to the
// token endpoint's answer; the description never holds the token.
func exchangeRefusal(provider string, err error) *Error {
	var ue *providers.UserError
	switch {
	case errors.Is(err, providers.ErrUnavailable):
		return &Error{Code: "temporarily_unavailable", Cause: err,
			Description: "the identity provider cannot be reached right now; try again shortly"}
	case errors.As(err, &ue):
		return &Error{Code: "invalid_grant", Description: ue.Message, Cause: err}
	}
	return &Error{Code: "invalid_grant", Cause: err,
		Description: "the subject token is not valid for provider " + provider}
}
