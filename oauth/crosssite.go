package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
)

// Sign-ins whose upstream answers with a cross-site POST (SAML's ACS) keep
// their state server-side: the SameSite=Lax login cookie does not arrive
// with that POST. BeginLogin records a pending login under the SHA-256 of
// the state (sent upstream as the RelayState) with the provider's Saved
// data (the AuthnRequest id); AcceptPost validates the answer against it
// and stores the identity; the browser is then sent, by a top-level GET
// that does carry the cookie, to the callback URL, where CompleteUpstream
// hands the identity over only to the browser whose cookie holds that
// state. So an answer is bound both to the request Gatehouse sent and to
// the browser that started the sign-in.

// stateHash is the pending-login key of a state; the state itself is not
// stored.
func stateHash(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// maxRelayState bounds the RelayState looked up; ours are 43 characters.
const maxRelayState = 200

func (s *Service) recordPending(ctx context.Context, prov providers.Provider, ls *LoginState) error {
	if _, ok := prov.(providers.CrossSitePost); !ok {
		return nil
	}
	return s.store.CreatePendingLogin(ctx, &models.PendingLogin{
		ID: stateHash(ls.State), Provider: ls.Provider, ClientID: ls.Request.ClientID, Saved: ls.Saved,
		ExpiresAt: s.now().Add(s.cfg.LoginStateTTL), CreatedAt: s.now(),
	})
}

// AcceptPost handles an upstream's cross-site POST to a provider (the SAML
// ACS; the caller has parsed the form). For a sign-in Gatehouse started it
// returns the callback URL to send the browser to; for an unsolicited
// answer (IdP-initiated SSO, when the provider allows it) it finishes the
// sign-in and returns the client redirect. Failures are pages and audit
// events.
func (s *Service) AcceptPost(ctx context.Context, name string, r *http.Request, meta RequestMeta) (string, error) {
	prov, ok := s.providers[name]
	if _, post := prov.(providers.CrossSitePost); !ok || !post {
		return "", pageErr(http.StatusNotFound, "Unknown sign-in method", "This sign-in method does not exist.",
			fmt.Errorf("no cross-site POST provider %q", truncate(name, 64)))
	}
	relay := r.PostForm.Get("RelayState")
	var pending *models.PendingLogin
	if relay != "" && len(relay) <= maxRelayState {
		p, err := s.store.FindPendingLogin(ctx, stateHash(relay))
		switch {
		case err == nil && p.Provider == name && s.now().Before(p.ExpiresAt):
			pending = p
		case err != nil && !errors.Is(err, models.ErrNotFound):
			return "", err
		}
	}
	if pending == nil {
		if ip, ok := prov.(providers.IdPInitiated); ok {
			if target, on := ip.IdPInitiatedTarget(); on {
				// Any RelayState an IdP sends with an unsolicited answer is
				// ignored: it is not ours, and never a place to redirect to.
				return s.finishUnsolicited(ctx, prov, target, r, meta)
			}
		}
		err := errors.New("no live sign-in for this RelayState (expired, used, forged, or IdP-initiated while disabled)")
		s.LoginStateRejected(ctx, name, err, meta)
		if relay == "" {
			return "", ProviderPageError(providers.ErrDenied, "Sign-in started at the identity provider is not enabled for this service. Start from the application instead.", err)
		}
		return "", s.expiredLogin(err)
	}
	ls := &LoginState{Provider: name, Request: AuthorizeParams{ClientID: pending.ClientID}}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(name), Saved: pending.Saved})
	if err != nil {
		s.LoginFailed(ctx, ls, err, meta)
		return "", ProviderPageError(err, "", nil)
	}
	raw, err := json.Marshal(id)
	if err != nil {
		return "", err
	}
	answered, err := s.store.AnswerPendingLogin(ctx, pending.ID, string(raw), s.now())
	if err != nil {
		return "", err
	}
	if !answered {
		err := errors.New("the sign-in was already answered")
		s.LoginStateRejected(ctx, name, err, meta)
		return "", s.expiredLogin(err)
	}
	return s.CallbackURL(name) + "?" + url.Values{"state": {relay}}.Encode(), nil
}

func (s *Service) finishUnsolicited(ctx context.Context, prov providers.Provider, target providers.IdPInitiatedLogin, r *http.Request, meta RequestMeta) (string, error) {
	ls := &LoginState{Provider: prov.Name(), Request: AuthorizeParams{ClientID: target.ClientID, RedirectURI: target.RedirectURI, Scope: target.Scope}}
	if c, ok := s.clients[target.ClientID]; !ok || !c.RegisteredRedirect(target.RedirectURI) {
		return "", fmt.Errorf("idp_initiated of provider %s names an unknown client or redirect URI", prov.Name())
	}
	id, err := prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(prov.Name()), Unsolicited: true})
	if err != nil {
		s.LoginFailed(ctx, ls, err, meta)
		return "", ProviderPageError(err, "", nil)
	}
	return s.FinishLogin(ctx, ls, id, meta)
}

// CompleteUpstream completes the sign-in of a login state at its
// provider's callback: for cross-site POST providers it takes the identity
// AcceptPost stored (once), otherwise the provider reads the request.
func (s *Service) CompleteUpstream(ctx context.Context, prov providers.Provider, ls *LoginState, r *http.Request) (*providers.Identity, error) {
	if _, ok := prov.(providers.CrossSitePost); !ok {
		return prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.CallbackURL(ls.Provider), Saved: ls.Saved})
	}
	p, err := s.store.ConsumePendingLogin(ctx, stateHash(ls.State), s.now())
	if errors.Is(err, models.ErrNotFound) || (err == nil && p.Provider != ls.Provider) {
		return nil, s.expiredLogin(errors.New("no accepted answer for this sign-in"))
	}
	if err != nil {
		return nil, err
	}
	var id providers.Identity
	if err := json.Unmarshal([]byte(p.Identity), &id); err != nil {
		return nil, fmt.Errorf("pending login identity: %w", err)
	}
	return &id, nil
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
