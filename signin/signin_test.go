package signin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/providers/providertest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
	"github.com/gatehouse-id/gatehouse/provisioning"
	"github.com/gatehouse-id/gatehouse/tokens"
)

const (
	testIssuer     = "https://auth.example.com"
	clientRedirect = "https://app.example.com/cb"
)

// fixture is a sign-in service built from real parts on a SQLite
// database: the dev provider "dev", an OpenID Connect provider "up"
// against a fake upstream, a SAML provider "corp" against an in-process
// IdP, and the real authorization server, provisioning and sessions.
type fixture struct {
	s     *Service
	store *models.Store
	idp   *samltest.IdP

	mu     sync.Mutex
	logins []string // "provider outcome", as Hooks.Login saw them
	// begins counts the sign-ins begun at each provider (upstream round
	// trips); skew moves the sign-in service's clock.
	begins map[string]*atomic.Int64
	skew   atomic.Int64
	edit   atomic.Pointer[func(*providers.Identity)]
	// upstream is the fake OpenID Connect provider behind "up".
	upstream *providertest.Server
}

func newFixture(t *testing.T) *fixture { return newFixtureOn(t, dbtest.SQLite(t)) }

// newFixtureOn is newFixture on database db.
func newFixtureOn(t *testing.T, db *models.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{store: models.NewStore(db), begins: map[string]*atomic.Int64{}}

	dev, err := providers.NewDev("dev", providers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	fake := providertest.New(t, providertest.Options{})
	f.upstream = fake
	up, err := providers.New("oidc", "up", yamlSettings(fmt.Sprintf("issuer: %s\nclient_id: %s\nclient_secret: %s\ninsecure_allow_http: true\n",
		fake.Issuer, fake.ClientID, fake.ClientSecret)), providers.Env{BaseURL: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.(interface{ Close() error }).Close() })
	for deadline := time.Now().Add(10 * time.Second); up.(providers.ReadinessChecker).Ready(ctx) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the OIDC provider did not read the fake upstream's discovery")
		}
	}
	f.idp = samltest.Offline(t, "https://idp.example")
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	indent := func(pem string) string { return strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n  ") }
	corp, err := providers.New("saml", "corp", yamlSettings("idp_metadata_file: "+f.idp.WriteMetadataFile(t)+
		"\ntrust_email: true\nsp_key: |\n  "+indent(keyPEM)+"\nsp_certificate: |\n  "+indent(certPEM)+"\n"),
		providers.Env{BaseURL: testIssuer, HTTPClient: &http.Client{Timeout: time.Second}, Replay: &seenIDs{ids: map[string]bool{}}})
	if err != nil {
		t.Fatal(err)
	}
	md, _, err := corp.(providers.MetadataPublisher).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.idp.TrustSPMetadata(t, md)

	for _, name := range []string{"dev", "up"} {
		f.begins[name] = new(atomic.Int64)
	}
	set := providers.NewSet([]providers.Provider{countedForm{counted{dev, f.begins["dev"], &f.edit}}, counted{up, f.begins["up"], &f.edit}, corp})
	client := func(id string, allowed ...string) config.Client {
		return config.Client{ID: id, Name: "App " + id, RedirectURIs: []string{clientRedirect},
			PostLogoutRedirectURIs: []string{"https://app.example.com/bye"},
			GrantTypes:             []string{config.GrantAuthorizationCode}, AllowedProviders: allowed}
	}
	cfg := &config.Config{Issuer: testIssuer, SecretKey: strings.Repeat("s", 40), LoginStateTTL: time.Minute,
		File: config.File{Clients: []config.Client{client("app"), client("devonly", "dev"), client("nowhere", "gone"),
			client("two"), client("uponly", "up")}}}
	provisioner := provisioning.New(f.store, provisioning.Options{TrustedEmail: map[string]bool{"dev": true, "up": true, "corp": true}})
	server := oauth.New(oauth.Options{Config: cfg, Providers: set, Sessions: tokens.NewSessionService(f.store, tokens.SessionOptions{}),
		Provisioner: provisioner, Store: f.store})
	f.s = New(Options{Issuer: cfg.Issuer, SecretKey: cfg.SecretKey, LoginStateTTL: cfg.LoginStateTTL, Providers: set,
		SSOIdleTTL: 12 * time.Hour, SSOAbsoluteTTL: 7 * 24 * time.Hour,
		Now:    func() time.Time { return time.Now().UTC().Add(time.Duration(f.skew.Load())) },
		Server: server, Provisioner: provisioner, Store: f.store, Hooks: Hooks{Login: func(p, o string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.logins = append(f.logins, p+" "+o)
		}}})
	return f
}

