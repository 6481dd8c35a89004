package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// Callback answers provider name's callback URL: the upstream's answer
// (GET, or a POST form), and the dev provider's own form. The sign-in
// must be one this browser began at this provider (its login cookie,
// named after the state); anything else is the "Sign-in expired" page,
// audited. An upstream error= answer goes back to the client as
// access_denied (302). The dev provider's form is shown on GET, and again
// with the person's entry and the provider's message when a POST is
// refused (400). A completed sign-in is provisioned and ends with a 303 to
// the client carrying the authorization code. Once the sign-in has
// finished, one way or the other, Cookies clear its login cookie.
func (s *Service) Callback(ctx context.Context, name string, r *http.Request, meta oauth.RequestMeta) Outcome {
	prov, ok := s.providers.Get(name)
	if !ok {
		return Outcome{Err: fault.New(fault.UnknownProvider, fmt.Errorf("no provider %q", truncate(name, 64)))}
	}
	query := r.URL.Query()
	state := query.Get("state")
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return Outcome{Err: unreadableAnswer(err)}
		}
		state = r.PostForm.Get("state")
	}
	ls, err := s.openLoginState(loginCookie(r, state), state)
	if err == nil && ls.Provider != name {
		err = s.expiredLogin(errLoginState) // a state begun at another provider
	}
	if err != nil {
		s.loginStateRejected(ctx, name, err, meta)
		return Outcome{Err: err}
	}
	clear := []Cookie{s.clearLoginCookie(state)}
	if upstreamErr := query.Get("error"); upstreamErr != "" {
		return Outcome{Cookies: clear, Status: http.StatusFound, RedirectURL: s.upstreamRefused(ctx, ls, upstreamErr, meta)}
	}
	_, localForm := prov.(providers.LocalForm)
	if localForm && r.Method == http.MethodGet {
		return Outcome{Status: http.StatusOK, DevForm: &DevForm{Action: r.URL.Path, State: state, Email: query.Get("login_hint")}}
	}
	id, err := s.completeUpstream(ctx, prov, ls, r)
	if err != nil {
		var ue *providers.UserError
		if localForm && errors.As(err, &ue) {
			// The person mistyped: the form again, the sign-in still open.
			f := r.PostForm
			return Outcome{Status: http.StatusBadRequest, DevForm: &DevForm{Action: r.URL.Path, State: state, Error: ue.Message,
				Email: f.Get("email"), Name: f.Get("name"), Groups: f.Get("groups")}}
		}
		s.loginFailed(ctx, ls, err, meta)
		return Outcome{Cookies: clear, Err: providerPageError(err)}
	}
	target, session, err := s.finish(ctx, ls, id, r, meta)
	if err != nil {
		return Outcome{Cookies: clear, Err: err}
	}
	return Outcome{Cookies: append(clear, session...), Status: http.StatusSeeOther, RedirectURL: target}
}

// completeUpstream completes the sign-in of a login state at its
// provider's callback. Sign-ins at cross-site POST providers complete at
// the provider's POST URL only (AssertionPost), never here.
func (s *Service) completeUpstream(ctx context.Context, prov providers.Provider, ls *loginState, r *http.Request) (*providers.Identity, error) {
	if _, ok := prov.(providers.CrossSitePost); ok {
		return nil, s.expiredLogin(errors.New("sign-ins at this provider complete at its POST URL, not at the callback"))
	}
	return prov.Complete(ctx, providers.CompleteRequest{HTTP: r, CallbackURL: s.callbackURL(ls.Provider), Saved: ls.Saved})
}

// upstreamRefused is the client redirect when the person cancelled or
// the upstream refused (an `error` on the callback).
func (s *Service) upstreamRefused(ctx context.Context, ls *loginState, upstreamCode string, meta oauth.RequestMeta) string {
	s.countLogin(ls.Provider, "cancelled")
	s.audit(ctx, models.AuditEvent{Type: "login.cancelled", Outcome: models.OutcomeFailure, Provider: ls.Provider,
		ClientID: ls.Request.ClientID, IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"upstream_error": truncate(upstreamCode, 64)})
	if ls.Device != "" {
		// Back to the device page, which offers to start again.
		return s.deviceURL("")
	}
	e := &oauth.Error{Code: "access_denied", Description: "the sign-in was cancelled or refused at the identity provider"}
	return s.server.ErrorRedirect(&ls.Request, e).RedirectURL
}

