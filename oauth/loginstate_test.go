package oauth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
)

func testService(t testing.TB, now time.Time) *Service {
	cfg := &config.Config{Issuer: "https://auth.example.com", SecretKey: strings.Repeat("s", 40), LoginStateTTL: time.Minute}
	return New(Options{Config: cfg, Now: func() time.Time { return now }})
}

func TestLoginStateRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(t, now)
	ls := &LoginState{State: randomToken(32), Provider: "dev", Request: AuthorizeParams{ClientID: "spa"}, ExpiresAt: now.Add(time.Minute).Unix()}
	cookie, err := s.sealLoginState(ls)
	if err != nil {
		t.Fatal(err)
	}
	if !cookie.HttpOnly || cookie.Name != CookieName(ls.State) || strings.Contains(cookie.Value, "spa") {
		t.Fatalf("cookie = %+v", cookie)
	}
	got, err := s.OpenLoginState(cookie.Value, ls.State)
	if err != nil || got.Request.ClientID != "spa" {
		t.Fatalf("open = %+v, %v", got, err)
	}
	other := randomToken(32)
	cases := map[string]struct{ value, state string }{
		"other state":  {cookie.Value, other},
		"empty state":  {cookie.Value, ""},
		"empty cookie": {"", ls.State},
		"tampered":     {flip(cookie.Value), ls.State},
		"not base64":   {"!!!", ls.State},
	}
	for name, tc := range cases {
		if _, err := s.OpenLoginState(tc.value, tc.state); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Same state prefix, other key: a cookie sealed by another server.
	foreign := New(Options{Config: &config.Config{Issuer: "x", SecretKey: strings.Repeat("t", 40), LoginStateTTL: time.Minute}, Now: func() time.Time { return now }})
	fc, _ := foreign.sealLoginState(ls)
	if _, err := s.OpenLoginState(fc.Value, ls.State); err == nil {
		t.Error("cookie sealed under another secret accepted")
	}
	late := testService(t, now.Add(2*time.Minute))
	if _, err := late.OpenLoginState(cookie.Value, ls.State); err == nil {
		t.Error("expired login state accepted")
	}
}

func flip(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// FuzzOpenLoginState: the login-state cookie and the state parameter come
// from the browser; no input may panic or be accepted without the key.
func FuzzOpenLoginState(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(f, now)
	ls := &LoginState{State: "state-0123456789abcdef", Provider: "dev", ExpiresAt: now.Add(time.Minute).Unix()}
	c, _ := s.sealLoginState(ls)
	f.Add(c.Value, ls.State)
	f.Add("", "")
	f.Add("AAAA", "state")
	f.Fuzz(func(t *testing.T, value, state string) {
		got, err := s.OpenLoginState(value, state)
		// Only a cookie sealed under our key for this state may open (the
		// seed is sealed again in each fuzz worker, so compare the state).
		if err == nil && (state != ls.State || got.State != state) {
			t.Fatalf("accepted a cookie that was never sealed: %q %q", value, state)
		}
	})
}
