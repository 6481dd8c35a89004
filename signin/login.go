package signin

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Login answers the authorization endpoint: the request q is validated
// (oauth.Service.ParseAuthorize; a bad client or redirect URI is a page,
// anything else a redirect to the client). A request that names no
// provider, for a client allowed several, gets the chooser; otherwise the
// sign-in begins at the one provider: the login cookie is set and the
// browser sent upstream (302, or a form to post for SAML).
func (s *Service) Login(ctx context.Context, q url.Values) Outcome {
	p, err := s.server.ParseAuthorize(q)
	if err != nil {
		return Outcome{Err: err}
	}
	name := p.Provider
	if name == "" {
		list := s.providersFor(p)
		switch len(list) {
		case 0:
			return Outcome{Err: fault.New(fault.NoProvider, fmt.Errorf("client %s allows no configured provider", p.ClientID))}
		case 1:
			name = list[0].Name()
		default:
			return Outcome{Status: http.StatusOK, Chooser: s.chooser(p, q, list)}
		}
	}
	ch, cookie, err := s.begin(ctx, p, name)
	if err != nil {
		return Outcome{Err: err}
	}
	out := Outcome{Cookies: []Cookie{cookie}}
	if ch.Form != nil {
		out.Status, out.Form = http.StatusOK, ch.Form
		return out
	}
	out.Status, out.RedirectURL = http.StatusFound, ch.RedirectURL
	return out
}

// providersFor lists the providers a client may use, in configuration order.
func (s *Service) providersFor(p *oauth.AuthorizeParams) []providers.Provider {
	client, _ := s.server.Client(p.ClientID)
	var out []providers.Provider
	for _, prov := range s.providers.All() {
		if client.AllowsProvider(prov.Name()) {
			out = append(out, prov)
		}
	}
	return out
}

// chooser links each provider to the authorization request q with that
// provider chosen.
func (s *Service) chooser(p *oauth.AuthorizeParams, q url.Values, list []providers.Provider) *Chooser {
	entries := make([]ChooserEntry, 0, len(list))
	for _, prov := range list {
		one := maps.Clone(q)
		one.Set("provider", prov.Name())
		entries = append(entries, ChooserEntry{DisplayName: prov.DisplayName(), URL: "/auth/login?" + one.Encode()})
	}
	client, _ := s.server.Client(p.ClientID)
	return &Chooser{Client: client.Name, Providers: entries}
}

// begin starts sign-in at a provider: it returns where to send the
// browser and the sealed login-state cookie to set.
func (s *Service) begin(ctx context.Context, p *oauth.AuthorizeParams, providerName string) (*providers.Challenge, Cookie, error) {
	client, _ := s.server.Client(p.ClientID)
	prov, ok := s.providers.Get(providerName)
	if !ok || client == nil || !client.AllowsProvider(providerName) {
		return nil, Cookie{}, s.server.ErrorRedirect(p, &oauth.Error{Code: "invalid_request",
			Description: fmt.Sprintf("unknown provider %q", providerName)})
	}
	state := randomToken(32)
	ch, err := prov.Begin(ctx, providers.BeginRequest{
		State: state, CallbackURL: s.callbackURL(providerName),
		LoginHint: p.LoginHint, Prompt: p.Prompt, Organization: p.Organization,
	})
	if err != nil {
		return nil, Cookie{}, providerFailure(providerName, err)
	}
	ls := &loginState{State: state, Provider: providerName, Saved: ch.Saved, Request: *p,
		ExpiresAt: s.now().Add(s.loginStateTTL).Unix()}
	if err := s.recordPending(ctx, prov, ls); err != nil {
		return nil, Cookie{}, err
	}
	cookie, err := s.sealLoginState(ls)
	if err != nil {
		return nil, Cookie{}, err
	}
	return ch, cookie, nil
}
