package rbac_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// staticKeys is an in-process key source (Options.Keys) with one fresh
// RS256 key.
func staticKeys(t testing.TB) func(context.Context) (jose.JSONWebKeySet, error) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return func(context.Context) (jose.JSONWebKeySet, error) {
		return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}, nil
	}
}

// fastRetries shortens the start's backoff for one test.
func fastRetries(t *testing.T) {
	t.Cleanup(rbac.SetTimingForTest(10*time.Millisecond, 40*time.Millisecond, time.Hour))
}

func serve(h http.Handler, edit func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/kb", nil)
	edit(r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// TestStartWhileIssuerDown: New returns while Gatehouse answers 503;
// requests with a credential get 503 with Retry-After (not 401, which
// would make clients drop good tokens) until the keys are loaded in the
// background; requests without one still get 401; Ready and
// ReadyHandler tell; once Gatehouse is back everything works.
func TestStartWhileIssuerDown(t *testing.T) {
	fastRetries(t)
	is := newIssuer(t)
	is.offline.Store(true)
	m := newMiddleware(t, is, nil)
	h := m.RequirePermission("kb", "read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	ready := m.ReadyHandler()
	tok := is.token("kb:read")
	key := "ghk_" + strings.Repeat("R", 43)
	is.apiKeys[key] = map[string]any{"active": true, "token_type": "api_key", "sub": "apikey:kr", "jti": "kr",
		"org_id": "org-a", "permissions": []string{"kb:read"}}

	for name, edit := range map[string]func(*http.Request){
		"access token": withBearer(tok),
		"API key":      func(r *http.Request) { r.Header.Set("X-API-Key", key) },
	} {
		rec := serve(h, edit)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" || rec.Header().Get("WWW-Authenticate") != "" ||
			!strings.Contains(rec.Body.String(), `"error":"temporarily_unavailable"`) || !strings.Contains(rec.Body.String(), "not loaded yet") {
			t.Fatalf("%s while down = %d %v %s", name, rec.Code, rec.Header(), rec.Body)
		}
	}
	if rec := serve(h, func(*http.Request) {}); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("no credential while down = %d", rec.Code)
	}
	if rec := serve(h, withBearer("not.a-token")); rec.Code != 401 {
		t.Fatalf("malformed token while down = %d", rec.Code)
	}
	if rec := serve(ready, func(*http.Request) {}); rec.Code != 503 || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), "503") {
		t.Fatalf("ReadyHandler while down = %d %s", rec.Code, rec.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := m.Ready(ctx)
	cancel()
	if !errors.Is(err, rbac.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Fatalf("Ready while down = %v", err)
	}
	if n := is.discovered.Load(); n < 2 {
		t.Fatalf("%d discovery attempts, want retries", n)
	}

	is.offline.Store(false)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Ready(ctx); err != nil {
		t.Fatalf("Ready after recovery = %v", err)
	}
	for name, edit := range map[string]func(*http.Request){
		"access token": withBearer(tok),
		"API key":      func(r *http.Request) { r.Header.Set("X-API-Key", key) },
	} {
		if rec := serve(h, edit); rec.Code != 200 {
			t.Fatalf("%s after recovery = %d %s", name, rec.Code, rec.Body)
		}
	}
	if rec := serve(ready, func(*http.Request) {}); rec.Code != 200 || rec.Body.String() != `{"status":"ready"}` {
		t.Fatalf("ReadyHandler after recovery = %d %s", rec.Code, rec.Body)
	}
	// Loaded: no more attempts.
	n := is.discovered.Load()
	time.Sleep(100 * time.Millisecond)
	if is.discovered.Load() != n {
		t.Fatal("discovery is still retried once loaded")
	}
}

// TestStartBackoffAndClose: while the issuer cannot be reached at all
// (nothing listens), attempts back off (bounded), and Close stops them.
func TestStartBackoffAndClose(t *testing.T) {
	fastRetries(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: srv.URL, Audience: "kb-api"})
	if err != nil {
		t.Fatalf("New with the issuer failing = %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	// 10 ms doubling to 40 ms, each jittered to at least half: about a
	// dozen attempts in 500 ms; without backoff it would be fifty or more.
	if n := hits.Load(); n < 3 || n > 30 {
		t.Fatalf("%d attempts in 500 ms", n)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	n := hits.Load()
	time.Sleep(150 * time.Millisecond)
	if hits.Load() != n {
		t.Fatal("attempts go on after Close")
	}
	if err := m.Ready(context.Background()); !errors.Is(err, rbac.ErrClosed) || !errors.Is(err, rbac.ErrUnavailable) {
		t.Fatalf("Ready after Close = %v", err)
	}
	_ = m.Close() // idempotent

	// Nothing listening at all.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m, err = rbac.New(context.Background(), rbac.Options{Issuer: "http://" + addr, Audience: "kb-api"})
	if err != nil {
		t.Fatalf("New with nothing listening = %v", err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.Ready(ctx); !errors.Is(err, rbac.ErrUnavailable) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Ready = %v", err)
	}
}

// TestStartBoundedByContext: New waits for a hanging issuer only as long
// as its context allows, then goes on in the background; a context done
// before New still gets a middleware that loads later.
func TestStartBoundedByContext(t *testing.T) {
	fastRetries(t)
	is := newIssuer(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hangs
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	m, err := rbac.New(ctx, rbac.Options{Issuer: slow.URL, Audience: "kb-api"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("New took %s with a 200 ms context", d)
	}
	if m.Ready(canceled()) == nil {
		t.Fatal("ready while the issuer hangs")
	}
	// Closing must not wait for the hanging request to end by itself.
	began = time.Now()
	m.Close()
	if d := time.Since(began); d > 3*time.Second {
		t.Fatalf("Close took %s", d)
	}

	// A context done before New: the first attempt fails at once, the
	// background one succeeds (the discovery document names is.srv.URL,
	// so use the issuer itself).
	m2, err := rbac.New(canceled(), rbac.Options{Issuer: is.srv.URL, Audience: "kb-api"})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	wait, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := m2.Ready(wait); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	if _, err := m2.Verify(context.Background(), is.token("kb:read")); err != nil {
		t.Fatalf("Verify = %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestStartStillFailsForBadOptions: invalid options, an issuer that says
// it is another one, and a failing Options.Keys (Gatehouse's own admin
// API) still fail New; Options.Keys is ready at once.
func TestStartStillFailsForBadOptions(t *testing.T) {
	is := newIssuer(t)
	noIntrospection := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"` + "http://" + r.Host + `","jwks_uri":"http://` + r.Host + `/jwks"}`))
	}))
	defer noIntrospection.Close()
	cases := []struct {
		name string
		opts rbac.Options
		want string
	}{
		{"issuer mismatch", rbac.Options{Issuer: is.srv.URL + "/", Audience: "a"}, "issuer is"},
		{"no introspection endpoint", rbac.Options{Issuer: noIntrospection.URL, Audience: "a",
			APIKeys: &rbac.APIKeyOptions{ClientID: "c", ClientSecret: "s"}}, "no introspection_endpoint"},
		{"keys fail", rbac.Options{Issuer: "https://auth.example.com", Audience: "a",
			Keys: func(context.Context) (jose.JSONWebKeySet, error) {
				return jose.JSONWebKeySet{}, errors.New("no keys yet")
			}}, "no keys yet"},
		{"introspection without client", rbac.Options{Issuer: is.srv.URL, Audience: "a", APIKeys: &rbac.APIKeyOptions{}}, "ClientSecret"},
	}
	for _, tc := range cases {
		m, err := rbac.New(context.Background(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if m != nil {
			m.Close()
		}
	}
	m, err := rbac.New(context.Background(), rbac.Options{Issuer: "https://auth.example.com", Audience: "a", Keys: staticKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Ready(canceled()); err != nil {
		t.Fatalf("Options.Keys not ready at once: %v", err)
	}
}

// TestUnknownKidWhileIssuerDown: once loaded, a token whose kid is not
// cached while the JWKS cannot be fetched is a 503 (the token may be
// fine), not a 401.
func TestUnknownKidWhileIssuerDown(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, func(o *rbac.Options) { o.RefetchInterval = time.Millisecond })
	is.offline.Store(true)
	time.Sleep(5 * time.Millisecond)
	h := m.RequirePermission("kb", "read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	rec := serve(h, withBearer(is.sign(is.claims("kb:read"), map[jose.HeaderKey]any{"kid": "k2"})))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "cannot be fetched") {
		t.Fatalf("unknown kid while down = %d %s", rec.Code, rec.Body)
	}
	if rec := serve(h, withBearer(is.token("kb:read"))); rec.Code != 200 {
		t.Fatalf("cached kid while down = %d %s", rec.Code, rec.Body)
	}
}

func TestJitter(t *testing.T) {
	for range 100 {
		if d := rbac.Jittered(time.Second); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("Jittered(1s) = %s", d)
		}
	}
}
