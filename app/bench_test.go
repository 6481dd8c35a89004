package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// BenchmarkRefreshGrantHTTP measures the refresh_token grant end to end
// through the HTTP handler (client auth, rotation in the database, minting
// the access and ID tokens), in parallel, on each database.
//
//	go test -run '^$' -bench RefreshGrantHTTP -benchtime 2000x ./app/
func BenchmarkRefreshGrantHTTP(b *testing.B) {
	for _, pg := range []bool{false, true} {
		for _, alg := range []string{"RS256", "ES256"} {
			name := map[bool]string{false: "sqlite", true: "postgres"}[pg] + "/" + alg
			b.Run(name, func(b *testing.B) { benchmarkRefreshGrant(b, pg, alg) })
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
