package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// The github provider signs people in with a GitHub OAuth App (github.com
// or GitHub Enterprise Server). GitHub speaks OAuth 2.0, not OpenID
// Connect: there is no ID token, so who the person is comes from the REST
// API, called with the access token right after the code exchange. With
// re-checks on (the default), the token is kept (Identity.Recheck) to read
// the person again later (githubrecheck.go).
type githubProvider struct {
	name        string
	displayName string
	clientID    string
	secret      string
	webURL      string // https://github.com or the Enterprise Server
	apiURL      string // https://api.github.com or <web>/api/v3
	api         *url.URL
	orgs        []string // allowed organizations, lowercase
	teams       []string // allowed "org/team-slug", lowercase
	readOrgs    bool     // request read:org and report groups
	timeout     time.Duration
	client      *http.Client
	recheck     RecheckPolicy
}

type githubSettings struct {
	ClientID             string   `yaml:"client_id"`
	ClientSecret         string   `yaml:"client_secret"`
	DisplayName          string   `yaml:"display_name"`
	BaseURL              string   `yaml:"base_url"`
	APIURL               string   `yaml:"api_url"`
	AllowedOrganizations []string `yaml:"allowed_organizations"`
	AllowedTeams         []string `yaml:"allowed_teams"`
	SyncGroups           bool     `yaml:"sync_groups"`
	Timeout              string   `yaml:"timeout"`
	// Upstream re-checks with the kept access token (recheck.go).
	recheckSettings `yaml:",inline"`
}

const (
	githubDotCom = "https://github.com"
	githubAPI    = "https://api.github.com"
	// githubDefaultTimeout bounds each call to GitHub.
	githubDefaultTimeout = 10 * time.Second
)

// Messages shown to the person signing in.
const (
	githubMsgUnavailable  = "GitHub is unavailable, try again in a few minutes."
	githubMsgRestart      = "The sign-in with GitHub expired or was already used. Please sign in again."
	githubMsgRetry        = "GitHub did not accept the sign-in. Please sign in again."
	githubMsgForbidden    = "GitHub refused Gatehouse access to your account details. If one of your organizations uses single sign-on, authorize this application for it on GitHub, then sign in again."
	githubMsgMisconfigure = "Sign-in with GitHub is not set up correctly. Please contact your administrator."
	githubMsgBadAnswer    = "GitHub answered in a way Gatehouse does not understand. Please try again; if it keeps happening, contact your administrator."
)

// GitHub logins and org names: letters, digits and single hyphens; team
// slugs are lowercase with hyphens, underscores and dots.
var (
	githubOrgSyntax  = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38})$`)
	githubTeamSyntax = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38})/[a-z0-9._-]{1,100}$`)
)

func init() { Register("github", newGitHub) }

func newGitHub(name string, settings Settings, env Env) (Provider, error) {
	var s githubSettings
	if settings != nil {
		if err := settings.Decode(&s); err != nil {
			return nil, err
		}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.ClientID == "" {
		bad("client_id is required (the Client ID of the GitHub OAuth App)")
	}
	if s.ClientSecret == "" {
		bad("client_secret is required (a client secret of the GitHub OAuth App)")
	}
	p := &githubProvider{
		name: name, displayName: s.DisplayName, clientID: s.ClientID, secret: s.ClientSecret,
		readOrgs: s.SyncGroups || len(s.AllowedOrganizations) > 0 || len(s.AllowedTeams) > 0,
		timeout:  githubDefaultTimeout, client: env.HTTPClient,
	}
	if p.displayName == "" {
		p.displayName = "GitHub"
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: githubDefaultTimeout}
	}
	p.webURL = strings.TrimSuffix(s.BaseURL, "/")
	if p.webURL == "" {
		p.webURL = githubDotCom
	}
	p.apiURL = strings.TrimSuffix(s.APIURL, "/")
	switch {
	case p.apiURL != "":
	case p.webURL == githubDotCom:
		p.apiURL = githubAPI
	default:
		p.apiURL = p.webURL + "/api/v3" // where Enterprise Server serves the REST API
	}
	webMsg := checkGitHubURL(p.webURL, env.Production)
	if webMsg != "" {
		bad("base_url %q %s", p.webURL, webMsg)
	}
	// A derived api_url is only as wrong as base_url: say it once.
	if msg := checkGitHubURL(p.apiURL, env.Production); msg != "" && (s.APIURL != "" || webMsg == "") {
		bad("api_url %q %s", p.apiURL, msg)
	}
	p.api, _ = url.Parse(p.apiURL)
	p.orgs = lowerMatching(s.AllowedOrganizations, githubOrgSyntax, func(v string) {
		bad("allowed_organizations: %q is not a GitHub organization name", v)
	})
	p.teams = lowerMatching(s.AllowedTeams, githubTeamSyntax, func(v string) {
		bad("allowed_teams: %q must be <organization>/<team-slug>, such as acme/platform", v)
	})
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 || d > time.Minute {
			bad("timeout %q must be a duration between 1ms and 1m, such as 10s", s.Timeout)
		} else {
			p.timeout = d
		}
	}
	re := &SettingsError{}
	p.recheck = s.recheckSettings.check(re)
	for _, pr := range re.Problems {
		bad("%s %s", pr.Field, pr.Message)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return p, nil
}

