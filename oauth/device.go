package oauth

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// The device authorization grant (RFC 8628). A device asks at
// /auth/device (AuthorizeDevice) and gets a device code to poll the
// token endpoint with and a user code for its person; the person enters
// the user code at /device (the signin package's pages), signs in and
// approves or denies (ApproveDevice, DenyDevice); the device's next poll
// takes the tokens (deviceGrant), once.

// DeviceStore keeps device authorizations (*models.Store).
type DeviceStore interface {
	CreateDeviceAuthorization(ctx context.Context, d *models.DeviceAuthorization) error
	FindDeviceAuthorization(ctx context.Context, id string) (*models.DeviceAuthorization, error)
	FindDeviceAuthorizationByDeviceCode(ctx context.Context, hash string) (*models.DeviceAuthorization, error)
	FindDeviceAuthorizationByUserCode(ctx context.Context, hash string) (*models.DeviceAuthorization, error)
	PollDeviceAuthorization(ctx context.Context, id string, now, notAfter time.Time) (bool, error)
	SlowDownDeviceAuthorization(ctx context.Context, id string, now time.Time, step int) error
	DecideDeviceAuthorization(ctx context.Context, id, status, userID string, sessionID *string, now time.Time) (bool, error)
	RedeemDeviceAuthorization(ctx context.Context, id string) (bool, error)
}

// Audit events of the device authorization grant.
const (
	// AuditDeviceAuthorized: a person approved a device; the details
	// name the session it opened.
	AuditDeviceAuthorized = "device.authorized"
	// AuditDeviceDenied: a person denied a device.
	AuditDeviceDenied = "device.denied"
	// AuditDeviceCodeFailed: a user code entered at /device named no
	// pending authorization (mistyped, guessed, expired or used).
	AuditDeviceCodeFailed = "device.code_failed"
	// AuditDeviceCodeReplay: a device code that already took its tokens
	// was presented again.
	AuditDeviceCodeReplay = "device.code_replay"
)

// DevicePath is the verification page a person opens (verification_uri).
const DevicePath = "/device"

// deviceSlowDownStep is what slow_down adds to a device's interval, in
// seconds (RFC 8628 §3.5).
const deviceSlowDownStep = 5

// DeviceAuthorizationResponse is the answer of the device authorization
// endpoint (RFC 8628 §3.2).
type DeviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// ErrUnknownUserCode is the answer for a user code that names no
// pending authorization: mistyped, guessed, expired, used or decided.
// One answer for all, so a guesser learns nothing.
var ErrUnknownUserCode = fault.Explain(fault.InvalidRequest,
	"That code is not valid. It may be mistyped, expired or already used.", errors.New("unknown user code"))

// AuthorizeDevice answers the device authorization endpoint for a client
// AuthenticateClient accepted: the client must list the device_code
// grant (else unauthorized_client), its scope is checked as the
// authorization endpoint checks it (invalid_scope), and an audience or
// resource must be one of the client's audiences (invalid_target), as
// at token exchange.
func (s *Service) AuthorizeDevice(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*DeviceAuthorizationResponse, error) {
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest("parameter %s is repeated", k)
		}
	}
	if !client.AllowsGrant(config.GrantDeviceCode) {
		return nil, unauthorizedClient("this client may not use the device authorization grant")
	}
	if s.devices == nil {
		return nil, errors.New("device authorization: no store configured")
	}
	scope, e := client.requestedScope(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	for _, param := range []string{"audience", "resource"} {
		if v := form.Get(param); v != "" && !slices.Contains(client.Audience(), v) {
			return nil, oauthErr("invalid_target", "%s %q is not an audience of this client", param, truncate(v, 80))
		}
	}
	deviceCode, deviceHash, err := tokens.NewDeviceCode()
	if err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Microsecond)
	interval := int(s.cfg.DevicePollInterval / time.Second)
	if interval < 1 {
		interval = 5
	}
	ttl := s.cfg.DeviceCodeTTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	// A user code already held by another authorization (one chance in
	// billions per live code) is drawn again.
	for range 3 {
		userCode, err := tokens.NewUserCode()
		if err != nil {
			return nil, err
		}
		err = s.devices.CreateDeviceAuthorization(ctx, &models.DeviceAuthorization{
			ID: models.NewID(), DeviceCodeHash: deviceHash, UserCodeHash: tokens.UserCodeHash(s.userCodeKey, userCode),
			ClientID: client.ID, Scope: scope, Status: models.DevicePending, IntervalSeconds: interval,
			IP: meta.IP, CreatedAt: now, ExpiresAt: now.Add(ttl),
		})
		if errors.Is(err, models.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		shown := tokens.FormatUserCode(userCode)
		verify := s.endpoint(DevicePath)
		return &DeviceAuthorizationResponse{DeviceCode: deviceCode, UserCode: shown, VerificationURI: verify,
			VerificationURIComplete: verify + "?" + url.Values{"user_code": {shown}}.Encode(),
			ExpiresIn:               int64(ttl / time.Second), Interval: interval}, nil
	}
	return nil, errors.New("device authorization: no free user code")
}

