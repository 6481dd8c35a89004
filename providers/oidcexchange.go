package providers

import (
	"context"
	"errors"
	"fmt"
)

// ExchangeToken validates an upstream ID token (aud one of
// exchange_client_ids) or access token (aud the configured API audience,
// azp one of exchange_client_ids) and yields its identity.
func (p *oidcProvider) ExchangeToken(ctx context.Context, req ExchangeRequest) (*Identity, error) {
	var check tokenCheck
	switch req.SubjectTokenType {
	case TokenTypeIDToken:
		check = tokenCheck{idToken: true, audiences: p.cfg.exchangeClients, parties: p.cfg.exchangeClients}
	case TokenTypeAccessToken:
		if p.cfg.audience == "" {
			return nil, &UserError{Message: "this provider accepts ID tokens only (no API audience is configured for access tokens)",
				Err: fmt.Errorf("%w: access token presented, no audience configured", ErrInvalidResponse)}
		}
		check = tokenCheck{audiences: []string{p.cfg.audience}, parties: p.cfg.exchangeClients, requireParty: true}
	default:
		return nil, &UserError{Message: "unsupported subject_token_type", Err: fmt.Errorf("%w: subject_token_type", ErrInvalidResponse)}
	}
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	vt, err := p.verify(ctx, d, req.SubjectToken, check)
	if err != nil {
		var r *rejection
		if errors.As(err, &r) && !errors.Is(err, ErrUnavailable) {
			return nil, &UserError{Message: r.reason, Err: r.err}
		}
		return nil, err
	}
	return p.identity(vt.claims, "")
}
