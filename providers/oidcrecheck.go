package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcRecheckSaved is what an OpenID Connect kind keeps to re-check a
// person: the upstream refresh token, the subject it was issued for and
// the organization the sign-in asked for (Auth0).
type oidcRecheckSaved struct {
	RefreshToken string `json:"rt"`
	Subject      string `json:"sub"`
	Org          string `json:"o,omitempty"`
}

// recheckSaved is Identity.Recheck for a sign-in that got refreshToken
// ("" when re-checks are off or the upstream issued none).
func (p *oidcProvider) recheckSaved(refreshToken, subject, org string) string {
	if !p.cfg.recheck.Enabled || refreshToken == "" {
		return ""
	}
	raw, _ := json.Marshal(oidcRecheckSaved{RefreshToken: refreshToken, Subject: subject, Org: org})
	return string(raw)
}

// RecheckPolicy is the provider's recheck_interval and friends.
func (p *oidcProvider) RecheckPolicy() RecheckPolicy { return p.cfg.recheck }

// Recheck redeems the kept upstream refresh token (OpenID Connect Core
// §12): invalid_grant means the upstream revoked the grant (the person
// was disabled, signed out everywhere, or the grant expired), which is
// ErrGone. A new ID token is validated like a sign-in's (signature,
// issuer, audience, expiry; no nonce, §12.2), must name the same
// subject, and is completed from UserInfo; without one, UserInfo alone
// says who the person is now. The kind's rules (hosted domain,
// allowed_organizations) apply again, and a refusal is ErrGone.
func (p *oidcProvider) Recheck(ctx context.Context, saved string) (*Identity, string, error) {
	var s oidcRecheckSaved
	if err := json.Unmarshal([]byte(saved), &s); err != nil || s.RefreshToken == "" || s.Subject == "" {
		return nil, "", fmt.Errorf("%w: no upstream refresh token kept for a re-check", ErrUnavailable)
	}
	d, err := p.ready(ctx)
	if err != nil {
		return nil, "", err
	}
	src := p.oauth2Config(d, "").TokenSource(oidc.ClientContext(ctx, p.client),
		&oauth2.Token{RefreshToken: s.RefreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "invalid_grant":
			return nil, "", gone("the upstream refused the refresh token (invalid_grant)")
		case errors.As(err, &re) && re.ErrorCode != "":
			// invalid_client and the like: Gatehouse's configuration, not
			// the person.
			return nil, "", fmt.Errorf("%w: token endpoint answered %s", ErrUnavailable, truncate(re.ErrorCode, 64))
		case errors.As(err, &re) && re.Response != nil:
			// The status only: RetrieveError's text carries the upstream's
			// body, which would reach the audit trail, the admin API and
			// the log.
			return nil, "", fmt.Errorf("%w: token endpoint answered %d", ErrUnavailable, re.Response.StatusCode)
		case errors.As(err, &re):
			return nil, "", fmt.Errorf("%w: token endpoint refused the refresh", ErrUnavailable)
		}
		return nil, "", fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, redactURLError(err))
	}
	// x/oauth2 keeps the old refresh token when the answer carries none.
	s.RefreshToken = tok.RefreshToken
	raw, _ := json.Marshal(s)
	newSaved := string(raw)
	claims := claimSet{"sub": s.Subject}
	if rawID, _ := tok.Extra("id_token").(string); rawID != "" {
		vt, err := p.verify(ctx, d, rawID, tokenCheck{idToken: true, audiences: []string{p.cfg.clientID}, parties: []string{p.cfg.clientID}})
		if err != nil {
			return nil, newSaved, fmt.Errorf("%w: the refreshed ID token: %v", ErrUnavailable, err)
		}
		if vt.claims.str("sub") != s.Subject {
			return nil, newSaved, gone("the refreshed ID token names another subject")
		}
		claims = vt.claims
	} else if d.userinfo == "" {
		// The grant is alive and nothing more can be read: the person is
		// still there, as they were.
		return nil, newSaved, nil
	}
	if p.incomplete(claims) && d.userinfo != "" && tok.AccessToken != "" {
		if err := p.completeFromUserInfo(ctx, d, tok.AccessToken, claims); err != nil {
			return nil, newSaved, fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
		}
	}
	id, err := p.identity(claims, s.Org)
	if errors.Is(err, ErrDenied) {
		return nil, newSaved, gone("%v", err)
	} else if err != nil {
		return nil, newSaved, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	id.Recheck = newSaved
	return id, newSaved, nil
}
