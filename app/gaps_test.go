package app_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// Tests of attack classes the threat model listed without a test: rate
// limits on the upstream callbacks, a client's allowed providers, a
// foreign organization hint, confidential clients without their secret,
// client-id enumeration, codes at rest, and redirect_uri omitted.

// TestCallbackAndACSRateLimits: /auth/callback/:provider (GET and POST)
// and the SAML ACS answer 429 with Retry-After once a client IP has spent
// its budget, whatever the request carried; other IPs and the sign-in
// bucket are not affected.
func TestCallbackAndACSRateLimits(t *testing.T) {
	idp := samltest.New(t)
	s := apptest.Start(t, apptest.Options{YAML: samlYAML(idp.URL, ""),
		Env: map[string]string{"GATEHOUSE_RATE_LIMIT": "3", "GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"}})
	spend := func(method, target, ip string) {
		t.Helper()
		for i := 0; i < 3; i++ {
			if resp := fromIP(t, method, target, ip); resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("%s %s request %d refused within the budget", method, target, i+1)
			}
		}
		resp := fromIP(t, method, target, ip)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s over the budget = %d, Retry-After %q; want 429 with Retry-After", method, target, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	callback := s.URL + "/auth/callback/dev?state=forged-state-value"
	acs := s.URL + "/auth/saml/corp/acs"

	spend(http.MethodGet, callback, "203.0.113.1")
	if resp := fromIP(t, http.MethodPost, s.URL+"/auth/callback/dev", "203.0.113.1"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("POST callback from the same IP = %d, want 429", resp.StatusCode)
	}
	spend(http.MethodPost, s.URL+"/auth/callback/corp", "203.0.113.2")
	spend(http.MethodPost, acs, "203.0.113.3")

	for _, tc := range []struct{ method, target, ip string }{
		{http.MethodGet, callback, "203.0.113.9"},
		{http.MethodPost, acs, "203.0.113.10"},
		{http.MethodGet, s.URL + "/auth/login", "203.0.113.1"},
		{http.MethodGet, s.URL + "/auth/login", "203.0.113.3"},
	} {
		if resp := fromIP(t, tc.method, tc.target, tc.ip); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("%s %s from %s refused by another bucket", tc.method, tc.target, tc.ip)
		}
	}
}

