package app_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/crewjam/saml"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// samlYAML configures a SAML provider "corp" against idpURL; the SP key is
// generated and stored by Gatehouse. extra is appended to the provider.
func samlYAML(idpURL, extra string) string {
	return flowYAML + `
providers:
  - name: corp
    type: saml
    display_name: Corp SSO
    idp_metadata_url: ` + idpURL + `/metadata
    insecure_http_metadata: true
    trust_email: true
    trusted_email: true
    attributes: {groups: eduPersonAffiliation}
` + extra
}

// startSAML runs Gatehouse with the SAML provider and registers its SP
// metadata, fetched from Gatehouse, at the IdP.
func startSAML(t *testing.T, pg bool, extra string) (*apptest.Server, *samltest.IdP, *oauth2.Config) {
	t.Helper()
	idp := samltest.New(t)
	s := apptest.Start(t, apptest.Options{YAML: samlYAML(idp.URL, extra), Postgres: pg})
	md := idp.TrustSPMetadataURL(t, s.URL+"/auth/saml/corp/metadata")
	if md.EntityID != s.URL+"/auth/saml/corp/metadata" {
		t.Fatalf("SP entity id = %s", md.EntityID)
	}
	provider, err := oidc.NewProvider(context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: "spa", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:9/callback",
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	return s, idp, conf
}

// toIdP starts a sign-in at provider corp and returns the IdP's answer for
// the AuthnRequest, shaped by opts.
func (b *browser) toIdP(idp *samltest.IdP, authURL string, opts samltest.Options) samltest.Form {
	b.t.Helper()
	resp, _ := b.get(authURL)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, idp.SSOURL+"?SAMLRequest=") {
		b.t.Fatalf("authorize = %d %s", resp.StatusCode, loc)
	}
	form, err := idp.Respond(loc, opts)
	if err != nil {
		b.t.Fatal(err)
	}
	return form
}

// crossSitePost posts as the IdP's page does: from another site, so
// the browser sends no SameSite=Lax cookie with it. (A cookie jar does not
// model SameSite; this is the request without the jar's cookies.)
func (b *browser) crossSitePost(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	bare := &browser{t: b.t, client: &http.Client{Transport: b.client.Transport, CheckRedirect: b.client.CheckRedirect}}
	return bare.post(u, form)
}

