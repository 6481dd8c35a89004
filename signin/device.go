package signin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// The verification page of the device authorization grant (RFC 8628),
// at /device. A person enters the user code their device shows (or
// arrives with it in verification_uri_complete, which only fills the
// form in: nothing is decided without their submitting it), signs in
// through the usual chooser and upstream unless this browser has a
// live single sign-on session the client may use, and then approves or
// denies the device on a page naming the client and the scopes.
//
// The browser's progress is a sealed cookie (HttpOnly, SameSite=Lax,
// scoped to /device): a random nonce, and once a code was accepted the
// authorization it named. Every form carries a token derived from the
// nonce (an HMAC under a key of its own), checked before the form is
// acted on: a form posted from elsewhere carries no valid token. The
// authorization a decision applies to is the cookie's, never a form
// field, and its client is the one the device authenticated as.

// Device steps, as DevicePage.Step says and the paths under /device.
const (
	deviceEnterStep   = ""
	deviceApproveStep = "approve"
	deviceLoginStep   = "login"
)

// DeviceCookieBase is the name of the device page's cookie.
const DeviceCookieBase = "gatehouse_device"

// deviceCookieTTL bounds the device page's cookie; the authorization it
// names expires sooner (GATEHOUSE_DEVICE_CODE_TTL, 10 minutes).
const deviceCookieTTL = 30 * time.Minute

// DevicePage is the device verification page: the code entry form
// (Step "enter"), the approval (Step "approve"), or the outcome
// (Step "done").
type DevicePage struct {
	Step string
	// Action is where the page's form posts; CSRF is its token.
	Action string
	CSRF   string
	// UserCode is the code entered (or to prefill the form with).
	UserCode string
	// Error is shown above the form (a code that was not accepted).
	Error string
	// ClientName, ClientID and Scopes describe what approving grants.
	ClientName string
	ClientID   string
	Scopes     []string
	// Who is the person signed in (name, else email).
	Who string
	// Approved says, on the done step, which way the person decided.
	Approved bool
}

// deviceState is the device page's cookie, sealed.
type deviceState struct {
	Nonce string `json:"n"`
	// Auth is the pending device authorization the accepted code named.
	Auth string `json:"a,omitempty"`
	// UserCode is that code as shown, for the approval page.
	UserCode  string `json:"u,omitempty"`
	ExpiresAt int64  `json:"e"`
}

// deviceURL is the absolute URL of a device step.
func (s *Service) deviceURL(step string) string {
	u := strings.TrimSuffix(s.issuer, "/") + oauth.DevicePath
	if step != "" {
		u += "/" + step
	}
	return u
}

func (s *Service) deviceCookiePath() string {
	u, err := url.Parse(s.issuer)
	if err != nil {
		return oauth.DevicePath
	}
	return strings.TrimSuffix(u.Path, "/") + oauth.DevicePath
}

// deviceCookie seals st into the device page's cookie.
func (s *Service) deviceCookie(st *deviceState) (Cookie, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return Cookie{}, err
	}
	sealed, err := tokens.Seal(s.deviceKey, plain, []byte(DeviceCookieBase))
	if err != nil {
		return Cookie{}, err
	}
	exp := time.Unix(st.ExpiresAt, 0)
	return Cookie{Name: DeviceCookieBase, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: s.deviceCookiePath(),
		Expires: exp, MaxAge: max(1, int(exp.Sub(s.now()).Seconds())), HTTPOnly: true, Secure: s.secureCookies, SameSiteLax: true}, nil
}

func (s *Service) clearDeviceCookie() Cookie {
	return Cookie{Name: DeviceCookieBase, Path: s.deviceCookiePath(), MaxAge: -1, HTTPOnly: true, Secure: s.secureCookies, SameSiteLax: true}
}

// deviceStateOf opens r's device cookie; nil when it has none that
// opens and has not expired.
func (s *Service) deviceStateOf(r *http.Request) *deviceState {
	c, err := r.Cookie(DeviceCookieBase)
	if err != nil || c.Value == "" || len(c.Value) > 1024 {
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil
	}
	plain, err := tokens.Open(s.deviceKey, sealed, []byte(DeviceCookieBase))
	if err != nil {
		return nil
	}
	var st deviceState
	if json.Unmarshal(plain, &st) != nil || st.Nonce == "" || s.now().Unix() > st.ExpiresAt {
		return nil
	}
	return &st
}

