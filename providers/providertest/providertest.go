// Package providertest runs a fake upstream OpenID Connect provider for
// tests: discovery, an authorization endpoint that approves a configured
// user at once and redirects back with a code, a token endpoint (client
// authentication, PKCE S256, single-use codes), a JWKS endpoint and
// UserInfo, signing real RS256 tokens. Tests steer it (rotate the key,
// take the JWKS endpoint down, tamper with the next ID token) and read
// what it saw (the last authorization request, JWKS fetches).
//
// It is an httptest server: nothing global is patched, so tests using it
// can run in parallel. Other upstream kinds' fakes follow the same shape.
package providertest

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Options describe the fake provider.
type Options struct {
	// IssuerPath is appended to the server URL to form the issuer: "/"
	// gives an Auth0-like issuer with a trailing slash; "" none.
	IssuerPath string
	// ClientID and ClientSecret are the registered client; defaults
	// DefaultClientID and DefaultClientSecret.
	ClientID     string
	ClientSecret string
	// User holds the claims of the person the authorization endpoint
	// approves; "sub" is required. Default: DefaultUser().
	User map[string]any
	// UserInfoOnly names claims of User that only UserInfo returns, as
	// many certified providers do with email and profile claims.
	UserInfoOnly []string
	// NoUserInfo leaves the UserInfo endpoint out of discovery.
	NoUserInfo bool
	// JWKSMaxAge sets Cache-Control max-age on the JWKS; 0 sends none.
	JWKSMaxAge time.Duration
	// IssParameter advertises authorization_response_iss_parameter_supported
	// in discovery and adds iss to every authorization response (RFC 9207).
	IssParameter bool
	// NoEndSession leaves end_session_endpoint out of discovery;
	// EndSessionURL, when set, is advertised instead of the fake's own.
	NoEndSession  bool
	EndSessionURL string
	// RefreshTokens issues a refresh token with every code, offline_access
	// or not (without it, only a scope with offline_access gets one).
	RefreshTokens bool
	// NoRefreshIDToken answers refresh grants without an ID token.
	NoRefreshIDToken bool
}

// Defaults of Options.
const (
	DefaultClientID     = "gatehouse-upstream-client"
	DefaultClientSecret = "upstream-client-secret-0123456789"
)

// DefaultUser is the approved person unless Options.User says otherwise.
func DefaultUser() map[string]any {
	return map[string]any{"sub": "upstream-user-1", "email": "ada@example.com", "email_verified": true,
		"name": "Ada Lovelace", "picture": "https://example.com/ada.png"}
}

// Server is a running fake provider.
type Server struct {
	// URL is the server's base URL; Issuer the issuer it claims.
	URL          string
	Issuer       string
	ClientID     string
	ClientSecret string

	opts Options
	srv  *httptest.Server

	mu            sync.Mutex
	keyIndex      int
	keys          []*jose.JSONWebKey // published; the last one signs
	user          map[string]any
	codes         map[string]*grant
	accessTokens  map[string]map[string]any
	redirectURIs  []string
	lastAuthorize url.Values
	logouts       []url.Values
	idTokenHook   func(*TokenDraft)
	userInfoHook  func(claims map[string]any)
	padding       map[string]int
	// refreshTokens are the live refresh tokens (rotated at every use).
	refreshTokens map[string]string // token → scope
	refreshCalls  atomic.Int64
	tokenDown     atomic.Bool
	tokenDelay    atomic.Int64 // nanoseconds

	jwksFetches   atomic.Int64
	jwksDown      atomic.Bool
	discoveryDown atomic.Bool
}

type grant struct {
	redirectURI, challenge, nonce, scope, audience string
	// authTime is when the person "authenticated" (the authorization
	// request); sent as auth_time when the request carried max_age.
	authTime int64
	maxAge   bool
}

// New starts a fake provider, stopped when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = DefaultClientSecret
	}
	if opts.User == nil {
		opts.User = DefaultUser()
	}
	s := &Server{opts: opts, ClientID: opts.ClientID, ClientSecret: opts.ClientSecret, user: maps.Clone(opts.User),
		codes: map[string]*grant{}, accessTokens: map[string]map[string]any{}, refreshTokens: map[string]string{}}
	s.keys = []*jose.JSONWebKey{testKey(0)}
	prefix := strings.TrimSuffix(opts.IssuerPath, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET "+prefix+"/authorize", s.authorize)
	mux.HandleFunc("POST "+prefix+"/oauth/token", s.token)
	mux.HandleFunc("GET "+prefix+"/jwks.json", s.jwks)
	mux.HandleFunc("GET "+prefix+"/userinfo", s.userinfo)
	mux.HandleFunc("GET "+prefix+"/logout", s.logout)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.Issuer = s.URL + opts.IssuerPath
	return s
}