// authorizeURL is an authorization request of client to redirectURI
// ("" leaves it out), with PKCE, through provider ("" leaves it out).
func authorizeURL(base, client, redirectURI, provider string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "state": {"st"}, "scope": {"openid"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	if redirectURI != "" {
		q.Set("redirect_uri", redirectURI)
	}
	if provider != "" {
		q.Set("provider", provider)
	}
	return base + "/auth/login?" + q.Encode()
}

// TestClientAllowedProviders: a client's allowed_providers holds at the
// authorization endpoint (a provider outside the list goes back to the
// client as invalid_request before any sign-in starts; without provider,
// only listed providers are offered) and in token exchange (refused before
// the subject token is looked at: nobody is provisioned).
func TestClientAllowedProviders(t *testing.T) {
	t.Run("authorization endpoint", func(t *testing.T) {
		s := apptest.Start(t, apptest.Options{YAML: flowYAML + `  - id: narrow
    public: true
    redirect_uris: [http://127.0.0.1:9/narrow]
    allowed_providers: [corp-dev]
providers:
  - {name: corp-dev, type: dev, display_name: Corporate test login}
`})
		for _, provider := range []string{"dev", "nope"} {
			resp, err := noRedirects.Get(authorizeURL(s.URL, "narrow", "http://127.0.0.1:9/narrow", provider))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), "http://127.0.0.1:9/narrow?") ||
				loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "st" || loginCookie(resp) != nil {
				t.Fatalf("provider %s outside the client's list = %d %s (cookie %v)", provider, resp.StatusCode, loc, loginCookie(resp))
			}
		}
		// Without provider: straight to the one it may use, no chooser.
		resp, err := noRedirects.Get(authorizeURL(s.URL, "narrow", "http://127.0.0.1:9/narrow", ""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc.Path != "/auth/callback/corp-dev" {
			t.Fatalf("without provider = %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// A client without the list is offered both.
		resp, body := get(t, authorizeURL(s.URL, "spa", "http://127.0.0.1:9/callback", ""))
		if resp.StatusCode != 200 || !strings.Contains(body, "provider=corp-dev") || !strings.Contains(body, "provider=dev") {
			t.Fatalf("chooser for a client without allowed_providers = %d", resp.StatusCode)
		}
		// The allowed one signs in.
		target := newBrowser(t).signIn(authorizeURL(s.URL, "narrow", "http://127.0.0.1:9/narrow", "corp-dev"), "ada@example.com")
		if target.Query().Get("code") == "" {
			t.Fatalf("allowed provider: %s", target)
		}
	})

	t.Run("token exchange", func(t *testing.T) {
		up := startUpstreams(t)
		narrow := `  - id: okta-only
    public: true
    redirect_uris: [http://127.0.0.1:9/okta-only]
    grant_types: [authorization_code, refresh_token, "urn:ietf:params:oauth:grant-type:token-exchange"]
    allowed_providers: [okta]
providers:`
		yaml := strings.Replace(upstreamYAML(up.okta, up.google, up.tenantA, up.tenantB), "providers:", narrow, 1)
		s := apptest.Start(t, apptest.Options{YAML: yaml})
		form := exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType)
		form.Set("client_id", "okta-only")
		status, out := tokenPost(t, s, form, "", "")
		if status != 400 || out["error"] != "invalid_request" || out["access_token"] != nil {
			t.Fatalf("exchange at a provider outside the client's list = %d %v", status, out)
		}
		var identities int64
		s.DB.Raw("SELECT COUNT(*) FROM identities WHERE provider = ?", "tenant-a").Scan(&identities)
		if identities != 0 {
			t.Fatalf("a refused exchange provisioned %d identities", identities)
		}
		// The same token through a client without the list, and the allowed provider through this one.
		if status, out := tokenPost(t, s, exchangeForm("tenant-a", up.tenantA.AccessToken(upstreamAPI, nil), accessTokenType), "", ""); status != 200 {
			t.Fatalf("exchange by a client without allowed_providers = %d %v", status, out)
		}
		form = exchangeForm("okta", up.okta.IDToken(nil), idTokenType)
		form.Set("client_id", "okta-only")
		if status, out := tokenPost(t, s, form, "", ""); status != 200 {
			t.Fatalf("exchange at the allowed provider = %d %v", status, out)
		}
	})
}

// TestOrganizationHintOfAnotherOrganization: `organization=` at
// /auth/login naming an organization the person is not an active member
// of (someone else's, one where their membership is suspended, or a
// made-up id) grants nothing: no membership is created or reactivated,
// the session starts in an organization the person does belong to (or
// none), and the token carries no grant of the named one.
func TestOrganizationHintOfAnotherOrganization(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, signIn := provisioningServer(t, pg)
			ctx := t.Context()
			signIn("dev", "bob@example.com", "team-red", "")
			red, err := s.Store.FindOrganizationBySlug(ctx, "team-red")
			if err != nil {
				t.Fatal(err)
			}
			memberships := func(email string) map[string]string {
				t.Helper()
				var rows []struct{ OrganizationID, Status string }
				s.DB.Raw("SELECT m.organization_id, m.status FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = ?", email).Scan(&rows)
				out := map[string]string{}
				for _, r := range rows {
					out[r.OrganizationID] = r.Status
				}
				return out
			}

			// Someone else's organization.
			tok := signIn("dev", "ada@example.com", "eng", red.ID)
			acme, err := s.Store.FindOrganizationBySlug(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			org, roles, _ := grants(t, s, tok.AccessToken)
			if org != acme.ID || len(roles) != 1 || roles[0] != "member" {
				t.Fatalf("hint of another organization: token org %s roles %v, want acme member", org, roles)
			}
			if m := memberships("ada@example.com"); len(m) != 1 || m[acme.ID] != "active" {
				t.Fatalf("memberships after the hint = %v", m)
			}
			if m := me(t, s, tok.AccessToken); m["active_org_id"] != acme.ID || len(asSlice(m["organizations"])) != 1 {
				t.Fatalf("/auth/me = %v", m)
			}
			// Refreshing does not drift into it either.
			if status, out := refresh(t, s, tok, ""); status != 200 {
				t.Fatalf("refresh = %d %v", status, out)
			}
			if org, _, _ := grants(t, s, tok.AccessToken); org != acme.ID {
				t.Fatalf("after refresh: org %s", org)
			}

			// A person in no organization at all.
			tok = signIn("dev", "carol@example.com", "", red.ID)
			if org, roles, perms := grants(t, s, tok.AccessToken); org != "" || len(roles) != 0 || len(perms) != 0 {
				t.Fatalf("hint without any membership: org %q roles %v permissions %v", org, roles, perms)
			}
			if m := memberships("carol@example.com"); len(m) != 0 {
				t.Fatalf("memberships of a person in no organization = %v", m)
			}

			// A suspended (hand-made) membership is not reactivated by naming it.
			signIn("dev", "ada@example.com", "eng,team-red", "")
			s.DB.Exec("UPDATE memberships SET status = 'suspended', source = 'manual' WHERE organization_id = ? AND user_id = (SELECT id FROM users WHERE email = ?)",
				red.ID, "ada@example.com")
			tok = signIn("dev", "ada@example.com", "eng", red.ID)
			if org, _, _ := grants(t, s, tok.AccessToken); org != acme.ID {
				t.Fatalf("hint of a suspended membership: org %s, want acme", org)
			}
			if m := memberships("ada@example.com"); m[red.ID] != "suspended" {
				t.Fatalf("the suspended membership changed: %v", m)
			}

			// A made-up id.
			tok = signIn("dev", "ada@example.com", "eng", "org-that-does-not-exist")
			if org, _, _ := grants(t, s, tok.AccessToken); org != acme.ID {
				t.Fatalf("made-up hint: org %s", org)
			}
		})
	}
}

