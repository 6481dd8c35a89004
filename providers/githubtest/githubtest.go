// Package githubtest is a fake GitHub for tests: the OAuth App endpoints
// (authorize, access token) and the REST endpoints Gatehouse reads
// (/user, /user/emails, /user/orgs, /user/teams), served by httptest.
// It answers the way github.com does — token errors with status 200,
// Link pagination, the same URL layout — and is stricter where that
// catches mistakes: PKCE S256 is required, and API calls without
// X-GitHub-Api-Version or without the needed scope are refused.
// Organizations may enforce SAML single sign-on (EnforceSAML), which
// hides them from the listings as GitHub does.
// The REST endpoints are also served under /api/v3, as on GitHub
// Enterprise Server.
package githubtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Client credentials of the fake's one OAuth App.
const (
	ClientID     = "Iv1.fakegithubclient"
	ClientSecret = "fake-github-client-secret-0123456789abcdef"
)

// User is a GitHub account.
type User struct {
	ID    int64
	Login string
	Name  string
	// Email is the public profile email of /user; empty means none (null).
	Email  string
	Emails []Email
	Orgs   []string
	Teams  []Team
}

// Email is one of the account's addresses, as /user/emails lists it.
type Email struct {
	Address  string
	Primary  bool
	Verified bool
}

// Team is a team membership.
type Team struct {
	Org  string
	Slug string
}

// Server is a running fake GitHub.
type Server struct {
	*httptest.Server

	// PageSize caps every list page, whatever per_page asks (GitHub's own
	// cap is 100), so tests can force pagination.
	PageSize int
	// GrantedScopes, when set, replaces the scopes the token endpoint
	// reports as granted.
	GrantedScopes string
	mu            sync.Mutex
	// intercept, when set, sees every request first (SetIntercept).
	intercept func(w http.ResponseWriter, r *http.Request) bool
	user      *User
	saml      map[string]bool // organizations hidden by SAML enforcement, lowercase
	codes     map[string]*grant
	tokens    map[string]*grant
	requests  []string
}

type grant struct {
	user        User
	scopes      []string
	redirectURI string
	challenge   string
}

// New starts a fake GitHub, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{PageSize: 100, codes: map[string]*grant{}, tokens: map[string]*grant{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// SignIn makes u the account signed in at GitHub: the next authorization
// approves the app as u.
func (s *Server) SignIn(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = &u
}

// EnforceSAML makes orgs (logins, case-insensitive) enforce SAML single
// sign-on without the app's tokens being authorized for them: as on
// GitHub, /user/orgs and /user/teams then leave those organizations and
// their teams out, and say so on every page with
// `X-GitHub-SSO: partial-results; organizations=<ids>`. With no orgs,
// every organization shows again.
func (s *Server) EnforceSAML(orgs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saml = map[string]bool{}
	for _, o := range orgs {
		s.saml[strings.ToLower(o)] = true
	}
}

// UpdateUser changes the account with the given id as GitHub would: the
// tokens issued to it see the change at once (a team removal, a new
// name), as does the next sign-in.
func (s *Server) UpdateUser(id int64, change func(u *User)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.user != nil && s.user.ID == id {
		change(s.user)
	}
	for _, g := range s.tokens {
		if g.user.ID == id {
			change(&g.user)
		}
	}
}