// endpoint is the URL of one of the fake's endpoints.
func (s *Server) endpoint(path string) string {
	return s.URL + strings.TrimSuffix(s.opts.IssuerPath, "/") + path
}

// SetUser replaces the approved person's claims.
func (s *Server) SetUser(claims map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = maps.Clone(claims)
}

// SetRedirectURIs registers the only redirect URIs the authorization
// endpoint accepts (none registered: any is accepted).
func (s *Server) SetRedirectURIs(uris ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirectURIs = uris
}

// LogoutRequests returns the queries of the requests the end_session
// endpoint received, oldest first.
func (s *Server) LogoutRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logouts)
}

// LastAuthorize returns the query of the last authorization request.
func (s *Server) LastAuthorize() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuthorize
}

// TokenDraft is an ID token about to be issued: a hook may change its
// header and claims, or set Raw to send that string instead (a forged
// token).
type TokenDraft struct {
	Header map[string]any
	Claims map[string]any
	Raw    string
}

// SetIDTokenHook lets a test change the ID tokens the token endpoint
// issues from now on (nil: no change).
func (s *Server) SetIDTokenHook(hook func(*TokenDraft)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idTokenHook = hook
}

// SetUserInfoHook lets a test change UserInfo responses (nil: no change).
func (s *Server) SetUserInfoHook(hook func(claims map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userInfoHook = hook
}

// RotateKey starts signing with a new key and returns its kid; keepOld
// leaves the previous keys published.
func (s *Server) RotateKey(keepOld bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyIndex++
	k := testKey(s.keyIndex)
	if keepOld {
		s.keys = append(s.keys, k)
	} else {
		s.keys = []*jose.JSONWebKey{k}
	}
	return k.KeyID
}

// KeyID is the kid of the signing key.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1].KeyID
}

// PublicKey is the signing key's public half.
func (s *Server) PublicKey() *rsa.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &s.keys[len(s.keys)-1].Key.(*rsa.PrivateKey).PublicKey
}

// PadAnswers makes the answers of one endpoint ("discovery", "jwks" or
// "userinfo") carry an extra member "x_padding" of n bytes: still valid
// JSON, only too large (0 removes the padding).
func (s *Server) PadAnswers(endpoint string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.padding == nil {
		s.padding = map[string]int{}
	}
	s.padding[endpoint] = n
}

// padded returns doc with the padding set for endpoint.
func (s *Server) padded(endpoint string, doc map[string]any) map[string]any {
	s.mu.Lock()
	n := s.padding[endpoint]
	s.mu.Unlock()
	if n > 0 {
		doc["x_padding"] = strings.Repeat("x", n)
	}
	return doc
}

// SetJWKSDown makes the JWKS endpoint answer 503 (down) or work again.
func (s *Server) SetJWKSDown(down bool) { s.jwksDown.Store(down) }

// SetDiscoveryDown makes discovery answer 503 (down) or work again.
func (s *Server) SetDiscoveryDown(down bool) { s.discoveryDown.Store(down) }

// JWKSFetches counts requests to the JWKS endpoint, failed ones included.
func (s *Server) JWKSFetches() int { return int(s.jwksFetches.Load()) }