// DeviceRequest is a pending device authorization as the person
// approving it sees it.
type DeviceRequest struct {
	ID     string
	Client *Client
	// Scope is what approving grants (space-separated).
	Scope     string
	ExpiresAt time.Time
}

// DeviceByUserCode finds the pending authorization a person's typed user
// code names (case, dashes and spaces do not matter). Anything else is
// ErrUnknownUserCode, audited as device.code_failed; the caller limits
// how often one client IP may try.
func (s *Service) DeviceByUserCode(ctx context.Context, typed string, meta RequestMeta) (*DeviceRequest, error) {
	reason := "malformed"
	if code, ok := tokens.NormalizeUserCode(typed); ok && s.devices != nil {
		d, err := s.devices.FindDeviceAuthorizationByUserCode(ctx, tokens.UserCodeHash(s.userCodeKey, code))
		switch {
		case errors.Is(err, models.ErrNotFound):
			reason = "unknown"
		case err != nil:
			return nil, err
		default:
			req, why := s.pendingDevice(d)
			if why == "" {
				return req, nil
			}
			reason = why
		}
	}
	s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditDeviceCodeFailed, Outcome: models.OutcomeFailure,
		IP: meta.IP, RequestID: meta.RequestID}, map[string]any{"reason": reason})
	return nil, ErrUnknownUserCode
}

// PendingDevice returns the pending authorization id, for the approval
// step; ErrUnknownUserCode when it is no longer pending.
func (s *Service) PendingDevice(ctx context.Context, id string) (*DeviceRequest, error) {
	if s.devices == nil || id == "" {
		return nil, ErrUnknownUserCode
	}
	d, err := s.devices.FindDeviceAuthorization(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return nil, ErrUnknownUserCode
	}
	if err != nil {
		return nil, err
	}
	req, why := s.pendingDevice(d)
	if why != "" {
		return nil, ErrUnknownUserCode
	}
	return req, nil
}

// pendingDevice is d for the person, or why it may not be decided.
func (s *Service) pendingDevice(d *models.DeviceAuthorization) (*DeviceRequest, string) {
	client, ok := s.Client(d.ClientID)
	switch {
	case d.Status != models.DevicePending:
		return nil, "already_" + d.Status
	case !s.now().Before(d.ExpiresAt):
		return nil, "expired"
	case !ok || !client.AllowsGrant(config.GrantDeviceCode):
		return nil, "client_gone"
	}
	return &DeviceRequest{ID: d.ID, Client: client, Scope: d.Scope, ExpiresAt: d.ExpiresAt}, ""
}

// ApproveDevice records a person's approval of pending authorization id:
// it opens the session of in (in.Request names the authorization's
// client and scope, as PendingDevice returned them), an ordinary app
// session that logout and the admin API end like any other, and hands it
// to the device's next poll. An authorization decided, or expired,
// meanwhile is ErrUnknownUserCode and the session is ended again.
func (s *Service) ApproveDevice(ctx context.Context, id string, in CodeRequest, meta RequestMeta) error {
	req, err := s.PendingDevice(ctx, id)
	if err != nil {
		return err
	}
	if in.Request == nil || in.Request.ClientID != req.Client.ID || in.Request.Scope != req.Scope {
		return errors.New("approve device: the request is not this authorization's")
	}
	sess, err := s.openSession(ctx, in)
	if err != nil {
		return err
	}
	userID := in.Provisioned.User.ID
	won, err := s.devices.DecideDeviceAuthorization(ctx, id, models.DeviceApproved, userID, &sess.ID, s.now())
	if err != nil || !won {
		// The client hanging up must not leave the session open.
		if _, endErr := s.sessions.EndSession(context.WithoutCancel(ctx), sess.ID, "device_not_pending"); endErr != nil {
			s.log.ErrorContext(ctx, "end session of an undecided device", "error", endErr.Error())
		}
		if err != nil {
			return err
		}
		return ErrUnknownUserCode
	}
	s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditDeviceAuthorized, ActorUserID: ptr(userID), SubjectUserID: ptr(userID),
		ClientID: req.Client.ID, Provider: in.Provider, IP: meta.IP, RequestID: meta.RequestID},
		map[string]any{"device_authorization_id": id, "session_id": sess.ID, "browser_session_id": in.BrowserSessionID, "scope": req.Scope})
	return nil
}

