package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
)

// LogoutConfirm is the page that asks a person to confirm signing out
// of Gatehouse: a form POSTing Fields to Action, which the person
// submits (never the page itself).
type LogoutConfirm struct {
	Action string
	// Fields are the logout request's parameters, carried to the POST.
	Fields map[string]string
	// Client is the name of the application asking, when it said.
	Client string
}

// Logout answers /auth/logout (GET, or POST with a form), RP-initiated
// logout. bearer is an access token the caller presented instead of an
// id_token_hint ("" for none).
//
//   - With an id_token_hint (or bearer token), oauth.Service.Logout
//     checks it and ends the session it names and, unless
//     client_only=true, the browser session that session was opened under
//     with every app session under it. The browser-session cookie is
//     cleared when it named that browser session (or none live).
//   - Without one, and a live browser session in this browser: a GET
//     shows the confirmation page (LogoutConfirm) and ends nothing; a
//     POST ends the browser session only when it comes from Gatehouse's
//     own origin (Sec-Fetch-Site: same-origin, or an Origin of the
//     issuer): a cross-site POST is refused (fault.LogoutCrossSite).
//   - Without either, nothing is ended.
//
// A refused request (a hint that does not verify, another client_id, an
// unregistered post_logout_redirect_uri) ends nothing. The answer is the
// registered post-logout redirect (302) or the signed-out page.
func (s *Service) Logout(ctx context.Context, r *http.Request, bearer string, meta oauth.RequestMeta) Outcome {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
				return Outcome{Err: err}
			}
			return Outcome{Err: fault.New(fault.LogoutUnverified, err)}
		}
		q = r.PostForm
	}
	req := oauth.LogoutRequest{IDTokenHint: q.Get("id_token_hint"), ClientID: q.Get("client_id"),
		PostLogoutRedirectURI: q.Get("post_logout_redirect_uri"), State: q.Get("state"), Bearer: bearer}
	switch v := q.Get("client_only"); v {
	case "", "false":
	case "true":
		req.ClientOnly = true
	default:
		return Outcome{Err: fault.Explain(fault.InvalidRequest, "client_only must be true or false.",
			fmt.Errorf("client_only=%q", truncate(v, 16)))}
	}
	hinted := req.IDTokenHint != "" || req.Bearer != ""
	if req.ClientOnly && !hinted {
		// Without a hint no client session is named: ending "only the
		// client's" would silently end everything.
		return Outcome{Err: fault.Explain(fault.InvalidRequest, "client_only=true needs an id_token_hint.",
			errors.New("client_only without id_token_hint"))}
	}
	cur, present, err := s.liveSession(ctx, r)
	if err != nil {
		return Outcome{Err: err}
	}
	res, err := s.server.Logout(ctx, req, meta)
	if err != nil {
		return Outcome{Err: err}
	}
	if hinted && !req.ClientOnly && cur != nil && res.UserID == cur.UserID && cur.ID != res.BrowserSessionID {
		// The hint's app session was opened under an older browser
		// session; this browser's own, of the same person, ends too: a
		// logout must not leave the browser signed in.
		if _, err := s.store.RevokeBrowserSession(ctx, cur.ID, oauth.RevokeReasonLogout, s.now()); err != nil && !errors.Is(err, models.ErrNotFound) {
			return Outcome{Err: err}
		}
		s.audit(ctx, models.AuditEvent{Type: oauth.AuditLogout, ActorUserID: ptr(cur.UserID), SubjectUserID: ptr(cur.UserID),
			ClientID: req.ClientID, IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"browser_session_id": cur.ID})
		res.BrowserSessionID = cur.ID
	}
	if !hinted && cur != nil {
		if r.Method != http.MethodPost {
			return Outcome{Status: http.StatusOK, LogoutConfirm: s.logoutConfirm(r, req)}
		}
		if !s.sameOrigin(r) {
			return Outcome{Err: fault.New(fault.LogoutCrossSite, errors.New("hintless logout POST from another origin"))}
		}
		ended, err := s.store.RevokeBrowserSession(ctx, cur.ID, oauth.RevokeReasonLogout, s.now())
		if err != nil && !errors.Is(err, models.ErrNotFound) {
			return Outcome{Err: err}
		}
		if ended {
			s.audit(ctx, models.AuditEvent{Type: oauth.AuditLogout, ActorUserID: ptr(cur.UserID), SubjectUserID: ptr(cur.UserID),
				ClientID: req.ClientID, IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"browser_session_id": cur.ID})
		}
		res.BrowserSessionID = cur.ID
	}
	out := Outcome{Status: http.StatusFound, RedirectURL: res.RedirectURL, SignedOut: res.RedirectURL == ""}
	if out.SignedOut {
		out.Status = http.StatusOK
	}
	if present && (cur == nil || cur.ID == res.BrowserSessionID) {
		out.Cookies = []Cookie{s.clearSessionCookie()}
	}
	// This browser's own Gatehouse session ended: with upstream_logout,
	// its upstream session ends too, on the way to the same destination.
	if cur != nil && cur.ID == res.BrowserSessionID {
		if target := s.upstreamLogout(ctx, cur, res.RedirectURL); target != "" {
			out.Status, out.RedirectURL, out.SignedOut = http.StatusFound, target, false
		}
	}
	return out
}

// logoutConfirm is the confirmation page of a hintless logout request.
func (s *Service) logoutConfirm(r *http.Request, req oauth.LogoutRequest) *LogoutConfirm {
	c := &LogoutConfirm{Action: r.URL.Path, Fields: map[string]string{}}
	for k, v := range map[string]string{"client_id": req.ClientID, "post_logout_redirect_uri": req.PostLogoutRedirectURI, "state": req.State} {
		if v != "" {
			c.Fields[k] = v
		}
	}
	if client, ok := s.server.Client(req.ClientID); ok {
		c.Client = client.Name
	}
	return c
}

// sameOrigin reports whether the browser says r comes from Gatehouse's
// own origin: Sec-Fetch-Site same-origin when the browser sends it, else
// an Origin header equal to the issuer's. A request that says neither is
// not trusted.
func (s *Service) sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" {
		return sfs == "same-origin"
	}
	origin := r.Header.Get("Origin")
	return origin != "" && origin != "null" && origin == s.sso.origin
}
