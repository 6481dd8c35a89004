package signin

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// Single sign-on. A completed upstream sign-in gives the browser a
// session cookie of Gatehouse's own: a random 256-bit token, stored only
// as its SHA-256, bound to a browser_sessions row that records the user,
// the identity and provider, the upstream sign-in's time, amr and acr.
// While it lives (idle and absolute expiry, user enabled, identity still
// linked), an authorization request from any client that it satisfies is
// answered with a code at once (Login). Every upstream sign-in gives the
// browser a new token (no fixation): the same user's session is renewed
// in place, so the app sessions opened under it stay under it; another
// user's is ended and replaced.

// Default lifetimes of a browser session, as the configuration's.
const (
	defaultSSOIdleTTL     = 12 * time.Hour
	defaultSSOAbsoluteTTL = 7 * 24 * time.Hour
)

// Browser-session revoke reasons this package writes.
const (
	// RevokeReasonReplaced: another user signed in in the same browser.
	RevokeReasonReplaced = "replaced"
)

// Audit events this package records for single sign-on.
const (
	// AuditLoginSSO is a code issued from a live browser session.
	AuditLoginSSO = "login.sso"
	// AuditBrowserSessionReplaced is a browser session ended because
	// another user signed in in the same browser.
	AuditBrowserSessionReplaced = "browser_session.replaced"
)

// SessionCookieBase is the name of the browser-session cookie, after its
// prefix (__Host- or __Secure- on https issuers).
const SessionCookieBase = "gatehouse_session"

// ssoSettings are the browser session's cookie and lifetimes.
type ssoSettings struct {
	cookieName string
	cookiePath string
	idleTTL    time.Duration
	absTTL     time.Duration
	// origin is the issuer's origin, which a hintless logout POST must
	// come from.
	origin string
	// upstreamKey seals what an upstream logout needs, at rest.
	upstreamKey []byte
	// returnKey seals the state of an upstream logout's round trip.
	returnKey []byte
}

// newSSOSettings derives the cookie from the issuer: host-only always;
// on https with the issuer at the root, the __Host- prefix (Path=/, no
// Domain, Secure); on https under a path, __Secure- scoped to that path;
// on plain http, no prefix.
func newSSOSettings(opts Options) ssoSettings {
	st := ssoSettings{cookieName: SessionCookieBase, cookiePath: "/", idleTTL: opts.SSOIdleTTL, absTTL: opts.SSOAbsoluteTTL,
		upstreamKey: tokens.DeriveKey(opts.SecretKey, "upstream-logout"),
		returnKey:   tokens.DeriveKey(opts.SecretKey, "upstream-logout-return")}
	if st.idleTTL <= 0 {
		st.idleTTL = defaultSSOIdleTTL
	}
	if st.absTTL <= 0 {
		st.absTTL = defaultSSOAbsoluteTTL
	}
	u, err := url.Parse(opts.Issuer)
	if err != nil {
		return st
	}
	st.origin = u.Scheme + "://" + u.Host
	path := strings.TrimSuffix(u.Path, "/")
	if path != "" {
		st.cookiePath = path
	}
	if u.Scheme == "https" {
		st.cookieName = "__Secure-" + SessionCookieBase
		if path == "" {
			st.cookieName = "__Host-" + SessionCookieBase
		}
	}
	return st
}

// SessionCookieName is the name of the browser-session cookie.
func (s *Service) SessionCookieName() string { return s.sso.cookieName }

// sessionTokenLen is the length of a session token: 32 bytes, base64url.
var sessionTokenLen = base64.RawURLEncoding.EncodedLen(32)