var (
	autoPostAction = regexp.MustCompile(`<form id="autopost" method="post" action="([^"]*)">`)
	autoPostField  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// autoPost reads Gatehouse's auto-submitting page: where it posts, and
// what.
func autoPost(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := autoPostAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("not an auto-submitting page: %s", page)
	}
	fields := url.Values{}
	for _, f := range autoPostField.FindAllStringSubmatch(page, -1) {
		fields.Add(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
	}
	return html.UnescapeString(m[1]), fields
}

// acs delivers the IdP's form as a browser does: the IdP's page posts it
// cross-site, Gatehouse answers with a page that posts it again from its
// own origin, and that same-site POST, cookies and all, gets the outcome
// (the client redirect, or an error page).
func (b *browser) acs(form samltest.Form) (*http.Response, string) {
	b.t.Helper()
	resp, body := b.crossSitePost(form.URL, form.Values())
	if resp.StatusCode != http.StatusOK {
		return resp, body
	}
	action, fields := autoPost(b.t, body)
	return b.post(action, fields)
}

type samlAssertion = saml.Assertion

var samlAda = samltest.User{NameID: "ada-0001", UserEmail: "ada@example.com", UserCommonName: "Ada Lovelace",
	Groups: []string{"engineering"}}

// TestSAMLSignInWithStockClient: a full sign-in through an in-process IdP
// (crewjam/saml's IdentityProvider behind its real HTTP endpoints)
// provisions the user and ends with Gatehouse tokens a stock OIDC client
// accepts.
func TestSAMLSignInWithStockClient(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			s, idp, conf := startSAML(t, pg, `org_sync:
  auto_create_orgs: true
  rules:
    - {match: "saml:group:engineering", org: engineering, role: member}
`)
			idp.SetDefault(samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true, Encrypt: true})
			ctx := context.Background()
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("client-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"),
				oauth2.SetAuthURLParam("provider", "corp"))
			b := newBrowser(t)

			resp, _ := b.get(authURL)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("authorize = %d", resp.StatusCode)
			}
			resp, page := b.get(resp.Header.Get("Location")) // the IdP's SSO endpoint
			form, err := samltest.ParseFormPage(page)
			if err != nil || resp.StatusCode != 200 || form.URL != s.URL+"/auth/saml/corp/acs" {
				t.Fatalf("IdP answered %d %q: %v", resp.StatusCode, form.URL, err)
			}
			// The IdP's cross-site POST is answered with a page that posts
			// the same answer again, from Gatehouse's origin.
			resp, page = b.crossSitePost(form.URL, form.Values())
			action, fields := autoPost(t, page)
			if resp.StatusCode != http.StatusOK || action != form.URL || fields.Get("SAMLResponse") != form.SAMLResponse ||
				fields.Get("RelayState") != form.RelayState || fields.Get("gatehouse_resubmit") != "1" || len(fields) != 3 {
				t.Fatalf("ACS, cross-site = %d, posts %v to %s", resp.StatusCode, fields, action)
			}
			// The same-site POST carries the login cookie and completes.
			resp, body := b.post(action, fields)
			target, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || target.Query().Get("state") != "client-state" || target.Query().Get("code") == "" {
				t.Fatalf("callback = %d %s %s", resp.StatusCode, target, body)
			}
			tok, err := conf.Exchange(ctx, target.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			oidcProvider, _ := oidc.NewProvider(ctx, s.URL)
			idt, err := oidcProvider.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, tok.Extra("id_token").(string))
			if err != nil || idt.Nonce != "n-1" {
				t.Fatalf("ID token: %v", err)
			}
			var claims struct {
				Email         string   `json:"email"`
				EmailVerified bool     `json:"email_verified"`
				Name          string   `json:"name"`
				AMR           []string `json:"amr"`
			}
			_ = idt.Claims(&claims)
			if claims.Email != "ada@example.com" || !claims.EmailVerified || claims.Name != "Ada Lovelace" || strings.Join(claims.AMR, ",") != "pwd" {
				t.Fatalf("ID token claims = %+v", claims)
			}
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, body = b.do(req)
			if resp.StatusCode != 200 || !strings.Contains(body, `"provider":"corp","subject":"ada-0001"`) {
				t.Fatalf("/auth/me = %d %s", resp.StatusCode, body)
			}
			// The SAML group was synced: the token carries the org and role.
			org, roles, perms := grants(t, s, tok.AccessToken)
			var slug string
			s.DB.Raw("SELECT slug FROM organizations WHERE id = ?", org).Scan(&slug)
			if slug != "engineering" || strings.Join(roles, ",") != "member" || len(perms) == 0 {
				t.Fatalf("synced grants: org %q (%s) roles %v permissions %v", org, slug, roles, perms)
			}
			// The same answer again is refused, with an audit event: its
			// sign-in took one answer. (A replayed assertion under another
			// sign-in fails InResponseTo; the assertion-id replay cache is
			// tested in providers and with IdP-initiated sign-in.)
			resp, body = b.acs(form)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
				t.Fatalf("replayed response = %d %s", resp.StatusCode, body)
			}
			var replays int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type = ?", "login.state_rejected").Scan(&replays)
			if replays != 1 {
				t.Fatalf("replay audit events = %d", replays)
			}
			// A second sign-in of the same person is the same user.
			verifier2 := oauth2.GenerateVerifier()
			form = b.toIdP(idp, conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier2), oauth2.SetAuthURLParam("provider", "corp"),
				oauth2.SetAuthURLParam("prompt", "login")),
				samltest.Options{User: samlAda, SignAssertion: true})
			resp, _ = b.acs(form)
			tok2, err := conf.Exchange(ctx, mustLocation(t, resp).Query().Get("code"), oauth2.VerifierOption(verifier2))
			if err != nil {
				t.Fatal(err)
			}
			idt2, _ := oidcProvider.Verifier(&oidc.Config{ClientID: "spa"}).Verify(ctx, tok2.Extra("id_token").(string))
			if idt2.Subject != idt.Subject {
				t.Fatal("the second SAML sign-in made another user")
			}
		})
	}
}

func mustLocation(t *testing.T, resp *http.Response) *url.URL {
	t.Helper()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("no redirect: %d", resp.StatusCode)
	}
	return u
}

