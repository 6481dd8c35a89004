package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

const postLogoutURI = "https://gatehouse.test/auth/logout/upstream-done"

// withUpstreamLogout starts a provider of kind with upstream_logout: true
// against a fake tweaked by tweak, logging into the returned buffer.
func withUpstreamLogout(t *testing.T, kind string, tweak func(*providertest.Options)) (Provider, *providertest.Server, *syncBuffer) {
	t.Helper()
	fx := fixtures[kind]
	opts := fx.opts
	if tweak != nil {
		tweak(&opts)
	}
	fake := providertest.New(t, opts)
	logs := &syncBuffer{}
	p := startProvider(t, fx.typ, fx.yaml(fake)+"upstream_logout: true\n", Env{Log: slog.New(slog.NewTextHandler(logs, nil))})
	return p, fake, logs
}

// syncBuffer is a bytes.Buffer safe for the provider's background logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestUpstreamLogout: with upstream_logout, each OpenID Connect kind
// keeps the upstream ID token of a sign-in and builds the RP-Initiated
// Logout request with it, which the upstream follows back to Gatehouse.
func TestUpstreamLogout(t *testing.T) {
	for _, kind := range []string{"oidc", "google", "auth0"} {
		t.Run(kind, func(t *testing.T) {
			p, fake, _ := withUpstreamLogout(t, kind, nil)
			lo, ok := p.(UpstreamLogout)
			if !ok {
				t.Fatal("a provider with upstream_logout does not implement UpstreamLogout")
			}
			id, err := signIn(t, p, BeginRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(id.UpstreamLogout, ".") != 2 || !oidcOf(p).ownIDToken(id.UpstreamLogout) {
				t.Fatalf("UpstreamLogout is not the upstream ID token: %q", id.UpstreamLogout)
			}
			raw, err := lo.LogoutURL(context.Background(), id.UpstreamLogout, postLogoutURI, "st-123")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(raw)
			q := u.Query()
			if base := strings.TrimSuffix(raw, "?"+u.RawQuery); !strings.HasPrefix(base, fake.URL) || !strings.HasSuffix(base, "/logout") ||
				q.Get("id_token_hint") != id.UpstreamLogout || q.Get("client_id") != fake.ClientID ||
				q.Get("post_logout_redirect_uri") != postLogoutURI || q.Get("state") != "st-123" || len(q) != 4 {
				t.Fatalf("logout URL = %s", raw)
			}
			resp, err := noFollow.Get(raw)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != postLogoutURI+"?state=st-123" {
				t.Fatalf("upstream logout answered %d %q", resp.StatusCode, loc)
			}
			if got := fake.LogoutRequests(); len(got) != 1 || got[0].Get("id_token_hint") != id.UpstreamLogout {
				t.Fatalf("upstream saw %v", got)
			}
			// Without a saved hint (a sign-in from before the option),
			// client_id alone names Gatehouse.
			raw, err = lo.LogoutURL(context.Background(), "", postLogoutURI, "")
			if u, _ := url.Parse(raw); err != nil || u.Query().Has("id_token_hint") || u.Query().Has("state") ||
				u.Query().Get("client_id") != fake.ClientID {
				t.Fatalf("logout URL without a hint = %s, %v", raw, err)
			}
		})
	}
}

// TestUpstreamLogoutRefusals: what LogoutURL refuses, and a provider that
// cannot log out upstream.
func TestUpstreamLogoutRefusals(t *testing.T) {
	p, fake, _ := withUpstreamLogout(t, "oidc", nil)
	lo := p.(UpstreamLogout)
	other := providertest.New(t, providertest.Options{})
	ctx := context.Background()
	good := fake.IDToken(nil)
	for name, tc := range map[string]struct{ saved, post string }{
		"another upstream's ID token":       {saved: other.IDToken(nil)},
		"an ID token for another app":       {saved: fake.IDToken(map[string]any{"aud": "another-client"})},
		"not a JWT":                         {saved: "not-a-token"},
		"a JWT with a garbage payload":      {saved: "e30.!!!.sig"},
		"an oversized hint":                 {saved: good + strings.Repeat("A", maxUpstreamTokenBytes)},
		"a relative post-logout URI":        {saved: good, post: "/done"},
		"a javascript post-logout URI":      {saved: good, post: "javascript:alert(1)"},
		"a post-logout URI with a fragment": {saved: good, post: postLogoutURI + "#x"},
	} {
		t.Run(name, func(t *testing.T) {
			post := tc.post
			if post == "" {
				post = postLogoutURI
			}
			raw, err := lo.LogoutURL(ctx, tc.saved, post, "s")
			if !errors.Is(err, ErrNoUpstreamLogout) || raw != "" {
				t.Fatalf("want ErrNoUpstreamLogout, got %q, %v", raw, err)
			}
			if len(tc.saved) > 16 && strings.Contains(err.Error(), tc.saved) {
				t.Fatal("the token is echoed in the error")
			}
		})
	}
	if n := len(fake.LogoutRequests()); n != 0 {
		t.Fatalf("the upstream was called %d times", n)
	}

	t.Run("option off", func(t *testing.T) {
		p, _ := startKind(t, "oidc", nil)
		if _, ok := p.(UpstreamLogout); ok {
			t.Fatal("a provider without upstream_logout implements UpstreamLogout")
		}
		id, err := signIn(t, p, BeginRequest{})
		if err != nil || id.UpstreamLogout != "" {
			t.Fatalf("identity without upstream_logout: %+v, %v", id, err)
		}
	})

	for name, tweak := range map[string]func(*providertest.Options){
		"discovery without end_session_endpoint": func(o *providertest.Options) { o.NoEndSession = true },
		"end_session_endpoint not a URL":         func(o *providertest.Options) { o.EndSessionURL = "logout" },
		"end_session_endpoint with a fragment":   func(o *providertest.Options) { o.EndSessionURL = "http://idp.test/logout#f" },
		"end_session_endpoint of another scheme": func(o *providertest.Options) { o.EndSessionURL = "ftp://idp.test/logout" },
	} {
		t.Run(name, func(t *testing.T) {
			p, _, logs := withUpstreamLogout(t, "oidc", tweak)
			id, err := signIn(t, p, BeginRequest{})
			if err != nil || id.UpstreamLogout != "" {
				t.Fatalf("identity: %+v, %v", id, err)
			}
			raw, err := p.(UpstreamLogout).LogoutURL(ctx, "", postLogoutURI, "s")
			if !errors.Is(err, ErrNoUpstreamLogout) || raw != "" || !strings.Contains(err.Error(), "end_session_endpoint") {
				t.Fatalf("want ErrNoUpstreamLogout, got %q, %v", raw, err)
			}
			if !strings.Contains(logs.String(), "upstream_logout is configured but the discovery document's end_session_endpoint") {
				t.Fatalf("no warning at load; log:\n%s", logs)
			}
		})
	}

	t.Run("discovery not done", func(t *testing.T) {
		down := providertest.New(t, providertest.Options{})
		down.SetDiscoveryDown(true)
		p, err := New("oidc", "up", yamlSettings(fmt.Sprintf("issuer: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\nupstream_logout: true\n",
			down.Issuer, down.ClientID, down.ClientSecret)), Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.(interface{ Close() error }).Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.(UpstreamLogout).LogoutURL(cctx, "", postLogoutURI, "s"); !errors.Is(err, ErrNoUpstreamLogout) {
			t.Fatalf("want ErrNoUpstreamLogout, got %v", err)
		}
	})
}

// TestUpstreamLogoutKeepsEndpointQuery: parameters the end_session
// endpoint carries itself survive.
func TestUpstreamLogoutKeepsEndpointQuery(t *testing.T) {
	p, _, _ := withUpstreamLogout(t, "oidc", func(o *providertest.Options) {
		o.EndSessionURL = "http://idp.test/v2/logout?tenant=acme"
	})
	raw, err := p.(UpstreamLogout).LogoutURL(context.Background(), "", postLogoutURI, "s")
	u, _ := url.Parse(raw)
	if err != nil || u.Host != "idp.test" || u.Path != "/v2/logout" || u.Query().Get("tenant") != "acme" || u.Query().Get("state") != "s" {
		t.Fatalf("logout URL = %s, %v", raw, err)
	}
}