// finish completes a sign-in with the identity the provider yielded: it
// provisions the user, starts (or renews) the browser session of r's
// browser, has the authorization server open a session under it and
// issue a code, and returns the client redirect carrying that code with
// the browser-session cookie to set. An unsolicited sign-in (IdP-initiated
// SSO, bound to no sign-in this browser began) opens only its app
// session: it neither starts nor replaces a browser session.
func (s *Service) finish(ctx context.Context, ls *loginState, id *providers.Identity, r *http.Request, meta oauth.RequestMeta) (string, []Cookie, error) {
	p := &ls.Request
	res, err := s.provisioner.Provision(ctx, provisioning.Login{Identity: id,
		Meta: provisioning.Meta{ClientID: p.ClientID, IP: meta.IP, RequestID: meta.RequestID}})
	if errors.Is(err, provisioning.ErrUserDisabled) {
		// Provisioning recorded the refusal in the audit trail.
		s.countLogin(ls.Provider, "refused")
		return "", nil, fault.New(fault.AccountDisabled, err)
	}
	if err != nil {
		s.countLogin(ls.Provider, "error")
		return "", nil, err
	}
	in := oauth.CodeRequest{Request: p, Provider: ls.Provider, Provisioned: res, AMR: id.AMR, ACR: truncate(id.ACR, 256)}
	var cookies []Cookie
	if !ls.unsolicited {
		bs, cookie, err := s.startBrowserSession(ctx, r, res, ls.Provider, id, meta)
		if err != nil {
			s.countLogin(ls.Provider, "error")
			return "", nil, err
		}
		in.AMR, in.ACR, in.AuthTime, in.BrowserSessionID = bs.AMRValues(), bs.ACR, bs.AuthTime, bs.ID
		cookies = append(cookies, cookie)
	}
	if ls.Device != "" {
		// A device's sign-in opens no app session yet: the person
		// approves or denies the device next, as the browser session
		// just started.
		s.countLogin(ls.Provider, "success")
		s.audit(ctx, models.AuditEvent{Type: "login.success", Provider: ls.Provider, SubjectUserID: ptr(res.User.ID),
			ActorUserID: ptr(res.User.ID), ClientID: p.ClientID, IP: meta.IP, RequestID: meta.RequestID},
			map[string]any{"device_authorization_id": ls.Device, "browser_session_id": in.BrowserSessionID})
		return s.deviceURL(deviceApproveStep), cookies, nil
	}
	issued, err := s.server.IssueCode(ctx, in)
	if err != nil {
		return "", nil, err
	}
	s.countLogin(ls.Provider, "success")
	s.audit(ctx, models.AuditEvent{Type: "login.success", Provider: ls.Provider, SubjectUserID: ptr(res.User.ID),
		ActorUserID: ptr(res.User.ID), ClientID: p.ClientID, IP: meta.IP, RequestID: meta.RequestID},
		map[string]any{"session_id": issued.SessionID, "browser_session_id": in.BrowserSessionID})
	return issued.RedirectURL, cookies, nil
}

// loginStateRejected records a callback whose login state was missing,
// forged, replayed or expired.
func (s *Service) loginStateRejected(ctx context.Context, provider string, err error, meta oauth.RequestMeta) {
	s.countLogin(provider, "state_rejected")
	s.audit(ctx, models.AuditEvent{Type: "login.state_rejected", Outcome: models.OutcomeFailure, Provider: truncate(provider, 64),
		IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"reason": truncate(causeOf(err).Error(), 200)})
}

// loginFailed records a failed completion at a provider.
func (s *Service) loginFailed(ctx context.Context, ls *loginState, err error, meta oauth.RequestMeta) {
	outcome := "error"
	if errors.Is(err, providers.ErrDenied) {
		outcome = "refused"
	}
	s.countLogin(ls.Provider, outcome)
	s.audit(ctx, models.AuditEvent{Type: "login.failed", Outcome: models.OutcomeFailure, Provider: ls.Provider,
		ClientID: ls.Request.ClientID, IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"reason": truncate(err.Error(), 300)})
}

// providerFailure is what a person sees when a provider could not begin
// a sign-in: the provider's kind of failure, and an error of no known kind
// is an upstream that cannot be reached (its discovery never loaded, say).
func providerFailure(name string, err error) error {
	err = fmt.Errorf("provider %s: %w", name, err)
	if fault.Of(err) == fault.Internal {
		return fault.Explain(fault.UpstreamUnavailable, fault.MessageOf(err), err)
	}
	return err
}

// providerPageError is what a person sees when a provider's answer was
// not a sign-in: its kind (refused, unreachable, an invalid or cancelled
// answer) decides the page, the provider's words for the person replace
// the page's text (fault.MessageOf), and an error of no known kind went
// wrong upstream (UpstreamFailed). Gatehouse's own transient fault (the
// SAML replay table, say) keeps its kind: the table answers a retry page.
func providerPageError(err error) error {
	if fault.Of(err) == fault.Internal {
		return fault.Explain(fault.UpstreamFailed, fault.MessageOf(err), err)
	}
	return err
}