// counted is a provider whose sign-ins begun are counted;
// lastBegin is the last request a counted provider began with.
var lastBegin atomic.Pointer[providers.BeginRequest]

// countedForm is one with its own form (the dev provider).
type counted struct {
	providers.Provider
	n *atomic.Int64
	// edit, when it holds a function, changes the identities completed.
	edit *atomic.Pointer[func(*providers.Identity)]
}

func (c counted) Complete(ctx context.Context, req providers.CompleteRequest) (*providers.Identity, error) {
	id, err := c.Provider.Complete(ctx, req)
	if fn := c.edit.Load(); err == nil && fn != nil {
		(*fn)(id)
	}
	return id, err
}

func (c counted) Begin(ctx context.Context, req providers.BeginRequest) (*providers.Challenge, error) {
	c.n.Add(1)
	lastBegin.Store(&req)
	return c.Provider.Begin(ctx, req)
}

// Ready and Close are the OIDC provider's, for the fixture.
func (c counted) Ready(ctx context.Context) error {
	if rc, ok := c.Provider.(providers.ReadinessChecker); ok {
		return rc.Ready(ctx)
	}
	return nil
}

func (c counted) Close() error {
	if cl, ok := c.Provider.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}

type countedForm struct{ counted }

func (countedForm) LocalForm() {}

// countedSince returns the Hooks.Login counts after the first n.
func (f *fixture) countedSince(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.logins[n:])
}

func (f *fixture) counted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.logins)
}

// audited reports whether an event of type typ was recorded for the
// request requestID.
func (f *fixture) audited(t *testing.T, typ, requestID string) bool {
	t.Helper()
	events, err := f.store.ListAuditEvents(context.Background(), models.AuditFilter{Type: typ}, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(events, func(e models.AuditEvent) bool { return e.RequestID == requestID })
}

// authorize is an authorization request of client, naming provider when
// it is not empty.
func authorize(client, provider string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {clientRedirect},
		"state": {"app-state"}, "scope": {"openid email"}, "login_hint": {"ada@example.com"}}
	if provider != "" {
		q.Set("provider", provider)
	}
	return q
}

// begun is a sign-in begun at a provider.
type begun struct {
	provider string
	state    string
	cookie   Cookie
	// upstream is where the browser was sent.
	upstream string
}

