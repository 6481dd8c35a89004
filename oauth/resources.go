package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/claims"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// refreshPrefix marks Gatehouse refresh tokens, so revocation and
// introspection know what they hold without a hint.
const refreshPrefix = "ghr_"

// AuditTokenRevoked is the audit event of an RFC 7009 revocation that
// ended a session.
const AuditTokenRevoked = "token.revoked"

// RevokeFor implements RFC 7009 for a client AuthenticateClient
// accepted: revoking a refresh token or an access token ends its whole
// session. Unknown or already invalid tokens are not an error (§2.2);
// tokens of another client are left alone, silently. The call that ends
// a session records a "token.revoked" audit event; repeating it records
// nothing more.
func (s *Service) RevokeFor(ctx context.Context, client *Client, form url.Values, meta RequestMeta) error {
	token := form.Get("token")
	if token == "" {
		return invalidRequest("token is required")
	}
	if strings.HasPrefix(token, refreshPrefix) {
		sess, ended, err := s.sessions.RevokeRefreshTokenSession(ctx, token, client.ID)
		if err != nil && !errors.Is(err, tokens.ErrGrantInvalid) {
			return err
		}
		if ended && sess != nil {
			s.auditRevocation(ctx, client, sess.ID, sess.UserID, "refresh_token", meta)
		}
		return nil
	}
	claims, err := s.keys.VerifyAccessToken(token, s.issuer, s.now())
	if err != nil || claims.ClientID != client.ID || claims.SessionID == "" {
		return nil
	}
	ended, err := s.sessions.EndSession(ctx, claims.SessionID, "revoked_by_client")
	if errors.Is(err, models.ErrNotFound) { // pruned meanwhile
		return nil
	}
	if err != nil {
		return err
	}
	if ended {
		s.auditRevocation(ctx, client, claims.SessionID, claims.Subject, "access_token", meta)
	}
	return nil
}

func (s *Service) auditRevocation(ctx context.Context, client *Client, sessionID, userID, tokenType string, meta RequestMeta) {
	s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditTokenRevoked, SubjectUserID: ptr(userID), ClientID: client.ID,
		IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"session_id": sessionID, "token_type": tokenType})
}

// Introspection is an RFC 7662 response: whether the credential is
// active, and for an active one what claims.Introspected states.
type Introspection struct {
	Active bool `json:"active"`
	claims.Introspected
}

// IntrospectFor implements RFC 7662 for a confidential client
// AuthenticateClient accepted. Revocation is seen at once: an access
// token of a revoked session is inactive. A token is answered active
// only to a client entitled to it (Client.MayIntrospect); any other
// client gets {"active": false}, as for an unknown token. API keys are
// not bound to a client: every confidential client may check one (the
// rbac package does for X-API-Key).
func (s *Service) IntrospectFor(ctx context.Context, client *Client, form url.Values) (*Introspection, error) {
	if client.Public {
		return nil, unauthorizedClient("introspection requires a confidential client")
	}
	token := form.Get("token")
	if token == "" {
		return nil, invalidRequest("token is required")
	}
	inactive := &Introspection{Active: false}
	if strings.HasPrefix(token, tokens.APIKeyPrefix) {
		return s.introspectAPIKey(ctx, token)
	}
	if strings.HasPrefix(token, refreshPrefix) {
		info, err := s.sessions.LookupRefreshToken(ctx, token)
		if models.IsTransient(err) {
			return nil, err // a 503 to retry: a live token is not "inactive"
		}
		if err != nil || info == nil || !info.Active || !client.MayIntrospect(info.ClientID, nil) {
			return inactive, nil
		}
		out := &Introspection{Active: true, Introspected: claims.Introspected{TokenType: claims.TokenTypeRefreshToken,
			ClientID: info.ClientID, Sub: info.UserID, Scope: info.Scope, Iat: info.IssuedAt.Unix(), Exp: info.ExpiresAt.Unix(),
			Iss: s.issuer, SessionID: info.SessionID}}
		if info.ActiveOrgID != nil {
			out.OrgID = *info.ActiveOrgID
		}
		return out, nil
	}
	at, err := s.verifyLive(ctx, token)
	if models.IsTransient(err) {
		return nil, err
	}
	if err != nil || !client.MayIntrospect(at.ClientID, at.Audience) {
		return inactive, nil
	}
	out := &Introspection{Active: true, Introspected: claims.Introspected{TokenType: claims.TokenTypeAccessToken,
		Scope: at.Scope, ClientID: at.ClientID, Exp: at.Expiry, Iat: at.IssuedAt, Nbf: at.NotBefore, Sub: at.Subject,
		Aud: at.Audience, Iss: at.Issuer, Jti: at.ID, SessionID: at.SessionID, OrgID: at.OrgID, Roles: at.Roles,
		Permissions: at.Permissions, Username: at.Email}}
	return out, nil
}

