package rbac_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// gatehouse stands in for a running Gatehouse in these examples: it
// serves a discovery document and a JWKS, and mints access tokens the way
// Gatehouse does (EdDSA here, one of the algorithms it signs with).
type gatehouse struct {
	srv  *httptest.Server
	key  ed25519.PrivateKey
	down atomic.Bool
}

func startGatehouse() *gatehouse {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	g := &gatehouse{key: key}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case g.down.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": g.srv.URL, "jwks_uri": g.srv.URL + "/.well-known/jwks.json"})
		case r.URL.Path == "/.well-known/jwks.json":
			_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	return g
}

func (g *gatehouse) URL() string { return g.srv.URL }
func (g *gatehouse) Close()      { g.srv.Close() }

// token mints an access token for user-1 acting in org-a with the given
// claims added (permissions, roles, scope, org_id).
func (g *gatehouse) token(extra map[string]any) string {
	now := time.Now().Unix()
	c := map[string]any{"iss": g.srv.URL, "sub": "user-1", "aud": []string{"kb-api"}, "exp": now + 300, "iat": now,
		"jti": "tok-1", "client_id": "kb-web", "sid": "sess-1", "org_id": "org-a"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: g.key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(c)
	obj, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// show sends a request to h and prints the status and the body.
func show(h http.Handler, method, target string, header ...string) {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	fmt.Println(strings.TrimSpace(fmt.Sprint(rec.Code, " ", rec.Body.String())))
}

// hello answers with who is calling.
var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, _ := rbac.PrincipalFrom(r.Context())
	fmt.Fprintf(w, "hello %s (%s) in %s", p.Subject, p.Kind, p.OrgID)
})

// A backend trusts Gatehouse with New: Issuer and Audience, and
// X-API-Key with APIKeys. Close it when the backend stops.
func ExampleNew() {
	gh := startGatehouse()
	defer gh.Close()

	m, err := rbac.New(context.Background(), rbac.Options{
		Issuer:   gh.URL(), // GATEHOUSE_ISSUER
		Audience: "kb-api", // the audience of the clients calling this API
		// APIKeys: &rbac.APIKeyOptions{ClientID: "kb-backend", ClientSecret: os.Getenv("KB_BACKEND_SECRET")},
	})
	if err != nil {
		log.Fatal(err) // options that cannot work; an unreachable Gatehouse is no error
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /kb", m.RequirePermission("kb", "read")(hello))
	show(mux, "GET", "/kb", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": []string{"kb:read"}}))
	show(mux, "GET", "/kb")
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 401 {"error":"invalid_token","error_description":"a bearer access token is required"}
}

// Authenticate requires any valid credential; a request naming another
// organization than the credential's is refused.
func ExampleMiddleware_Authenticate() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /orgs/{org_id}/me", m.Authenticate()(hello))
	tok := gh.token(nil)
	show(mux, "GET", "/orgs/org-a/me", "Authorization", "Bearer "+tok)
	show(mux, "GET", "/orgs/org-b/me", "Authorization", "Bearer "+tok)
	show(mux, "GET", "/orgs/org-a/me", "Authorization", "Bearer "+tok[:len(tok)-4]+"AAAA")
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 403 {"error":"insufficient_permission","reason":"other_organization","error_description":"the credential acts in another organization than this request concerns"}
	// 401 {"error":"invalid_token","error_description":"the access token's signature is invalid"}
}

// RequirePermission passes a credential whose grants cover the
// permission, wildcards included; the 403 says why and what is required.
// A token acting in no organization is told how to get one.
func ExampleMiddleware_RequirePermission() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.RequirePermission("api_key", "rotate")(hello)
	for _, grants := range [][]string{{"api_key:rotate"}, {"api_key:*"}, {"*"}, {"api_key:read"}} {
		show(h, "POST", "/keys/rotate", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": grants}))
	}
	show(h, "POST", "/keys/rotate", "Authorization", "Bearer "+gh.token(map[string]any{"org_id": nil}))
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 200 hello user-1 (access_token) in org-a
	// 200 hello user-1 (access_token) in org-a
	// 403 {"error":"insufficient_permission","reason":"missing_permission","error_description":"the credential's permissions do not grant api_key:rotate","required":"api_key:rotate"}
	// 403 {"error":"insufficient_permission","reason":"no_active_organization","error_description":"the credential acts in no organization; refresh the token with organization=<organization id> to act in one","required":"api_key:rotate"}
}

// RequireAnyPermission passes a credential holding one of the
// permissions.
func ExampleMiddleware_RequireAnyPermission() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.RequireAnyPermission("kb:delete", "kb:admin")(hello)
	show(h, "DELETE", "/kb/1", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": []string{"kb:admin"}}))
	show(h, "DELETE", "/kb/1", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": []string{"kb:read"}}))
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 403 {"error":"insufficient_permission","reason":"missing_permission","error_description":"the credential's permissions grant none of kb:delete, kb:admin","required_any":["kb:delete","kb:admin"]}
}

// RequireRole passes a credential holding one of the roles in its
// organization. Prefer permissions: organizations define their own roles.
func ExampleMiddleware_RequireRole() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.RequireRole("owner")(hello)
	show(h, "GET", "/billing", "Authorization", "Bearer "+gh.token(map[string]any{"roles": []string{"owner"}}))
	show(h, "GET", "/billing", "Authorization", "Bearer "+gh.token(map[string]any{"roles": []string{"member"}}))
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 403 {"error":"insufficient_permission","reason":"missing_role","error_description":"the credential does not hold the role owner","required_role":["owner"]}
}

// RequireScope passes an access token granted every one of the scopes;
// combine it with RequirePermission where both matter.
func ExampleMiddleware_RequireScope() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.RequireScope("kb.write")(m.RequirePermission("kb", "write")(hello))
	show(h, "POST", "/kb", "Authorization", "Bearer "+gh.token(map[string]any{"scope": "openid kb.write", "permissions": []string{"kb:*"}}))
	show(h, "POST", "/kb", "Authorization", "Bearer "+gh.token(map[string]any{"scope": "openid", "permissions": []string{"kb:*"}}))
	// Output:
	// 200 hello user-1 (access_token) in org-a
	// 403 {"error":"insufficient_permission","reason":"missing_scope","error_description":"the token was not granted the scope kb.write","required_scope":["kb.write"]}
}

