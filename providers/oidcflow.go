package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcSaved is the per-login data sealed into the login-state cookie.
type oidcSaved struct {
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Org      string `json:"o,omitempty"`
	// MaxAge is the max_age sent upstream (seconds), checked against the
	// ID token's auth_time; nil: none sent.
	MaxAge *int `json:"m,omitempty"`
}

func (p *oidcProvider) oauth2Config(d *discovered, callback string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.clientID, ClientSecret: p.cfg.clientSecret, Endpoint: d.endpoint,
		RedirectURL: callback, Scopes: p.cfg.scopes}
}

// Begin sends the browser to the upstream's authorization endpoint with
// PKCE (S256), a nonce, the client's max_age and acr_values, and the
// hints the kind supports.
func (p *oidcProvider) Begin(ctx context.Context, req BeginRequest) (*Challenge, error) {
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	saved := oidcSaved{Nonce: randomString(32), Verifier: oauth2.GenerateVerifier()}
	params := url.Values{}
	if req.LoginHint != "" {
		params.Set("login_hint", req.LoginHint)
	}
	if prompt := upstreamPrompt(req.Prompt); prompt != "" {
		params.Set("prompt", prompt)
	}
	authParamsSSO(req, params, &saved)
	if p.kind.authParams != nil {
		for k, v := range p.kind.authParams(req, &saved) {
			params[k] = v
		}
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(saved.Verifier), oidc.Nonce(saved.Nonce)}
	for k := range params {
		opts = append(opts, oauth2.SetAuthURLParam(k, params.Get(k)))
	}
	raw, err := json.Marshal(saved)
	if err != nil {
		return nil, err
	}
	return &Challenge{RedirectURL: p.oauth2Config(d, req.CallbackURL).AuthCodeURL(req.State, opts...), Saved: string(raw)}, nil
}

// upstreamPrompt is the prompt sent to an OpenID Connect upstream for the
// client's. Gatehouse honours prompt=consent as a new sign-in (it asks no
// consent of its own), so the upstream is asked for login instead: the
// upstream's consent screen would grant nothing Gatehouse uses, and some
// upstreams would skip the re-authentication the client meant. Other
// values pass as they are, each once, in their order.
func upstreamPrompt(prompt string) string {
	var out []string
	for _, v := range strings.Fields(prompt) {
		if v == "consent" {
			v = "login"
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return strings.Join(out, " ")
}

// verifyFailed is what a person sees when an upstream answer fails
// validation; the reason goes to the log and audit.
const verifyFailed = "The identity provider's answer could not be verified. Please try again."

// Complete redeems the code (with the PKCE verifier), validates the ID
// token, completes its claims from UserInfo when they are missing, and
// applies the kind's rules.
func (p *oidcProvider) Complete(ctx context.Context, req CompleteRequest) (*Identity, error) {
	q := req.HTTP.URL.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("%w: upstream error %q", ErrCancelled, truncate(e, 64))
	}
	// RFC 9207: an upstream that names itself must be the one we asked.
	if iss := q.Get("iss"); iss != "" && iss != p.cfg.issuer {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback iss is not the configured issuer", ErrInvalidResponse)}
	}
	code := q.Get("code")
	var saved oidcSaved
	if code == "" || json.Unmarshal([]byte(req.Saved), &saved) != nil || saved.Nonce == "" || saved.Verifier == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback without code or login state", ErrInvalidResponse)}
	}
	d, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	// RFC 9207 §2.4: an upstream that says it names itself in every
	// response did not send one that does not (a mix-up attacker's).
	if d.issParam && q.Get("iss") == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: callback without iss from an issuer that advertises authorization_response_iss_parameter_supported", ErrInvalidResponse)}
	}
	tok, err := p.oauth2Config(d, req.CallbackURL).Exchange(oidc.ClientContext(ctx, p.client), code, oauth2.VerifierOption(saved.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			// Only the error code: the body is not ours to log.
			return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: token endpoint answered %s (%s)",
				ErrInvalidResponse, truncate(re.ErrorCode, 64), truncate(re.ErrorDescription, 200))}
		}
		return nil, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, redactURLError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, &UserError{Message: verifyFailed, Err: fmt.Errorf("%w: no id_token in the token response", ErrInvalidResponse)}
	}
	vt, err := p.verify(ctx, d, rawID, tokenCheck{idToken: true, audiences: []string{p.cfg.clientID},
		parties: []string{p.cfg.clientID}, nonce: saved.Nonce})
	if err == nil && vt.idt.AccessTokenHash != "" && vt.idt.VerifyAccessToken(tok.AccessToken) != nil {
		err = &rejection{reason: "the ID token's at_hash does not match the access token", err: ErrInvalidResponse}
	}
	if err == nil && saved.MaxAge != nil {
		err = p.checkMaxAge(vt.claims, *saved.MaxAge)
	}
	if err != nil {
		return nil, p.loginError(err)
	}
	if p.incomplete(vt.claims) && d.userinfo != "" && tok.AccessToken != "" {
		if err := p.completeFromUserInfo(ctx, d, tok.AccessToken, vt.claims); err != nil {
			return nil, p.loginError(err)
		}
	}
	id, err := p.identity(vt.claims, saved.Org)
	if err != nil {
		return nil, err
	}
	if p.cfg.upstreamLogout && d.endSession != "" {
		id.UpstreamLogout = rawID // the id_token_hint of an upstream logout
	}
	id.Recheck = p.recheckSaved(tok.RefreshToken, id.Subject, saved.Org)
	return id, nil
}

