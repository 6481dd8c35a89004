package providers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/githubtest"
)

const testCallback = "https://gatehouse.example/auth/callback/github"

// githubSettingsFor points a github provider at the fake; extra is more
// YAML. Without apiURL the API URL is derived (Enterprise Server layout).
func githubSettingsFor(gh *githubtest.Server, secret string, apiURL bool, extra string) yamlSettings {
	y := "client_id: " + githubtest.ClientID + "\nclient_secret: " + secret + "\nbase_url: " + gh.URL + "\n"
	if apiURL {
		y += "api_url: " + gh.URL + "\n"
	}
	return yamlSettings(y + extra)
}

// githubSignIn runs a whole sign-in against the fake: Begin, GitHub's
// authorization page, then Complete with the callback (after mutate).
func githubSignIn(t *testing.T, p Provider, gh *githubtest.Server, mutate func(q url.Values), saved func(string) string) (*Identity, string, error) {
	t.Helper()
	ctx := context.Background()
	ch, err := p.Begin(ctx, BeginRequest{State: "state-1", CallbackURL: testCallback})
	if err != nil {
		t.Fatal(err)
	}
	back := gh.Authorize(t, ch.RedirectURL)
	q := back.Query()
	if q.Get("state") != "state-1" {
		t.Fatalf("state not echoed: %s", back)
	}
	code := q.Get("code")
	if mutate != nil {
		mutate(q)
		back.RawQuery = q.Encode()
	}
	if saved != nil {
		ch.Saved = saved(ch.Saved)
	}
	id, err := p.Complete(ctx, CompleteRequest{HTTP: httptest.NewRequest(http.MethodGet, back.String(), nil),
		CallbackURL: testCallback, Saved: ch.Saved})
	return id, code, err
}

var ada = githubtest.User{
	ID: 583231, Login: "ada", Name: "Ada Lovelace",
	Emails: []githubtest.Email{
		{Address: "ada@old.example", Verified: true},
		{Address: "Ada@Example.com", Primary: true, Verified: true},
	},
	Orgs:  []string{"Acme", "analytical-engines"},
	Teams: []githubtest.Team{{Org: "Acme", Slug: "platform"}, {Org: "Acme", Slug: "web"}, {Org: "analytical-engines", Slug: "core"}},
}

func with(u githubtest.User, mod func(u *githubtest.User)) githubtest.User {
	u.Emails = slices.Clone(u.Emails)
	mod(&u)
	return u
}

// onPath intercepts requests to one path (and page, unless page is "").
func onPath(path, page string, answer func(w http.ResponseWriter)) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path || (page != "" && r.URL.Query().Get("page") != page) {
			return false
		}
		answer(w)
		return true
	}
}