// A webhook sender presents a static secret as a bearer token. During a
// rotation both secrets are configured; the principal's TokenID says
// which one a delivery used.
func ExampleMiddleware_Webhook() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	hook, err := m.Webhook(rbac.WebhookOptions{
		Name:        "chainhook",
		Secrets:     []string{"the-old-secret-Zx0vWq8kPl3m", "the-new-secret-Hc5rTy2uJn7b"}, // os.Getenv, in real life
		Permissions: []string{"chainhook:deliver"},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/chainhook", hook.Authenticate()(m.RequirePermission("chainhook", "deliver")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := rbac.PrincipalFrom(r.Context())
			fmt.Fprintf(w, "delivery from %s with secret #%s", p.Subject, p.TokenID)
		}))))
	show(mux, "POST", "/webhooks/chainhook", "Authorization", "Bearer the-new-secret-Hc5rTy2uJn7b")
	show(mux, "POST", "/webhooks/chainhook", "Authorization", "Bearer the-wrong-secret-0000000000")
	// Output:
	// 200 delivery from webhook:chainhook with secret #1
	// 401 {"error":"invalid_token","error_description":"the webhook secret is not accepted"}
}

// Options.InsecureDevPrincipal lets a backend run in development with no
// Gatehouse at all: every request acts as the configured principal, and
// a warning says so at start and every minute. It cannot be built in
// production.
func ExampleOptions_insecureDevPrincipal() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{} // steady output for this example
		}
		return a
	}}))
	opts := rbac.Options{
		Issuer: "http://localhost:8080", Audience: "kb-api", Logger: logger,
		Production:           os.Getenv("APP_ENV") == "production", // the backend's own setting
		InsecureDevPrincipal: &rbac.Principal{Subject: "dev@example.com", OrgID: "org-dev", Permissions: []string{"*"}},
	}
	m, err := rbac.New(context.Background(), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	show(m.RequirePermission("kb", "write")(hello), "POST", "/kb")

	opts.Production = true
	_, err = rbac.New(context.Background(), opts)
	fmt.Println(err)
	// Output:
	// level=WARN msg="rbac: INSECURE: Options.InsecureDevPrincipal is set: every request acts as this principal without any credential; never run this in production" subject=dev@example.com org_id=org-dev permissions=[*]
	// 200 hello dev@example.com (insecure_dev) in org-dev
	// rbac: Options.InsecureDevPrincipal cannot be used with Options.Production: it lets every request in without a credential
}