// lowerMatching lowercases names (GitHub's are case-insensitive) and
// keeps those matching syntax, reporting the others to invalid.
func lowerMatching(names []string, syntax *regexp.Regexp, invalid func(string)) []string {
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if !syntax.MatchString(n) {
			invalid(n)
			continue
		}
		out = append(out, n)
	}
	return out
}

// checkGitHubURL returns why u cannot be a GitHub base URL, or "".
func checkGitHubURL(u string, production bool) string {
	pu, err := url.Parse(u)
	switch {
	case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "":
		return "must be an absolute http(s) URL, such as https://github.example.com"
	case pu.RawQuery != "" || pu.Fragment != "" || pu.User != nil:
		return "must not have a query, fragment or user info"
	case pu.Scheme == "http" && production:
		// The client secret and access tokens travel to this address.
		return "must use https with GATEHOUSE_ENV=production"
	}
	return ""
}

func (p *githubProvider) Name() string        { return p.name }
func (p *githubProvider) Type() string        { return "github" }
func (p *githubProvider) DisplayName() string { return p.displayName }

// scopes are the least GitHub grants for what is configured: the profile
// and email addresses always, organization and team membership only when
// restrictions or group sync need them.
func (p *githubProvider) scopes() []string {
	s := []string{"read:user", "user:email"}
	if p.readOrgs {
		s = append(s, "read:org")
	}
	return s
}

