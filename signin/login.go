package signin

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Login answers the authorization endpoint, r's query: the request is
// validated (oauth.Service.ParseAuthorize; a bad client or redirect URI
// is a page, anything else a redirect to the client). A live browser
// session that satisfies the request (mustSignIn) answers it with a code
// at once (302 to the client); with prompt=none, a request it does not
// satisfy goes back to the client with login_required, never to a page.
// Otherwise a request that names no provider, for a client allowed
// several (or with prompt=select_account), gets the chooser; else the
// sign-in begins at the one provider: the login cookie is set and the
// browser sent upstream (302, or a form to post for SAML). A session
// cookie that names no live session is cleared.
func (s *Service) Login(ctx context.Context, r *http.Request, meta oauth.RequestMeta) Outcome {
	q := r.URL.Query()
	p, err := s.server.ParseAuthorize(q)
	if err != nil {
		return Outcome{Err: err}
	}
	bs, present, err := s.liveSession(ctx, r)
	if err != nil {
		return Outcome{Err: err}
	}
	var cookies []Cookie
	if present && bs == nil {
		cookies = append(cookies, s.clearSessionCookie())
	}
	why := s.mustSignIn(p, bs)
	if why == "" {
		var err error
		if why, err = s.upstreamMustConfirm(ctx, p, bs, meta); err != nil {
			return Outcome{Cookies: cookies, Err: err}
		}
	}
	if why == "" {
		out, ok := s.resume(ctx, p, bs, meta)
		if ok {
			return out
		}
		why, bs = "the sign-in session ended", nil
	}
	if p.HasPrompt("none") {
		return Outcome{Cookies: cookies, Err: s.server.ErrorRedirect(p, &oauth.Error{Code: "login_required", Description: why})}
	}
	name := p.Provider
	if name == "" {
		list := s.providersFor(p)
		switch {
		case len(list) == 0:
			return Outcome{Err: fault.New(fault.NoProvider, fmt.Errorf("client %s allows no configured provider", p.ClientID))}
		case len(list) == 1 && !p.HasPrompt("select_account"):
			name = list[0].Name()
		default:
			ch := s.chooser(p, q, list)
			if bs != nil && p.HasPrompt("select_account") {
				ch.Continue = s.continueAs(ctx, p, q, bs)
			}
			return Outcome{Cookies: cookies, Status: http.StatusOK, Chooser: ch}
		}
	}
	ch, cookie, err := s.begin(ctx, p, name)
	if err != nil {
		return Outcome{Err: err}
	}
	return upstreamOutcome(ch, append(cookies, cookie))
}

// upstreamOutcome sends the browser upstream for challenge ch (a
// redirect, or a form to post for SAML), setting cookies.
func upstreamOutcome(ch *providers.Challenge, cookies []Cookie) Outcome {
	out := Outcome{Cookies: cookies}
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

// continueAs is the chooser's "continue as" entry for a live browser
// session: the request without select_account, at the session's
// provider, which the session then answers (nil when it would not, or
// the user cannot be read).
func (s *Service) continueAs(ctx context.Context, p *oauth.AuthorizeParams, q url.Values, bs *models.BrowserSession) *ChooserEntry {
	again := *p
	again.Prompt = strings.Join(slices.DeleteFunc(p.Prompts(), func(v string) bool { return v == "select_account" }), " ")
	again.Provider = bs.Provider
	if s.mustSignIn(&again, bs) != "" {
		return nil
	}
	res, err := s.provisioner.Resume(ctx, bs.UserID)
	if err != nil {
		return nil
	}
	one := maps.Clone(q)
	one.Set("provider", bs.Provider)
	if again.Prompt == "" {
		one.Del("prompt")
	} else {
		one.Set("prompt", again.Prompt)
	}
	who := res.User.Name
	if who == "" {
		who = res.User.Email
	}
	return &ChooserEntry{DisplayName: who, URL: "/auth/login?" + one.Encode()}
}

// begin starts sign-in at a provider: it returns where to send the
// browser and the sealed login-state cookie to set.
func (s *Service) begin(ctx context.Context, p *oauth.AuthorizeParams, providerName string) (*providers.Challenge, Cookie, error) {
	return s.beginFor(ctx, p, providerName, "")
}

// beginFor is begin for a sign-in that returns to device authorization
// device instead of the client (device "": begin).
func (s *Service) beginFor(ctx context.Context, p *oauth.AuthorizeParams, providerName, device string) (*providers.Challenge, Cookie, error) {
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
		MaxAge: p.MaxAge, ACRValues: p.ACRValues,
	})
	if err != nil {
		return nil, Cookie{}, providerFailure(providerName, err)
	}
	ls := &loginState{State: state, Provider: providerName, Saved: ch.Saved, Request: *p,
		ExpiresAt: s.now().Add(s.loginStateTTL).Unix(), Device: device}
	if err := s.recordPending(ctx, prov, ls); err != nil {
		return nil, Cookie{}, err
	}
	cookie, err := s.sealLoginState(ls)
	if err != nil {
		return nil, Cookie{}, err
	}
	return ch, cookie, nil
}
