package signin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Sign-ins whose upstream answers with a cross-site POST (SAML's ACS) are
// bound to the browser that started them before the answer is looked at.
// The SameSite=Lax login cookie does not come with the upstream's POST, so
// AssertionPost answers that first POST with a page of Gatehouse's own that
// posts the same fields again to the same URL. That second POST is
// same-site and carries the cookie: the answer is validated only when the
// cookie holds the state the answer names (its RelayState), and the
// sign-in completes in that same request. An answer carried by any other
// browser signs nobody in, and nothing is stored for anyone to collect.
//
// Beginning such a sign-in also records a pending login under the SHA-256
// of the state, with the provider's Saved data (the AuthnRequest id the
// answer must be in response to). The first answer that reaches the second POST consumes
// it, whether it is accepted or not: one RelayState, one answer.

// stateHash is what is stored of a secret Gatehouse hands the browser
// (a login state as the pending-login key, a browser-session token as
// browser_sessions.token_hash): its SHA-256, never the secret itself.
func stateHash(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// ResubmitField is the form field that marks the second POST of an
// upstream's answer: the one Gatehouse's own page sends.
const ResubmitField = "gatehouse_resubmit"

// answerWait is how long an answer waits for a validation slot before it
// is told to come back later.
const answerWait = 200 * time.Millisecond

// answerSlots is the number of answers validated at once: validation is
// CPU work, and more at once than cores only makes each slower.
func answerSlots() int { return max(2, runtime.GOMAXPROCS(0)) }

// recordPending records the pending login of a sign-in at a cross-site
// POST provider (see above); other providers need none.
func (s *Service) recordPending(ctx context.Context, prov providers.Provider, ls *loginState) error {
	if _, ok := prov.(providers.CrossSitePost); !ok {
		return nil
	}
	return s.store.CreatePendingLogin(ctx, &models.PendingLogin{
		ID: stateHash(ls.State), Provider: ls.Provider, ClientID: ls.Request.ClientID, Saved: ls.Saved,
		ExpiresAt: s.now().Add(s.loginStateTTL), CreatedAt: s.now(),
	})
}

// AssertionPost answers an upstream's POST to provider name's answer URL
// (the SAML ACS). The upstream's own POST is only checked for size and
// syntax and answered with Form, a page that posts the same fields again:
// nothing is looked up, validated or stored. At that second POST, the
// sign-in its state names is consumed (Cookies clear its login cookie,
// whatever follows), and the answer is validated and the sign-in
// completed, a 303 to the client, only when the request carries that
// sign-in's login cookie. An unsolicited answer (IdP-initiated SSO, when
// the provider allows it) is completed for its configured client.
// Failures are pages and audit events; when every validation slot stays
// busy, the Busy page (503 with Retry-After), and the sign-in is left as
// it was.
func (s *Service) AssertionPost(ctx context.Context, name string, r *http.Request, meta oauth.RequestMeta) Outcome {
	if err := r.ParseForm(); err != nil {
		return Outcome{Err: unreadableAnswer(err)}
	}
	ans, err := s.acceptPost(ctx, name, r, meta)
	out := Outcome{Err: err}
	if ans == nil {
		return out
	}
	if ans.clearCookie != nil {
		out.Cookies = []Cookie{*ans.clearCookie}
	}
	out.Cookies = append(out.Cookies, ans.sessionCookies...)
	switch {
	case err != nil:
	case ans.form != nil:
		out.Status, out.Form = http.StatusOK, ans.form
	default:
		out.Status, out.RedirectURL = http.StatusSeeOther, ans.redirectURL
	}
	return out
}

// postAnswer is how acceptPost answers an upstream's POST.
type postAnswer struct {
	// form, for the upstream's own (cross-site) POST, is the page that
	// posts the same fields again from Gatehouse's origin.
	form *providers.AutoPostForm
	// redirectURL, once the sign-in is complete, is the client redirect.
	redirectURL string
	// clearCookie, when set, removes the login cookie of the sign-in the
	// answer consumed; it comes with an error too.
	clearCookie *Cookie
	// sessionCookies set the browser-session cookie of a completed
	// sign-in.
	sessionCookies []Cookie
}

// acceptPost is AssertionPost once the form is read.
func (s *Service) acceptPost(ctx context.Context, name string, r *http.Request, meta oauth.RequestMeta) (*postAnswer, error) {
	prov, ok := s.providers.Get(name)
	csp, post := prov.(providers.CrossSitePost)
	if !ok || !post {
		return nil, fault.New(fault.UnknownProvider, fmt.Errorf("no cross-site POST provider %q", truncate(name, 64)))
	}
	fields, state, checkErr := csp.CheckPost(r.PostForm)
	if r.PostForm.Get(ResubmitField) == "" {
		if checkErr != nil {
			return nil, providerPageError(checkErr)
		}
		fields[ResubmitField] = "1"
		return &postAnswer{form: &providers.AutoPostForm{Action: csp.PostURL(), Fields: fields}}, nil
	}
	ans := &postAnswer{}
	if checkErr != nil {
		// Even an answer refused unread ends the sign-in it names.
		if state != "" {
			_, err := s.store.ConsumePendingLogin(ctx, stateHash(state), s.now())
			switch {
			case err == nil:
				ans.clearCookie = ptr(s.clearLoginCookie(state))
			case !errors.Is(err, models.ErrNotFound):
				return nil, err
			}
		}
		s.loginFailed(ctx, &loginState{Provider: name}, checkErr, meta)
		return ans, providerPageError(checkErr)
	}
	if !s.enterAnswer(ctx) {
		return nil, fault.New(fault.Busy, errors.New("every validation slot is busy"))
	}
	ls, id, err := func() (*loginState, *providers.Identity, error) {
		defer s.leaveAnswer()
		return s.validateAnswer(ctx, prov, state, r, ans, meta)
	}()
	if err != nil {
		return ans, startOverOnFault(err)
	}
	ans.redirectURL, ans.sessionCookies, err = s.finish(ctx, ls, id, r, meta)
	return ans, startOverOnFault(err)
}

// startOverOnFault turns a database fault during an answer's second POST
// into a page that starts the sign-in again: the answer's sign-in may be
// consumed already (one RelayState, one answer), so reloading the page, as
// a plain retry page would suggest, could not complete it.
func startOverOnFault(err error) error {
	if fault.Of(err) != fault.Unavailable {
		return err
	}
	return fault.New(fault.SignInInterrupted, err)
}

// validateAnswer consumes the pending login of state (and has ans clear
// its login cookie) and validates the answer when this browser holds that
// cookie; with no live sign-in for state, the answer is unsolicited.
func (s *Service) validateAnswer(ctx context.Context, prov providers.Provider, state string, r *http.Request, ans *postAnswer, meta oauth.RequestMeta) (*loginState, *providers.Identity, error) {
	name := prov.Name()
	var pending *models.PendingLogin
	if state != "" {
		p, err := s.store.ConsumePendingLogin(ctx, stateHash(state), s.now())
		switch {
		case err == nil:
			ans.clearCookie = ptr(s.clearLoginCookie(state))
			if p.Provider == name {
				pending = p
			}
		case !errors.Is(err, models.ErrNotFound):
			return nil, nil, err
		}
	}
	if pending == nil {
		if ip, ok := prov.(providers.IdPInitiated); ok {
			if target, on := ip.IdPInitiatedTarget(); on {
				// Any RelayState an IdP sends with an unsolicited answer is
				// ignored: it is not ours, and never a place to redirect to.
				return s.validateUnsolicited(ctx, prov, target, r, meta)
			}
		}
		err := errors.New("no live sign-in for this RelayState (expired, used, forged, or IdP-initiated while disabled)")
		s.loginStateRejected(ctx, name, err, meta)
		if state == "" {
			return nil, nil, fault.Explain(fault.UpstreamDenied,
				"Sign-in started at the identity provider is not enabled for this service. Start from the application instead.", err)
		}
		return nil, nil, s.expiredLogin(err)
	}
	ls, err := s.openLoginState(loginCookie(r, state), state)
	if err == nil && (ls.Provider != name || subtle.ConstantTimeCompare([]byte(ls.Saved), []byte(pending.Saved)) != 1) {
		err = errors.New("the login cookie is for another sign-in")
	}
	if err != nil {
		err = fmt.Errorf("answer posted by a browser without this sign-in's login cookie: %w", causeOf(err))
		s.loginStateRejected(ctx, name, err, meta)
		return nil, nil, fault.New(fault.OtherBrowser, err)
	}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.callbackURL(name), Saved: pending.Saved})
	if err != nil {
		s.loginFailed(ctx, ls, err, meta)
		return nil, nil, providerPageError(err)
	}
	return ls, id, nil
}