// Sign signs claims with the current key (RS256). header entries are
// added to the JOSE header: "kid" replaces the key id, "typ" the type
// (default JWT; "" leaves it out).
func (s *Server) Sign(header, claims map[string]any) string {
	s.mu.Lock()
	key := *s.keys[len(s.keys)-1]
	s.mu.Unlock()
	opts := &jose.SignerOptions{}
	typ := "JWT"
	for k, v := range header {
		switch k {
		case "kid":
			key.KeyID = fmt.Sprint(v)
		case "typ":
			typ = fmt.Sprint(v)
		default:
			opts.WithHeader(jose.HeaderKey(k), v)
		}
	}
	if typ != "" {
		opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// IDToken signs a valid ID token for the approved person (aud the client,
// valid for an hour) with changes: a nil value removes a claim.
func (s *Server) IDToken(changes map[string]any) string {
	now := time.Now().Unix()
	c := s.userClaims(false)
	maps.Copy(c, map[string]any{"iss": s.Issuer, "aud": s.ClientID, "azp": s.ClientID, "iat": now, "exp": now + 3600})
	return s.Sign(nil, apply(c, changes))
}

// AccessToken signs an Auth0-style JWT access token for the approved
// person and an API audience (azp the client) with changes: a nil value
// removes a claim.
func (s *Server) AccessToken(audience string, changes map[string]any) string {
	now := time.Now().Unix()
	s.mu.Lock()
	sub, org := s.user["sub"], s.user["org_id"]
	s.mu.Unlock()
	c := map[string]any{"iss": s.Issuer, "sub": sub, "aud": []string{audience, s.endpoint("/userinfo")},
		"azp": s.ClientID, "scope": "openid email profile", "iat": now, "exp": now + 3600}
	if org != nil {
		c["org_id"] = org
	}
	return s.Sign(map[string]any{"typ": "at+jwt"}, apply(c, changes))
}

func apply(c, changes map[string]any) map[string]any {
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// ForgeUnsigned returns an `alg: none` token with the given claims.
func ForgeUnsigned(claims map[string]any) string {
	return b64JSON(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64JSON(claims) + "."
}

// ForgeHS256 returns a token signed with HMAC-SHA256 under secret (the
// classic attack: the RSA public key used as an HMAC secret).
func ForgeHS256(secret []byte, kid string, claims map[string]any) string {
	signing := b64JSON(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64JSON(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func b64JSON(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// userClaims copies the approved person's claims, without the
// UserInfo-only ones unless all.
func (s *Server) userClaims(all bool) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := maps.Clone(s.user)
	if !all {
		for _, k := range s.opts.UserInfoOnly {
			delete(c, k)
		}
	}
	return c
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	if s.discoveryDown.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                s.Issuer,
		"authorization_endpoint":                s.endpoint("/authorize"),
		"token_endpoint":                        s.endpoint("/oauth/token"),
		"jwks_uri":                              s.endpoint("/jwks.json"),
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
	}
	if !s.opts.NoUserInfo {
		doc["userinfo_endpoint"] = s.endpoint("/userinfo")
	}
	if s.opts.IssParameter {
		doc["authorization_response_iss_parameter_supported"] = true
	}
	switch {
	case s.opts.EndSessionURL != "":
		doc["end_session_endpoint"] = s.opts.EndSessionURL
	case !s.opts.NoEndSession:
		doc["end_session_endpoint"] = s.endpoint("/logout")
	}
	writeJSON(w, http.StatusOK, s.padded("discovery", doc))
}

// authorize approves the configured person at once.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.lastAuthorize = q
	registered := s.redirectURIs
	s.mu.Unlock()
	redirect := q.Get("redirect_uri")
	switch {
	case q.Get("client_id") != s.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
	case redirect == "" || (len(registered) > 0 && !slices.Contains(registered, redirect)):
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
	case q.Get("response_type") != "code" || q.Get("state") == "":
		http.Error(w, "response_type=code and state are required", http.StatusBadRequest)
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		http.Error(w, "PKCE with S256 is required", http.StatusBadRequest)
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		http.Error(w, "scope must include openid", http.StatusBadRequest)
	default:
		code := random()
		s.mu.Lock()
		s.codes[code] = &grant{redirectURI: redirect, challenge: q.Get("code_challenge"), nonce: q.Get("nonce"),
			scope: q.Get("scope"), audience: q.Get("audience"), authTime: time.Now().Unix(), maxAge: q.Has("max_age")}
		s.mu.Unlock()
		u, _ := url.Parse(redirect)
		rq := u.Query()
		rq.Set("code", code)
		rq.Set("state", q.Get("state"))
		if s.opts.IssParameter {
			rq.Set("iss", s.Issuer)
		}
		u.RawQuery = rq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	if id != s.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if d := time.Duration(s.tokenDelay.Load()); d > 0 {
		time.Sleep(d)
	}
	if s.tokenDown.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
	case "refresh_token":
		s.refresh(w, r)
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	s.mu.Lock()
	g := s.codes[r.PostForm.Get("code")]
	delete(s.codes, r.PostForm.Get("code"))
	hook := s.idTokenHook
	s.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if g == nil || g.redirectURI != r.PostForm.Get("redirect_uri") ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	access := random()
	if g.audience != "" {
		access = s.AccessToken(g.audience, nil)
	}
	s.mu.Lock()
	s.accessTokens[access] = maps.Clone(s.user)
	s.mu.Unlock()

	now := time.Now().Unix()
	claims := s.userClaims(false)
	maps.Copy(claims, map[string]any{"iss": s.Issuer, "aud": s.ClientID, "azp": s.ClientID, "iat": now, "exp": now + 3600,
		"at_hash": atHash(access)})
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if g.maxAge { // OIDC Core §3.1.2.1: auth_time is required then
		claims["auth_time"] = g.authTime
	}
	draft := &TokenDraft{Header: map[string]any{}, Claims: claims}
	if hook != nil {
		hook(draft)
	}
	if draft.Raw == "" {
		draft.Raw = s.Sign(draft.Header, draft.Claims)
	}
	answer := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600,
		"id_token": draft.Raw, "scope": g.scope}
	if s.opts.RefreshTokens || slices.Contains(strings.Fields(g.scope), "offline_access") {
		rt := random()
		s.mu.Lock()
		s.refreshTokens[rt] = g.scope
		s.mu.Unlock()
		answer["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, answer)
}

// refresh answers a refresh_token grant: the token is rotated (the one
// presented stops working), the answer carries a new access token and an
// ID token of the person as SetUser last described them (without a
// nonce, OIDC Core §12.2). A token the fake does not know (used already,
// or forgotten by ForgetGrants) gets invalid_grant.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	s.refreshCalls.Add(1)
	old := r.PostForm.Get("refresh_token")
	s.mu.Lock()
	scope, ok := s.refreshTokens[old]
	delete(s.refreshTokens, old)
	rt, access := random(), random()
	if ok {
		s.refreshTokens[rt] = scope
		s.accessTokens[access] = maps.Clone(s.user)
	}
	s.mu.Unlock()
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	answer := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt, "scope": scope}
	if !s.opts.NoRefreshIDToken {
		now := time.Now().Unix()
		claims := s.userClaims(false)
		maps.Copy(claims, map[string]any{"iss": s.Issuer, "aud": s.ClientID, "azp": s.ClientID, "iat": now, "exp": now + 3600,
			"at_hash": atHash(access)})
		answer["id_token"] = s.Sign(map[string]any{}, claims)
	}
	writeJSON(w, http.StatusOK, answer)
}

// ForgetGrants revokes every refresh token issued so far, as an upstream
// does when the person is disabled or their grants are revoked: the next
// refresh grant with one answers invalid_grant.
func (s *Server) ForgetGrants() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refreshTokens)
}

// RefreshTokens returns the refresh tokens the fake has issued and still
// honours.
func (s *Server) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.refreshTokens))
	for rt := range s.refreshTokens {
		out = append(out, rt)
	}
	return out
}

