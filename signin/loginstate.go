package signin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// loginState is everything a sign-in in progress needs, held by the
// browser in a sealed cookie (AES-GCM under a key derived from the secret
// key) and bound to the state value sent upstream. The URL alone never
// decides anything.
type loginState struct {
	State     string                `json:"s"`
	Provider  string                `json:"p"`
	Saved     string                `json:"v,omitempty"`
	Request   oauth.AuthorizeParams `json:"r"`
	ExpiresAt int64                 `json:"e"`
	// Device is the device authorization (RFC 8628) this sign-in is
	// for: it ends back at the device page's approval step, with no
	// authorization code ("" for an authorization request).
	Device string `json:"d,omitempty"`
	// unsolicited marks an IdP-initiated sign-in, which no login state
	// of this browser began (never sealed).
	unsolicited bool
}

// LoginCookiePrefix starts the name of every login-state cookie; the rest
// is derived from the state, so parallel sign-ins in several tabs do not
// overwrite each other.
const LoginCookiePrefix = "gatehouse_login_"

// loginCookiePath scopes login cookies to the sign-in routes.
const loginCookiePath = "/auth/"

// CookieName is the cookie holding the login state for state.
func CookieName(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	return LoginCookiePrefix + state
}

// Cookie is a cookie for the handler to set, with every attribute decided
// here: login cookies are HttpOnly, SameSite=Lax, scoped to /auth/, and
// Secure when the issuer is https.
type Cookie struct {
	Name  string
	Value string
	Path  string
	// Expires is zero for a cookie being cleared.
	Expires time.Time
	// MaxAge is in seconds; negative deletes the cookie now.
	MaxAge      int
	HTTPOnly    bool
	Secure      bool
	SameSiteLax bool
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errLoginState = errors.New("login state missing, expired or not for this sign-in")

// sealLoginState returns the login cookie holding ls, sealed for its
// state: the cookie name is the additional data, so a cookie opens only
// under its own name.
func (s *Service) sealLoginState(ls *loginState) (Cookie, error) {
	plain, err := json.Marshal(ls)
	if err != nil {
		return Cookie{}, err
	}
	name := CookieName(ls.State)
	sealed, err := tokens.Seal(s.loginKey, plain, []byte(name))
	if err != nil {
		return Cookie{}, err
	}
	return Cookie{
		Name:        name,
		Value:       base64.RawURLEncoding.EncodeToString(sealed),
		Path:        loginCookiePath,
		Expires:     time.Unix(ls.ExpiresAt, 0),
		MaxAge:      int(time.Until(time.Unix(ls.ExpiresAt, 0)).Seconds()),
		HTTPOnly:    true,
		Secure:      s.secureCookies,
		SameSiteLax: true,
	}, nil
}

// openLoginState unseals the cookie value for state and checks that it
// belongs to this state and has not expired. Every failure is the
// "Sign-in expired" page, its cause for the audit trail.
func (s *Service) openLoginState(cookieValue, state string) (*loginState, error) {
	if state == "" || cookieValue == "" {
		return nil, s.expiredLogin(errLoginState)
	}
	sealed, err := base64.RawURLEncoding.DecodeString(cookieValue)
	if err != nil {
		return nil, s.expiredLogin(errLoginState)
	}
	plain, err := tokens.Open(s.loginKey, sealed, []byte(CookieName(state)))
	if err != nil {
		return nil, s.expiredLogin(errLoginState)
	}
	var ls loginState
	if err := json.Unmarshal(plain, &ls); err != nil {
		return nil, s.expiredLogin(errLoginState)
	}
	if subtle.ConstantTimeCompare([]byte(ls.State), []byte(state)) != 1 {
		return nil, s.expiredLogin(errors.New("state does not match the login state"))
	}
	if s.now().Unix() > ls.ExpiresAt {
		return nil, s.expiredLogin(errors.New("login state expired"))
	}
	return &ls, nil
}

// loginCookie returns the value of the login cookie for state that r
// carries ("" for none).
func loginCookie(r *http.Request, state string) string {
	c, err := r.Cookie(CookieName(state))
	if err != nil {
		return ""
	}
	return c.Value
}

// clearLoginCookie removes the login-state cookie for state.
func (s *Service) clearLoginCookie(state string) Cookie {
	return Cookie{Name: CookieName(state), Value: "", Path: loginCookiePath, MaxAge: -1,
		HTTPOnly: true, Secure: s.secureCookies, SameSiteLax: true}
}

// expiredLogin refuses a sign-in whose login state is gone, used, forged
// or not this browser's. Without a login state the application is
// unknown: the page offers the landing page as the way back.
func (s *Service) expiredLogin(cause error) error {
	return fault.New(fault.LoginExpired, cause)
}