func (s *Service) validateUnsolicited(ctx context.Context, prov providers.Provider, target providers.IdPInitiatedLogin, r *http.Request, meta oauth.RequestMeta) (*loginState, *providers.Identity, error) {
	ls := &loginState{Provider: prov.Name(), Request: oauth.AuthorizeParams{ClientID: target.ClientID, RedirectURI: target.RedirectURI, Scope: target.Scope},
		unsolicited: true}
	if c, ok := s.server.Client(target.ClientID); !ok || !c.RegisteredRedirect(target.RedirectURI) {
		return nil, nil, fmt.Errorf("idp_initiated of provider %s names an unknown client or redirect URI", prov.Name())
	}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.callbackURL(prov.Name()), Unsolicited: true})
	if err != nil {
		s.loginFailed(ctx, ls, err, meta)
		return nil, nil, providerPageError(err)
	}
	return ls, id, nil
}

// enterAnswer takes a validation slot, waiting up to answerWait for one;
// it reports false when every slot stays busy.
func (s *Service) enterAnswer(ctx context.Context) bool {
	select {
	case s.answers <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(answerWait)
	defer t.Stop()
	select {
	case s.answers <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (s *Service) leaveAnswer() { <-s.answers }

// unreadableAnswer is the error for a callback or ACS request whose form
// cannot be parsed: too large stays too large (413); anything else (a bad
// percent-escape in the body or the query) is an answer that could not be
// read (400), never a server error.
func unreadableAnswer(err error) error {
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		return err
	}
	return fault.Explain(fault.UpstreamInvalid, "The identity provider's answer could not be read.", err)
}