// RefreshGrants is how many refresh_token grants the fake was asked for.
func (s *Server) RefreshGrants() int { return int(s.refreshCalls.Load()) }

// SetTokenDown makes the token endpoint answer 503 (an upstream outage).
func (s *Server) SetTokenDown(down bool) { s.tokenDown.Store(down) }

// SetTokenDelay makes the token endpoint wait d before answering.
func (s *Server) SetTokenDelay(d time.Duration) { s.tokenDelay.Store(int64(d)) }

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	s.jwksFetches.Add(1)
	if s.jwksDown.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	s.mu.Unlock()
	if s.opts.JWKSMaxAge > 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.opts.JWKSMaxAge.Seconds())))
	}
	s.mu.Lock()
	pad := s.padding["jwks"]
	s.mu.Unlock()
	if pad == 0 {
		writeJSON(w, http.StatusOK, set)
		return
	}
	raw, _ := json.Marshal(set)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	writeJSON(w, http.StatusOK, s.padded("jwks", doc))
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	claims, ok := s.accessTokens[token]
	hook := s.userInfoHook
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	claims = maps.Clone(claims)
	if hook != nil {
		hook(claims)
	}
	writeJSON(w, http.StatusOK, s.padded("userinfo", claims))
}

// logout records an RP-initiated logout request and, when it names a
// post_logout_redirect_uri, sends the browser there with its state.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.logouts = append(s.logouts, q)
	s.mu.Unlock()
	back := q.Get("post_logout_redirect_uri")
	if back == "" {
		_, _ = w.Write([]byte("signed out"))
		return
	}
	u, err := url.Parse(back)
	if err != nil || !u.IsAbs() {
		http.Error(w, "invalid post_logout_redirect_uri", http.StatusBadRequest)
		return
	}
	if st := q.Get("state"); st != "" {
		bq := u.Query()
		bq.Set("state", st)
		u.RawQuery = bq.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// RSA keys are slow to generate (most of all under the race detector), so
// the fakes of one test binary share a few, generated on first use.
var (
	keysMu   sync.Mutex
	keysPool []*jose.JSONWebKey
)

// testKey returns the i-th shared key (cycling over four).
func testKey(i int) *jose.JSONWebKey {
	keysMu.Lock()
	defer keysMu.Unlock()
	for len(keysPool) < 4 && len(keysPool) <= i%4 {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		k := &jose.JSONWebKey{Key: priv, Algorithm: string(jose.RS256), Use: "sig"}
		pub := k.Public()
		tp, _ := pub.Thumbprint(crypto.SHA256)
		k.KeyID = base64.RawURLEncoding.EncodeToString(tp)[:16]
		keysPool = append(keysPool, k)
	}
	k := *keysPool[i%4]
	return &k
}
