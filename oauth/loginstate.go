package oauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-id/gatehouse/tokens"
)

// LoginState is everything a sign-in in progress needs, held by the
// browser in a sealed cookie (AES-GCM under a key derived from the secret
// key) and bound to the state value sent upstream. The URL alone never
// decides anything.
type LoginState struct {
	State     string          `json:"s"`
	Provider  string          `json:"p"`
	Saved     string          `json:"v,omitempty"`
	Request   AuthorizeParams `json:"r"`
	ExpiresAt int64           `json:"e"`
}

// LoginCookiePrefix starts the name of every login-state cookie; the rest
// is derived from the state, so parallel sign-ins in several tabs do not
// overwrite each other.
const LoginCookiePrefix = "gatehouse_login_"

// CookieName is the cookie holding the login state for state.
func CookieName(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	return LoginCookiePrefix + state
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errLoginState = errors.New("login state missing, expired or not for this sign-in")

func (s *Service) sealLoginState(ls *LoginState) (*http.Cookie, error) {
	plain, err := json.Marshal(ls)
	if err != nil {
		return nil, err
	}
	name := CookieName(ls.State)
	sealed, err := tokens.Seal(s.loginKey, plain, []byte(name))
	if err != nil {
		return nil, err
	}
	return &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString(sealed),
		Path:     "/auth/",
		Expires:  time.Unix(ls.ExpiresAt, 0),
		MaxAge:   int(time.Until(time.Unix(ls.ExpiresAt, 0)).Seconds()),
		HttpOnly: true,
		Secure:   s.secureCookies,
		SameSite: http.SameSiteLaxMode,
	}, nil
}

// OpenLoginState unseals the cookie value for state and checks that it
// belongs to this state and has not expired.
func (s *Service) OpenLoginState(cookieValue, state string) (*LoginState, error) {
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
	var ls LoginState
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

// ClearLoginCookie removes the login-state cookie for state.
func (s *Service) ClearLoginCookie(state string) *http.Cookie {
	return &http.Cookie{Name: CookieName(state), Value: "", Path: "/auth/", MaxAge: -1,
		HttpOnly: true, Secure: s.secureCookies, SameSite: http.SameSiteLaxMode}
}

func (s *Service) expiredLogin(cause error) *PageError {
	// Without a login state the application is unknown; the landing page
	// is the one way back we can offer.
	return &PageError{Status: http.StatusBadRequest, Title: "Sign-in expired",
		Message: "The sign-in link expired or was already used, please start again.", Cause: cause, StartOver: "/"}
}
