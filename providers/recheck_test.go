package providers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/githubtest"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// TestRecheckSettings: recheck_interval and friends are validated at load,
// with their defaults; SAML's max_session_age too.
func TestRecheckSettings(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		want    RecheckPolicy
		problem string
	}{
		{yaml: "", want: RecheckPolicy{Enabled: true, Interval: time.Hour, MaxStaleness: 24 * time.Hour}},
		{yaml: "recheck_interval: 0", want: RecheckPolicy{Enabled: true, Required: true, MaxStaleness: 24 * time.Hour}},
		{yaml: "recheck_interval: 15m\non_recheck_unavailable: deny\nrecheck_max_staleness: 2h",
			want: RecheckPolicy{Enabled: true, Required: true, Interval: 15 * time.Minute, DenyUnavailable: true, MaxStaleness: 2 * time.Hour}},
		{yaml: "recheck_interval: off", want: RecheckPolicy{Interval: time.Hour, MaxStaleness: 24 * time.Hour}},
		{yaml: "recheck_interval: soon", problem: "recheck_interval"},
		{yaml: "recheck_interval: -1h", problem: "recheck_interval"},
		{yaml: "recheck_interval: [1h]", problem: "recheck_interval"},
		{yaml: "on_recheck_unavailable: maybe", problem: "on_recheck_unavailable"},
		{yaml: "recheck_interval: 2h\nrecheck_max_staleness: 1h", problem: "recheck_max_staleness"},
		{yaml: "recheck_max_staleness: -1h", problem: "recheck_max_staleness"},
		{yaml: "recheck_interval: off\non_recheck_unavailable: deny", problem: "recheck_interval"},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			var s struct {
				recheckSettings `yaml:",inline"`
			}
			e := &SettingsError{}
			if err := yamlSettings(tc.yaml).Decode(&s); err != nil {
				e.add("recheck_interval", "%v", err)
			}
			got := s.recheckSettings.check(e)
			if tc.problem != "" {
				if e.err() == nil || !strings.Contains(e.Error(), tc.problem) {
					t.Fatalf("problems = %v, want one about %s", e.err(), tc.problem)
				}
				return
			}
			if e.err() != nil || got != tc.want {
				t.Fatalf("policy = %+v, %v; want %+v", got, e.err(), tc.want)
			}
		})
	}
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {12 * time.Hour, true}, {time.Second, false}, {-time.Hour, false}} {
		e := &SettingsError{}
		if pol := checkMaxSessionAge(tc.d, e); (e.err() == nil) != tc.ok || (tc.ok && pol.MaxSessionAge != tc.d) {
			t.Fatalf("max_session_age %s: %+v, %v", tc.d, pol, e.err())
		}
	}
}

// TestOIDCRecheck re-checks a person of each OpenID Connect kind against
// the fake upstream: the upstream refresh token rotates and the new one
// is returned; a forgotten grant, another subject, or a person the
// kind's rules now refuse is ErrGone; an unreachable token endpoint is
// ErrUnavailable, never ErrGone.
func TestOIDCRecheck(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		kind   string
		refuse map[string]any // claims the kind's rules refuse
		begin  BeginRequest
	}{
		{kind: "oidc"},
		{kind: "google", refuse: map[string]any{"hd": "elsewhere.example"}},
		{kind: "auth0", refuse: map[string]any{"org_id": "org_other", "org_name": "other"}, begin: BeginRequest{Organization: "org_acme"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			p, fake := startKind(t, tc.kind, func(o *providertest.Options) { o.RefreshTokens = true })
			rc := p.(Rechecker)
			id, err := signIn(t, p, tc.begin)
			if err != nil {
				t.Fatal(err)
			}
			if id.Recheck == "" || strings.Contains(id.Recheck, "eyJ") {
				t.Fatalf("saved = %q", id.Recheck)
			}
			again, saved, err := rc.Recheck(ctx, id.Recheck)
			if err != nil || again.Subject != id.Subject || saved == id.Recheck || again.Recheck != saved {
				t.Fatalf("Recheck = %+v, %q, %v", again, saved, err)
			}
			if strings.Join(again.Groups, ",") != strings.Join(id.Groups, ",") {
				t.Fatalf("groups %v, at sign-in %v", again.Groups, id.Groups)
			}
			// The old upstream token is spent: only the new one works.
			if _, _, err := rc.Recheck(ctx, id.Recheck); !errors.Is(err, ErrGone) {
				t.Fatalf("Recheck with the spent token = %v", err)
			}
			id.Recheck = saved

			fake.SetTokenDown(true)
			if _, _, err := rc.Recheck(ctx, id.Recheck); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrGone) {
				t.Fatalf("Recheck with the token endpoint down = %v", err)
			}
			fake.SetTokenDown(false)

			if tc.refuse != nil {
				fake.SetUser(withClaims(mergeClaims(fixtures[tc.kind].opts.User, tc.refuse)))
				_, next, err := rc.Recheck(ctx, id.Recheck)
				if !errors.Is(err, ErrGone) || next == "" {
					t.Fatalf("Recheck of a person the rules refuse = %v (kept %q)", err, next)
				}
				id.Recheck = next
				fake.SetUser(withClaims(fixtures[tc.kind].opts.User))
			}

			fake.SetUser(withClaims(mergeClaims(fixtures[tc.kind].opts.User, map[string]any{"sub": "someone-else"})))
			_, next, err := rc.Recheck(ctx, id.Recheck)
			if !errors.Is(err, ErrGone) {
				t.Fatalf("Recheck answered for another subject = %v", err)
			}
			fake.SetUser(withClaims(fixtures[tc.kind].opts.User))

			fake.ForgetGrants()
			if _, _, err := rc.Recheck(ctx, next); !errors.Is(err, ErrGone) {
				t.Fatalf("Recheck after the upstream forgot the grant = %v", err)
			}
			for _, bad := range []string{"", "{}", "not json", `{"rt":"x"}`} {
				if _, _, err := rc.Recheck(ctx, bad); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Recheck(%q) = %v", bad, err)
				}
			}
		})
	}
}

