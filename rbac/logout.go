package rbac

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// EventBackchannelLogout is the member of a logout token's events claim
// (OpenID Connect Back-Channel Logout 1.0).
const EventBackchannelLogout = "http://schemas.openid.net/event/backchannel-logout"

// LogoutToken is a verified back-channel logout token: Gatehouse ended
// the session SessionID (the sid of the ID and access tokens it issued
// in that session) of user Subject.
type LogoutToken struct {
	Subject   string
	SessionID string
	// ID is the token's jti (unique per delivery attempt).
	ID       string
	IssuedAt time.Time
}

// Logout token refusals; their text is safe to return to the caller.
var (
	errLogoutMalformed = tokenErr("the logout token is malformed")
	errLogoutAlg       = tokenErr("the logout token's signing algorithm is not accepted")
	errLogoutType      = tokenErr("not a logout token (typ must be logout+jwt)")
	errLogoutKey       = tokenErr("the logout token is signed with an unknown key")
	errLogoutSignature = tokenErr("the logout token's signature is invalid")
	errLogoutIssuer    = tokenErr("the logout token is from another issuer")
	errLogoutAudience  = tokenErr("the logout token is for another client")
	errLogoutTime      = tokenErr("the logout token has expired, has no expiry or is issued in the future")
	errLogoutClaims    = tokenErr("the logout token lacks the back-channel logout event, or sid and sub, or has a nonce")
)

var logoutTokenRefusals = signedRefusals{malformed: errLogoutMalformed, alg: errLogoutAlg, typ: errLogoutType,
	key: errLogoutKey, signature: errLogoutSignature}

// VerifyLogoutToken checks a logout token Gatehouse POSTed to the
// backchannel_logout_uri of the client clientID, as Back-Channel Logout
// 1.0 §2.6 requires: a compact JWS signed by one of the issuer's keys
// with an accepted algorithm (the key's own), typ logout+jwt, iss the
// issuer, aud containing clientID, exp present and not passed, iat not in
// the future (with the configured skew), the back-channel logout event,
// sid or sub, and no nonce (so an ID token never passes). It does not
// track jti: a logout delivered twice ends nothing more. Errors wrap
// ErrInvalidToken, or ErrUnavailable when the issuer's keys cannot be
// had right now.
func (m *Middleware) VerifyLogoutToken(ctx context.Context, token, clientID string) (*LogoutToken, error) {
	payload, err := m.verifySigned(ctx, token, "logout+jwt", logoutTokenRefusals)
	if err != nil {
		return nil, err
	}
	var c struct {
		Issuer    string                     `json:"iss"`
		Audience  json.RawMessage            `json:"aud"`
		IssuedAt  int64                      `json:"iat"`
		Expiry    int64                      `json:"exp"`
		ID        string                     `json:"jti"`
		Subject   string                     `json:"sub"`
		SessionID string                     `json:"sid"`
		Events    map[string]json.RawMessage `json:"events"`
		Nonce     json.RawMessage            `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errLogoutMalformed
	}
	if c.Issuer != m.issuer {
		return nil, errLogoutIssuer
	}
	if !audienceHas(c.Audience, clientID) {
		return nil, errLogoutAudience
	}
	now := m.now().Unix()
	if c.Expiry == 0 || c.IssuedAt == 0 || now-m.skew >= c.Expiry || now+m.skew < c.IssuedAt {
		return nil, errLogoutTime
	}
	if _, ok := c.Events[EventBackchannelLogout]; !ok || c.Nonce != nil || c.SessionID == "" && c.Subject == "" {
		return nil, errLogoutClaims
	}
	return &LogoutToken{Subject: c.Subject, SessionID: c.SessionID, ID: c.ID, IssuedAt: time.Unix(c.IssuedAt, 0)}, nil
}

// audienceHas reports whether an aud claim (a string or an array of
// strings) names want.
func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && containsString(many, want)
}

// maxLogoutForm bounds the body LogoutHandler reads.
const maxLogoutForm = 64 << 10

// LogoutHandler serves a client's backchannel_logout_uri: it takes the
// POSTed form's logout_token, verifies it for clientID
// (VerifyLogoutToken), calls end to end the backend's sessions of that
// sid (or, without one, of that sub) and answers 200 with Cache-Control
// no-store, as §2.8 asks. A missing or invalid token is 400
// {"error":"invalid_request"} with the reason; keys that cannot be had
// right now, or end failing, answer 503. Gatehouse retries every answer
// but 2xx with backoff until it gives up. Other methods are 405.
func (m *Middleware) LogoutHandler(clientID string, end func(ctx context.Context, t *LogoutToken) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxLogoutForm)
		t, err := m.VerifyLogoutToken(r.Context(), r.PostFormValue("logout_token"), clientID)
		if err == nil {
			err = end(r.Context(), t)
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		if errors.Is(err, ErrUnavailable) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": refusalText(err)})
	})
}

// refusalText is the reason of a refusal, safe to show.
func refusalText(err error) string {
	var re *refusedError
	if errors.As(err, &re) {
		return re.reason
	}
	return "the logout token was refused"
}