// begin starts a sign-in of client "app" at provider.
func (f *fixture) begin(t *testing.T, provider string) begun {
	t.Helper()
	out := f.s.Login(context.Background(), loginRequest(authorize("app", provider), Cookie{}), oauth.RequestMeta{})
	if out.Err != nil || out.Status != http.StatusFound || len(out.Cookies) != 1 {
		t.Fatalf("begin at %s = %+v", provider, out)
	}
	u, err := url.Parse(out.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	state := u.Query().Get("state")
	if provider == "corp" {
		state = u.Query().Get("RelayState")
	}
	if state == "" || out.Cookies[0].Name != CookieName(state) {
		t.Fatalf("begin at %s: state %q, cookie %q", provider, state, out.Cookies[0].Name)
	}
	return begun{provider: provider, state: state, cookie: out.Cookies[0], upstream: out.RedirectURL}
}

// request is a browser request to target (a path or URL on the issuer)
// carrying the login cookie c when it has a name; form makes it a POST.
func request(target string, form url.Values, c Cookie) *http.Request {
	if !strings.HasPrefix(target, "http") {
		target = testIssuer + target
	}
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if form != nil {
		r = httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.Name != "" {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// loginRequest is the authorization request q at /auth/login, carrying
// cookie c when it has a name.
func loginRequest(q url.Values, c Cookie) *http.Request {
	return request("/auth/login?"+q.Encode(), nil, c)
}

// kindOf is the kind of out's error ("" when there is none).
func kindOf(out Outcome) fault.Kind { return fault.Of(out.Err) }

// checkCleared checks that out clears exactly the login cookie of state,
// or sets no cookie when want is false.
// The browser-session cookie a completed sign-in sets is not counted
// (TestSingleSignOn checks it).
func checkCleared(t *testing.T, out Outcome, state string, want bool) {
	t.Helper()
	out.Cookies = slices.DeleteFunc(slices.Clone(out.Cookies), func(c Cookie) bool { return c.Name == "__Host-"+SessionCookieBase })
	switch {
	case !want && len(out.Cookies) != 0:
		t.Errorf("cookies %+v, want none", out.Cookies)
	case want && (len(out.Cookies) != 1 || out.Cookies[0].Name != CookieName(state) || out.Cookies[0].MaxAge >= 0 ||
		out.Cookies[0].Value != "" || !out.Cookies[0].HTTPOnly || !out.Cookies[0].Secure || !out.Cookies[0].SameSiteLax ||
		out.Cookies[0].Path != "/auth/"):
		t.Errorf("cookies %+v, want the login cookie of %s cleared", out.Cookies, state)
	}
}

// checkCodeRedirect checks a redirect to the client with a code.
func checkCodeRedirect(t *testing.T, out Outcome, status int) {
	t.Helper()
	u, err := url.Parse(out.RedirectURL)
	if out.Err != nil || out.Status != status || err != nil || !strings.HasPrefix(out.RedirectURL, clientRedirect+"?") ||
		u.Query().Get("code") == "" || u.Query().Get("state") != "app-state" || u.Query().Get("iss") != testIssuer {
		t.Fatalf("outcome = %d %q, %v; want %d to the client with a code", out.Status, out.RedirectURL, out.Err, status)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		query url.Values
		check func(t *testing.T, out Outcome)
	}{
		{"a client allowed several providers chooses", authorize("app", ""), func(t *testing.T, out Outcome) {
			if out.Err != nil || out.Status != http.StatusOK || out.Chooser == nil || out.Chooser.Client != "App app" || len(out.Chooser.Providers) != 3 {
				t.Fatalf("outcome = %+v", out)
			}
			for i, name := range []string{"dev", "up", "corp"} {
				e := out.Chooser.Providers[i]
				u, _ := url.Parse(e.URL)
				q := u.Query()
				if u.Path != "/auth/login" || q.Get("provider") != name || q.Get("client_id") != "app" || q.Get("state") != "app-state" {
					t.Errorf("entry %d = %+v", i, e)
				}
			}
			checkCleared(t, out, "", false)
		}},
		{"a client allowed one provider goes straight there", authorize("devonly", ""), func(t *testing.T, out Outcome) {
			u, _ := url.Parse(out.RedirectURL)
			state := u.Query().Get("state")
			if out.Err != nil || out.Status != http.StatusFound || u.Path != "/auth/callback/dev" || state == "" {
				t.Fatalf("outcome = %+v", out)
			}
			c := out.Cookies
			if len(c) != 1 || c[0].Name != CookieName(state) || c[0].Path != "/auth/" || !c[0].HTTPOnly || !c[0].Secure ||
				!c[0].SameSiteLax || c[0].MaxAge <= 0 || c[0].MaxAge > 60 || strings.Contains(c[0].Value, "devonly") {
				t.Fatalf("cookies = %+v", c)
			}
		}},
		{"a client allowed no configured provider", authorize("nowhere", ""), func(t *testing.T, out Outcome) {
			if k := kindOf(out); k != fault.NoProvider || len(out.Cookies) != 0 {
				t.Fatalf("outcome = %+v", out)
			}
		}},
		{"an unknown client is a page, never a redirect", authorize("stranger", ""), func(t *testing.T, out Outcome) {
			if k := kindOf(out); k != fault.UnknownClient {
				t.Fatalf("outcome = %+v", out)
			}
		}},
		{"a provider the client may not use goes back to the client", authorize("devonly", "up"), func(t *testing.T, out Outcome) {
			var re *oauth.RedirectError
			if !errors.As(out.Err, &re) || re.Err.Code != "invalid_request" || !strings.HasPrefix(re.RedirectURL, clientRedirect+"?") ||
				len(out.Cookies) != 0 {
				t.Fatalf("outcome = %+v", out)
			}
		}},
		{"the OIDC provider sends the browser upstream", authorize("app", "up"), func(t *testing.T, out Outcome) {
			u, _ := url.Parse(out.RedirectURL)
			if out.Err != nil || out.Status != http.StatusFound || u.Query().Get("redirect_uri") != testIssuer+"/auth/callback/up" ||
				u.Query().Get("login_hint") != "ada@example.com" || len(out.Cookies) != 1 || out.Cookies[0].Name != CookieName(u.Query().Get("state")) {
				t.Fatalf("outcome = %+v", out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := f.counted()
			tc.check(t, f.s.Login(context.Background(), loginRequest(tc.query, Cookie{}), oauth.RequestMeta{}))
			if got := f.countedSince(n); len(got) != 0 {
				t.Errorf("counted %v at the start of a sign-in", got)
			}
		})
	}
}

func TestCallback(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		// beginAt is the provider the sign-in begins at ("": none).
		beginAt string
		// request is the callback; at is the provider whose callback it is.
		request func(t *testing.T, b begun) (at string, r *http.Request)
		check   func(t *testing.T, b begun, out Outcome)
		cleared bool
		// counted is the Hooks.Login outcome ("" for none), audit the
		// event recorded for the request.
		counted, audit string
	}{
		{name: "the dev form on GET", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) { return "dev", request(b.upstream, nil, b.cookie) },
			check: func(t *testing.T, b begun, out Outcome) {
				want := DevForm{Action: "/auth/callback/dev", State: b.state, Email: "ada@example.com"}
				if out.Err != nil || out.Status != http.StatusOK || out.DevForm == nil || *out.DevForm != want {
					t.Fatalf("outcome = %+v, dev form %+v", out, out.DevForm)
				}
			}},
		{name: "the dev form POSTed with a mistake shows again", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "dev", request("/auth/callback/dev", url.Values{"state": {b.state}, "email": {"not-an-email"}, "name": {"Ada"}, "groups": {"eng"}}, b.cookie)
			},
			check: func(t *testing.T, b begun, out Outcome) {
				want := DevForm{Action: "/auth/callback/dev", State: b.state, Error: "Enter a valid email address, such as ada@example.com.",
					Email: "not-an-email", Name: "Ada", Groups: "eng"}
				if out.Err != nil || out.Status != http.StatusBadRequest || out.DevForm == nil || *out.DevForm != want {
					t.Fatalf("outcome = %+v, dev form %+v", out, out.DevForm)
				}
			}},
		{name: "the dev form POSTed completes", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "dev", request("/auth/callback/dev", url.Values{"state": {b.state}, "email": {"ada@example.com"}, "name": {"Ada"}}, b.cookie)
			},
			check:   func(t *testing.T, b begun, out Outcome) { checkCodeRedirect(t, out, http.StatusSeeOther) },
			cleared: true, counted: "dev success", audit: "login.success"},
		{name: "an upstream error= answer goes back to the client", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "dev", request("/auth/callback/dev?error=access_denied&state="+url.QueryEscape(b.state), nil, b.cookie)
			},
			check: func(t *testing.T, b begun, out Outcome) {
				u, _ := url.Parse(out.RedirectURL)
				q := u.Query()
				if out.Err != nil || out.Status != http.StatusFound || !strings.HasPrefix(out.RedirectURL, clientRedirect+"?") ||
					q.Get("error") != "access_denied" || q.Get("state") != "app-state" || q.Get("iss") != testIssuer || q.Has("code") {
					t.Fatalf("outcome = %+v", out)
				}
			},
			cleared: true, counted: "dev cancelled", audit: "login.cancelled"},
		{name: "a form that cannot be parsed is a 400, not a server error", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				r := httptest.NewRequest(http.MethodPost, testIssuer+"/auth/callback/dev", strings.NewReader("state="+b.state+"&email=%zz"))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.AddCookie(&http.Cookie{Name: b.cookie.Name, Value: b.cookie.Value})
				return "dev", r
			},
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.UpstreamInvalid || fault.MessageOf(out.Err) == "" {
					t.Fatalf("outcome = %+v", out)
				}
			}},
		{name: "the login cookie missing", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) { return "dev", request(b.upstream, nil, Cookie{}) },
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.LoginExpired {
					t.Fatalf("outcome = %+v", out)
				}
			},
			counted: "dev state_rejected", audit: "login.state_rejected"},
		{name: "another sign-in's login cookie", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				other := f.begin(t, "dev")
				return "dev", request(b.upstream, nil, Cookie{Name: b.cookie.Name, Value: other.cookie.Value})
			},
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.LoginExpired {
					t.Fatalf("outcome = %+v", out)
				}
			},
			counted: "dev state_rejected", audit: "login.state_rejected"},
		{name: "a state begun at another provider", beginAt: "dev",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "up", request("/auth/callback/up?code=x&state="+url.QueryEscape(b.state), nil, b.cookie)
			},
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.LoginExpired {
					t.Fatalf("outcome = %+v", out)
				}
			},
			counted: "up state_rejected", audit: "login.state_rejected"},
		{name: "an unknown provider",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "nope", request("/auth/callback/nope?state=x", nil, Cookie{})
			},
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.UnknownProvider {
					t.Fatalf("outcome = %+v", out)
				}
			}},
		{name: "the OIDC round trip completes", beginAt: "up",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := noFollow.Get(b.upstream)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				back := resp.Header.Get("Location")
				if resp.StatusCode != http.StatusFound || !strings.HasPrefix(back, testIssuer+"/auth/callback/up?") {
					t.Fatalf("upstream = %d %q", resp.StatusCode, back)
				}
				return "up", request(back, nil, b.cookie)
			},
			check:   func(t *testing.T, b begun, out Outcome) { checkCodeRedirect(t, out, http.StatusSeeOther) },
			cleared: true, counted: "up success", audit: "login.success"},
		{name: "a SAML sign-in does not complete at the callback", beginAt: "corp",
			request: func(t *testing.T, b begun) (string, *http.Request) {
				return "corp", request("/auth/callback/corp?state="+url.QueryEscape(b.state), nil, b.cookie)
			},
			check: func(t *testing.T, b begun, out Outcome) {
				if k := kindOf(out); k != fault.LoginExpired {
					t.Fatalf("outcome = %+v", out)
				}
			},
			cleared: true, counted: "corp error", audit: "login.failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b begun
			if tc.beginAt != "" {
				b = f.begin(t, tc.beginAt)
			}
			at, r := tc.request(t, b)
			n := f.counted()
			out := f.s.Callback(context.Background(), at, r, oauth.RequestMeta{IP: "192.0.2.1", RequestID: tc.name})
			tc.check(t, b, out)
			checkCleared(t, out, b.state, tc.cleared)
			var want []string
			if tc.counted != "" {
				want = []string{tc.counted}
			}
			if got := f.countedSince(n); !slices.Equal(got, want) {
				t.Errorf("counted %v, want %v", got, want)
			}
			if tc.audit != "" && !f.audited(t, tc.audit, tc.name) {
				t.Errorf("no %s event", tc.audit)
			}
		})
	}
}