// basicAuth is an Authorization header for client_secret_basic.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// tokenRaw posts body to the token endpoint with an optional Authorization
// header and returns the answer and its body as they are.
func tokenRaw(t *testing.T, s *apptest.Server, body, authorization string) (*http.Response, string) {
	t.Helper()
	h := []string{"Content-Type", "application/x-www-form-urlencoded"}
	if authorization != "" {
		h = append(h, "Authorization", authorization)
	}
	return send(t, http.MethodPost, s.URL+"/auth/token", body, h...)
}

// TestConfidentialClientNeedsItsSecret: a confidential client's
// authorization code or refresh token presented without the client's
// secret, with a wrong or empty one, or without any client is
// invalid_client (401) and spends nothing: the code is still redeemable,
// the refresh token is not rotated (with no reuse grace, a rotation would
// make its next use a reuse), and the session stays live.
func TestConfidentialClientNeedsItsSecret(t *testing.T) {
	const secret = "backend-secret-0123456789"
	const redirect = "http://127.0.0.1:9/backend/callback"
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, _, _ := startFlowServer(t, pg, map[string]string{"GATEHOUSE_REFRESH_REUSE_GRACE": "1ns"})
			q := url.Values{"response_type": {"code"}, "client_id": {"backend"}, "redirect_uri": {redirect},
				"state": {"st"}, "scope": {"openid"}, "provider": {"dev"}}
			code := newBrowser(t).signIn(s.URL+"/auth/login?"+q.Encode(), "ada@example.com").Query().Get("code")
			if code == "" {
				t.Fatal("no code")
			}
			count := func(query string) int64 {
				var n int64
				s.DB.Raw(query).Scan(&n)
				return n
			}
			unauthenticated := []struct{ name, form, auth string }{
				{"no client at all", "", ""},
				{"client_id without secret", "client_id=backend", ""},
				{"empty secret (post)", "client_id=backend&client_secret=", ""},
				{"wrong secret (post)", "client_id=backend&client_secret=wrong-secret-0123456789", ""},
				{"wrong secret (basic)", "", basicAuth("backend", "wrong-secret-0123456789")},
				{"empty secret (basic)", "", basicAuth("backend", "")},
				{"secret with a suffix (basic)", "", basicAuth("backend", secret+"x")},
				{"secret's prefix (basic)", "", basicAuth("backend", secret[:len(secret)-1])},
			}
			refuse := func(grant string) {
				t.Helper()
				for _, tc := range unauthenticated {
					body := grant
					if tc.form != "" {
						body += "&" + tc.form
					}
					resp, raw := tokenRaw(t, s, body, tc.auth)
					if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(raw, `"error":"invalid_client"`) || strings.Contains(raw, "access_token") {
						t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, raw)
					}
				}
			}

			codeGrant := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}.Encode()
			refuse(codeGrant)
			// Another (public) client naming itself is no better: the code is not its own.
			if resp, raw := tokenRaw(t, s, codeGrant+"&client_id=spa", ""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(raw, "invalid_grant") {
				t.Fatalf("the public client with the backend's code = %d %s", resp.StatusCode, raw)
			}
			if used := count("SELECT COUNT(*) FROM authorization_codes WHERE used_at IS NOT NULL"); used != 0 {
				t.Fatalf("refused redemptions used up %d codes", used)
			}
			status, tok := tokenPost(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}, "backend", secret)
			if status != 200 || tok["refresh_token"] == nil {
				t.Fatalf("redemption with the secret after the refusals = %d %v", status, tok)
			}

			rt := tok["refresh_token"].(string)
			rows := count("SELECT COUNT(*) FROM refresh_tokens")
			refreshGrant := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()
			refuse(refreshGrant)
			if after := count("SELECT COUNT(*) FROM refresh_tokens"); after != rows {
				t.Fatalf("refused refreshes wrote refresh tokens: %d, then %d", rows, after)
			}
			if info := introspect(t, s, tok["access_token"].(string)); info["active"] != true {
				t.Fatalf("refused refreshes ended the session: %v", info)
			}
			status, out := tokenPost(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "backend", secret)
			if status != 200 || out["refresh_token"] == rt {
				t.Fatalf("refresh with the secret after the refusals = %d %v (a refused attempt rotated the token)", status, out)
			}
			if replays := count("SELECT COUNT(*) FROM audit_events WHERE type IN ('refresh_token.reuse', 'authorization_code.replay')"); replays != 0 {
				t.Fatalf("refused attempts were taken for %d replays", replays)
			}
		})
	}
}

