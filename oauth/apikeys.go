package oauth

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/claims"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// TokenTypeAPIKey is the RFC 8693 subject_token_type of a Gatehouse API
// key: a confidential client exchanges a key its caller presented for a
// short-lived access token, so backends that only verify JWTs serve
// API-key callers too.
const TokenTypeAPIKey = "urn:gatehouse:params:oauth:token-type:api-key"

// APIKeys resolves API keys (tokens.APIKeyService).
type APIKeys interface {
	Resolve(ctx context.Context, secret string) (*models.APIKey, error)
	// Live reports whether a key still exists, enabled and unexpired.
	Live(ctx context.Context, orgID, id string) (bool, error)
}

// DefaultAPIKeyTokenTTL caps an API-key token's lifetime when the
// configuration does not (GATEHOUSE_API_KEY_TOKEN_TTL).
const DefaultAPIKeyTokenTTL = 5 * time.Minute

// introspectAPIKey answers introspection of an API key with the shape of
// an access token's answer: sub "apikey:<id>", org_id, permissions, and
// token_type "api_key".
func (s *Service) introspectAPIKey(ctx context.Context, secret string) (*Introspection, error) {
	if s.apiKeys == nil {
		return &Introspection{}, nil
	}
	k, err := s.apiKeys.Resolve(ctx, secret)
	if errors.Is(err, tokens.ErrAPIKeyInvalid) {
		return &Introspection{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := &Introspection{Active: true, Introspected: claims.Introspected{TokenType: claims.TokenTypeAPIKey,
		Sub: claims.APIKeySubjectPrefix + k.ID, Jti: k.ID, Iss: s.issuer, OrgID: k.OrganizationID, Roles: []string{},
		Permissions: k.PermissionList(), Username: k.Name, Iat: k.CreatedAt.Unix()}}
	if k.ExpiresAt != nil {
		out.Exp = k.ExpiresAt.Unix()
	}
	return out, nil
}

// apiKeyTokenLive reports whether the API key an exchanged access
// token stands for (sub "apikey:<id>") is still live: disabling,
// deleting or expiring the key ends its tokens at introspection.
func (s *Service) apiKeyTokenLive(ctx context.Context, at *tokens.AccessClaims) (bool, error) {
	if s.apiKeys == nil {
		return false, nil
	}
	return s.apiKeys.Live(ctx, at.OrgID, strings.TrimPrefix(at.Subject, claims.APIKeySubjectPrefix))
}

// apiKeyExchange mints an access token for an API key: subject
// "apikey:<id>", the key's organization and permissions, the client's
// audience, and a lifetime of the client's access-token TTL capped at
// GATEHOUSE_API_KEY_TOKEN_TTL and cut short by the key's expiry (a
// backend verifying it locally accepts it that long after the key is
// disabled; introspection refuses it at once). Only confidential clients
// may exchange keys.
func (s *Service) apiKeyExchange(ctx context.Context, client *Client, secret string, meta RequestMeta) (*TokenResponse, error) {
	refused := func(e *Error) *Error {
		s.audit(ctx, models.AuditEvent{Type: "token_exchange.refused", Outcome: models.OutcomeFailure, ClientID: client.ID,
			IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"reason": e.Description, "subject_token_type": TokenTypeAPIKey})
		return e
	}
	if client.Public {
		return nil, refused(unauthorizedClient("only confidential clients may exchange API keys"))
	}
	if s.apiKeys == nil {
		return nil, refused(invalidGrant("the API key is unknown, disabled or expired"))
	}
	k, err := s.apiKeys.Resolve(ctx, secret)
	if errors.Is(err, tokens.ErrAPIKeyInvalid) {
		return nil, refused(invalidGrant("the API key is unknown, disabled or expired"))
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	ttl := s.cfg.APIKeyTokenTTL
	if ttl <= 0 {
		ttl = DefaultAPIKeyTokenTTL
	}
	exp := now.Add(min(client.AccessTTL, ttl))
	if k.ExpiresAt != nil && k.ExpiresAt.Before(exp) {
		exp = *k.ExpiresAt
	}
	ac := claims.Access{
		Issuer: s.issuer, Subject: claims.APIKeySubjectPrefix + k.ID, Audience: client.Audience(),
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(), ID: randomToken(16), ClientID: client.ID,
		OrgID: k.OrganizationID, Permissions: k.PermissionList(),
	}
	at, err := s.keys.Sign(ac, tokens.TypAccessToken)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, models.AuditEvent{Type: "api_key.exchanged", OrganizationID: &k.OrganizationID, ClientID: client.ID,
		IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"api_key_id": k.ID, "jti": ac.ID})
	return &TokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now) / time.Second),
		IssuedTokenType: providers.TokenTypeAccessToken}, nil
}
