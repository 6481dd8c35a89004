// Command fakeidp is a small upstream OpenID Connect provider for the
// cluster harness (scripts/cluster.sh) and the soak (docs/operations.md):
// discovery, JWKS, an authorization endpoint that signs the person in at
// once (the login_hint names them; no form), a token endpoint (client
// authentication, PKCE S256, single-use codes) and UserInfo, signing real
// RS256 ID tokens with a key kept in a file, so a restart keeps it.
//
// A second listener, -admin-addr, steers it for fault tests:
//
//	POST /down      discovery and JWKS unreachable (connections closed unanswered)
//	POST /up        discovery and JWKS back
//	GET  /id-token?email=...  a fresh ID token of that person (for token exchange)
//	GET  /stats     fetch counts, as JSON
//
// It listens on loopback addresses only. It is a test fixture, not an
// identity provider: anyone may sign in as anyone.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18700", "listen address of the provider (loopback)")
	adminAddr := flag.String("admin-addr", "127.0.0.1:18701", "listen address of the steering endpoints (loopback)")
	issuer := flag.String("issuer", "", "issuer (default http://ADDR)")
	clientID := flag.String("client-id", "gatehouse", "the registered client")
	keyFile := flag.String("key", "", "PEM file of the RSA signing key, made when missing (default: a new key per start)")
	groups := flag.String("groups", "load", "comma-separated groups every person is in (the groups claim)")
	flag.Parse()
	secret := os.Getenv("FAKEIDP_CLIENT_SECRET")
	if secret == "" {
		log.Fatal("fakeidp: FAKEIDP_CLIENT_SECRET must hold the client's secret")
	}
	for _, a := range []string{*addr, *adminAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil || !(host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1") {
			log.Fatalf("fakeidp: %s is not a loopback address", a)
		}
	}
	if *issuer == "" {
		*issuer = "http://" + *addr
	}
	key, err := loadKey(*keyFile)
	if err != nil {
		log.Fatal("fakeidp: ", err)
	}
	p := newProvider(*issuer, *clientID, secret, key, splitList(*groups))
	srv := &http.Server{Addr: *addr, Handler: p.routes(), ReadHeaderTimeout: 5 * time.Second}
	adm := &http.Server{Addr: *adminAddr, Handler: p.adminRoutes(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	go func() { errc <- adm.ListenAndServe() }()
	log.Printf("fakeidp: issuer %s, kid %s, steering on %s", *issuer, p.key.KeyID, *adminAddr)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		log.Fatal("fakeidp: ", err)
	case <-stop:
	}
	_ = srv.Close()
	_ = adm.Close()
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// loadKey reads the RSA key in path, or makes one (saved there when path
// is set).
func loadKey(path string) (*jose.JSONWebKey, error) {
	var priv *rsa.PrivateKey
	if path != "" {
		if raw, err := os.ReadFile(path); err == nil {
			block, _ := pem.Decode(raw)
			if block == nil {
				return nil, fmt.Errorf("%s: no PEM block", path)
			}
			if priv, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if priv == nil {
		var err error
		if priv, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
		if path != "" {
			block := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
			if err := os.WriteFile(path, block, 0o600); err != nil {
				return nil, err
			}
		}
	}
	k := &jose.JSONWebKey{Key: priv, Algorithm: string(jose.RS256), Use: "sig"}
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(&priv.PublicKey))
	k.KeyID = base64.RawURLEncoding.EncodeToString(sum[:12])
	return k, nil
}

// provider is the fake's state.
type provider struct {
	issuer, clientID, secret string
	key                      *jose.JSONWebKey
	signer                   jose.Signer
	groups                   []string

	mu     sync.Mutex
	codes  map[string]*grant
	access map[string]string // access token → email

	down            atomic.Bool
	discoveryFetch  atomic.Int64
	jwksFetch       atomic.Int64
	refusedWhenDown atomic.Int64
	signIns         atomic.Int64
}

type grant struct {
	email, redirectURI, challenge, nonce, scope string
	expires                                     time.Time
}

func newProvider(issuer, clientID, secret string, key *jose.JSONWebKey, groups []string) *provider {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: *key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	return &provider{issuer: strings.TrimSuffix(issuer, "/"), clientID: clientID, secret: secret, key: key, signer: signer,
		groups: groups, codes: map[string]*grant{}, access: map[string]string{}}
}

func (p *provider) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.unlessDown(p.discovery, &p.discoveryFetch))
	mux.HandleFunc("GET /jwks.json", p.unlessDown(p.jwks, &p.jwksFetch))
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	return mux
}