func (p *githubProvider) oauthConfig(callbackURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: p.clientID, ClientSecret: p.secret, RedirectURL: callbackURL, Scopes: p.scopes(),
		Endpoint: oauth2.Endpoint{
			AuthURL:  p.webURL + "/login/oauth/authorize",
			TokenURL: p.webURL + "/login/oauth/access_token",
			// GitHub takes the client secret in the form; saying so saves
			// x/oauth2 a failed first attempt with Basic auth.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// Begin sends the browser to GitHub's authorization page with state and a
// PKCE S256 challenge; the verifier is the Saved data.
//
// GitHub has no way to ask for a fresh authentication: it takes no
// max_age and no prompt=login, and a person with a GitHub session who has
// authorized the app is sent straight back. A client's max_age or
// prompt=login (or consent) still makes Gatehouse go to GitHub instead of
// reusing its own session, but GitHub re-uses its session, and since it
// says nothing of when the person signed in, the identity carries no
// AuthTime: auth_time becomes the time of the Gatehouse sign-in.
func (p *githubProvider) Begin(_ context.Context, req BeginRequest) (*Challenge, error) {
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if req.LoginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login", req.LoginHint))
	}
	if slices.Contains(strings.Fields(req.Prompt), "select_account") {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	if len(p.orgs) > 0 || len(p.teams) > 0 {
		// A brand-new GitHub account cannot be in an allowed organization yet.
		opts = append(opts, oauth2.SetAuthURLParam("allow_signup", "false"))
	}
	return &Challenge{RedirectURL: p.oauthConfig(req.CallbackURL).AuthCodeURL(req.State, opts...), Saved: verifier}, nil
}

// GitHub's answers, reduced to the fields Gatehouse reads.
type (
	githubUser struct {
		ID        int64  `json:"id"`
		Login     string `json:"login"`
		Name      string `json:"name"`
		AvatarURL string `json:"avatar_url"`
		HTMLURL   string `json:"html_url"`
	}
	githubEmail struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	githubOrg struct {
		Login string `json:"login"`
	}
	githubTeam struct {
		Slug         string    `json:"slug"`
		Organization githubOrg `json:"organization"`
	}
)

// Complete exchanges the code (with the PKCE verifier) for an access
// token and reads the person with it (readIdentity); with re-checks on,
// the token is kept (Identity.Recheck) to read them again later.
func (p *githubProvider) Complete(ctx context.Context, req CompleteRequest) (*Identity, error) {
	code := req.HTTP.URL.Query().Get("code")
	if code == "" {
		return nil, &UserError{Message: githubMsgRestart, Err: fmt.Errorf("%w: GitHub callback without a code", ErrInvalidResponse)}
	}
	if len(req.Saved) < 43 {
		return nil, fmt.Errorf("%w: missing PKCE verifier in the login state", ErrInvalidResponse)
	}
	token, err := p.exchange(ctx, code, req)
	if err != nil {
		return nil, err
	}
	id, err := p.readIdentity(ctx, token)
	if err != nil {
		return nil, err
	}
	if p.recheck.Enabled {
		id.Recheck = githubRecheckSaved(token, id.Subject)
	}
	return id, nil
}

// readIdentity reads the person the access token belongs to: the
// profile, email addresses and, when configured, organizations and teams,
// and applies the allow-lists. It returns an Identity only when every call
// succeeded, so a failure half-way never provisions a user with partial
// groups; when GitHub answers but says it left organizations out (SAML
// single sign-on), GroupsPartial says so.
func (p *githubProvider) readIdentity(ctx context.Context, token string) (*Identity, error) {
	var (
		user                      githubUser
		emails                    []githubEmail
		orgs                      []githubOrg
		teams                     []githubTeam
		orgsPartial, teamsPartial bool
	)
	calls := []func(context.Context) error{
		func(ctx context.Context) error { _, err := p.get(ctx, token, p.apiURL+"/user", &user); return err },
		func(ctx context.Context) (err error) {
			_, err = getAll(ctx, p, token, "/user/emails", &emails)
			return err
		},
	}
	if p.readOrgs {
		calls = append(calls,
			func(ctx context.Context) (err error) {
				orgsPartial, err = getAll(ctx, p, token, "/user/orgs", &orgs)
				return err
			},
			func(ctx context.Context) (err error) {
				teamsPartial, err = getAll(ctx, p, token, "/user/teams", &teams)
				return err
			})
	}
	if err := runAll(ctx, calls); err != nil {
		return nil, err
	}
	if user.ID <= 0 {
		return nil, &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub /user has no numeric id", ErrInvalidResponse)}
	}

	id := &Identity{
		Provider: p.name,
		// The numeric id, never the login: logins can be renamed and reused.
		Subject:   strconv.FormatInt(user.ID, 10),
		Username:  CleanUsername(user.Login),
		Name:      user.Name,
		AvatarURL: user.AvatarURL,
	}
	if id.Name == "" {
		id.Name = user.Login
	}
	// Only the address GitHub marks primary counts, with GitHub's verified
	// flag as is: the public profile email or another address would be a
	// guess at which one is the person's.
	for _, e := range emails {
		if e.Primary {
			id.Email, id.EmailVerified = strings.ToLower(e.Email), e.Verified
			break
		}
	}
	orgSet, teamSet := githubGroups(orgs, teams)
	for _, o := range orgSet {
		id.Groups = append(id.Groups, "github:org:"+o)
	}
	for _, t := range teamSet {
		id.Groups = append(id.Groups, "github:team:"+t)
	}
	id.GroupsPartial = orgsPartial || teamsPartial
	id.Claims = map[string]any{
		"id": user.ID, "login": user.Login, "preferred_username": user.Login, "name": user.Name,
		"email": id.Email, "email_verified": id.EmailVerified, "avatar_url": user.AvatarURL, "html_url": user.HTMLURL,
	}
	if err := p.checkAllowed(user, orgSet, teamSet, id.GroupsPartial); err != nil {
		return nil, err
	}
	return id, nil
}

// githubGroups lowercases (GitHub names are case-insensitive, org-sync
// globs are not), de-duplicates and sorts organizations and org/team pairs.
func githubGroups(orgs []githubOrg, teams []githubTeam) (orgSet, teamSet []string) {
	for _, o := range orgs {
		if o.Login != "" {
			orgSet = append(orgSet, strings.ToLower(o.Login))
		}
	}
	for _, t := range teams {
		if t.Slug != "" && t.Organization.Login != "" {
			teamSet = append(teamSet, strings.ToLower(t.Organization.Login)+"/"+strings.ToLower(t.Slug))
		}
	}
	slices.Sort(orgSet)
	slices.Sort(teamSet)
	return slices.Compact(orgSet), slices.Compact(teamSet)
}

// checkAllowed applies allowed_organizations and allowed_teams: with
// either set, the person must be in one of the organizations or one of the
// teams. The refusal names the rule, never the person's memberships, which
// may be private; for the log it says when GitHub hid organizations, the
// likely cause for a member refused.
func (p *githubProvider) checkAllowed(user githubUser, orgs, teams []string, partial bool) error {
	if len(p.orgs) == 0 && len(p.teams) == 0 {
		return nil
	}
	for _, o := range orgs {
		if slices.Contains(p.orgs, o) {
			return nil
		}
	}
	for _, t := range teams {
		if slices.Contains(p.teams, t) {
			return nil
		}
	}
	var what, rule string
	switch {
	case len(p.teams) == 0:
		what, rule = "an allowed organization", "allowed_organizations"
	case len(p.orgs) == 0:
		what, rule = "an allowed team", "allowed_teams"
	default:
		what, rule = "an allowed organization or team", "allowed_organizations/allowed_teams"
	}
	detail := fmt.Sprintf("GitHub user %d (%s) is not in %s", user.ID, user.Login, rule)
	if partial {
		detail += " (GitHub left out organizations that enforce SAML single sign-on)"
	}
	return Deny(
		"This GitHub account is not in "+what+". If you are a member, the organization may first have to approve this application on GitHub; otherwise ask your administrator for access.",
		detail)
}

// exchange trades the code for an access token and checks that GitHub
// granted what Complete is about to read.
func (p *githubProvider) exchange(ctx context.Context, code string, req CompleteRequest) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, p.client), p.timeout)
	defer cancel()
	tok, err := p.oauthConfig(req.CallbackURL).Exchange(ctx, code, oauth2.VerifierOption(req.Saved))
	if err != nil {
		return "", githubTokenError(err)
	}
	if granted, ok := tok.Extra("scope").(string); ok && granted != "" && p.readOrgs && !githubGrantsReadOrg(granted) {
		return "", &UserError{Message: githubMsgMisconfigure,
			Err: fmt.Errorf("%w: GitHub granted scopes %q without read:org", ErrInvalidResponse, truncateASCII(granted, 100))}
	}
	return tok.AccessToken, nil
}