// verifyLive verifies an access token and that what it stands for is
// still live: its session, or for a token exchanged for an API key (sub
// "apikey:<id>") the key. Tokens of client_credentials need neither.
func (s *Service) verifyLive(ctx context.Context, token string) (*tokens.AccessClaims, error) {
	at, err := s.keys.VerifyAccessToken(token, s.issuer, s.now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if at.SessionID == "" && strings.HasPrefix(at.Subject, claims.APIKeySubjectPrefix) {
		ok, err := s.apiKeyTokenLive(ctx, at)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: the API key is disabled, deleted or expired", ErrInvalidToken)
		}
	}
	if at.SessionID != "" {
		ok, err := s.sessions.SessionActive(ctx, at.SessionID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: session ended", ErrInvalidToken)
		}
	}
	return at, nil
}

// userFor verifies a bearer token and loads its (enabled) user, as
// stated downstream (statedUser).
func (s *Service) userFor(ctx context.Context, bearer string) (*tokens.AccessClaims, *models.User, error) {
	claims, err := s.verifyLive(ctx, bearer)
	if err != nil {
		return nil, nil, err
	}
	if claims.SessionID == "" {
		return nil, nil, fmt.Errorf("%w: the token does not represent a user", ErrInvalidToken)
	}
	user, err := s.store.FindUser(ctx, claims.Subject)
	if errors.Is(err, models.ErrNotFound) || (err == nil && user.Disabled) {
		return nil, nil, fmt.Errorf("%w: user unknown or disabled", ErrInvalidToken)
	}
	if err != nil {
		return nil, nil, err
	}
	user, err = s.statedUser(ctx, user)
	return claims, user, err
}

// UserInfo answers the OIDC UserInfo endpoint; claims follow the scopes:
// email; profile (name, picture, and preferred_username from the
// session's identity); groups, filtered by the client's configuration
// as in its tokens (and left out, with an audit event, over the bound).
func (s *Service) UserInfo(ctx context.Context, bearer string) (map[string]any, error) {
	claims, user, err := s.userFor(ctx, bearer)
	if err != nil {
		return nil, err
	}
	scopes := strings.Fields(claims.Scope)
	out := map[string]any{"sub": user.ID}
	if slices.Contains(scopes, "email") {
		out["email"], out["email_verified"] = user.Email, user.EmailVerified
	}
	if slices.Contains(scopes, "profile") {
		out["name"] = user.Name
		if user.AvatarURL != "" {
			out["picture"] = user.AvatarURL
		}
	}
	client, _ := s.Client(claims.ClientID)
	if client == nil { // taken out of the configuration: no groups
		client = &Client{}
	}
	if client.wantsIdentity(scopes) {
		sess, err := s.sessions.GetSession(ctx, claims.SessionID)
		if err != nil {
			return nil, err
		}
		ident, err := s.sessionIdentity(ctx, client, sess, scopes)
		if err != nil {
			return nil, err
		}
		if ident.username != "" && slices.Contains(scopes, "profile") {
			out["preferred_username"] = ident.username
		}
		if groups := s.groupsFor(ctx, client, sess, scopes, ident, "userinfo"); groups != nil {
			out["groups"] = groups
		}
	}
	return out, nil
}

// Me describes the signed-in user for /auth/me.
type Me struct {
	ID            string `json:"id"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name"`
	// PreferredUsername is the username at the upstream of the identity
	// the session came through ("" when it names none).
	PreferredUsername string           `json:"preferred_username,omitempty"`
	AvatarURL         string           `json:"avatar_url,omitempty"`
	Identities        []MeIdentity     `json:"identities"`
	Organizations     []MeOrganization `json:"organizations"`
	ActiveOrgID       string           `json:"active_org_id,omitempty"`
	Roles             []string         `json:"roles"`
	Permissions       []string         `json:"permissions"`
	SessionID         string           `json:"session_id"`
}

// MeIdentity is one linked upstream account.
type MeIdentity struct {
	Provider      string `json:"provider"`
	Subject       string `json:"subject"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified"`
	// Username is the identity's username at its upstream. The identity's
	// upstream groups are not listed: any client's token reads /auth/me,
	// and groups reach a client only through its groups filter.
	Username    string `json:"username,omitempty"`
	LastLoginAt string `json:"last_login_at,omitempty"`
}