// Options.WriteError replaces the answer to every refusal, which it
// receives typed; Options.OnRefusal learns each one first, to log or
// count it (rbac logs nothing by itself).
func ExampleOptions_writeError() {
	gh := startGatehouse()
	defer gh.Close()
	refused := map[string]int{}
	m, err := rbac.New(context.Background(), rbac.Options{
		Issuer: gh.URL(), Audience: "kb-api",
		OnRefusal: func(r *http.Request, f *rbac.Refusal) { refused[fmt.Sprint(f.Status, " ", f.Reason)]++ },
		WriteError: func(w http.ResponseWriter, r *http.Request, f *rbac.Refusal) {
			if f.Status != http.StatusForbidden {
				rbac.WriteRefusal(w, f) // 401 and 503 as rbac writes them
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(f.Status)
			_ = json.NewEncoder(w).Encode(map[string]any{"title": "Forbidden", "detail": f.Description, "code": f.Reason})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	h := m.RequirePermission("kb", "write")(hello)
	show(h, "POST", "/kb", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": []string{"kb:read"}}))
	show(h, "POST", "/kb")
	fmt.Println(refused)
	// Output:
	// 403 {"code":"missing_permission","detail":"the credential's permissions do not grant kb:write","title":"Forbidden"}
	// 401 {"error":"invalid_token","error_description":"a bearer access token is required"}
	// map[401 :1 403 missing_permission:1]
}

// Options.Check sees every verified Gatehouse credential; Forbid refuses
// it with 403 and a reason, Refuse with 401.
func ExampleForbid() {
	gh := startGatehouse()
	defer gh.Close()
	suspended := map[string]bool{"user-1": true} // the backend's own records
	m, err := rbac.New(context.Background(), rbac.Options{
		Issuer: gh.URL(), Audience: "kb-api",
		Check: func(ctx context.Context, p *rbac.Principal) error {
			if suspended[p.Subject] {
				return rbac.Forbid(rbac.ReasonMembershipInactive, "your membership in this organization is suspended")
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	show(m.RequirePermission("kb", "read")(hello), "GET", "/kb", "Authorization", "Bearer "+gh.token(map[string]any{"permissions": []string{"kb:read"}}))
	// Output:
	// 403 {"error":"insufficient_permission","reason":"membership_inactive","error_description":"your membership in this organization is suspended","required":"kb:read"}
}

// Handlers read who is calling from the request context.
func ExamplePrincipalFrom() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := rbac.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "not behind the middleware", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, p.Subject, p.OrgID, p.Can("kb", "publish"), p.HasRole("owner"))
	})
	// What the middleware does: tests of handlers do the same.
	p := rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken, Subject: "user-1", OrgID: "org-a",
		Roles: []string{"member"}, Permissions: []string{"kb:p*"}})
	r := httptest.NewRequest("GET", "/kb", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(rbac.WithPrincipal(r.Context(), p)))
	fmt.Print(rec.Body)
	// Output:
	// user-1 org-a true false
}

// Match says whether one grant covers a permission, with Gatehouse's
// wildcard rules; a malformed grant or permission matches nothing.
func ExampleMatch() {
	fmt.Println(rbac.Match("kb:*", "kb:read"))
	fmt.Println(rbac.Match("*:read", "kb:read"))
	fmt.Println(rbac.Match("api_key:r*", "api_key:rotate"))
	fmt.Println(rbac.Match("api-key:rotate", "api_key:rotate"))
	fmt.Println(rbac.Match("KB:read", "kb:read"))
	// Output:
	// true
	// true
	// true
	// false
	// false
}

// Allowed says whether any of a principal's grants covers a permission.
func ExampleAllowed() {
	grants := []string{"kb:read", "api_key:*"}
	fmt.Println(rbac.Allowed(grants, "api_key:rotate"))
	fmt.Println(rbac.Allowed(grants, "kb:write"))
	// Output:
	// true
	// false
}

// A backend may start before Gatehouse: requests with a credential get
// 503 with Retry-After until the keys are loaded in the background, and
// Ready tells when that is done.
func ExampleMiddleware_Ready() {
	gh := startGatehouse()
	defer gh.Close()
	gh.down.Store(true) // Gatehouse is not up yet

	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	h := m.RequirePermission("kb", "read")(hello)
	tok := gh.token(map[string]any{"permissions": []string{"kb:read"}})
	show(h, "GET", "/kb", "Authorization", "Bearer "+tok)

	gh.down.Store(false) // Gatehouse is up
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		log.Fatal(err)
	}
	show(h, "GET", "/kb", "Authorization", "Bearer "+tok)
	// Output:
	// 503 {"error":"temporarily_unavailable","error_description":"the issuer's keys are not loaded yet; try again shortly"}
	// 200 hello user-1 (access_token) in org-a
}

// ReadyHandler is a readiness probe: 503 until the keys are loaded.
func ExampleMiddleware_ReadyHandler() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /readyz", m.ReadyHandler())
	show(mux, "GET", "/readyz")
	// Output:
	// 200 {"status":"ready"}
}

// WebSocket clients, which cannot send headers, put an access token in
// ?token= or an API key in ?key= of the upgrade request; the parameter is
// removed from the URL before the handler sees it.
func ExampleMiddleware_RequirePermission_webSocket() {
	gh := startGatehouse()
	defer gh.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: gh.URL(), Audience: "kb-api"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ws := m.RequirePermission("kb", "read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// websocket.Accept(w, r, ...) here; the URL no longer holds the token.
		fmt.Fprint(w, "upgrade ", r.URL.RequestURI())
	}))
	tok := gh.token(map[string]any{"permissions": []string{"kb:read"}})
	show(ws, "GET", "/ws?room=1&token="+tok, "Connection", "Upgrade", "Upgrade", "websocket")
	show(ws, "GET", "/ws?room=1&token="+tok) // not an upgrade: no credential
	// Output:
	// 200 upgrade /ws?room=1
	// 401 {"error":"invalid_token","error_description":"a bearer access token is required"}
}