// githubGrantsReadOrg reports whether a granted scope list (GitHub
// separates it with commas) includes read:org or a scope implying it.
func githubGrantsReadOrg(granted string) bool {
	for _, s := range strings.FieldsFunc(granted, func(r rune) bool { return r == ',' || r == ' ' }) {
		switch s {
		case "read:org", "write:org", "admin:org":
			return true
		}
	}
	return false
}

// githubTokenError explains a failed code exchange. GitHub reports most
// token errors with status 200 and an `error` field, which x/oauth2 turns
// into a RetrieveError; only the error code is kept (never the body).
func githubTokenError(err error) error {
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded):
		// No answer at all: a timeout or a connection failure.
		return &UserError{Message: githubMsgUnavailable, Err: fmt.Errorf("%w: GitHub token endpoint: %v", ErrUnavailable, redactURLError(err))}
	case !errors.As(err, &re):
		// An answer x/oauth2 could not read (its messages carry no body).
		return &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub token endpoint: %v", ErrInvalidResponse, err)}
	}
	if re.ErrorCode == "" && re.Response != nil {
		if githubUnavailable(re.Response, re.Body) {
			return &UserError{Message: githubMsgUnavailable, Err: fmt.Errorf("%w: GitHub token endpoint answered %d", ErrUnavailable, re.Response.StatusCode)}
		}
		return &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub token endpoint answered %d", ErrInvalidResponse, re.Response.StatusCode)}
	}
	code := truncateASCII(re.ErrorCode, 64)
	switch code {
	case "bad_verification_code":
		// Expired (GitHub codes live 10 minutes), already used, or not
		// matching the PKCE verifier: only starting again helps.
		return &UserError{Message: githubMsgRestart, Err: fmt.Errorf("%w: GitHub rejected the authorization code (bad_verification_code)", ErrInvalidResponse)}
	case "unverified_user_email":
		return &UserError{Message: "GitHub requires a verified primary email address for this. Verify your email address on GitHub, then sign in again.",
			Err: fmt.Errorf("%w: GitHub user has no verified primary email (unverified_user_email)", ErrInvalidResponse)}
	case "incorrect_client_credentials", "redirect_uri_mismatch":
		return &UserError{Message: githubMsgMisconfigure, Err: fmt.Errorf("%w: GitHub token endpoint: %s (check client_id, client_secret and the OAuth App's callback URL)", ErrInvalidResponse, code)}
	default:
		return &UserError{Message: githubMsgRetry, Err: fmt.Errorf("%w: GitHub token endpoint: %s", ErrInvalidResponse, code)}
	}
}

// runAll runs the calls concurrently and returns the first error; the
// first failure cancels the others, so they do not report cancellation.
func runAll(ctx context.Context, calls []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, call := range calls {
		wg.Go(func() {
			if err := call(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}
