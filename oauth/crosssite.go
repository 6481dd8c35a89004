package oauth

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

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Sign-ins whose upstream answers with a cross-site POST (SAML's ACS) are
// bound to the browser that started them before the answer is looked at.
// The SameSite=Lax login cookie does not come with the upstream's POST, so
// AcceptPost answers that first POST with a page of Gatehouse's own that
// posts the same fields again to the same URL. That second POST is
// same-site and carries the cookie: the answer is validated only when the
// cookie holds the state the answer names (its RelayState), and the
// sign-in completes in that same request. An answer carried by any other
// browser signs nobody in, and nothing is stored for anyone to collect.
//
// BeginLogin also records a pending login under the SHA-256 of the state,
// with the provider's Saved data (the AuthnRequest id the answer must be
// in response to). The first answer that reaches the second POST consumes
// it, whether it is accepted or not: one RelayState, one answer.

// stateHash is the pending-login key of a state; the state itself is not
// stored.
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

// answerRetryAfter is the Retry-After of an answer turned away busy.
const answerRetryAfter = 2 * time.Second

// answerSlots is the number of answers validated at once: validation is
// CPU work, and more at once than cores only makes each slower.
func answerSlots() int { return max(2, runtime.GOMAXPROCS(0)) }

func (s *Service) recordPending(ctx context.Context, prov providers.Provider, ls *LoginState) error {
	if _, ok := prov.(providers.CrossSitePost); !ok {
		return nil
	}
	return s.store.CreatePendingLogin(ctx, &models.PendingLogin{
		ID: stateHash(ls.State), Provider: ls.Provider, ClientID: ls.Request.ClientID, Saved: ls.Saved,
		ExpiresAt: s.now().Add(s.cfg.LoginStateTTL), CreatedAt: s.now(),
	})
}

// PostAnswer is how the ACS answers an upstream's POST.
type PostAnswer struct {
	// Form, for the upstream's own (cross-site) POST, is the page that
	// posts the same fields again from Gatehouse's origin.
	Form *providers.AutoPostForm
	// RedirectURL, once the sign-in is complete, is the client redirect.
	RedirectURL string
	// ClearCookie, when set, removes the login cookie of the sign-in the
	// answer consumed; it comes with an error too.
	ClearCookie *http.Cookie
}

// AcceptPost handles an upstream's POST to a provider (the SAML ACS; the
// caller has parsed the form). The upstream's own POST is only checked for
// size and syntax and answered with a Form to post again: nothing is
// looked up, validated or stored. At the second POST, the sign-in its
// state names is consumed, and the answer is validated and the sign-in
// completed only when the request carries that sign-in's login cookie.
// An unsolicited answer (IdP-initiated SSO, when the provider allows it)
// is completed for its configured client. Failures are pages and audit
// events; when every validation slot stays busy, a 503 page with
// RetryAfter, and the sign-in is left as it was.
func (s *Service) AcceptPost(ctx context.Context, name string, r *http.Request, meta RequestMeta) (*PostAnswer, error) {
	prov, ok := s.providers[name]
	csp, post := prov.(providers.CrossSitePost)
	if !ok || !post {
		return nil, pageErr(http.StatusNotFound, "Unknown sign-in method", "This sign-in method does not exist.",
			fmt.Errorf("no cross-site POST provider %q", truncate(name, 64)))
	}
	fields, state, checkErr := csp.CheckPost(r.PostForm)
	if r.PostForm.Get(ResubmitField) == "" {
		if checkErr != nil {
			return nil, ProviderPageError(checkErr, "", nil)
		}
		fields[ResubmitField] = "1"
		return &PostAnswer{Form: &providers.AutoPostForm{Action: csp.PostURL(), Fields: fields}}, nil
	}
	ans := &PostAnswer{}
	if checkErr != nil {
		// Even an answer refused unread ends the sign-in it names.
		if state != "" {
			_, err := s.store.ConsumePendingLogin(ctx, stateHash(state), s.now())
			switch {
			case err == nil:
				ans.ClearCookie = s.ClearLoginCookie(state)
			case !errors.Is(err, models.ErrNotFound):
				return nil, err
			}
		}
		s.LoginFailed(ctx, &LoginState{Provider: name}, checkErr, meta)
		return ans, ProviderPageError(checkErr, "", nil)
	}
	if !s.enterAnswer(ctx) {
		return nil, &PageError{Status: http.StatusServiceUnavailable, Title: "Busy", RetryAfter: answerRetryAfter,
			Message: "Too many sign-ins are being checked right now. Please reload this page in a moment to try again.",
			Cause:   errors.New("every validation slot is busy")}
	}
	ls, id, err := func() (*LoginState, *providers.Identity, error) {
		defer s.leaveAnswer()
		return s.validateAnswer(ctx, prov, state, r, ans, meta)
	}()
	if err != nil {
		return ans, startOverOnFault(err)
	}
	ans.RedirectURL, err = s.FinishLogin(ctx, ls, id, meta)
	return ans, startOverOnFault(err)
}

// startOverOnFault turns a database fault during an answer's second POST
// into a page that starts the sign-in again: the answer's sign-in may be
// consumed already (one RelayState, one answer), so reloading the page, as
// a plain retry page would suggest, could not complete it.
func startOverOnFault(err error) error {
	var pe *PageError
	if err == nil || errors.As(err, &pe) || !models.IsTransient(err) {
		return err
	}
	return &PageError{Status: http.StatusServiceUnavailable, Title: "Sign-in not completed", StartOver: "/", RetryAfter: answerRetryAfter,
		Message: "The sign-in service had a brief problem and this sign-in cannot be resumed. Nobody was signed in. " +
			"Please start again from the application in a moment.", Cause: err}
}

// validateAnswer consumes the pending login of state (and has ans clear
// its login cookie) and validates the answer when this browser holds that
// cookie; with no live sign-in for state, the answer is unsolicited.
func (s *Service) validateAnswer(ctx context.Context, prov providers.Provider, state string, r *http.Request, ans *PostAnswer, meta RequestMeta) (*LoginState, *providers.Identity, error) {
	name := prov.Name()
	var pending *models.PendingLogin
	if state != "" {
		p, err := s.store.ConsumePendingLogin(ctx, stateHash(state), s.now())
		switch {
		case err == nil:
			ans.ClearCookie = s.ClearLoginCookie(state)
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
		s.LoginStateRejected(ctx, name, err, meta)
		if state == "" {
			return nil, nil, ProviderPageError(providers.ErrDenied, "Sign-in started at the identity provider is not enabled for this service. Start from the application instead.", err)
		}
		return nil, nil, s.expiredLogin(err)
	}
	var cookie string
	if c, err := r.Cookie(CookieName(state)); err == nil {
		cookie = c.Value
	}
	ls, err := s.OpenLoginState(cookie, state)
	if err == nil && (ls.Provider != name || subtle.ConstantTimeCompare([]byte(ls.Saved), []byte(pending.Saved)) != 1) {
		err = errors.New("the login cookie is for another sign-in")
	}
	if err != nil {
		err = fmt.Errorf("answer posted by a browser without this sign-in's login cookie: %w", causeOf(err))
		s.LoginStateRejected(ctx, name, err, meta)
		return nil, nil, &PageError{Status: http.StatusBadRequest, Title: "Sign-in not completed", Cause: err, StartOver: "/",
			Message: "This sign-in was started in another browser or on another device, or this browser did not keep the cookie it needs. " +
				"Nobody was signed in. Start again from the application, in this browser."}
	}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(name), Saved: pending.Saved})
	if err != nil {
		s.LoginFailed(ctx, ls, err, meta)
		return nil, nil, ProviderPageError(err, "", nil)
	}
	return ls, id, nil
}