// TestClientIDEnumeration: at the token endpoint an unknown client_id and
// a known client with a wrong, empty or superfluous secret get the same
// status, headers and body, whatever the grant and the authentication
// method, so the answer does not tell which client ids exist.
func TestClientIDEnumeration(t *testing.T) {
	s, _, _ := startFlowServer(t, false, nil)
	for _, grant := range []string{"grant_type=client_credentials", "grant_type=authorization_code&code=ghc_made-up&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
		"grant_type=refresh_token&refresh_token=ghr_made-up"} {
		t.Run(strings.SplitN(strings.TrimPrefix(grant, "grant_type="), "&", 2)[0], func(t *testing.T) {
			type answer struct {
				status                      int
				body, challenge, contentTyp string
			}
			var first *answer
			var firstName string
			for _, tc := range []struct{ name, form, auth string }{
				{"unknown client (basic)", "", basicAuth("no-such-client", "some-secret-0123456789")},
				{"known client, wrong secret (basic)", "", basicAuth("backend", "wrong-secret-0123456789")},
				{"unknown client (post)", "client_id=no-such-client&client_secret=some-secret-0123456789", ""},
				{"known client, wrong secret (post)", "client_id=backend&client_secret=wrong-secret-0123456789", ""},
				{"unknown client without secret", "client_id=no-such-client", ""},
				{"known client without secret", "client_id=backend", ""},
				{"public client with a secret", "", basicAuth("spa", "some-secret-0123456789")},
				{"unknown client, empty secret (basic)", "", basicAuth("no-such-client", "")},
			} {
				body := grant
				if tc.form != "" {
					body += "&" + tc.form
				}
				resp, raw := tokenRaw(t, s, body, tc.auth)
				got := &answer{resp.StatusCode, raw, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type")}
				if got.status != http.StatusUnauthorized || !strings.Contains(raw, `"invalid_client"`) {
					t.Fatalf("%s: %d %s", tc.name, got.status, raw)
				}
				if first == nil {
					first, firstName = got, tc.name
					continue
				}
				if *got != *first {
					t.Fatalf("answers differ:\n%s: %+v\n%s: %+v", firstName, *first, tc.name, *got)
				}
			}
		})
	}
}

// TestAuthorizationCodesStoredOnlyAsHashes: the authorization_codes row
// of an issued code holds its SHA-256 and nothing of the code itself,
// before and after redemption; neither do audit events.
func TestAuthorizationCodesStoredOnlyAsHashes(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, conf, _ := startFlowServer(t, pg, nil)
			verifier := oauth2.GenerateVerifier()
			code := newBrowser(t).signIn(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("provider", "dev")),
				"ada@example.com").Query().Get("code")
			secret := strings.TrimPrefix(code, "ghc_")
			if secret == code || len(secret) < 32 {
				t.Fatalf("code %q is not a ghc_ code", code)
			}
			sum := sha256.Sum256([]byte(code))
			check := func(when string) {
				t.Helper()
				for _, table := range []string{"authorization_codes", "audit_events", "sessions"} {
					rows, err := s.DB.Raw("SELECT * FROM " + table).Rows()
					if err != nil {
						t.Fatal(err)
					}
					cols, _ := rows.Columns()
					hashes := 0
					for rows.Next() {
						vals := make([]any, len(cols))
						ptrs := make([]any, len(cols))
						for i := range vals {
							ptrs[i] = &vals[i]
						}
						if err := rows.Scan(ptrs...); err != nil {
							t.Fatal(err)
						}
						for i, v := range vals {
							text := fmt.Sprint(v)
							if b, ok := v.([]byte); ok {
								text = string(b)
							}
							if strings.Contains(text, secret[:16]) {
								t.Fatalf("%s: %s.%s holds the code", when, table, cols[i])
							}
							if cols[i] == "code_hash" && text == hex.EncodeToString(sum[:]) {
								hashes++
							}
						}
					}
					rows.Close()
					if table == "authorization_codes" && hashes != 1 {
						t.Fatalf("%s: %d rows hold the code's SHA-256, want 1", when, hashes)
					}
				}
			}
			check("issued")
			if _, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err != nil {
				t.Fatal(err)
			}
			check("redeemed")
		})
	}
}

