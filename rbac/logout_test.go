package rbac_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// logoutClaims are the claims Gatehouse puts in a logout token for client
// backend.
func (is *issuer) logoutClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": is.srv.URL, "aud": "backend", "iat": now, "exp": now + 120, "jti": "lt-1",
		"sub": "user-1", "sid": "sess-1", "events": map[string]any{rbac.EventBackchannelLogout: map[string]any{}}}
}

func (is *issuer) logoutToken(edit func(map[string]any)) string {
	c := is.logoutClaims()
	if edit != nil {
		edit(c)
	}
	return is.sign(c, map[jose.HeaderKey]any{jose.HeaderType: "logout+jwt"})
}

// TestVerifyLogoutToken: a logout token for the client verifies; every
// departure from Back-Channel Logout 1.0 §2.6 is refused, in words that
// say why — among them an access token and an ID token (typ, nonce), a
// token for another client or issuer, a forged signature, and times out
// of range.
func TestVerifyLogoutToken(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, nil)
	ctx := context.Background()

	got, err := m.VerifyLogoutToken(ctx, is.logoutToken(nil), "backend")
	if err != nil || got.SessionID != "sess-1" || got.Subject != "user-1" || got.ID != "lt-1" {
		t.Fatalf("valid token = %+v, %v", got, err)
	}
	if _, err := m.VerifyLogoutToken(ctx, is.logoutToken(func(c map[string]any) { c["aud"] = []string{"other", "backend"} }), "backend"); err != nil {
		t.Fatalf("aud as an array: %v", err)
	}
	if _, err := m.VerifyLogoutToken(ctx, is.logoutToken(func(c map[string]any) { delete(c, "sub") }), "backend"); err != nil {
		t.Fatalf("sid without sub: %v", err)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	forged := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: other},
			(&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", is.kid))
		b, _ := json.Marshal(is.logoutClaims())
		obj, _ := s.Sign(b)
		out, _ := obj.CompactSerialize()
		return out
	}()
	idToken := func() string {
		c := is.logoutClaims()
		c["nonce"] = "n-1"
		delete(c, "events")
		return is.sign(c, map[jose.HeaderKey]any{jose.HeaderType: "JWT"})
	}()
	now := time.Now().Unix()
	cases := []struct {
		name, token, client, want string
	}{
		{"for another client", is.logoutToken(nil), "kb-web", "another client"},
		{"an access token", is.token("kb:read"), "backend", "typ must be logout+jwt"},
		{"an ID token", idToken, "backend", "typ must be logout+jwt"},
		{"with a nonce", is.logoutToken(func(c map[string]any) { c["nonce"] = "n-1" }), "backend", "has a nonce"},
		{"without the event", is.logoutToken(func(c map[string]any) { c["events"] = map[string]any{"other": map[string]any{}} }), "backend", "event"},
		{"without events", is.logoutToken(func(c map[string]any) { delete(c, "events") }), "backend", "event"},
		{"without sid and sub", is.logoutToken(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }), "backend", "sid and sub"},
		{"another issuer", is.logoutToken(func(c map[string]any) { c["iss"] = "https://evil.example" }), "backend", "another issuer"},
		{"expired", is.logoutToken(func(c map[string]any) { c["exp"] = now - 120 }), "backend", "expired"},
		{"no expiry", is.logoutToken(func(c map[string]any) { delete(c, "exp") }), "backend", "no expiry"},
		{"issued in the future", is.logoutToken(func(c map[string]any) { c["iat"] = now + 600 }), "backend", "future"},
		{"no iat", is.logoutToken(func(c map[string]any) { delete(c, "iat") }), "backend", "future"},
		{"forged signature", forged, "backend", "signature is invalid"},
		{"no kid", is.sign(is.logoutClaims(), map[jose.HeaderKey]any{jose.HeaderType: "logout+jwt", "kid": ""}), "backend", "unknown key"},
		{"typ at+jwt in the media-type form", is.sign(is.logoutClaims(), map[jose.HeaderKey]any{jose.HeaderType: "application/at+jwt"}), "backend", "typ must be logout+jwt"},
		{"unknown key", is.sign(is.logoutClaims(), map[jose.HeaderKey]any{jose.HeaderType: "logout+jwt", "kid": "nope"}), "backend", "unknown key"},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoibG9nb3V0K2p3dCIsImtpZCI6ImsxIn0." + strings.Split(is.logoutToken(nil), ".")[1] + ".", "backend", "signing algorithm is not accepted"},
		{"oversized", strings.Repeat("a", 70<<10), "backend", "malformed"},
		{"empty", "", "backend", "malformed"},
	}
	for _, tc := range cases {
		_, err := m.VerifyLogoutToken(ctx, tc.token, tc.client)
		if !errors.Is(err, rbac.ErrInvalidToken) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
	// The media-type form of typ is a logout token too (RFC 8725 §3.11).
	if _, err := m.VerifyLogoutToken(ctx, is.sign(is.logoutClaims(), map[jose.HeaderKey]any{jose.HeaderType: "application/logout+jwt"}), "backend"); err != nil {
		t.Fatalf("typ application/logout+jwt: %v", err)
	}
	// And the other way round: a logout token is no access token.
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+is.logoutToken(func(c map[string]any) { c["aud"] = []string{"kb-api"} }))
	if _, err := m.AuthenticateRequest(req); !errors.Is(err, rbac.ErrInvalidToken) {
		t.Fatalf("a logout token as a bearer token: %v", err)
	}
}

// TestLogoutHandler: the handler a backend mounts at its
// backchannel_logout_uri ends the session of a valid token and answers
// 200 no-store; a bad token is 400 and ends nothing; a failure to end
// sessions is 503 (Gatehouse retries); only POST is served.
func TestLogoutHandler(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, nil)
	var ended []string
	failing := false
	h := m.LogoutHandler("backend", func(_ context.Context, lt *rbac.LogoutToken) error {
		if failing {
			return errors.New("session store down")
		}
		ended = append(ended, lt.SessionID)
		return nil
	})
	post := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/backchannel-logout", strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(is.logoutToken(nil)); rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" || len(ended) != 1 || ended[0] != "sess-1" {
		t.Fatalf("valid = %d %v, ended %v", rec.Code, rec.Header(), ended)
	}
	if rec := post(is.token("kb:read")); rec.Code != 400 || !strings.Contains(rec.Body.String(), "invalid_request") || len(ended) != 1 {
		t.Fatalf("access token = %d %s, ended %v", rec.Code, rec.Body, ended)
	}
	if rec := post(""); rec.Code != 400 {
		t.Fatalf("no token = %d", rec.Code)
	}
	failing = true
	if rec := post(is.logoutToken(nil)); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("end failing = %d", rec.Code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/backchannel-logout?logout_token="+is.logoutToken(nil), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET = %d", rec.Code)
	}
}
