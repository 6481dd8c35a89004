package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
)

// BenchmarkRefreshRecheck measures one refresh grant over HTTP, one after
// the other for one session, with a re-check not due (provider lazy,
// recheck_interval 1h: the common refresh) and due at every refresh
// (provider keep, recheck_interval 0: the upstream refresh token is
// redeemed at the fake upstream, its ID token verified, the person
// provisioned again), on each database. Figures: docs/performance.md.
func BenchmarkRefreshRecheck(b *testing.B) {
	for _, pg := range []bool{false, true} {
		for _, provider := range []string{"lazy", "keep"} {
			name := map[bool]string{false: "sqlite", true: "postgres"}[pg] + "/" +
				map[string]string{"lazy": "not-due", "keep": "due"}[provider]
			b.Run(name, func(b *testing.B) {
				s, _ := startRecheckServer(b, pg, nil)
				tok := benchSignIn(b, s, provider)
				client := &http.Client{}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}, "client_id": {"spa"}}
					resp, err := client.Post(s.URL+"/auth/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
					if err != nil {
						b.Fatal(err)
					}
					var out struct {
						RefreshToken string `json:"refresh_token"`
					}
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						b.Fatalf("refresh = %d %v", resp.StatusCode, err)
					}
					tok = out.RefreshToken
				}
			})
		}
	}
}

// benchSignIn signs the fake's person in through provider with a plain
// HTTP client following the round trip, and returns the refresh token.
func benchSignIn(b *testing.B, s *apptest.Server, provider string) string {
	b.Helper()
	ctx := context.Background()
	op, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		b.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "spa", Endpoint: op.Endpoint(), RedirectURL: "http://127.0.0.1:9/callback",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	jar, _ := cookiejar.New(nil)
	var code string
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "127.0.0.1:9" {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	resp, err := browser.Get(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", provider)))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		b.Fatal(err)
	}
	return tok.RefreshToken
}