func mergeClaims(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestOIDCRecheckOffline: a refresh token is kept only when the upstream
// issued one and re-checks are on; recheck_interval set asks for it
// (offline_access, or Google's access_type=offline); off keeps nothing.
func TestOIDCRecheckOffline(t *testing.T) {
	fake := providertest.New(t, providertest.Options{})
	base := "issuer: " + fake.Issuer + "\nclient_id: " + fake.ClientID + "\nclient_secret: " + fake.ClientSecret + "\ninsecure_allow_http: true\n"
	for _, tc := range []struct {
		extra, scopeHas string
		kept            bool
	}{
		{extra: "", kept: false},
		{extra: "recheck_interval: 30m\n", scopeHas: "offline_access", kept: true},
		{extra: "recheck_interval: 'off'\nscopes: [openid, email, offline_access]\n", scopeHas: "offline_access", kept: false},
		{extra: "scopes: [openid, offline_access]\n", scopeHas: "offline_access", kept: true},
	} {
		t.Run(tc.extra, func(t *testing.T) {
			p := startProvider(t, "oidc", base+tc.extra, Env{})
			id, err := signIn(t, p, BeginRequest{})
			if err != nil {
				t.Fatal(err)
			}
			scope := fake.LastAuthorize().Get("scope")
			if strings.Contains(scope, "offline_access") != (tc.scopeHas != "") {
				t.Fatalf("scope = %q", scope)
			}
			if (id.Recheck != "") != tc.kept {
				t.Fatalf("kept = %q", id.Recheck)
			}
		})
	}
	g := startProvider(t, "google", "insecure_issuer: "+fake.Issuer+"\nclient_id: "+fake.ClientID+"\nclient_secret: "+fake.ClientSecret+
		"\ninsecure_allow_http: true\nrecheck_interval: 1h\n", Env{})
	ch, err := g.Begin(context.Background(), BeginRequest{State: "s", CallbackURL: oidcTestCallback})
	if err != nil || !strings.Contains(ch.RedirectURL, "access_type=offline") || strings.Contains(ch.RedirectURL, "offline_access") {
		t.Fatalf("google authorization URL = %s, %v", ch.RedirectURL, err)
	}
}

// TestOIDCRecheckUserInfoOnly: an upstream whose refresh answer has no ID
// token is re-checked through UserInfo with the new access token.
func TestOIDCRecheckUserInfoOnly(t *testing.T) {
	p, fake := startKind(t, "oidc", func(o *providertest.Options) { o.RefreshTokens, o.NoRefreshIDToken = true, true })
	id, err := signIn(t, p, BeginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetUser(withClaims(map[string]any{"name": "Ada King", "groups": []any{"eng"}}))
	again, _, err := p.(Rechecker).Recheck(context.Background(), id.Recheck)
	if err != nil || again.Name != "Ada King" || strings.Join(again.Groups, ",") != "oidc:group:eng" {
		t.Fatalf("Recheck = %+v, %v", again, err)
	}
}

// TestGitHubRecheck reads the person again with the kept token: a team
// removal shows; a revoked token (401), leaving the allowed organization
// or another account behind the token is ErrGone; GitHub failing (5xx, a
// rate limit, a 403 from an organization's policy) is ErrUnavailable.
func TestGitHubRecheck(t *testing.T) {
	ctx := context.Background()
	gh := githubtest.New(t)
	p, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, "allowed_organizations: [acme]\nsync_groups: true\n"), Env{})
	if err != nil {
		t.Fatal(err)
	}
	rc := p.(Rechecker)
	if pol := rc.RecheckPolicy(); !pol.Enabled || pol.Interval != time.Hour || pol.Required {
		t.Fatalf("default policy = %+v", pol)
	}
	gh.SignIn(ada)
	id, _, err := githubSignIn(t, p, gh, nil, nil)
	if err != nil || id.Recheck == "" || !strings.Contains(strings.Join(id.Groups, ","), "github:team:acme/platform") {
		t.Fatalf("sign-in = %+v, %v", id, err)
	}
	gh.UpdateUser(ada.ID, func(u *githubtest.User) { u.Teams = u.Teams[1:] })
	again, saved, err := rc.Recheck(ctx, id.Recheck)
	if err != nil || saved != id.Recheck || strings.Contains(strings.Join(again.Groups, ","), "acme/platform") {
		t.Fatalf("Recheck after the team removal = %+v, %v", again, err)
	}
	for name, answer := range map[string]func(http.ResponseWriter){
		"server error": githubtest.ServerError,
		"rate limited": githubtest.RateLimited,
		"forbidden": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"Resource protected by organization SAML enforcement."}`))
		},
	} {
		gh.SetIntercept(onPath("/user/teams", "", answer))
		if _, _, err := rc.Recheck(ctx, id.Recheck); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrGone) {
			t.Fatalf("%s: Recheck = %v", name, err)
		}
	}
	gh.SetIntercept(nil)
	var kept githubSaved
	if err := json.Unmarshal([]byte(id.Recheck), &kept); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rc.Recheck(ctx, githubRecheckSaved(kept.AccessToken, "1")); !errors.Is(err, ErrGone) {
		t.Fatalf("a token kept for another subject = %v", err)
	}
	gh.UpdateUser(ada.ID, func(u *githubtest.User) { u.Orgs, u.Teams = []string{"elsewhere"}, nil })
	if _, _, err := rc.Recheck(ctx, id.Recheck); !errors.Is(err, ErrGone) {
		t.Fatalf("Recheck outside the allowed organization = %v", err)
	}
	gh.RevokeTokens()
	if _, _, err := rc.Recheck(ctx, id.Recheck); !errors.Is(err, ErrGone) {
		t.Fatalf("Recheck with a revoked token = %v", err)
	}
	off, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, "recheck_interval: 'off'\n"), Env{})
	if err != nil {
		t.Fatal(err)
	}
	gh.SignIn(ada)
	if id, _, err := githubSignIn(t, off, gh, nil, nil); err != nil || id.Recheck != "" {
		t.Fatalf("recheck_interval off kept %q (%v)", id.Recheck, err)
	}
	if _, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, "on_recheck_unavailable: never\n"), Env{}); err == nil ||
		!strings.Contains(err.Error(), "on_recheck_unavailable") {
		t.Fatalf("a bad on_recheck_unavailable = %v", err)
	}
}

// TestOIDCRecheckErrorHidesBody: an upstream token endpoint failing with
// a 5xx is reported by its status alone: the body it answered with (an
// upstream's stack trace, a reflected token) never reaches the error,
// which goes to the audit trail, the admin API and the log.
func TestOIDCRecheckErrorHidesBody(t *testing.T) {
	p, fake := startKind(t, "oidc", func(o *providertest.Options) { o.RefreshTokens = true })
	id, err := signIn(t, p, BeginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fake.SetTokenDown(true) // 503 "down for maintenance"
	_, _, err = p.(Rechecker).Recheck(context.Background(), id.Recheck)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "503") ||
		strings.Contains(err.Error(), "maintenance") || strings.Contains(err.Error(), "Response") {
		t.Fatalf("Recheck with the token endpoint failing = %v", err)
	}
}