func (p *provider) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, _ *http.Request) {
		p.down.Store(true)
		writeJSON(w, http.StatusOK, map[string]bool{"down": true})
	})
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, _ *http.Request) {
		p.down.Store(false)
		writeJSON(w, http.StatusOK, map[string]bool{"down": false})
	})
	mux.HandleFunc("GET /id-token", func(w http.ResponseWriter, r *http.Request) {
		email := r.URL.Query().Get("email")
		if !strings.Contains(email, "@") {
			http.Error(w, "email= is required", http.StatusBadRequest)
			return
		}
		tok, err := p.idToken(email, "", "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id_token": tok})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"down": p.down.Load(), "discovery_fetches": p.discoveryFetch.Load(),
			"jwks_fetches": p.jwksFetch.Load(), "refused_while_down": p.refusedWhenDown.Load(), "sign_ins": p.signIns.Load()})
	})
	return mux
}

// unlessDown serves h, or, while the fake is "down", closes the
// connection without an answer, as an unreachable upstream does.
func (p *provider) unlessDown(h http.HandlerFunc, fetches *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if p.down.Load() {
			p.refusedWhenDown.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, "unreachable", http.StatusServiceUnavailable)
			return
		}
		h(w, r)
	}
}

func (p *provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"jwks_uri":                              p.issuer + "/jwks.json",
		"userinfo_endpoint":                     p.issuer + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"grant_types_supported":                 []string{"authorization_code"},
	})
}

func (p *provider) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{p.key.Public()}})
}

// authorize signs the person named by login_hint in at once (a default
// person without one) and sends the browser back with a code.
func (p *provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("client_id") != p.clientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case err != nil || !redirect.IsAbs() || q.Get("state") == "":
		http.Error(w, "redirect_uri and state are required", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		http.Error(w, "response_type=code with PKCE S256 is required", http.StatusBadRequest)
		return
	}
	email := q.Get("login_hint")
	if !strings.Contains(email, "@") {
		email = "someone@fakeidp.test"
	}
	code := random()
	p.mu.Lock()
	p.codes[code] = &grant{email: email, redirectURI: redirect.String(), challenge: q.Get("code_challenge"),
		nonce: q.Get("nonce"), scope: q.Get("scope"), expires: time.Now().Add(time.Minute)}
	p.mu.Unlock()
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, s, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(s)
	}
	if id != p.clientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	p.mu.Lock()
	g := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	// Codes nobody redeemed are dropped as they expire.
	if len(p.codes) > 10000 {
		for c, old := range p.codes {
			if time.Now().After(old.expires) {
				delete(p.codes, c)
			}
		}
	}
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if g == nil || time.Now().After(g.expires) || g.redirectURI != r.PostForm.Get("redirect_uri") ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	access := random()
	idTok, err := p.idToken(g.email, g.nonce, access)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	p.mu.Lock()
	if len(p.access) > 10000 {
		clear(p.access) // a fixture: UserInfo for old tokens is not needed
	}
	p.access[access] = g.email
	p.mu.Unlock()
	p.signIns.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3600,
		"id_token": idTok, "scope": g.scope})
}

func (p *provider) userinfo(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	email, ok := p.access[token]
	p.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	writeJSON(w, http.StatusOK, p.person(email))
}

// person is the claims of the person with email.
func (p *provider) person(email string) map[string]any {
	sum := sha256.Sum256([]byte(email))
	local, _, _ := strings.Cut(email, "@")
	return map[string]any{"sub": "fake-" + base64.RawURLEncoding.EncodeToString(sum[:12]), "email": email,
		"email_verified": true, "name": "Person " + local, "groups": p.groups}
}

// idToken signs an ID token of email for the client, valid for an hour.
func (p *provider) idToken(email, nonce, accessToken string) (string, error) {
	now := time.Now().Unix()
	c := p.person(email)
	c["iss"], c["aud"], c["azp"], c["iat"], c["exp"] = p.issuer, p.clientID, p.clientID, now, now+3600
	if nonce != "" {
		c["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c["at_hash"] = base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