// loginError turns a validation failure into what the sign-in page shows.
func (p *oidcProvider) loginError(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &UserError{Message: verifyFailed, Err: err}
}

// incomplete reports whether claims an identity is read from are missing
// (many certified providers put email and profile only in UserInfo).
func (p *oidcProvider) incomplete(c claimSet) bool {
	n := p.cfg.claims
	has := func(names ...string) bool {
		return slices.ContainsFunc(names, func(name string) bool { _, ok := c[name]; return ok })
	}
	if !has(n.Email, "email") || !has(n.Name, "name") {
		return true
	}
	return slices.ContainsFunc(n.Groups, func(g string) bool { return !has(g) })
}

// completeFromUserInfo adds the UserInfo claims the ID token lacks; the
// ID token's claims win, UserInfo must be about the same subject, and
// the claims only an ID token may carry (idTokenOnly) are not taken.
func (p *oidcProvider) completeFromUserInfo(ctx context.Context, d *discovered, accessToken string, c claimSet) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.userinfo, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json, application/jwt")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: userinfo: %v", ErrUnavailable, redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfoBytes+1))
	if err != nil {
		return fmt.Errorf("%w: userinfo: %v", ErrUnavailable, err)
	}
	if len(body) > maxUserInfoBytes {
		return &rejection{reason: "the UserInfo response is too large", err: tooLarge("UserInfo answer", maxUserInfoBytes)}
	}
	if resp.StatusCode != http.StatusOK {
		return &rejection{reason: "the UserInfo endpoint refused the access token", err: fmt.Errorf("%w: userinfo answered %s", ErrInvalidResponse, resp.Status)}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/jwt" {
		// A signed UserInfo response: the same keys, issuer and audience.
		if body, err = d.keys.Cache.VerifySignature(ctx, string(body)); err != nil {
			return &rejection{reason: "the signed UserInfo response does not verify", err: fmt.Errorf("%w: userinfo: %v", ErrInvalidResponse, err)}
		}
	}
	var ui claimSet
	if err := json.Unmarshal(body, &ui); err != nil {
		return &rejection{reason: "the UserInfo response is not JSON", err: ErrInvalidResponse}
	}
	if iss, ok := ui["iss"]; ok && iss != p.cfg.issuer {
		return &rejection{reason: "the UserInfo response is from another issuer", err: ErrInvalidResponse}
	}
	if _, ok := ui["aud"]; ok && !slices.Contains(ui.audience(), p.cfg.clientID) {
		return &rejection{reason: "the UserInfo response is for another audience", err: ErrInvalidResponse}
	}
	if ui.str("sub") != c.str("sub") {
		return &rejection{reason: "UserInfo describes another subject than the ID token", err: ErrInvalidResponse}
	}
	for k, v := range ui {
		if _, ok := c[k]; !ok && !slices.Contains(idTokenOnly, k) {
			c[k] = v
		}
	}
	return nil
}