// TestRedirectURIOmitted: a client with several registered redirect URIs
// must name one: without redirect_uri the authorization request is an
// error page, never a redirect, and starts no sign-in; at the token
// endpoint the code's redirect_uri is required and an omitted one is
// invalid_grant without using the code up. A client with exactly one may
// omit it at both (OAuth 2.1 §2.3.2, RFC 6749 §3.1.2.3).
func TestRedirectURIOmitted(t *testing.T) {
	s := apptest.Start(t, apptest.Options{YAML: flowYAML + `  - id: multi
    public: true
    redirect_uris: [http://127.0.0.1:9/a, http://127.0.0.1:9/b]
`})
	resp, err := noRedirects.Get(authorizeURL(s.URL, "multi", "", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || loginCookie(resp) != nil ||
		!strings.Contains(string(page), "Invalid redirect address") {
		t.Fatalf("omitted redirect_uri with two registered = %d %q (cookie %v)", resp.StatusCode, resp.Header.Get("Location"), loginCookie(resp))
	}

	signIn := func(client, redirectURI string) (code, verifier string) {
		t.Helper()
		verifier = oauth2.GenerateVerifier()
		q := url.Values{"response_type": {"code"}, "client_id": {client}, "state": {"st"}, "provider": {"dev"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		if redirectURI != "" {
			q.Set("redirect_uri", redirectURI)
		}
		return newBrowser(t).signIn(s.URL+"/auth/login?"+q.Encode(), "ada@example.com").Query().Get("code"), verifier
	}
	redeem := func(client, code, verifier, redirectURI string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code}, "code_verifier": {verifier}}
		if redirectURI != "" {
			form.Set("redirect_uri", redirectURI)
		}
		return tokenPost(t, s, form, "", "")
	}

	code, verifier := signIn("multi", "http://127.0.0.1:9/b")
	if status, out := redeem("multi", code, verifier, ""); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("omitted redirect_uri at the token endpoint, two registered = %d %v", status, out)
	}
	if status, out := redeem("multi", code, verifier, "http://127.0.0.1:9/a"); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("the other registered redirect_uri = %d %v", status, out)
	}
	if status, out := redeem("multi", code, verifier, "http://127.0.0.1:9/b"); status != 200 {
		t.Fatalf("the code's redirect_uri after the refusals = %d %v", status, out)
	}

	// One registered URI: it may be left out at either end.
	for _, tc := range []struct{ authorize, token string }{
		{"", ""}, {"http://127.0.0.1:9/callback", ""}, {"", "http://127.0.0.1:9/callback"},
	} {
		code, verifier := signIn("spa", tc.authorize)
		if status, out := redeem("spa", code, verifier, tc.token); status != 200 {
			t.Fatalf("one registered URI, authorize %q token %q = %d %v", tc.authorize, tc.token, status, out)
		}
	}
}
