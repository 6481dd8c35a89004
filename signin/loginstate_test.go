package signin

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/oauth"
)

func testService(t testing.TB, now time.Time) *Service {
	return New(Options{Issuer: "https://auth.example.com", SecretKey: strings.Repeat("s", 40), LoginStateTTL: time.Minute,
		Now: func() time.Time { return now }})
}

func TestLoginStateRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(t, now)
	ls := &loginState{State: randomToken(32), Provider: "dev", Request: oauth.AuthorizeParams{ClientID: "spa"}, ExpiresAt: now.Add(time.Minute).Unix()}
	cookie, err := s.sealLoginState(ls)
	if err != nil {
		t.Fatal(err)
	}
	if !cookie.HTTPOnly || cookie.Name != CookieName(ls.State) || strings.Contains(cookie.Value, "spa") {
		t.Fatalf("cookie = %+v", cookie)
	}
	got, err := s.openLoginState(cookie.Value, ls.State)
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
		if _, err := s.openLoginState(tc.value, tc.state); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Same state prefix, other key: a cookie sealed by another server.
	foreign := New(Options{Issuer: "x", SecretKey: strings.Repeat("t", 40), LoginStateTTL: time.Minute, Now: func() time.Time { return now }})
	fc, _ := foreign.sealLoginState(ls)
	if _, err := s.openLoginState(fc.Value, ls.State); err == nil {
		t.Error("cookie sealed under another secret accepted")
	}
	late := testService(t, now.Add(2*time.Minute))
	if _, err := late.openLoginState(cookie.Value, ls.State); err == nil {
		t.Error("expired login state accepted")
	}
}

func flip(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	b[len(b)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(b)
}

// FuzzOpenLoginState: the login-state cookie and the state parameter come
// from the browser. No input may panic, and the invariant is authenticity:
// nothing opens but what Gatehouse sealed. An input that opens must open to
// exactly the contents Gatehouse sealed for that very state, unexpired;
// anything else (a tampered cookie, an unsealed one, one sealed for
// another state, even for the seed's own state) fails the target. The
// contents, not the bytes, are compared: every fuzz process seals the
// cookies again under the same key with fresh random nonces, so a cookie
// sealed by one worker opens in another.
func FuzzOpenLoginState(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(f, now)
	// What Gatehouse seals here, by state: the same in every process.
	sealed := map[string]loginState{}
	seal := func(ls loginState) string {
		c, err := s.sealLoginState(&ls)
		if err != nil {
			f.Fatal(err)
		}
		sealed[ls.State] = ls
		return c.Value
	}
	req := oauth.AuthorizeParams{ClientID: "spa", RedirectURI: "https://app.example.com/cb", State: "app-state",
		Nonce: "n-1", Scope: "openid email", CodeChallenge: strings.Repeat("c", 43), CodeChallengeMethod: "S256"}
	live := seal(loginState{State: "state-0123456789abcdef", Provider: "dev", Saved: "verifier-1", Request: req,
		ExpiresAt: now.Add(time.Minute).Unix()})
	other := seal(loginState{State: "state-fedcba9876543210", Provider: "corp", Request: oauth.AuthorizeParams{ClientID: "admin"},
		ExpiresAt: now.Add(time.Minute).Unix()})
	expired := seal(loginState{State: "state-expired-0000000", Provider: "dev", Request: req, ExpiresAt: now.Add(-time.Second).Unix()})
	f.Add(live, "state-0123456789abcdef")
	f.Add(other, "state-fedcba9876543210")
	// The cookie name (the additional data) keeps 16 characters of the
	// state: a state sharing them decrypts, and only the state inside the
	// cookie refuses it.
	f.Add(live, "state-0123456789abcdeX")
	f.Add(live, "state-fedcba9876543210")
	f.Add(expired, "state-expired-0000000")
	f.Add("", "")
	f.Add("AAAA", "state")
	f.Fuzz(func(t *testing.T, value, state string) {
		got, err := s.openLoginState(value, state)
		if err != nil {
			if got != nil {
				t.Fatalf("a login state with an error: %+v, %v", got, err)
			}
			return
		}
		want, ok := sealed[state]
		if !ok || got == nil || *got != want || got.ExpiresAt < now.Unix() {
			t.Fatalf("opened a login state Gatehouse did not seal for state %q, or an expired one: %+v (cookie %q)", state, got, value)
		}
	})
}
