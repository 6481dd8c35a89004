package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// TokenResponse is a successful token endpoint answer (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	IDToken         string `json:"id_token,omitempty"`
	Scope           string `json:"scope,omitempty"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// TokenFor answers the token endpoint for a client AuthenticateClient
// accepted.
func (s *Service) TokenFor(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*TokenResponse, error) {
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest("parameter %s is repeated", k)
		}
	}
	var err error
	grant := form.Get("grant_type")
	if grant == "" {
		return nil, invalidRequest("grant_type is required")
	}
	if !client.AllowsGrant(grant) {
		switch grant {
		case config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantClientCredentials, config.GrantTokenExchange,
			config.GrantDeviceCode:
			return nil, unauthorizedClient("this client may not use grant_type %s", grant)
		}
		return nil, oauthErr("unsupported_grant_type", "grant_type %q is not supported", truncate(grant, 80))
	}
	// Events the session service records (code replay, refresh token
	// reuse) carry the request's IP and id from the context.
	ctx = WithRequestMeta(ctx, meta)
	var resp *TokenResponse
	switch grant {
	case config.GrantAuthorizationCode:
		resp, err = s.codeGrant(ctx, client, form, meta)
	case config.GrantRefreshToken:
		resp, err = s.refreshGrant(ctx, client, form, meta)
	case config.GrantClientCredentials:
		resp, err = s.clientCredentialsGrant(client, form)
	case config.GrantTokenExchange:
		resp, err = s.tokenExchangeGrant(ctx, client, form, meta)
	case config.GrantDeviceCode:
		resp, err = s.deviceGrant(ctx, client, form, meta)
	default:
		return nil, oauthErr("unsupported_grant_type", "grant_type %q is not supported yet", truncate(grant, 80))
	}
	if err != nil {
		return nil, err
	}
	if s.hooks.TokenIssued != nil {
		s.hooks.TokenIssued(grant)
	}
	return resp, nil
}

// Audit events of the token endpoint.
const (
	// AuditPKCEFailure: a code was redeemed with a wrong, missing or
	// unasked-for code_verifier; the session it opened is ended.
	AuditPKCEFailure = "authorization_code.pkce_failure"
	// AuditActiveOrgSwitched: a refresh switched the session's active
	// organization.
	AuditActiveOrgSwitched = "session.org_switched"
)

func (s *Service) codeGrant(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*TokenResponse, error) {
	code := form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	redirectURI := form.Get("redirect_uri")
	if redirectURI == "" && len(client.RedirectURIs) == 1 {
		redirectURI = client.RedirectURIs[0]
	}
	ac, err := s.sessions.RedeemCode(ctx, code, client.ID, redirectURI)
	if err != nil {
		return nil, grantError(err)
	}
	if failure := pkceFailure(ac, form.Get("code_verifier")); failure != "" {
		// Whoever holds the code is not who asked for it, or is trying a
		// PKCE downgrade: end the session the code opened. The client
		// hanging up must not abort that or its record.
		ctx := context.WithoutCancel(ctx)
		ended, err := s.sessions.EndSession(ctx, ac.SessionID, "pkce_failure")
		if err != nil && !errors.Is(err, models.ErrNotFound) {
			return nil, err
		}
		s.audit(ctx, models.AuditEvent{Type: AuditPKCEFailure, Outcome: models.OutcomeFailure, SubjectUserID: ptr(ac.UserID),
			ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID},
			map[string]any{"session_id": ac.SessionID, "authorization_code_id": ac.ID, "session_revoked": ended, "reason": failure})
		return nil, invalidGrant("%s", failure)
	}
	sess, err := s.sessions.GetSession(ctx, ac.SessionID)
	if err != nil {
		return nil, grantError(err)
	}
	user, err := s.store.FindUser(ctx, ac.UserID)
	if err != nil {
		return nil, err
	}
	if user.Disabled {
		return nil, invalidGrant("user is disabled")
	}
	return s.issueForSession(ctx, client, sess, user, issueOptions{nonce: ac.Nonce})
}

func (s *Service) refreshGrant(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*TokenResponse, error) {
	token := form.Get("refresh_token")
	if token == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	// RFC 6749 §6: a refresh may narrow the scope, never widen it. The
	// narrower scope applies to the tokens of this answer only; the
	// session keeps its scope, so a later refresh may ask for all of it.
	want, e := client.requestedScope(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	narrowed := strings.Fields(want)
	org := form.Get("organization")
	info := &tokens.RefreshInfo{}
	if len(narrowed) > 0 || org != "" {
		if found, err := s.sessions.LookupRefreshToken(ctx, token); err == nil && found != nil {
			info = found
		}
	}
	// A wider scope, or an organization the user cannot switch to, is
	// refused before the token is redeemed, so the client keeps a refresh
	// token that works. Only for the token's own client: anyone else
	// learns nothing, and redemption refuses them.
	ownToken := info.UserID != "" && info.ClientID == client.ID
	if sc := outsideScope(narrowed, info.Scope); sc != "" && ownToken {
		return nil, exceedsGrant(sc)
	}
	if org != "" && ownToken {
		if _, err := s.store.ActiveGrants(ctx, info.UserID, org); err != nil {
			return nil, notMemberOr(err, org)
		}
	}
	redeem := tokens.RedeemOptions{TrustedEmail: s.trustedEmailProviders(),
		OrgRoles: client.Groups != nil && client.Groups.IncludeOrgRoles}
	// A due upstream re-check runs before the token rotates: a refusal
	// leaves the client its token; a re-check that ran may have changed
	// the profile and memberships read with the token.
	rechecked := false
	if s.rechecks != nil {
		asked := false
		redeem.Check = func(ctx context.Context, g *models.RefreshGrant) error {
			if asked {
				return nil
			}
			asked = true
			var err error
			rechecked, err = s.rechecks.BeforeRefresh(ctx, g, provisioning.Meta{ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID})
			return err
		}
	}
	red, err := s.sessions.RedeemRefreshTokenWith(ctx, token, client.ID, redeem)
	if err != nil {
		if errors.Is(err, tokens.ErrRefreshTokenReuse) && s.hooks.RefreshReuse != nil {
			s.hooks.RefreshReuse()
		}
		return nil, grantError(err)
	}
	sess := red.Session
	// Checked again on the redeemed session: the look-up above may have
	// failed, and nothing wider than the session may ever be minted.
	if sc := outsideScope(narrowed, sess.Scope); sc != "" {
		return nil, exceedsGrant(sc)
	}
	// The organization the session had at the redemption, whose grants
	// the redemption read with the token (as it read the email verdict):
	// minting reads nothing more unless the refresh switches.
	redeemedOrg := sess.ActiveOrgID
	// Everything from here runs after the rotation committed.
	return afterRotation(ctx, func() (*TokenResponse, error) {
		facts := &mintFacts{emailVerified: red.EmailVerified, grants: red.Grants,
			identity: &identityFacts{username: red.Username, groups: red.UpstreamGroups, orgRoles: red.OrgRoles}}
		if org != "" {
			// Checked again: the membership may have ended since.
			switching := redeemedOrg == nil || *redeemedOrg != org
			if switching {
				g, err := s.store.ActiveGrants(ctx, red.UserID, org)
				if err != nil {
					return nil, notMemberOr(err, org)
				}
				facts.grants = g
			} else if red.Grants == nil {
				return nil, notMemberOr(models.ErrNotFound, org)
			}
			// A retry after a fault has switched already.
			if sess.ActiveOrgID == nil || *sess.ActiveOrgID != org {
				if err := s.sessions.SetActiveOrg(ctx, sess.ID, &org); err != nil {
					return nil, err
				}
				from := ""
				if sess.ActiveOrgID != nil {
					from = *sess.ActiveOrgID
				}
				s.audit(ctx, models.AuditEvent{Type: AuditActiveOrgSwitched, ActorUserID: ptr(red.UserID), SubjectUserID: ptr(red.UserID),
					OrganizationID: ptr(org), ClientID: client.ID, Provider: sess.Provider, IP: meta.IP, RequestID: meta.RequestID},
					map[string]any{"session_id": sess.ID, "from_org_id": from, "to_org_id": org})
				sess.ActiveOrgID = &org
			}
		}
		user := red.User
		if rechecked {
			// Read again what the re-check may have changed.
			if user, err = s.store.FindUser(ctx, red.UserID); err != nil {
				return nil, err
			}
			facts = nil
		}
		return s.issueForSession(ctx, client, sess, user, issueOptions{refresh: red.RefreshToken, scope: narrowed, facts: facts,
			noIDToken: !client.RefreshIDToken()})
	})
}

// mintFacts are what minting states about a user, when already read: the
// email_verified verdict, the grants of the session's active
// organization (nil: none, as when the user is no active member), and
// what the session's identity states (username, groups, and the
// organization roles when the client includes them).
type mintFacts struct {
	emailVerified bool
	grants        *models.Grants
	identity      *identityFacts
}

// afterRotation runs what a refresh does once its rotation has committed:
// the organization switch (a membership read and an idempotent write) and
// minting (reads only, with the refresh token already issued). The new
// refresh token now lives only in this answer, so a database fault there
// is retried here, briefly, instead of being handed to the client, whose
// retry with the old token would then count on the reuse grace window.
func afterRotation(ctx context.Context, step func() (*TokenResponse, error)) (*TokenResponse, error) {
	resp, err := step()
	for wait := 50 * time.Millisecond; models.IsTransient(err) && wait <= 400*time.Millisecond; wait *= 2 {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		resp, err = step()
	}
	return resp, err
}

func exceedsGrant(scope string) *Error {
	return oauthErr("invalid_scope", "scope %q exceeds the original grant", truncate(scope, 60))
}

func (s *Service) clientCredentialsGrant(client *Client, form url.Values) (*TokenResponse, error) {
	if client.Public {
		return nil, unauthorizedClient("public clients cannot use client_credentials")
	}
	scope := client.Scopes
	if req := strings.Fields(form.Get("scope")); len(req) > 0 {
		for _, sc := range req {
			if !slices.Contains(client.Scopes, sc) {
				return nil, oauthErr("invalid_scope", "scope %q is not allowed for this client", truncate(sc, 60))
			}
		}
		scope = req
	}
	now := s.now()
	claims := tokens.AccessClaims{
		Issuer: s.issuer, Subject: client.ID, Audience: client.Audience(),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(client.AccessTTL).Unix(),
		ID: randomToken(16), ClientID: client.ID, Scope: strings.Join(scope, " "),
		Permissions: client.Permissions,
	}
	at, err := s.keys.Sign(claims, tokens.TypAccessToken)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(client.AccessTTL / time.Second), Scope: claims.Scope}, nil
}

// issueOptions tune issueForSession.
type issueOptions struct {
	// nonce goes into the ID token.
	nonce string
	// refresh is the rotated refresh token to return (else a new one).
	refresh string
	// noIDToken: no ID token even for openid (token exchange answers an
	// access token: no authentication request asked for an ID token; a
	// refresh for a client with id_token_on_refresh: false).
	noIDToken bool
	// scope, when set, is the subset of the session's scope a refresh
	// asked for; the tokens carry it instead of the session's.
	scope []string
	// facts, when set, were read already (with the refresh token): the
	// email verdict and the grants are not read again.
	facts *mintFacts
}

// issueForSession mints the access token (and ID token for openid, and a
// refresh token when the client may refresh) for a session.
func (s *Service) issueForSession(ctx context.Context, client *Client, sess *models.Session, user *models.User, opts issueOptions) (*TokenResponse, error) {
	var err error
	if opts.facts != nil {
		u := *user
		u.EmailVerified = opts.facts.emailVerified
		user = &u
	} else if user, err = s.statedUser(ctx, user); err != nil {
		return nil, err
	}
	now := s.now()
	scope := sess.Scope
	if len(opts.scope) > 0 {
		scope = strings.Join(opts.scope, " ")
	}
	scope = client.grantableScope(scope)
	scopes := strings.Fields(scope)
	claims, err := s.accessClaims(ctx, client, sess, user, scope, now, opts.facts)
	if err != nil {
		return nil, err
	}
	var ident *identityFacts
	if opts.facts != nil && opts.facts.identity != nil {
		ident = opts.facts.identity
	} else if ident, err = s.sessionIdentity(ctx, client, sess, scopes); err != nil {
		return nil, err
	}
	// One claim for both tokens (and one audit event when it is left out).
	groups := s.groupsFor(ctx, client, sess, scopes, ident, "tokens")
	claims.Groups = groups
	at, err := s.keys.Sign(claims, tokens.TypAccessToken)
	if err != nil {
		return nil, err
	}
	resp := &TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(client.AccessTTL / time.Second), Scope: scope}
	// The ID token follows the same scope: a refresh narrowed to exclude
	// openid gets none (OIDC Core §12.2 allows omitting it), one without
	// email or profile gets an ID token without those claims.
	if slices.Contains(scopes, "openid") && !opts.noIDToken {
		id := tokens.IDClaims{
			Issuer: s.issuer, Subject: user.ID, Audience: []string{client.ID}, AuthorizedBy: client.ID,
			IssuedAt: now.Unix(), Expiry: now.Add(client.IDTokenTTL).Unix(), AuthTime: sess.AuthTime.Unix(),
			Nonce: opts.nonce, AMR: strings.Fields(sess.AMR), ACR: sess.ACR, SessionID: sess.ID,
		}
		if slices.Contains(scopes, "email") {
			id.SetEmail(user.Email, user.EmailVerified)
		}
		if slices.Contains(scopes, "profile") {
			id.Name, id.PreferredUsername = user.Name, ident.username
		}
		id.Groups = groups
		if resp.IDToken, err = s.keys.SignIDToken(id, at); err != nil {
			return nil, err
		}
	}
	if client.AllowsGrant(config.GrantRefreshToken) {
		refresh := opts.refresh
		if refresh == "" {
			if refresh, err = s.sessions.IssueRefreshToken(ctx, sess.ID, client.ID); err != nil {
				return nil, err
			}
		}
		resp.RefreshToken = refresh
	}
	return resp, nil
}

// accessClaims builds the RFC 9068 claims, with the scope being issued
// and the active org's grants (those of facts when set).
func (s *Service) accessClaims(ctx context.Context, client *Client, sess *models.Session, user *models.User, scope string, now time.Time, facts *mintFacts) (*tokens.AccessClaims, error) {
	c := &tokens.AccessClaims{
		Issuer: s.issuer, Subject: user.ID, Audience: client.Audience(),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(client.AccessTTL).Unix(),
		ID: randomToken(16), ClientID: client.ID, SessionID: sess.ID, Scope: scope,
		Name: user.Name, IdP: sess.Provider,
	}
	c.SetEmail(user.Email, user.EmailVerified)
	if sess.ActiveOrgID != nil && facts != nil {
		if g := facts.grants; g != nil && g.OrganizationID == *sess.ActiveOrgID {
			c.OrgID, c.Roles, c.Permissions = g.OrganizationID, g.Roles, g.Permissions
		}
	} else if sess.ActiveOrgID != nil {
		g, err := s.store.ActiveGrants(ctx, user.ID, *sess.ActiveOrgID)
		switch {
		case err == nil:
			c.OrgID, c.Roles, c.Permissions = g.OrganizationID, g.Roles, g.Permissions
		case !errors.Is(err, models.ErrNotFound):
			return nil, err
		}
	}
	return c, nil
}

// grantError maps session-service refusals to invalid_grant with their
// reason; anything else is an internal error.
func grantError(err error) error {
	var ge *tokens.GrantError
	if errors.As(err, &ge) {
		return &Error{Code: "invalid_grant", Description: ge.Reason, Cause: err}
	}
	if errors.Is(err, tokens.ErrGrantInvalid) {
		return &Error{Code: "invalid_grant", Description: "the grant is invalid", Cause: err}
	}
	return err
}

// notMemberOr is the answer to a refresh that switches to org when its
// membership look-up failed: not a member, or the storage error itself
// (a database fault is a 503 to retry, not a refusal).
func notMemberOr(err error, org string) error {
	if errors.Is(err, models.ErrNotFound) {
		return invalidRequest("not an active member of organization %q", truncate(org, 80))
	}
	return err
}

// pkceFailure says why verifier does not redeem ac ("" when it does): a
// code issued with a challenge needs its verifier, and one issued without
// takes none (a verifier there is a downgrade attempt or a mix-up).
func pkceFailure(ac *models.AuthorizationCode, verifier string) string {
	switch {
	case ac.CodeChallenge != "" && verifier == "":
		return "code_verifier is required"
	case ac.CodeChallenge != "" && !tokens.VerifyPKCE(ac.CodeChallenge, ac.CodeChallengeMethod, verifier):
		return "code_verifier does not match the code_challenge"
	case ac.CodeChallenge == "" && verifier != "":
		return "code_verifier sent for a code issued without code_challenge"
	}
	return ""
}