// TestSAMLRefusals: what the ACS refuses, as pages that say what failed
// without echoing XML, each with an audit event.
func TestSAMLRefusals(t *testing.T) {
	s, idp, conf := startSAML(t, false, "")
	authURL := func() string {
		return conf.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("provider", "corp"))
	}
	signed := samltest.Options{User: samlAda, SignAssertion: true}
	cases := []struct {
		name  string
		form  func(b *browser) samltest.Form
		page  string
		audit string
	}{
		{"unsigned", func(b *browser) samltest.Form { return b.toIdP(idp, authURL(), samltest.Options{User: samlAda}) },
			"not signed with its certificate", "saml signature"},
		{"tampered attribute", func(b *browser) samltest.Form {
			o := signed
			o.Tamper = samltest.Replace(t, ">ada@example.com<", ">mallory@example.com<")
			return b.toIdP(idp, authURL(), o)
		}, "changed after signing", "saml signature"},
		{"RSA-SHA1 signature", func(b *browser) samltest.Form {
			o := signed
			o.SignatureMethod = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
			return b.toIdP(idp, authURL(), o)
		}, "signed its answer with SHA-1", "saml algorithm"},
		{"wrong audience", func(b *browser) samltest.Form {
			o := signed
			o.EditAssertion = func(a *samlAssertion) { a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example" }
			return b.toIdP(idp, authURL(), o)
		}, "meant for another service", "saml audience"},
		{"unknown RelayState", func(b *browser) samltest.Form {
			f := b.toIdP(idp, authURL(), signed)
			f.RelayState = "forged-relay-state-000000000000000000000"
			return f
		}, "expired or was already used", "login.state_rejected"},
		{"IdP-initiated while disabled", func(b *browser) samltest.Form {
			f, err := idp.Unsolicited(s.URL+"/auth/saml/corp/metadata", "", samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true})
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "not enabled for this service", "login.state_rejected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			form := tc.form(b)
			var before int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type LIKE ? OR details LIKE ?", tc.audit, "%"+tc.audit+"%").Scan(&before)
			resp, body := b.acs(form)
			if resp.StatusCode < 400 || !strings.Contains(body, tc.page) || resp.Header.Get("Location") != "" {
				t.Fatalf("= %d %s", resp.StatusCode, body)
			}
			if strings.Contains(body, "&lt;saml") || strings.Contains(body, "<saml") || strings.Contains(body, "ada-0001") {
				t.Fatalf("the page echoes the response: %s", body)
			}
			var after int64
			s.DB.Raw("SELECT COUNT(*) FROM audit_events WHERE type LIKE ? OR details LIKE ?", tc.audit, "%"+tc.audit+"%").Scan(&after)
			if after != before+1 {
				t.Fatalf("audit events matching %q: %d, want %d", tc.audit, after, before+1)
			}
		})
	}
	t.Run("an answer posted by another browser does not sign that browser in", func(t *testing.T) {
		// Login CSRF: the attacker's valid answer, posted from the victim's
		// browser, which holds no login cookie for it.
		attacker, victim := newBrowser(t), newBrowser(t)
		form := attacker.toIdP(idp, authURL(), signed)
		resp, body := victim.acs(form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "started in another browser") {
			t.Fatalf("victim = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("the callback never completes a SAML sign-in", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := b.get(authURL())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		callback := s.URL + "/auth/callback/corp?" + url.Values{"state": {loc.Query().Get("RelayState")}}.Encode()
		if resp, body := b.get(callback); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
			t.Fatalf("callback with the login cookie = %d %s", resp.StatusCode, body)
		}
		// Nor does a POST to it carrying an answer.
		form := b.toIdP(idp, authURL(), signed)
		post := form.Values()
		post.Set("state", form.RelayState)
		if resp, body := b.post(s.URL+"/auth/callback/corp", post); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
			t.Fatalf("answer posted to the callback = %d %s", resp.StatusCode, body)
		}
		// (The failed callback cleared that sign-in's login cookie.) The
		// ACS takes an answer to a sign-in, once.
		form = b.toIdP(idp, authURL(), signed)
		if resp, body := b.acs(form); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in = %d %s", resp.StatusCode, body)
		}
		if resp, body := b.acs(form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
			t.Fatalf("the answer again = %d %s", resp.StatusCode, body)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		resp, body := newBrowser(t).get(s.URL + "/auth/saml/corp/metadata")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/samlmetadata+xml" ||
			!strings.Contains(body, s.URL+"/auth/saml/corp/acs") {
			t.Fatalf("metadata = %d %s", resp.StatusCode, body)
		}
		if resp, _ := newBrowser(t).get(s.URL + "/auth/saml/dev/metadata"); resp.StatusCode != 404 {
			t.Fatalf("metadata of a non-SAML provider = %d", resp.StatusCode)
		}
	})
}

