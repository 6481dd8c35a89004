package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// fake starts the provider and its steering endpoints on httptest servers.
func fake(t *testing.T) (*provider, *httptest.Server, *httptest.Server) {
	t.Helper()
	key, err := loadKey(t.TempDir() + "/key.pem")
	if err != nil {
		t.Fatal(err)
	}
	p := newProvider("", "gatehouse", "s3cret", key, []string{"load"})
	srv := httptest.NewServer(p.routes())
	t.Cleanup(srv.Close)
	p.issuer = srv.URL
	adm := httptest.NewServer(p.adminRoutes())
	t.Cleanup(adm.Close)
	return p, srv, adm
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize runs the authorization request for email and returns the code.
func authorize(t *testing.T, srv *httptest.Server, email, challenge string) string {
	t.Helper()
	q := url.Values{"client_id": {"gatehouse"}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "state": {"st"},
		"response_type": {"code"}, "code_challenge_method": {"S256"}, "code_challenge": {challenge}, "login_hint": {email},
		"nonce": {"n-1"}, "scope": {"openid email"}}
	resp, err := noFollow.Get(srv.URL + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func token(t *testing.T, srv *httptest.Server, secret, code, verifier string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("gatehouse", secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCodeFlowSignsTheHintedPerson: the code flow yields an RS256 ID
// token of the login_hint person that verifies with the published JWKS;
// a reused code, a wrong verifier and a wrong secret are refused.
func TestCodeFlowSignsTheHintedPerson(t *testing.T) {
	_, srv, _ := fake(t)
	verifier := strings.Repeat("v", 43)
	code := authorize(t, srv, "ada@load.test", challengeOf(verifier))
	status, out := token(t, srv, "s3cret", code, verifier)
	if status != http.StatusOK {
		t.Fatalf("token = %d %v", status, out)
	}
	resp, err := http.Get(srv.URL + "/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	jws, err := jose.ParseSigned(out["id_token"].(string), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	if c["email"] != "ada@load.test" || c["iss"] != srv.URL || c["aud"] != "gatehouse" || c["nonce"] != "n-1" || c["at_hash"] == nil {
		t.Fatalf("claims %v", c)
	}

	for _, tc := range []struct {
		name, secret, verifier string
		reuse                  bool
		want                   int
	}{
		{"reused code", "s3cret", verifier, true, http.StatusBadRequest},
		{"wrong verifier", "s3cret", strings.Repeat("w", 43), false, http.StatusBadRequest},
		{"wrong secret", "nope", verifier, false, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := code
			if !tc.reuse {
				c = authorize(t, srv, "ada@load.test", challengeOf(verifier))
			}
			if status, out := token(t, srv, tc.secret, c, tc.verifier); status != tc.want {
				t.Fatalf("token = %d %v, want %d", status, out, tc.want)
			}
		})
	}
}

// TestDownClosesDiscoveryAndJWKS: while down, discovery and JWKS close
// the connection unanswered; the token endpoint still works; up restores
// them.
func TestDownClosesDiscoveryAndJWKS(t *testing.T) {
	p, srv, adm := fake(t)
	get := func(path string) error {
		resp, err := http.Get(srv.URL + path)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if _, err := http.Post(adm.URL+"/down", "", nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/jwks.json"} {
		if err := get(path); err == nil {
			t.Errorf("%s answered while down", path)
		}
	}
	verifier := strings.Repeat("v", 43)
	if status, _ := token(t, srv, "s3cret", authorize(t, srv, "b@load.test", challengeOf(verifier)), verifier); status != http.StatusOK {
		t.Fatalf("token endpoint while down = %d", status)
	}
	if _, err := http.Post(adm.URL+"/up", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := get("/jwks.json"); err != nil {
		t.Fatalf("JWKS after up: %v", err)
	}
	if p.refusedWhenDown.Load() != 2 {
		t.Fatalf("refused while down = %d, want 2", p.refusedWhenDown.Load())
	}
}

// TestKeyFileKeepsTheKey: a restart with the same key file signs with the
// same kid.
func TestKeyFileKeepsTheKey(t *testing.T) {
	path := t.TempDir() + "/key.pem"
	a, err := loadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID != b.KeyID {
		t.Fatalf("kid %s after a restart, was %s", b.KeyID, a.KeyID)
	}
}