// MeOrganization is one membership.
type MeOrganization struct {
	ID     string `json:"id"`
	Slug   string `json:"slug"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	Status string `json:"status"`
	Source string `json:"source"`
	Active bool   `json:"active"`
}

// Me returns the user, identities, organizations and current grants.
func (s *Service) Me(ctx context.Context, bearer string) (*Me, error) {
	claims, user, err := s.userFor(ctx, bearer)
	if err != nil {
		return nil, err
	}
	me := &Me{ID: user.ID, Email: user.Email, EmailVerified: user.EmailVerified, Name: user.Name, AvatarURL: user.AvatarURL,
		Identities: []MeIdentity{}, Organizations: []MeOrganization{}, Roles: []string{}, Permissions: []string{}, SessionID: claims.SessionID}
	ids, err := s.store.ListIdentities(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		mi := MeIdentity{Provider: id.Provider, Subject: id.Subject, Email: id.Email, Username: id.Username,
			EmailVerified: id.EmailVerified && s.provisioner.TrustsEmail(id.Provider)}
		if id.LastLoginAt != nil {
			mi.LastLoginAt = id.LastLoginAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		me.Identities = append(me.Identities, mi)
	}
	sess, err := s.sessions.GetSession(ctx, claims.SessionID)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if sess.IdentityID != nil && id.ID == *sess.IdentityID {
			me.PreferredUsername = id.Username
		}
	}
	ms, err := s.store.ListUserMemberships(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		active := sess.ActiveOrgID != nil && *sess.ActiveOrgID == m.OrganizationID
		me.Organizations = append(me.Organizations, MeOrganization{ID: m.OrganizationID, Slug: m.OrganizationSlug, Name: m.OrganizationName,
			Role: m.RoleName, Status: m.Status, Source: m.Source, Active: active})
	}
	if sess.ActiveOrgID != nil {
		me.ActiveOrgID = *sess.ActiveOrgID
		if g, err := s.store.ActiveGrants(ctx, user.ID, *sess.ActiveOrgID); err == nil {
			me.Roles, me.Permissions = g.Roles, g.Permissions
		}
	}
	return me, nil
}

// LogoutRequest is an RP-initiated logout (OIDC RP-Initiated Logout 1.0).
type LogoutRequest struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	// Bearer is an access token presented instead of an ID token hint.
	Bearer string
	// ClientOnly (client_only=true) ends only the session of the client
	// the hint names, not the browser session it was opened under nor
	// the other clients' sessions opened under that.
	ClientOnly bool
}

// LogoutResult says where to send the browser ("" shows a signed-out page).
type LogoutResult struct {
	RedirectURL string
	// BrowserSessionID is the browser session the logout ended (or found
	// ended already); empty when it ended none.
	BrowserSessionID string
	// UserID is the user the hint (or bearer token) names; empty without one.
	UserID string
}

// RevokeReasonLogout is the revoke reason of sessions and browser
// sessions ended by a logout.
const RevokeReasonLogout = "logout"

// Logout ends the session named by the ID token hint (or bearer access
// token) and, unless ClientOnly, the browser session it was opened under
// with every session opened under that (single logout), and returns the
// post-logout redirect when it is registered for the client. Without a
// hint or token it ends nothing and only checks the redirect. A request it refuses (a hint that does not verify, another
// client_id, an unregistered redirect) changes nothing: the session stays
// and no redirect is followed. The "logout" audit event is written only
// by the call that actually ends the session: repeating a logout (one ID
// token hint, many calls) writes nothing more.
func (s *Service) Logout(ctx context.Context, req LogoutRequest, meta RequestMeta) (*LogoutResult, error) {
	var sid, clientID, userID string
	switch {
	case req.IDTokenHint != "":
		claims, err := s.keys.VerifyIDTokenHint(req.IDTokenHint, s.issuer)
		if err != nil {
			return nil, fault.New(fault.LogoutUnverified, err)
		}
		sid, userID = claims.SessionID, claims.Subject
		if len(claims.Audience) > 0 {
			clientID = claims.Audience[0]
		}
	case req.Bearer != "":
		claims, err := s.keys.VerifyAccessToken(req.Bearer, s.issuer, s.now())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
		sid, clientID, userID = claims.SessionID, claims.ClientID, claims.Subject
	}
	if req.ClientID != "" {
		if clientID != "" && req.ClientID != clientID {
			return nil, fault.New(fault.LogoutWrongClient, errors.New("client_id does not match id_token_hint"))
		}
		clientID = req.ClientID
	}
	// The redirect is checked before the session is touched, like
	// everything above: a refused request ends nothing.
	res := &LogoutResult{UserID: userID}
	if req.PostLogoutRedirectURI != "" {
		client, ok := s.Client(clientID)
		if !ok || !client.RegisteredPostLogout(req.PostLogoutRedirectURI) {
			return nil, fault.New(fault.LogoutUnregistered, errors.New("unregistered post_logout_redirect_uri"))
		}
		u, _ := url.Parse(req.PostLogoutRedirectURI)
		if req.State != "" {
			q := u.Query()
			q.Set("state", req.State)
			u.RawQuery = q.Encode()
		}
		res.RedirectURL = u.String()
	}
	if sid == "" {
		return res, nil
	}
	browserEnded := false
	if !req.ClientOnly {
		sess, err := s.sessions.GetSession(ctx, sid)
		switch {
		case errors.Is(err, models.ErrNotFound): // a pruned session has ended long ago
		case err != nil:
			return nil, err
		case sess.BrowserSessionID != nil:
			res.BrowserSessionID = *sess.BrowserSessionID
			browserEnded, err = s.store.RevokeBrowserSession(ctx, res.BrowserSessionID, RevokeReasonLogout, s.now())
			if err != nil && !errors.Is(err, models.ErrNotFound) {
				return nil, err
			}
		}
	}
	ended, err := s.sessions.EndSession(ctx, sid, RevokeReasonLogout)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return nil, err
	}
	if ended || browserEnded {
		details := map[string]any{"session_id": sid, "client_only": req.ClientOnly}
		if res.BrowserSessionID != "" {
			details["browser_session_id"] = res.BrowserSessionID
		}
		s.audit(ctx, models.AuditEvent{Type: AuditLogout, ActorUserID: ptr(userID), SubjectUserID: ptr(userID),
			ClientID: clientID, IP: meta.IP, RequestID: meta.RequestID}, details)
	}
	return res, nil
}

// AuditLogout is the audit event of a logout that ended a session.
const AuditLogout = "logout"

// Discovery is the OpenID Provider metadata document; signingAlgs are the
// algorithms of the published keys (two while an algorithm change rolls out).
func (s *Service) Discovery(signingAlgs []string) map[string]any {
	doc := s.discovery(signingAlgs)
	if s.cfg.Registration.Enabled {
		// Dynamic Client Registration (RFC 7591), when on.
		doc["registration_endpoint"] = s.endpoint("/auth/register")
	}
	return doc
}

func (s *Service) discovery(signingAlgs []string) map[string]any {
	return map[string]any{
		"issuer":                                        s.issuer,
		"authorization_endpoint":                        s.endpoint("/auth/login"),
		"token_endpoint":                                s.endpoint("/auth/token"),
		"jwks_uri":                                      s.endpoint("/.well-known/jwks.json"),
		"userinfo_endpoint":                             s.endpoint("/auth/userinfo"),
		"revocation_endpoint":                           s.endpoint("/auth/revoke"),
		"introspection_endpoint":                        s.endpoint("/auth/introspect"),
		"end_session_endpoint":                          s.endpoint("/auth/logout"),
		"device_authorization_endpoint":                 s.endpoint("/auth/device"),
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query"},
		"grant_types_supported":                         []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantClientCredentials, config.GrantTokenExchange, config.GrantDeviceCode},
		"subject_types_supported":                       []string{"public"},
		"id_token_signing_alg_values_supported":         signingAlgs,
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		// private_key_jwt assertions (RFC 7523): asymmetric algorithms only.
		"token_endpoint_auth_signing_alg_values_supported":         config.ClientAssertionAlgs,
		"revocation_endpoint_auth_signing_alg_values_supported":    config.ClientAssertionAlgs,
		"introspection_endpoint_auth_signing_alg_values_supported": config.ClientAssertionAlgs,
		"code_challenge_methods_supported":                         []string{"S256"},
		"scopes_supported":                                         append(slices.Clone(oidcScopes), config.GroupsScope),
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr", "acr", "sid",
			"email", "email_verified", "name", "picture", "preferred_username", "groups"},
		"authorization_response_iss_parameter_supported": true,
		// consent is accepted (as login: Gatehouse has no consent
		// screen) but not advertised, since it is not honoured as such.
		"prompt_values_supported": []string{"none", "login", "select_account"},
		// OpenID Connect Back-Channel Logout 1.0 (package backchannel):
		// logout tokens carry sid, as ID tokens do.
		"backchannel_logout_supported":         true,
		"backchannel_logout_session_supported": true,
	}
}