// TestSAMLIdPInitiated: when enabled, an unsolicited answer signs the
// person in to the configured confidential client, and everything but
// InResponseTo is still enforced.
func TestSAMLIdPInitiated(t *testing.T) {
	s, idp, _ := startSAML(t, false, "    idp_initiated: {client_id: backend, redirect_uri: \"http://127.0.0.1:9/backend/callback\"}\n")
	entity := s.URL + "/auth/saml/corp/metadata"
	signed := samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}
	b := newBrowser(t)
	form, err := idp.Unsolicited(entity, "https://evil.example/after", signed)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := b.acs(form)
	target := mustLocation(t, resp)
	if !strings.HasPrefix(target.String(), "http://127.0.0.1:9/backend/callback?") || target.Query().Get("code") == "" {
		t.Fatalf("IdP-initiated = %d %s %s", resp.StatusCode, target, body)
	}
	// An unsolicited answer is bound to no sign-in this browser began
	// (login CSRF): it must not sign the browser in to every other app.
	for _, c := range resp.Cookies() {
		if strings.Contains(c.Name, "gatehouse_session") && c.MaxAge >= 0 && c.Value != "" {
			t.Fatalf("an IdP-initiated sign-in set the browser-session cookie %s", c.Name)
		}
	}
	status, out := tokenPost(t, s, url.Values{"grant_type": {"authorization_code"}, "code": {target.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1:9/backend/callback"}}, "backend", "backend-secret-0123456789")
	if status != 200 || out["access_token"] == nil {
		t.Fatalf("code exchange = %d %v", status, out)
	}
	resp, body = b.acs(form)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Fatalf("replayed unsolicited answer = %d %s", resp.StatusCode, body)
	}
	tampered := signed
	tampered.Tamper = samltest.Replace(t, ">ada@example.com<", ">mallory@example.com<")
	form, _ = idp.Unsolicited(entity, "", tampered)
	if resp, body = b.acs(form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "changed after signing") {
		t.Fatalf("tampered unsolicited answer = %d %s", resp.StatusCode, body)
	}
	wrongAudience := signed
	wrongAudience.EditAssertion = func(a *samlAssertion) { a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example" }
	form, _ = idp.Unsolicited(entity, "", wrongAudience)
	if resp, body = b.acs(form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "meant for another service") {
		t.Fatalf("unsolicited answer for another audience = %d %s", resp.StatusCode, body)
	}
}

// TestSAMLIdPInitiatedTargetChecked: start-up refuses an IdP-initiated
// target that could not receive sign-ins.
func TestSAMLIdPInitiatedTargetChecked(t *testing.T) {
	for name, tc := range map[string]struct{ extra, want string }{
		"public client":  {"    idp_initiated: {client_id: spa, redirect_uri: \"http://127.0.0.1:9/callback\"}\n", "public"},
		"unknown client": {"    idp_initiated: {client_id: nope, redirect_uri: \"http://127.0.0.1:9/callback\"}\n", "not configured"},
		"unregistered":   {"    idp_initiated: {client_id: backend, redirect_uri: \"http://127.0.0.1:9/x\"}\n", "not a redirect URI"},
	} {
		t.Run(name, func(t *testing.T) {
			idp := samltest.New(t)
			err := apptest.StartErr(t, apptest.Options{YAML: samlYAML(idp.URL, tc.extra)})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "idp_initiated") {
				t.Fatalf("start-up error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSAMLSHA1KnobRefusedInProduction: insecure_allow_sha1_signatures
// stops a production start-up, naming the provider and the field.
func TestSAMLSHA1KnobRefusedInProduction(t *testing.T) {
	idp := samltest.New(t)
	dir := t.TempDir()
	yaml := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(yaml, []byte(`providers:
  - name: corp
    type: saml
    idp_metadata_file: `+idp.WriteMetadataFile(t)+`
    insecure_allow_sha1_signatures: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com",
		"GATEHOUSE_SECRET_KEY": "production-secret-key-0123456789abcdef-0123", "GATEHOUSE_CONFIG": yaml,
		"GATEHOUSE_DATABASE_URL": filepath.Join(dir, "g.db")}
	cfg, _, err := config.Load(config.Options{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		DotenvPath: filepath.Join(dir, "absent.env")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.NewLogger(io.Discard, "error"))
	if err == nil {
		_ = a.Close()
	}
	if msg := fmt.Sprint(err); !strings.Contains(msg, "corp") || !strings.Contains(msg, "insecure_allow_sha1_signatures cannot be used with GATEHOUSE_ENV=production") {
		t.Fatalf("start-up error = %v", err)
	}
}