// DenyDevice records a person's refusal of pending authorization id:
// the device's next poll is access_denied.
func (s *Service) DenyDevice(ctx context.Context, id, userID string, meta RequestMeta) error {
	req, err := s.PendingDevice(ctx, id)
	if err != nil {
		return err
	}
	won, err := s.devices.DecideDeviceAuthorization(ctx, id, models.DeviceDenied, userID, nil, s.now())
	if err != nil {
		return err
	}
	if !won {
		return ErrUnknownUserCode
	}
	s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditDeviceDenied, Outcome: models.OutcomeFailure,
		ActorUserID: ptr(userID), SubjectUserID: ptr(userID), ClientID: req.Client.ID, IP: meta.IP, RequestID: meta.RequestID},
		map[string]any{"device_authorization_id": id})
	return nil
}

// deviceGrant answers a device's poll (RFC 8628 §3.4, §3.5):
// authorization_pending until its person decides, slow_down (and 5
// seconds more interval) when it polls faster than its interval,
// access_denied once denied, expired_token once expired, and on approval
// the tokens the code grant would issue for the session the approval
// opened: once; any later poll is invalid_grant.
func (s *Service) deviceGrant(ctx context.Context, client *Client, form url.Values, meta RequestMeta) (*TokenResponse, error) {
	code := form.Get("device_code")
	if code == "" {
		return nil, invalidRequest("device_code is required")
	}
	if s.devices == nil {
		return nil, invalidGrant("device_code is invalid")
	}
	hash, ok := tokens.DeviceCodeHash(code)
	if !ok {
		return nil, invalidGrant("device_code is invalid")
	}
	d, err := s.devices.FindDeviceAuthorizationByDeviceCode(ctx, hash)
	if errors.Is(err, models.ErrNotFound) {
		return nil, invalidGrant("device_code is invalid")
	}
	if err != nil {
		return nil, err
	}
	if d.ClientID != client.ID {
		return nil, invalidGrant("device_code belongs to another client")
	}
	now := s.now().Truncate(time.Microsecond)
	if d.Status == models.DeviceRedeemed {
		s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditDeviceCodeReplay, Outcome: models.OutcomeFailure,
			SubjectUserID: d.UserID, ClientID: client.ID, IP: meta.IP, RequestID: meta.RequestID},
			map[string]any{"device_authorization_id": d.ID})
		return nil, invalidGrant("device_code was already used")
	}
	if !now.Before(d.ExpiresAt) {
		return nil, oauthErr("expired_token", "the device_code expired; start again")
	}
	switch d.Status {
	case models.DeviceDenied:
		return nil, oauthErr("device_access_denied", "the person denied the authorization")
	case models.DevicePending:
		interval := time.Duration(d.IntervalSeconds) * time.Second
		counted, err := s.devices.PollDeviceAuthorization(ctx, d.ID, now, now.Add(-interval))
		if err != nil {
			return nil, err
		}
		if !counted {
			if err := s.devices.SlowDownDeviceAuthorization(ctx, d.ID, now, deviceSlowDownStep); err != nil {
				return nil, err
			}
			return nil, oauthErr("slow_down", "polling faster than every %d seconds; wait %d seconds between polls",
				d.IntervalSeconds, d.IntervalSeconds+deviceSlowDownStep)
		}
		return nil, oauthErr("authorization_pending", "the person has not yet approved the device")
	case models.DeviceApproved:
	default:
		return nil, invalidGrant("device_code is invalid")
	}
	won, err := s.devices.RedeemDeviceAuthorization(ctx, d.ID)
	if err != nil {
		return nil, err
	}
	if !won || d.SessionID == nil {
		return nil, invalidGrant("device_code was already used")
	}
	sess, err := s.sessions.GetSession(ctx, *d.SessionID)
	if err != nil {
		return nil, grantError(err)
	}
	if sess.RevokedAt != nil || !now.Before(sess.ExpiresAt) {
		return nil, invalidGrant("the session of this approval has ended")
	}
	user, err := s.store.FindUser(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	if user.Disabled {
		return nil, invalidGrant("user is disabled")
	}
	return s.issueForSession(ctx, client, sess, user, issueOptions{})
}