// TestAssertionPost: the upstream's own POST is answered with a form that
// posts it again and touches nothing; the second POST completes the
// sign-in in the browser holding its login cookie, and in any other ends
// it without signing anyone in.
func TestAssertionPost(t *testing.T) {
	f := newFixture(t)
	ada := samltest.User{NameID: "ada-0001", UserEmail: "ada@example.com", UserCommonName: "Ada Lovelace"}
	for _, tc := range []struct {
		name string
		// post is the form posted to the ACS and the cookie it carries,
		// for a sign-in b begun at corp and the IdP's answer to it.
		post     func(b begun, answer url.Values) (url.Values, Cookie)
		check    func(t *testing.T, b begun, answer url.Values, out Outcome)
		consumed bool
		cleared  bool
		counted  string
	}{
		{name: "the upstream's cross-site POST is posted again",
			post: func(b begun, answer url.Values) (url.Values, Cookie) { return answer, Cookie{} },
			check: func(t *testing.T, b begun, answer url.Values, out Outcome) {
				if out.Err != nil || out.Status != http.StatusOK || out.Form == nil || out.Form.Action != testIssuer+"/auth/saml/corp/acs" ||
					out.Form.Fields[ResubmitField] != "1" || out.Form.Fields["RelayState"] != b.state ||
					out.Form.Fields["SAMLResponse"] != answer.Get("SAMLResponse") || len(out.Form.Fields) != 3 {
					t.Fatalf("outcome = %+v", out)
				}
			}},
		{name: "the second POST with the login cookie completes",
			post: func(b begun, answer url.Values) (url.Values, Cookie) {
				answer.Set(ResubmitField, "1")
				return answer, b.cookie
			},
			check: func(t *testing.T, b begun, answer url.Values, out Outcome) {
				checkCodeRedirect(t, out, http.StatusSeeOther)
				if c, _ := sessionCookieOf(out); c.Name == "" {
					t.Fatal("no browser-session cookie after a SAML sign-in")
				}
			},
			consumed: true, cleared: true, counted: "corp success"},
		{name: "the second POST in another browser signs nobody in",
			post: func(b begun, answer url.Values) (url.Values, Cookie) {
				answer.Set(ResubmitField, "1")
				return answer, Cookie{}
			},
			check: func(t *testing.T, b begun, answer url.Values, out Outcome) {
				if k := kindOf(out); k != fault.OtherBrowser {
					t.Fatalf("outcome = %+v", out)
				}
			},
			consumed: true, cleared: true, counted: "corp state_rejected"},
		{name: "a first POST that is no answer",
			post: func(b begun, answer url.Values) (url.Values, Cookie) {
				return url.Values{"SAMLResponse": {"!!not base64!!"}, "RelayState": {b.state}}, Cookie{}
			},
			check: func(t *testing.T, b begun, answer url.Values, out Outcome) {
				if k := kindOf(out); k != fault.UpstreamInvalid || out.Form != nil {
					t.Fatalf("outcome = %+v", out)
				}
			}},
		{name: "a second POST that is no answer still ends the sign-in",
			post: func(b begun, answer url.Values) (url.Values, Cookie) {
				return url.Values{"SAMLResponse": {"!!not base64!!"}, "RelayState": {b.state}, ResubmitField: {"1"}}, b.cookie
			},
			check: func(t *testing.T, b begun, answer url.Values, out Outcome) {
				if k := kindOf(out); k != fault.UpstreamInvalid {
					t.Fatalf("outcome = %+v", out)
				}
			},
			consumed: true, cleared: true, counted: "corp error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := f.begin(t, "corp")
			answer, err := f.idp.Respond(b.upstream, samltest.Options{User: ada, SignAssertion: true, SignResponse: true})
			if err != nil {
				t.Fatal(err)
			}
			form, cookie := tc.post(b, answer.Values())
			n := f.counted()
			out := f.s.AssertionPost(ctx, "corp", request("/auth/saml/corp/acs", form, cookie), oauth.RequestMeta{RequestID: tc.name})
			tc.check(t, b, answer.Values(), out)
			checkCleared(t, out, b.state, tc.cleared)
			p, err := f.store.FindPendingLogin(ctx, stateHash(b.state))
			if err != nil || (p.ConsumedAt != nil) != tc.consumed {
				t.Errorf("pending login %+v, %v; want consumed %v", p, err, tc.consumed)
			}
			var want []string
			if tc.counted != "" {
				want = []string{tc.counted}
			}
			if got := f.countedSince(n); !slices.Equal(got, want) {
				t.Errorf("counted %v, want %v", got, want)
			}
		})
	}
	t.Run("not a cross-site POST provider", func(t *testing.T) {
		out := f.s.AssertionPost(context.Background(), "dev", request("/auth/saml/dev/acs", url.Values{"SAMLResponse": {"x"}}, Cookie{}), oauth.RequestMeta{})
		if k := kindOf(out); k != fault.UnknownProvider {
			t.Fatalf("outcome = %+v", out)
		}
	})
}

func TestMethodsAndMetadata(t *testing.T) {
	f := newFixture(t)
	var got []string
	for _, m := range f.s.Methods() {
		got = append(got, m.Name+" "+m.Type+" "+m.CallbackURL)
	}
	want := []string{"dev dev " + testIssuer + "/auth/callback/dev", "up oidc " + testIssuer + "/auth/callback/up",
		"corp saml " + testIssuer + "/auth/callback/corp"}
	if !slices.Equal(got, want) {
		t.Fatalf("methods = %q", got)
	}
	if doc, mt, err := f.s.Metadata(context.Background(), "corp"); err != nil || mt != "application/samlmetadata+xml" ||
		!strings.Contains(string(doc), testIssuer+"/auth/saml/corp/acs") {
		t.Fatalf("corp metadata = %q %v", mt, err)
	}
	for _, name := range []string{"dev", "nope"} {
		if _, _, err := f.s.Metadata(context.Background(), name); !errors.Is(err, ErrNoMetadata) {
			t.Errorf("%s metadata: %v", name, err)
		}
	}
}