// RevokeTokens revokes every access token issued so far (the person
// removed the app's authorization, or the account is gone): the API
// answers them 401 Bad credentials.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Requests lists the requests served so far as "METHOD /path?query".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Authorize plays the browser at GitHub's authorization page: it follows
// authURL (as Begin returned it) and returns the callback URL GitHub
// redirects to, with code and state, or with error=access_denied when
// nobody is signed in.
func (s *Server) Authorize(t testing.TB, authURL string) *url.URL {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("fake GitHub authorize = %d", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// SetIntercept has fn see every request first; it answers one itself by
// returning true (to inject failures). nil removes it. Safe while
// requests are in flight.
func (s *Server) SetIntercept(fn func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = fn
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	s.mu.Unlock()
	s.mu.Lock()
	intercept := s.intercept
	s.mu.Unlock()
	if intercept != nil && intercept(w, r) {
		return
	}
	switch path := strings.TrimPrefix(r.URL.Path, "/api/v3"); {
	case r.URL.Path == "/login/oauth/authorize":
		s.authorize(w, r)
	case r.URL.Path == "/login/oauth/access_token":
		s.accessToken(w, r)
	case path == "/user" || strings.HasPrefix(path, "/user/"):
		s.api(w, r, path)
	default:
		apiError(w, http.StatusNotFound, "Not Found")
	}
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("client_id") != ClientID || err != nil || !redirect.IsAbs() {
		http.Error(w, "unknown client_id or bad redirect_uri", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 {
		http.Error(w, "this fake requires PKCE with S256", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	s.mu.Lock()
	if s.user == nil {
		back.Set("error", "access_denied")
	} else {
		code := random()
		s.codes[code] = &grant{user: *s.user, scopes: strings.Fields(q.Get("scope")),
			redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
		back.Set("code", code)
	}
	s.mu.Unlock()
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// accessToken answers like GitHub: form-encoded unless JSON is accepted,
// and status 200 even for errors.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "POST a form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	id, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	answer := func(v url.Values) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			out := map[string]string{}
			for k := range v {
				out[k] = v.Get(k)
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		_, _ = w.Write([]byte(v.Encode()))
	}
	fail := func(code, desc string) {
		answer(url.Values{"error": {code}, "error_description": {desc}})
	}
	if id != ClientID || secret != ClientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // single use
	switch {
	case !ok:
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	case f.Get("redirect_uri") != g.redirectURI:
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	}
	token := "gho_" + random()
	s.tokens[token] = g
	scope := strings.Join(g.scopes, ",")
	if s.GrantedScopes != "" {
		scope = s.GrantedScopes
	}
	answer(url.Values{"access_token": {token}, "scope": {scope}, "token_type": {"bearer"}})
}

func (s *Server) api(w http.ResponseWriter, r *http.Request, path string) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, _ = strings.CutPrefix(auth, "token ")
	}
	s.mu.Lock()
	g, ok := s.tokens[token]
	saml := s.saml
	s.mu.Unlock()
	switch {
	case !ok:
		apiError(w, http.StatusUnauthorized, "Bad credentials")
		return
	case r.Header.Get("X-GitHub-Api-Version") == "":
		apiError(w, http.StatusBadRequest, "this fake requires X-GitHub-Api-Version")
		return
	}
	has := func(scope, implied string) bool {
		return slices.Contains(g.scopes, scope) || slices.Contains(g.scopes, implied)
	}
	if (path == "/user/orgs" || path == "/user/teams") && !has("read:org", "admin:org") {
		apiError(w, http.StatusForbidden, "this fake requires the read:org scope")
		return
	}
	u := g.user
	// Organizations hidden by SAML enforcement, and their ids (the same
	// as /user/orgs gives them) for the X-GitHub-SSO header.
	var hiddenIDs []string
	for i, o := range u.Orgs {
		if saml[strings.ToLower(o)] {
			hiddenIDs = append(hiddenIDs, strconv.Itoa(i+1))
		}
	}
	if len(hiddenIDs) > 0 && (path == "/user/orgs" || path == "/user/teams") {
		w.Header().Set("X-GitHub-SSO", "partial-results; organizations="+strings.Join(hiddenIDs, ","))
	}
	switch path {
	case "/user":
		var email any
		if u.Email != "" {
			email = u.Email
		}
		var name any
		if u.Name != "" {
			name = u.Name
		}
		writeJSON(w, map[string]any{"id": u.ID, "login": u.Login, "name": name, "email": email, "type": "User",
			"avatar_url": fmt.Sprintf("https://avatars.example/u/%d", u.ID), "html_url": "https://github.example/" + u.Login})
	case "/user/emails":
		if !has("user:email", "user") {
			apiError(w, http.StatusNotFound, "Not Found")
			return
		}
		items := make([]any, len(u.Emails))
		for i, e := range u.Emails {
			items[i] = map[string]any{"email": e.Address, "primary": e.Primary, "verified": e.Verified, "visibility": nil}
		}
		s.page(w, r, items)
	case "/user/orgs":
		items := []any{}
		for i, o := range u.Orgs {
			if !saml[strings.ToLower(o)] {
				items = append(items, map[string]any{"login": o, "id": i + 1, "description": "Organization " + o})
			}
		}
		s.page(w, r, items)
	case "/user/teams":
		items := []any{}
		for i, t := range u.Teams {
			if !saml[strings.ToLower(t.Org)] {
				items = append(items, map[string]any{"slug": t.Slug, "name": t.Slug, "id": i + 1,
					"organization": map[string]any{"login": t.Org, "id": 1000 + i}})
			}
		}
		s.page(w, r, items)
	default:
		apiError(w, http.StatusNotFound, "Not Found")
	}
}

// page answers one page of a list with GitHub's Link header.
func (s *Server) page(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	size, _ := strconv.Atoi(q.Get("per_page"))
	if size <= 0 {
		size = 30 // GitHub's default
	}
	size = min(size, 100, s.PageSize)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	last := max((len(items)+size-1)/size, 1)
	link := func(n int, rel string) string {
		q.Set("page", strconv.Itoa(n))
		return fmt.Sprintf(`<http://%s%s?%s>; rel="%s"`, r.Host, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(page-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min((page-1)*size, len(items))
	writeJSON(w, items[from:min(from+size, len(items))])
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// Helpers for SetIntercept.

// RateLimited answers like GitHub's primary rate limit: 403 with
// X-RateLimit-Remaining: 0.
func RateLimited(w http.ResponseWriter) {
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "0")
	w.Header().Set("X-RateLimit-Reset", "1893456000")
	apiError(w, http.StatusForbidden, "API rate limit exceeded for user ID 1.")
}

// SecondaryRateLimited answers like GitHub's secondary rate limit: 429
// with Retry-After.
func SecondaryRateLimited(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	apiError(w, http.StatusTooManyRequests, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")
}

// ServerError answers 500 like GitHub does when it is having a bad day.
func ServerError(w http.ResponseWriter) {
	apiError(w, http.StatusInternalServerError, "Server Error")
}

func random() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