func TestGitHubComplete(t *testing.T) {
	type want struct {
		email    string
		verified bool
		name     string
		groups   []string
		partial  bool
	}
	adaGroups := []string{"github:org:acme", "github:org:analytical-engines",
		"github:team:acme/platform", "github:team:acme/web", "github:team:analytical-engines/core"}
	many := with(ada, func(u *githubtest.User) {
		u.Orgs = []string{"o1", "o2", "o3", "o4", "O5"}
		u.Teams = []githubtest.Team{{Org: "o1", Slug: "a"}, {Org: "o1", Slug: "b"}, {Org: "o2", Slug: "c"}, {Org: "o2", Slug: "d"}, {Org: "o3", Slug: "e"}, {Org: "o4", Slug: "f"}, {Org: "O5", Slug: "g"}}
	})
	tests := []struct {
		name       string
		settings   string
		secret     string // default: the fake's
		enterprise bool   // leave api_url out: the Enterprise Server layout
		user       githubtest.User
		pageSize   int
		granted    string
		saml       []string // organizations enforcing SAML SSO, hidden from the listings
		intercept  func(http.ResponseWriter, *http.Request) bool
		mutate     func(q url.Values)
		saved      func(string) string
		want       *want
		wantErr    error
		wantMsg    string
		wantDetail string // in the error, for the log
		check      func(t *testing.T, requests []string)
	}{
		{
			name: "verified primary email, no organization scope",
			user: ada,
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace"},
			check: func(t *testing.T, reqs []string) {
				for _, r := range reqs {
					if strings.Contains(r, "/user/orgs") || strings.Contains(r, "/user/teams") {
						t.Errorf("read %s without needing it", r)
					}
				}
			},
		},
		{
			name: "no public email: the address comes from /user/emails",
			user: with(ada, func(u *githubtest.User) { u.Email = "" }),
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace"},
		},
		{
			name: "the public profile email is not used",
			user: with(ada, func(u *githubtest.User) { u.Email = "shown@example.com" }),
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace"},
		},
		{
			name: "unverified primary email is reported unverified, not swapped for a verified one",
			user: with(ada, func(u *githubtest.User) {
				u.Emails = []githubtest.Email{{Address: "new@example.com", Primary: true}, {Address: "old@example.com", Verified: true}}
			}),
			want: &want{email: "new@example.com", verified: false, name: "Ada Lovelace"},
		},
		{
			name: "no email addresses at all",
			user: with(ada, func(u *githubtest.User) { u.Emails = nil; u.Email = "public@example.com" }),
			want: &want{email: "", verified: false, name: "Ada Lovelace"},
		},
		{
			name: "no name: the login stands in",
			user: with(ada, func(u *githubtest.User) { u.Name = "" }),
			want: &want{email: "ada@example.com", verified: true, name: "ada"},
		},
		{
			name:     "groups synced, lowercased",
			settings: "sync_groups: true\n",
			user:     ada,
			want:     &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
		},
		{
			name:     "pagination across several pages to the end",
			settings: "sync_groups: true\n",
			user:     many,
			pageSize: 2,
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: []string{
				"github:org:o1", "github:org:o2", "github:org:o3", "github:org:o4", "github:org:o5",
				"github:team:o1/a", "github:team:o1/b", "github:team:o2/c", "github:team:o2/d",
				"github:team:o3/e", "github:team:o4/f", "github:team:o5/g"}},
			check: func(t *testing.T, reqs []string) {
				for _, r := range []string{"GET /user/orgs?page=3&per_page=100", "GET /user/teams?page=4&per_page=100"} {
					if !slices.Contains(reqs, r) {
						t.Errorf("missing %s in %v", r, reqs)
					}
				}
				for _, r := range reqs {
					if strings.Contains(r, "/user/teams?page=5") || strings.Contains(r, "/user/orgs?page=4") {
						t.Errorf("read past the last page: %s", r)
					}
				}
			},
		},
		{
			name:     "an organization enforcing SAML SSO is left out: groups partial",
			settings: "sync_groups: true\n",
			user:     ada,
			saml:     []string{"Analytical-Engines"},
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", partial: true,
				groups: []string{"github:org:acme", "github:team:acme/platform", "github:team:acme/web"}},
		},
		{
			name:     "partial results on a later page only",
			settings: "sync_groups: true\n",
			user:     many,
			pageSize: 2,
			intercept: onPath("/user/teams", "2", func(w http.ResponseWriter) {
				w.Header().Set("X-GitHub-SSO", "partial-results; organizations=21955855,20582480")
				_, _ = w.Write([]byte(`[]`))
			}),
			want: &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", partial: true, groups: []string{
				"github:org:o1", "github:org:o2", "github:org:o3", "github:org:o4", "github:org:o5",
				"github:team:o1/a", "github:team:o1/b"}},
		},
		{
			name:       "the only allowed organization hidden by SAML SSO: refused, and the log says why",
			settings:   "allowed_organizations: [analytical-engines]\n",
			user:       ada,
			saml:       []string{"analytical-engines"},
			wantErr:    ErrDenied,
			wantMsg:    "the organization may first have to approve this application",
			wantDetail: "GitHub left out organizations that enforce SAML single sign-on",
		},
		{
			name:     "organization allowed (names are case-insensitive)",
			settings: "allowed_organizations: [ACME]\n",
			user:     ada,
			want:     &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
		},
		{
			name:     "organization refused",
			settings: "allowed_organizations: [globex]\n",
			user:     ada,
			wantErr:  ErrDenied,
			wantMsg:  "This GitHub account is not in an allowed organization.",
		},
		{
			name:     "team allowed",
			settings: "allowed_teams: [acme/platform]\n",
			user:     ada,
			want:     &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
		},
		{
			name:     "team refused although in the organization",
			settings: "allowed_teams: [acme/security]\n",
			user:     ada,
			wantErr:  ErrDenied,
			wantMsg:  "This GitHub account is not in an allowed team.",
		},
		{
			name:     "an allowed team is enough when the organization is not listed",
			settings: "allowed_organizations: [globex]\nallowed_teams: [acme/web]\n",
			user:     ada,
			want:     &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
		},
		{
			name:     "neither organization nor team",
			settings: "allowed_organizations: [globex]\nallowed_teams: [initech/ops]\n",
			user:     ada,
			wantErr:  ErrDenied,
			wantMsg:  "not in an allowed organization or team",
		},
		{
			name:      "rate limited on /user",
			user:      ada,
			intercept: onPath("/user", "", githubtest.RateLimited),
			wantErr:   ErrUnavailable,
			wantMsg:   "GitHub is unavailable, try again",
		},
		{
			name:      "secondary rate limit (429, Retry-After) on /user/orgs",
			settings:  "sync_groups: true\n",
			user:      ada,
			intercept: onPath("/user/orgs", "", githubtest.SecondaryRateLimited),
			wantErr:   ErrUnavailable,
			wantMsg:   "GitHub is unavailable, try again",
		},
		{
			name:     "secondary rate limit (403, Retry-After) on /user/emails",
			user:     ada,
			settings: "",
			intercept: onPath("/user/emails", "", func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusForbidden)
			}),
			wantErr: ErrUnavailable,
			wantMsg: "GitHub is unavailable, try again",
		},
		{
			name:      "a 500 in the middle of the team listing",
			settings:  "allowed_organizations: [o1]\n",
			user:      many,
			pageSize:  2,
			intercept: onPath("/user/teams", "2", githubtest.ServerError),
			wantErr:   ErrUnavailable,
			wantMsg:   "GitHub is unavailable, try again",
		},
		{
			name: "token endpoint down",
			user: ada,
			intercept: onPath("/login/oauth/access_token", "", func(w http.ResponseWriter) {
				http.Error(w, "<html>unicorn</html>", http.StatusBadGateway)
			}),
			wantErr: ErrUnavailable,
			wantMsg: "GitHub is unavailable, try again",
		},
		{
			name:     "a call slower than the timeout",
			settings: "timeout: 100ms\n",
			user:     ada,
			intercept: func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/user/emails" {
					return false
				}
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
				return true
			},
			wantErr: ErrUnavailable,
			wantMsg: "GitHub is unavailable, try again",
		},
		{
			name:    "bad_verification_code",
			user:    ada,
			mutate:  func(q url.Values) { q.Set("code", "not-a-code-github-issued") },
			wantErr: ErrInvalidResponse,
			wantMsg: "expired or was already used. Please sign in again.",
		},
		{
			name:    "PKCE verifier that does not match",
			user:    ada,
			saved:   func(string) string { return "a-verifier-from-another-sign-in-0123456789abcdef" },
			wantErr: ErrInvalidResponse,
			wantMsg: "Please sign in again.",
		},
		{
			name:    "wrong client secret",
			user:    ada,
			secret:  "not-the-secret",
			wantErr: ErrInvalidResponse,
			wantMsg: "not set up correctly",
		},
		{
			name:    "callback without a code",
			user:    ada,
			mutate:  func(q url.Values) { q.Del("code") },
			wantErr: ErrInvalidResponse,
			wantMsg: "Please sign in again.",
		},
		{
			name:     "read:org not granted",
			settings: "allowed_organizations: [acme]\n",
			user:     ada,
			granted:  "read:user,user:email",
			wantErr:  ErrInvalidResponse,
			wantMsg:  "not set up correctly",
		},
		{
			name:     "admin:org implies read:org",
			settings: "allowed_organizations: [acme]\n",
			user:     ada,
			granted:  "admin:org,read:user,user:email",
			want:     &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
		},
		{
			name:     "403 without rate limiting is not retried as unavailable",
			settings: "sync_groups: true\n",
			user:     ada,
			intercept: onPath("/user/teams", "", func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"message":"Resource protected by organization SAML enforcement."}`))
			}),
			wantErr: ErrInvalidResponse,
			wantMsg: "authorize this application for it on GitHub",
		},
		{
			name:      "401 from the API",
			user:      ada,
			intercept: onPath("/user", "", func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }),
			wantErr:   ErrInvalidResponse,
			wantMsg:   "Please sign in again.",
		},
		{
			name:      "malformed /user",
			user:      ada,
			intercept: onPath("/user", "", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"id": "583231"`)) }),
			wantErr:   ErrInvalidResponse,
		},
		{
			name:      "/user without an id",
			user:      ada,
			intercept: onPath("/user", "", func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"login":"ada"}`)) }),
			wantErr:   ErrInvalidResponse,
		},
		{
			name:       "Enterprise Server: the API under /api/v3",
			settings:   "sync_groups: true\n",
			enterprise: true,
			user:       ada,
			want:       &want{email: "ada@example.com", verified: true, name: "Ada Lovelace", groups: adaGroups},
			check: func(t *testing.T, reqs []string) {
				for _, r := range []string{"GET /api/v3/user", "GET /api/v3/user/emails?per_page=100", "GET /api/v3/user/teams?per_page=100"} {
					if !slices.Contains(reqs, r) {
						t.Errorf("missing %s in %v", r, reqs)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gh := githubtest.New(t)
			gh.SignIn(tc.user)
			if tc.pageSize > 0 {
				gh.PageSize = tc.pageSize
			}
			gh.GrantedScopes = tc.granted
			gh.SetIntercept(tc.intercept)
			gh.EnforceSAML(tc.saml...)
			secret := tc.secret
			if secret == "" {
				secret = githubtest.ClientSecret
			}
			p, err := New("github", "github", githubSettingsFor(gh, secret, !tc.enterprise, tc.settings), Env{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			id, code, err := githubSignIn(t, p, gh, tc.mutate, tc.saved)
			if tc.check != nil {
				tc.check(t, gh.Requests())
			}
			if tc.want == nil {
				if err == nil {
					t.Fatalf("signed in as %+v, want %v", id, tc.wantErr)
				}
				if !errors.Is(err, tc.wantErr) || id != nil {
					t.Fatalf("err = %v (identity %v), want %v", err, id, tc.wantErr)
				}
				var ue *UserError
				if !errors.As(err, &ue) || !strings.Contains(ue.Message, tc.wantMsg) {
					t.Fatalf("message = %v, want it to contain %q", err, tc.wantMsg)
				}
				if !strings.Contains(err.Error(), tc.wantDetail) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantDetail)
				}
				t.Logf("refused: %v; shown: %q", err, ue.Message)
				// Neither the page nor the log may carry a secret, a code,
				// a token or the person's memberships.
				for _, s := range []string{code, githubtest.ClientSecret, "gho_", "analytical", "platform"} {
					if strings.Contains(err.Error(), s) || strings.Contains(ue.Message, s) {
						t.Fatalf("error %q / message %q reveals %q", err, ue.Message, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{email: id.Email, verified: id.EmailVerified, name: id.Name, groups: id.Groups, partial: id.GroupsPartial}
			if got.email != tc.want.email || got.verified != tc.want.verified || got.name != tc.want.name ||
				!slices.Equal(got.groups, tc.want.groups) || got.partial != tc.want.partial {
				t.Fatalf("identity = %+v\nwant       %+v", got, *tc.want)
			}
			if id.Provider != "github" || id.Subject != "583231" || id.AvatarURL == "" || id.Claims["login"] != "ada" || id.Username != "ada" {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// TestGitHubPartial reads GitHub's X-GitHub-SSO header: only
// partial-results marks a listing that left organizations out.
func TestGitHubPartial(t *testing.T) {
	cases := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"partial-results; organizations=21955855,20582480"}, true},
		{[]string{" Partial-Results ;organizations=1"}, true},
		{[]string{"partial-results"}, true},
		{[]string{"required; url=https://github.com/orgs/acme/sso?authorization_request=abc"}, false},
		{[]string{"required; url=https://github.com/orgs/acme/sso", "partial-results; organizations=1"}, true},
		{[]string{"partial-resultsx"}, false},
		{[]string{""}, false},
	}
	for _, tc := range cases {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("X-GitHub-SSO", v)
		}
		if got := githubPartial(h); got != tc.want {
			t.Errorf("githubPartial(%q) = %v, want %v", tc.values, got, tc.want)
		}
	}
}

// TestGitHubCodeIsSingleUse replays a callback: GitHub answers
// bad_verification_code and the person is asked to start again.
func TestGitHubCodeIsSingleUse(t *testing.T) {
	gh := githubtest.New(t)
	gh.SignIn(ada)
	p, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, ""), Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ch, _ := p.Begin(ctx, BeginRequest{State: "s", CallbackURL: testCallback})
	back := gh.Authorize(t, ch.RedirectURL)
	req := CompleteRequest{HTTP: httptest.NewRequest(http.MethodGet, back.String(), nil), CallbackURL: testCallback, Saved: ch.Saved}
	if _, err := p.Complete(ctx, req); err != nil {
		t.Fatal(err)
	}
	_, err = p.Complete(ctx, req)
	var ue *UserError
	if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "bad_verification_code") ||
		!strings.Contains(ue.Message, "Please sign in again") {
		t.Fatalf("replayed code: %v", err)
	}
}

// TestGitHubNextLinkStaysOnTheAPIHost: a Link header pointing elsewhere
// must not receive the access token.
func TestGitHubNextLinkStaysOnTheAPIHost(t *testing.T) {
	var hits atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	gh := githubtest.New(t)
	gh.SignIn(ada)
	gh.SetIntercept(onPath("/user/emails", "", func(w http.ResponseWriter) {
		w.Header().Set("Link", `<`+elsewhere.URL+`/user/emails?page=2>; rel="next"`)
		_, _ = w.Write([]byte(`[]`))
	}))
	p, err := New("github", "github", githubSettingsFor(gh, githubtest.ClientSecret, true, ""), Env{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = githubSignIn(t, p, gh, nil, nil)
	if !errors.Is(err, ErrInvalidResponse) || hits.Load() != 0 {
		t.Fatalf("err = %v, requests elsewhere = %d", err, hits.Load())
	}
}

func TestGitHubBegin(t *testing.T) {
	tests := []struct {
		name     string
		settings string
		req      BeginRequest
		want     map[string]string // expected query values; "" means absent
	}{
		{
			name: "plain sign-in asks for the profile and email addresses only",
			req:  BeginRequest{State: "st", CallbackURL: testCallback},
			want: map[string]string{"scope": "read:user user:email", "allow_signup": "", "login": "", "prompt": ""},
		},
		{
			name:     "org restriction adds read:org and refuses sign-up",
			settings: "allowed_organizations: [acme]\n",
			req:      BeginRequest{State: "st", CallbackURL: testCallback},
			want:     map[string]string{"scope": "read:user user:email read:org", "allow_signup": "false"},
		},
		{
			name:     "group sync adds read:org",
			settings: "sync_groups: true\n",
			req:      BeginRequest{State: "st", CallbackURL: testCallback},
			want:     map[string]string{"scope": "read:user user:email read:org", "allow_signup": ""},
		},
		{
			name: "hints",
			req:  BeginRequest{State: "st", CallbackURL: testCallback, LoginHint: "ada", Prompt: "login select_account"},
			want: map[string]string{"login": "ada", "prompt": "select_account"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New("github", "github", yamlSettings("client_id: abc\nclient_secret: def\n"+tc.settings), Env{})
			if err != nil {
				t.Fatal(err)
			}
			ch, err := p.Begin(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(ch.RedirectURL)
			q := u.Query()
			if u.Scheme+"://"+u.Host+u.Path != "https://github.com/login/oauth/authorize" || q.Get("client_id") != "abc" ||
				q.Get("redirect_uri") != testCallback || q.Get("state") != "st" || q.Get("response_type") != "code" {
				t.Fatalf("authorize URL = %s", u)
			}
			sum := sha256.Sum256([]byte(ch.Saved))
			if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) {
				t.Fatalf("PKCE: %s (saved %d chars)", u, len(ch.Saved))
			}
			if strings.Contains(ch.RedirectURL, "def") {
				t.Fatal("the client secret is in the authorize URL")
			}
			for k, v := range tc.want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
		})
	}
}

func TestGitHubSettings(t *testing.T) {
	tests := []struct {
		name       string
		yaml       string
		production bool
		wantErr    string // "" means valid
		webURL     string
		apiURL     string
	}{
		{name: "github.com defaults", yaml: "client_id: a\nclient_secret: b\n",
			webURL: "https://github.com", apiURL: "https://api.github.com"},
		{name: "Enterprise Server derives the API URL", yaml: "client_id: a\nclient_secret: b\nbase_url: https://github.example.com/\n",
			webURL: "https://github.example.com", apiURL: "https://github.example.com/api/v3"},
		{name: "explicit API URL", yaml: "client_id: a\nclient_secret: b\nbase_url: https://github.example.com\napi_url: https://api.github.example.com\n",
			webURL: "https://github.example.com", apiURL: "https://api.github.example.com"},
		{name: "client_id and secret required", yaml: "display_name: GitHub\n", wantErr: "client_id is required (the Client ID of the GitHub OAuth App); client_secret is required"},
		{name: "unknown field", yaml: "client_id: a\nclient_secret: b\nallowed_orgs: [acme]\n", wantErr: "field allowed_orgs not found"},
		{name: "relative base URL", yaml: "client_id: a\nclient_secret: b\nbase_url: github.example.com\n", wantErr: `base_url "github.example.com" must be an absolute http(s) URL, such as https://github.example.com`},
		{name: "bad explicit API URL", yaml: "client_id: a\nclient_secret: b\napi_url: ftp://api.example.com\n", wantErr: `api_url "ftp://api.example.com" must be an absolute http(s) URL`},
		{name: "plain HTTP refused in production", production: true,
			yaml: "client_id: a\nclient_secret: b\nbase_url: http://github.example.com\n", wantErr: "must use https with GATEHOUSE_ENV=production"},
		{name: "plain HTTP allowed in development",
			yaml:   "client_id: a\nclient_secret: b\nbase_url: http://127.0.0.1:3000\n",
			webURL: "http://127.0.0.1:3000", apiURL: "http://127.0.0.1:3000/api/v3"},
		{name: "team without organization", yaml: "client_id: a\nclient_secret: b\nallowed_teams: [platform]\n", wantErr: `allowed_teams: "platform" must be <organization>/<team-slug>`},
		{name: "organization with a slash", yaml: "client_id: a\nclient_secret: b\nallowed_organizations: [acme/platform]\n", wantErr: "is not a GitHub organization name"},
		{name: "bad timeout", yaml: "client_id: a\nclient_secret: b\ntimeout: forever\n", wantErr: `timeout "forever" must be a duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New("github", "github", yamlSettings(tc.yaml), Env{Production: tc.production})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := p.(*githubProvider)
			if g.webURL != tc.webURL || g.apiURL != tc.apiURL || p.Type() != "github" || p.DisplayName() != "GitHub" {
				t.Fatalf("web %s api %s", g.webURL, g.apiURL)
			}
		})
	}
}

func TestNextPage(t *testing.T) {
	gh, _ := url.Parse("https://api.github.com")
	ghes, _ := url.Parse("https://github.example.com/api/v3")
	tests := []struct {
		name, link string
		api        *url.URL
		want       string
		wantErr    bool
	}{
		{name: "no header", api: gh},
		{name: "last page", api: gh, link: `<https://api.github.com/user/teams?page=1>; rel="first", <https://api.github.com/user/teams?page=2>; rel="prev"`},
		{name: "GitHub's order", api: gh,
			link: `<https://api.github.com/user/teams?page=2&per_page=100>; rel="next", <https://api.github.com/user/teams?page=5&per_page=100>; rel="last"`,
			want: "https://api.github.com/user/teams?page=2&per_page=100"},
		{name: "next not first, unquoted, odd spacing", api: gh,
			link: `<https://api.github.com/x?page=1>;rel=prev ,  <https://api.github.com/x?page=3> ; REL = next`,
			want: "https://api.github.com/x?page=3"},
		{name: "comma inside a quoted parameter", api: gh,
			link: `<https://api.github.com/x?page=1>; title="a, <b>"; rel="prev", <https://api.github.com/x?page=2>; rel="next"`,
			want: "https://api.github.com/x?page=2"},
		{name: "several relation types", api: gh, link: `<https://api.github.com/x?page=2>; rel="next last"`,
			want: "https://api.github.com/x?page=2"},
		{name: "relative reference", api: ghes, link: `</api/v3/user/orgs?page=2>; rel="next"`,
			want: "https://github.example.com/api/v3/user/orgs?page=2"},
		{name: "another host", api: gh, link: `<https://evil.example/user/teams?page=2>; rel="next"`, wantErr: true},
		{name: "plain HTTP downgrade", api: gh, link: `<http://api.github.com/user/teams?page=2>; rel="next"`, wantErr: true},
		{name: "outside the API path", api: ghes, link: `<https://github.example.com/login/oauth/access_token>; rel="next"`, wantErr: true},
		{name: "user info", api: gh, link: `<https://u:p@api.github.com/x>; rel="next"`, wantErr: true},
		{name: "garbage", api: gh, link: `rel="next"`, wantErr: true},
		{name: "unterminated", api: gh, link: `<https://api.github.com/x; rel="next"`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nextPage(tc.link, tc.api)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("nextPage = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzNextPage: any Link header either yields nothing, an error, or a
// URL on the API host under the API path.
func FuzzNextPage(f *testing.F) {
	f.Add(`<https://api.github.com/user/teams?page=2>; rel="next", <https://api.github.com/user/teams?page=5>; rel="last"`)
	f.Add(`<https://evil.example/>; rel="next"`)
	f.Add(`<>; rel=next`)
	api, _ := url.Parse("https://github.example.com/api/v3")
	f.Fuzz(func(t *testing.T, link string) {
		got, err := nextPage(link, api)
		if err != nil || got == "" {
			return
		}
		u, perr := url.Parse(got)
		if perr != nil || u.Scheme != "https" || u.Host != "github.example.com" || !strings.HasPrefix(u.Path, "/api/v3/") {
			t.Fatalf("nextPage(%q) = %q", link, got)
		}
	})
}
