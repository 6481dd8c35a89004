package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
	"github.com/gatehouse-id/gatehouse/signin"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// BenchmarkRefreshGrantHTTP measures the refresh_token grant end to end
// through the HTTP handler (client auth, rotation in the database, minting
// the access and ID tokens), in parallel, on each database.
//
//	go test -run '^$' -bench RefreshGrantHTTP -benchtime 2000x ./app/
func BenchmarkRefreshGrantHTTP(b *testing.B) { benchEachSetup(b, benchmarkRefreshGrant) }

// benchEachSetup runs bench on each database with each signing algorithm.
func benchEachSetup(b *testing.B, bench func(b *testing.B, pg bool, alg string)) {
	for _, pg := range []bool{false, true} {
		for _, alg := range []string{"RS256", "ES256"} {
			name := map[bool]string{false: "sqlite", true: "postgres"}[pg] + "/" + alg
			b.Run(name, func(b *testing.B) { bench(b, pg, alg) })
		}
	}
}

func benchmarkRefreshGrant(b *testing.B, pg bool, alg string) {
	s := apptest.Start(b, apptest.Options{YAML: flowYAML, Postgres: pg,
		Env: map[string]string{"GATEHOUSE_SIGNING_ALG": alg}})
	ctx := context.Background()
	store := models.NewStore(s.DB)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		refresh := newRefreshToken(b, ctx, s, store)
		for pb.Next() {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"spa"}}
			resp, err := client.Post(s.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				b.Error(err)
				return
			}
			var out struct {
				RefreshToken string `json:"refresh_token"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("refresh = %d %v", resp.StatusCode, err)
				return
			}
			refresh = out.RefreshToken
		}
	})
}

// newRefreshToken provisions a user with a session and its first refresh
// token directly through the services (the browser part is not measured).
func newRefreshToken(b *testing.B, ctx context.Context, s *apptest.Server, store *models.Store) string {
	u := &models.User{Email: models.NewID() + "@example.com", EmailVerified: true}
	if err := store.CreateUserWithIdentity(ctx, u, &models.Identity{Provider: "dev", Subject: u.Email}); err != nil {
		b.Fatal(err)
	}
	sess, err := s.Sessions.CreateSession(ctx, tokens.NewSession{UserID: u.ID, ClientID: "spa", Provider: "dev",
		Scope: "openid email profile", AMR: []string{"pwd"}, AuthTime: time.Now().UTC()})
	if err != nil {
		b.Fatal(err)
	}
	rt, err := s.Sessions.IssueRefreshToken(ctx, sess.ID, "spa")
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// BenchmarkTokenExchangeHTTP measures token exchange end to end through
// the HTTP handler with a warm upstream JWKS: client lookup, validation
// of an Auth0-style RS256 access token, provisioning, a new session, and
// a signed access token plus a refresh token, in parallel, on each
// database and signing algorithm. It reports the upstream JWKS fetches of
// the whole run, which must stay at one (the warm-up).
//
//	go test -run '^$' -bench TokenExchangeHTTP -benchtime 10000x ./app/
func BenchmarkTokenExchangeHTTP(b *testing.B) { benchEachSetup(b, benchmarkTokenExchange) }

func benchmarkTokenExchange(b *testing.B, pg bool, alg string) {
	s, up := startUpstreamServer(b, pg, map[string]string{"GATEHOUSE_SIGNING_ALG": alg})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	exchange := func(token string) error {
		form := exchangeForm("tenant-a", token, accessTokenType)
		resp, err := client.Post(s.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.AccessToken == "" {
			return fmt.Errorf("exchange = %d %v", resp.StatusCode, err)
		}
		return nil
	}
	// Warm the JWKS (and the connection pool) before measuring.
	if err := exchange(up.tenantA.AccessToken(upstreamAPI, nil)); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// One person per goroutine, as many SPAs' users would be.
		token := up.tenantA.AccessToken(upstreamAPI, map[string]any{"sub": fmt.Sprintf("auth0|bench-%d", n.Add(1))})
		for pb.Next() {
			if err := exchange(token); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	fetches := up.tenantA.JWKSFetches()
	b.ReportMetric(float64(fetches), "jwks-fetches")
	if fetches != 1 {
		b.Fatalf("upstream JWKS fetches = %d, want 1", fetches)
	}
}

// BenchmarkSAMLACSJunk measures what a junk answer costs the ACS through
// the HTTP handler (form parsing included): posted as the IdP's POST
// (refused before it is posted again), and posted as the same-site POST
// of a live sign-in, cookie and all (the sign-in is consumed, then the
// answer refused; starting each sign-in is not timed).
//
//	go test -run '^$' -bench SAMLACSJunk -benchtime 50x -count 3 ./app/
func BenchmarkSAMLACSJunk(b *testing.B) {
	idp := samltest.New(b)
	s := apptest.Start(b, apptest.Options{YAML: samlYAML(idp.URL, "")})
	acs := s.URL + "/auth/saml/corp/acs"
	open := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-1" Version="2.0">`
	junk := func(elements int) string {
		return base64.StdEncoding.EncodeToString([]byte(open + strings.Repeat("<a/>", elements) + "</samlp:Response>"))
	}
	for _, tc := range []struct {
		name     string
		response string
		sameSite bool
	}{
		{"IdP's POST, 500 KB", junk(125_000), false},
		{"same-site POST, 500 KB", junk(125_000), true},
		{"same-site POST, 2046 elements", junk(2046), true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				form := url.Values{"SAMLResponse": {tc.response}, "RelayState": {"junk-relay-state-0123456789abcdefghijklmno"}}
				var cookie *http.Cookie
				if tc.sameSite {
					b.StopTimer()
					noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
					resp, err := noFollow.Get(s.URL + "/auth/login?client_id=spa&response_type=code&provider=corp&code_challenge_method=S256&code_challenge=" + strings.Repeat("A", 43))
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					loc, _ := url.Parse(resp.Header.Get("Location"))
					form.Set("RelayState", loc.Query().Get("RelayState"))
					form.Set(signin.ResubmitField, "1")
					cookie = resp.Cookies()[0]
					b.StartTimer()
				}
				body := form.Encode()
				if !tc.sameSite {
					b.StopTimer()
					body = form.Encode()
					b.StartTimer()
				}
				req, _ := http.NewRequest(http.MethodPost, acs, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if cookie != nil {
					req.AddCookie(cookie)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					b.Fatalf("junk answer = %d", resp.StatusCode)
				}
			}
		})
	}
}