func (s *Service) validateUnsolicited(ctx context.Context, prov providers.Provider, target providers.IdPInitiatedLogin, r *http.Request, meta RequestMeta) (*LoginState, *providers.Identity, error) {
	ls := &LoginState{Provider: prov.Name(), Request: AuthorizeParams{ClientID: target.ClientID, RedirectURI: target.RedirectURI, Scope: target.Scope}}
	if c, ok := s.clients[target.ClientID]; !ok || !c.RegisteredRedirect(target.RedirectURI) {
		return nil, nil, fmt.Errorf("idp_initiated of provider %s names an unknown client or redirect URI", prov.Name())
	}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(prov.Name()), Unsolicited: true})
	if err != nil {
		s.LoginFailed(ctx, ls, err, meta)
		return nil, nil, ProviderPageError(err, "", nil)
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

// CompleteUpstream completes the sign-in of a login state at its
// provider's callback. Sign-ins at cross-site POST providers complete at
// the provider's POST URL only (AcceptPost), never here.
func (s *Service) CompleteUpstream(ctx context.Context, prov providers.Provider, ls *LoginState, r *http.Request) (*providers.Identity, error) {
	if _, ok := prov.(providers.CrossSitePost); ok {
		return nil, s.expiredLogin(errors.New("sign-ins at this provider complete at its POST URL, not at the callback"))
	}
	return prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(ls.Provider), Saved: ls.Saved})
}

// ProviderPageError shows a provider failure: the provider's message for
// the person when it has one (else message, else a generic one), with the
// error for logs; a page error already made is kept. Refusals and invalid answers are 400; an unreachable
// upstream is 502.
func ProviderPageError(err error, message string, cause error) error {
	var pe *PageError
	if errors.As(err, &pe) {
		return pe
	}
	if models.IsTransient(err) && !errors.Is(err, providers.ErrUnavailable) {
		// Gatehouse's own database faulted (the SAML replay table, say):
		// the error table answers a retry page, not an upstream failure.
		return err
	}
	if cause == nil {
		cause = err
	}
	if message == "" {
		message = "The identity provider could not sign you in. Please try again."
	}
	var ue *providers.UserError
	if errors.As(err, &ue) && ue.Message != "" {
		message = ue.Message
	}
	// Refused by a rule: 403; the upstream is down: 503; its answer was
	// invalid or cancelled: 400; anything else went wrong upstream: 502.
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, providers.ErrDenied):
		status = http.StatusForbidden
	case errors.Is(err, providers.ErrUnavailable):
		status = http.StatusServiceUnavailable
	case errors.Is(err, providers.ErrInvalidResponse), errors.Is(err, providers.ErrCancelled):
		status = http.StatusBadRequest
	}
	return &PageError{Status: status, Title: "Sign-in failed", Message: message, Cause: cause}
}