// newDeviceState is a fresh state (a new nonce) naming auth.
func (s *Service) newDeviceState(auth, userCode string) *deviceState {
	return &deviceState{Nonce: randomToken(24), Auth: auth, UserCode: userCode, ExpiresAt: s.now().Add(deviceCookieTTL).Unix()}
}

// csrfToken is the form token of st.
func (s *Service) csrfToken(st *deviceState) string {
	m := hmac.New(sha256.New, s.deviceCSRFKey)
	m.Write([]byte(st.Nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfValid reports whether the form token matches st.
func (s *Service) csrfValid(st *deviceState, token string) bool {
	return st != nil && token != "" && subtle.ConstantTimeCompare([]byte(s.csrfToken(st)), []byte(token)) == 1
}

// errDeviceForm is a device form that did not come from this browser's
// device page (no or another token), or outlived it.
var errDeviceForm = errors.New("device form token missing or not this browser's")

// deviceEntry is the code entry page for st (a new state when nil),
// with its cookie.
func (s *Service) deviceEntry(st *deviceState, status int, userCode, message string) Outcome {
	if st == nil || st.Auth != "" {
		st = s.newDeviceState("", "")
	}
	cookie, err := s.deviceCookie(st)
	if err != nil {
		return Outcome{Err: err}
	}
	return Outcome{Cookies: []Cookie{cookie}, Status: status, Device: &DevicePage{Step: "enter", Action: s.deviceURL(deviceEnterStep),
		CSRF: s.csrfToken(st), UserCode: userCode, Error: message}}
}

// DeviceEntry answers GET /device: the form to enter a user code,
// filled in with r's user_code (verification_uri_complete) when it is
// one. Nothing is looked up or decided until the person submits it.
func (s *Service) DeviceEntry(ctx context.Context, r *http.Request) Outcome {
	shown := ""
	if code, ok := tokens.NormalizeUserCode(r.URL.Query().Get("user_code")); ok {
		shown = tokens.FormatUserCode(code)
	}
	return s.deviceEntry(s.deviceStateOf(r), http.StatusOK, shown, "")
}

// DeviceSubmit answers POST /device, a user code entered: a form
// without this browser's token is refused (the form again, 400); a code
// that names no pending authorization is the form again with the
// reason (400; audited by the authorization server; the handler limits
// attempts per client IP). An accepted code continues to the sign-in,
// or straight to the approval when this browser's single sign-on
// session may serve the client.
func (s *Service) DeviceSubmit(ctx context.Context, r *http.Request, meta oauth.RequestMeta) Outcome {
	if out, ok := parseDeviceForm(r); !ok {
		return out
	}
	st := s.deviceStateOf(r)
	if !s.csrfValid(st, r.PostForm.Get("csrf")) {
		return s.deviceFormRefused(ctx, meta)
	}
	typed := r.PostForm.Get("user_code")
	req, err := s.server.DeviceByUserCode(ctx, typed, meta)
	if errors.Is(err, oauth.ErrUnknownUserCode) {
		return s.deviceEntry(st, http.StatusBadRequest, truncate(typed, 16), fault.MessageOf(err))
	}
	if err != nil {
		return Outcome{Err: err}
	}
	code, _ := tokens.NormalizeUserCode(typed)
	next := s.newDeviceState(req.ID, tokens.FormatUserCode(code))
	return s.deviceContinue(ctx, r, next, req, meta)
}

// deviceFormRefused answers a device form without a valid token.
func (s *Service) deviceFormRefused(ctx context.Context, meta oauth.RequestMeta) Outcome {
	s.audit(ctx, models.AuditEvent{Type: oauth.AuditDeviceCodeFailed, Outcome: models.OutcomeFailure, IP: meta.IP,
		RequestID: meta.RequestID}, map[string]any{"reason": "form_token"})
	// The browser's state is left as it is: a form posted from
	// elsewhere must not end the person's own progress either.
	return Outcome{Err: fault.Explain(fault.InvalidRequest,
		"This form expired or did not come from this page. Open the page again and retry.", errDeviceForm)}
}

// parseDeviceForm reads a device form's body; ok false: out answers.
func parseDeviceForm(r *http.Request) (Outcome, bool) {
	if err := r.ParseForm(); err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return Outcome{Err: err}, false
		}
		return Outcome{Err: fault.Explain(fault.InvalidRequest, "The form could not be read.", err)}, false
	}
	return Outcome{}, true
}

// deviceContinue goes on with authorization req once st names it: to
// the approval when this browser's sign-in may serve req's client, else
// to a sign-in (the chooser, or the one provider) that returns to the
// approval.
func (s *Service) deviceContinue(ctx context.Context, r *http.Request, st *deviceState, req *oauth.DeviceRequest, meta oauth.RequestMeta) Outcome {
	cookie, err := s.deviceCookie(st)
	if err != nil {
		return Outcome{Err: err}
	}
	cookies := []Cookie{cookie}
	bs, present, err := s.liveSession(ctx, r)
	if err != nil {
		return Outcome{Err: err}
	}
	if present && bs == nil {
		cookies = append(cookies, s.clearSessionCookie())
	}
	if bs != nil {
		if res, ok, err := s.deviceSignedIn(ctx, req, bs, meta); err != nil {
			return Outcome{Cookies: cookies, Err: err}
		} else if ok {
			return Outcome{Cookies: cookies, Status: http.StatusOK, Device: s.approvalPage(st, req, res)}
		}
	}
	p := deviceParams(req)
	list := s.providersFor(p)
	switch len(list) {
	case 0:
		return Outcome{Cookies: cookies, Err: fault.New(fault.NoProvider, errors.New("device client allows no configured provider"))}
	case 1:
		return s.deviceBegin(ctx, p, list[0].Name(), st, cookies)
	}
	entries := make([]ChooserEntry, 0, len(list))
	for _, prov := range list {
		entries = append(entries, ChooserEntry{DisplayName: prov.DisplayName(),
			URL: s.deviceURL(deviceLoginStep) + "?" + url.Values{"provider": {prov.Name()}}.Encode()})
	}
	return Outcome{Cookies: cookies, Status: http.StatusOK, Chooser: &Chooser{Client: req.Client.Name, Providers: entries}}
}

// deviceParams is the authorization request a device's sign-in and
// session stand for: its client and scope.
func deviceParams(req *oauth.DeviceRequest) *oauth.AuthorizeParams {
	return &oauth.AuthorizeParams{ClientID: req.Client.ID, Scope: req.Scope}
}

// deviceBegin starts the sign-in at provider name for st's device.
func (s *Service) deviceBegin(ctx context.Context, p *oauth.AuthorizeParams, name string, st *deviceState, cookies []Cookie) Outcome {
	ch, cookie, err := s.beginFor(ctx, p, name, st.Auth)
	if err != nil {
		return Outcome{Cookies: cookies, Err: err}
	}
	return upstreamOutcome(ch, append(cookies, cookie))
}

// deviceSignedIn is the person of browser session bs when it may serve
// a device of req's client without a new sign-in upstream (the rules
// single sign-on follows: the client allows its provider, its identity
// is linked, the upstream re-check rules agree, the user is enabled).
func (s *Service) deviceSignedIn(ctx context.Context, req *oauth.DeviceRequest, bs *models.BrowserSession, meta oauth.RequestMeta) (*provisioning.Result, bool, error) {
	p := deviceParams(req)
	if s.mustSignIn(p, bs) != "" {
		return nil, false, nil
	}
	if why, err := s.upstreamMustConfirm(ctx, p, bs, meta); err != nil || why != "" {
		return nil, false, err
	}
	res, err := s.provisioner.Resume(ctx, bs.UserID)
	if errors.Is(err, provisioning.ErrUserDisabled) || errors.Is(err, models.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if bs.IdentityID != nil {
		res.IdentityID = *bs.IdentityID
	}
	return res, true, nil
}

// approvalPage asks the person to approve or deny req.
func (s *Service) approvalPage(st *deviceState, req *oauth.DeviceRequest, res *provisioning.Result) *DevicePage {
	who := res.User.Name
	if who == "" {
		who = res.User.Email
	}
	name := req.Client.Name
	if name == "" {
		name = req.Client.ID
	}
	return &DevicePage{Step: "approve", Action: s.deviceURL(deviceApproveStep), CSRF: s.csrfToken(st), UserCode: st.UserCode,
		ClientName: name, ClientID: req.Client.ID, Scopes: strings.Fields(req.Scope), Who: who}
}

// deviceInProgress is r's device state naming a pending authorization,
// or the answer when there is none (the entry form again, 400).
func (s *Service) deviceInProgress(ctx context.Context, r *http.Request) (*deviceState, *oauth.DeviceRequest, *Outcome) {
	st := s.deviceStateOf(r)
	if st == nil || st.Auth == "" {
		out := s.deviceEntry(st, http.StatusBadRequest, "", "Enter the code your device shows to continue.")
		return nil, nil, &out
	}
	req, err := s.server.PendingDevice(ctx, st.Auth)
	if errors.Is(err, oauth.ErrUnknownUserCode) {
		out := s.deviceEntry(nil, http.StatusBadRequest, "", "That code expired or was already used. Start again on your device.")
		return nil, nil, &out
	}
	if err != nil {
		return nil, nil, &Outcome{Err: err}
	}
	return st, req, nil
}

// DeviceLogin answers GET /device/login?provider=…, a chooser entry:
// the sign-in at that provider for the device this browser's code named.
func (s *Service) DeviceLogin(ctx context.Context, r *http.Request) Outcome {
	st, req, out := s.deviceInProgress(ctx, r)
	if out != nil {
		return *out
	}
	p := deviceParams(req)
	name := r.URL.Query().Get("provider")
	if _, ok := s.providers.Get(name); !ok || !req.Client.AllowsProvider(name) {
		return Outcome{Err: fault.New(fault.UnknownProvider, errors.New("device sign-in at a provider the client may not use"))}
	}
	return s.deviceBegin(ctx, p, name, st, nil)
}

// DeviceApproval answers GET /device/approve, where a device's sign-in
// returns: the approval page, or a sign-in when this browser has none
// that may serve the client.
func (s *Service) DeviceApproval(ctx context.Context, r *http.Request, meta oauth.RequestMeta) Outcome {
	st, req, out := s.deviceInProgress(ctx, r)
	if out != nil {
		return *out
	}
	return s.deviceContinue(ctx, r, st, req, meta)
}

// DeviceDecide answers POST /device/approve: with this browser's form
// token and a sign-in that may serve the client, the person's decision
// ("approve" or "deny") is recorded for the authorization the cookie
// names (oauth.Service.ApproveDevice opens the session the device's
// next poll takes). The cookie is cleared: one decision per code.
func (s *Service) DeviceDecide(ctx context.Context, r *http.Request, meta oauth.RequestMeta) Outcome {
	if out, ok := parseDeviceForm(r); !ok {
		return out
	}
	if !s.csrfValid(s.deviceStateOf(r), r.PostForm.Get("csrf")) {
		return s.deviceFormRefused(ctx, meta)
	}
	st, req, out := s.deviceInProgress(ctx, r)
	if out != nil {
		return *out
	}
	decision := r.PostForm.Get("decision")
	if decision != "approve" && decision != "deny" {
		return Outcome{Err: fault.Explain(fault.InvalidRequest, "Choose Approve or Deny.", errors.New("device decision missing"))}
	}
	bs, _, err := s.liveSession(ctx, r)
	if err != nil {
		return Outcome{Err: err}
	}
	var res *provisioning.Result
	if bs != nil {
		var ok bool
		if res, ok, err = s.deviceSignedIn(ctx, req, bs, meta); err != nil {
			return Outcome{Err: err}
		} else if !ok {
			bs = nil
		}
	}
	if bs == nil {
		// Signed out meanwhile: sign in again, then decide again.
		return s.deviceContinue(ctx, r, st, req, meta)
	}
	if decision == "deny" {
		err = s.server.DenyDevice(ctx, req.ID, res.User.ID, meta)
	} else {
		err = s.server.ApproveDevice(ctx, req.ID, oauth.CodeRequest{Request: deviceParams(req), Provider: bs.Provider, Provisioned: res,
			AMR: bs.AMRValues(), ACR: bs.ACR, AuthTime: bs.AuthTime, BrowserSessionID: bs.ID}, meta)
	}
	if errors.Is(err, oauth.ErrUnknownUserCode) {
		return s.deviceEntry(nil, http.StatusBadRequest, "", "That code expired or was already used. Start again on your device.")
	}
	if err != nil {
		return Outcome{Err: err}
	}
	if _, err := s.store.TouchBrowserSession(ctx, bs.ID, s.now()); err != nil {
		s.log.WarnContext(ctx, "browser session not touched", "error", err.Error())
	}
	name := req.Client.Name
	if name == "" {
		name = req.Client.ID
	}
	return Outcome{Cookies: []Cookie{s.clearDeviceCookie()}, Status: http.StatusOK,
		Device: &DevicePage{Step: "done", Approved: decision == "approve", ClientName: name, ClientID: req.Client.ID}}
}