// liveSession returns the live browser session r's cookie names (nil
// when there is none: no cookie, a malformed, unknown, ended or expired
// one, or its user disabled), and whether r carried a cookie at all. Only
// a database fault is an error.
func (s *Service) liveSession(ctx context.Context, r *http.Request) (*models.BrowserSession, bool, error) {
	c, err := r.Cookie(s.sso.cookieName)
	if err != nil || c.Value == "" {
		return nil, false, nil
	}
	if len(c.Value) != sessionTokenLen {
		return nil, true, nil
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(c.Value); err != nil {
		return nil, true, nil
	}
	now := s.now()
	bs, err := s.store.LiveBrowserSession(ctx, stateHash(c.Value), now, now.Add(-s.sso.idleTTL))
	if errors.Is(err, models.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, true, err
	}
	return bs, true, nil
}

// sessionCookie is the browser-session cookie holding token, persistent
// until the session's absolute expiry.
func (s *Service) sessionCookie(token string, expires time.Time) Cookie {
	return Cookie{Name: s.sso.cookieName, Value: token, Path: s.sso.cookiePath, Expires: expires,
		MaxAge: max(1, int(expires.Sub(s.now()).Seconds())), HTTPOnly: true, Secure: s.secureCookies, SameSiteLax: true}
}

// clearSessionCookie removes the browser-session cookie.
func (s *Service) clearSessionCookie() Cookie {
	return Cookie{Name: s.sso.cookieName, Path: s.sso.cookiePath, MaxAge: -1, HTTPOnly: true, Secure: s.secureCookies, SameSiteLax: true}
}

// startBrowserSession records the upstream sign-in of res through
// provider (identity id) as the browser session of r's browser, with a
// new token, and returns it with the cookie to set. The browser's live
// session of the same user is renewed in place (its app sessions stay
// under it); another user's is ended ("replaced").
func (s *Service) startBrowserSession(ctx context.Context, r *http.Request, res *provisioning.Result, provider string,
	id *providers.Identity, meta oauth.RequestMeta) (*models.BrowserSession, Cookie, error) {
	prev, _, err := s.liveSession(ctx, r)
	if err != nil {
		return nil, Cookie{}, err
	}
	now := s.now().Truncate(time.Microsecond) // as stored
	token := randomToken(32)
	amr := id.AMR
	if len(amr) == 0 {
		amr = []string{"ext"}
	}
	// auth_time is when the person authenticated: the upstream's own
	// word when it gives one (an earlier sign-in it still had a session
	// of), else now.
	authTime := now
	if !id.AuthTime.IsZero() && id.AuthTime.Before(now) {
		authTime = id.AuthTime.UTC().Truncate(time.Microsecond)
	}
	b := &models.BrowserSession{TokenHash: stateHash(token), UserID: res.User.ID, Provider: provider, AuthTime: authTime,
		AMR: strings.Join(amr, " "), ACR: truncate(id.ACR, 256), IP: meta.IP, UserAgent: truncate(r.UserAgent(), 256),
		CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(s.sso.absTTL)}
	if res.IdentityID != "" {
		b.IdentityID = ptr(res.IdentityID)
	}
	renewed := false
	switch {
	case prev != nil && prev.UserID == res.User.ID:
		b.ID = prev.ID
		if b.UpstreamLogout, err = s.sealUpstreamLogout(b.ID, id.UpstreamLogout); err != nil {
			return nil, Cookie{}, err
		}
		if renewed, err = s.store.RenewBrowserSession(ctx, b, now); err != nil {
			return nil, Cookie{}, err
		}
	case prev != nil:
		ended, err := s.store.RevokeBrowserSession(ctx, prev.ID, RevokeReasonReplaced, now)
		if err != nil && !errors.Is(err, models.ErrNotFound) {
			return nil, Cookie{}, err
		}
		if ended {
			s.audit(ctx, models.AuditEvent{Type: AuditBrowserSessionReplaced, Provider: prev.Provider, SubjectUserID: ptr(prev.UserID),
				ActorUserID: ptr(res.User.ID), IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"browser_session_id": prev.ID})
		}
	}
	if !renewed {
		b.ID = models.NewID()
		if b.UpstreamLogout, err = s.sealUpstreamLogout(b.ID, id.UpstreamLogout); err != nil {
			return nil, Cookie{}, err
		}
		if err := s.store.CreateBrowserSession(ctx, b); err != nil {
			return nil, Cookie{}, err
		}
	}
	return b, s.sessionCookie(token, b.ExpiresAt), nil
}

// sealUpstreamLogout seals what an upstream logout of browser session
// id needs, bound to that session ("" stays "").
func (s *Service) sealUpstreamLogout(id, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	sealed, err := tokens.Seal(s.sso.upstreamKey, []byte(v), []byte(id))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// UpstreamLogoutOf opens what an upstream logout of browser session b
// needs (providers.UpstreamLogout's saved value); "" when it holds none
// or it does not open.
func (s *Service) UpstreamLogoutOf(b *models.BrowserSession) string {
	if b.UpstreamLogout == "" {
		return ""
	}
	sealed, err := base64.RawURLEncoding.DecodeString(b.UpstreamLogout)
	if err != nil {
		return ""
	}
	plain, err := tokens.Open(s.sso.upstreamKey, sealed, []byte(b.ID))
	if err != nil {
		return ""
	}
	return string(plain)
}

// mustSignIn says why authorization request p cannot be answered from
// browser session bs without a sign-in upstream ("" when it can).
func (s *Service) mustSignIn(p *oauth.AuthorizeParams, bs *models.BrowserSession) string {
	client, _ := s.server.Client(p.ClientID)
	_, configured := s.providers.Get(providerOf(bs))
	switch {
	case bs == nil:
		return "no live sign-in session in this browser"
	case p.HasPrompt("login") || p.HasPrompt("consent"):
		return "the client asked for a new sign-in"
	case p.HasPrompt("select_account"):
		return "the client asked to choose an account"
	case p.MaxAge != nil && (*p.MaxAge == 0 || s.now().Sub(bs.AuthTime) > maxAgeDuration(*p.MaxAge)):
		return "the sign-in is older than max_age"
	case bs.IdentityID == nil:
		return "the identity of the sign-in session was unlinked"
	case p.Organization != "" && s.upstreamChecksOrganization(bs.Provider):
		// The upstream checks the organization named at sign-in (Auth0's
		// organization, org_id): a session opened for one must not
		// answer a request naming another without that check.
		return "the client named an organization the upstream must check"
	case p.Provider != "" && p.Provider != bs.Provider:
		return "the client asked for another provider"
	case !configured || client == nil || !client.AllowsProvider(bs.Provider):
		return "the client may not use the provider of the sign-in session"
	case p.HintSubject != "" && p.HintSubject != bs.UserID:
		return "id_token_hint names another user"
	}
	return ""
}

// upstreamMustConfirm applies the upstream re-check rules (a due
// re-check, recheck_max_staleness, on_recheck_unavailable: deny,
// max_session_age) to a single sign-on from bs, as a refresh obeys them:
// it says why the upstream must be asked again ("" when the browser
// session may answer). err is Gatehouse's own failure.
func (s *Service) upstreamMustConfirm(ctx context.Context, p *oauth.AuthorizeParams, bs *models.BrowserSession, meta oauth.RequestMeta) (string, error) {
	if s.rechecks == nil {
		return "", nil
	}
	err := s.rechecks.BeforeSSO(ctx, bs, provisioning.Meta{ClientID: p.ClientID, IP: meta.IP, RequestID: meta.RequestID})
	switch fault.Of(err) {
	case "":
		return "", nil
	case fault.InvalidGrant, fault.UpstreamUnconfirmed, fault.Unavailable:
		return "the identity provider must confirm the sign-in again", nil
	}
	return "", err
}

// upstreamChecksOrganization reports whether provider name's kind binds a
// sign-in to the organization the request names (auth0).
func (s *Service) upstreamChecksOrganization(name string) bool {
	prov, ok := s.providers.Get(name)
	return ok && prov.Type() == "auth0"
}

// maxAgeDuration is max_age seconds as a duration. ParseAuthorize accepts
// up to ten digits, more than a time.Duration holds: a longer max_age is
// the longest duration, so it is never exceeded (instead of overflowing
// into a negative one that every sign-in exceeds).
func maxAgeDuration(seconds int) time.Duration {
	if seconds > int(math.MaxInt64/int64(time.Second)) {
		return math.MaxInt64
	}
	return time.Duration(seconds) * time.Second
}

func providerOf(bs *models.BrowserSession) string {
	if bs == nil {
		return ""
	}
	return bs.Provider
}

// resume answers authorization request p from browser session bs with
// a code, without an upstream round trip: the stored user and
// memberships (no org sync), the session's upstream auth_time, amr and
// acr. ok is false when the session ended or its user was disabled
// meanwhile (the request is then a sign-in like any other).
func (s *Service) resume(ctx context.Context, p *oauth.AuthorizeParams, bs *models.BrowserSession, meta oauth.RequestMeta) (out Outcome, ok bool) {
	res, err := s.provisioner.Resume(ctx, bs.UserID)
	if errors.Is(err, provisioning.ErrUserDisabled) || errors.Is(err, models.ErrNotFound) {
		return Outcome{}, false
	}
	if err != nil {
		return Outcome{Err: err}, true
	}
	touched, err := s.store.TouchBrowserSession(ctx, bs.ID, s.now())
	if err != nil {
		return Outcome{Err: err}, true
	}
	if !touched {
		return Outcome{}, false
	}
	// The app session comes through the browser session's identity
	// (mustSignIn refused a browser session whose identity is gone).
	if bs.IdentityID != nil {
		res.IdentityID = *bs.IdentityID
	}
	issued, err := s.server.IssueCode(ctx, oauth.CodeRequest{Request: p, Provider: bs.Provider, Provisioned: res,
		AMR: bs.AMRValues(), ACR: bs.ACR, AuthTime: bs.AuthTime, BrowserSessionID: bs.ID})
	if errors.Is(err, models.ErrSessionInactive) {
		return Outcome{}, false // ended by a logout running meanwhile
	}
	if err != nil {
		return Outcome{Err: err}, true
	}
	s.countLogin(bs.Provider, "sso")
	s.audit(ctx, models.AuditEvent{Type: AuditLoginSSO, Provider: bs.Provider, SubjectUserID: ptr(bs.UserID),
		ActorUserID: ptr(bs.UserID), ClientID: p.ClientID, IP: meta.IP, RequestID: meta.RequestID},
		map[string]any{"session_id": issued.SessionID, "browser_session_id": bs.ID})
	return Outcome{Status: http.StatusFound, RedirectURL: issued.RedirectURL}, true
}
