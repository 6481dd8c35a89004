package providers

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// mapSettings are provider settings written as a map; they decode through
// the same YAML path as yamlSettings (github_test.go).
type mapSettings map[string]any

func (s mapSettings) Decode(into any) error {
	raw, err := yaml.Marshal(map[string]any(s))
	if err != nil {
		return err
	}
	return yamlSettings(raw).Decode(into)
}

// memReplay is an in-memory ReplayCache.
type memReplay struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (m *memReplay) Remember(_ context.Context, provider, id string, exp time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	if _, ok := m.seen[provider+"|"+id]; ok {
		return false, nil
	}
	m.seen[provider+"|"+id] = exp
	return true, nil
}

// memSecrets is an in-memory SecretStore.
type memSecrets struct {
	mu      sync.Mutex
	values  map[string][]byte
	creates atomic.Int32
}

func (m *memSecrets) LoadOrCreate(_ context.Context, provider, name string, create func() ([]byte, error)) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.values[provider+"|"+name]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	m.creates.Add(1)
	if m.values == nil {
		m.values = map[string][]byte{}
	}
	m.values[provider+"|"+name] = v
	return v, nil
}

const testBase = "https://gatehouse.test"

func testEnv() Env {
	return Env{BaseURL: testBase, HTTPClient: &http.Client{Timeout: 5 * time.Second}, Replay: &memReplay{}}
}

// newTestSAML builds a saml provider named "corp" trusting idp (by
// metadata file) and registers it with the IdP.
func newTestSAML(t testing.TB, idp *samltest.IdP, extra mapSettings) *samlProvider {
	t.Helper()
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	s := mapSettings{"idp_metadata_file": idp.WriteMetadataFile(t), "sp_key": keyPEM, "sp_certificate": certPEM,
		"attributes": map[string]any{"groups": "eduPersonAffiliation"}}
	for k, v := range extra {
		if v == nil {
			delete(s, k)
			continue
		}
		s[k] = v
	}
	p, err := newSAML("corp", s, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	md, _, err := p.(*samlProvider).Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	idp.TrustSPMetadata(t, md)
	return p.(*samlProvider)
}

func post(form samltest.Form) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testBase+"/auth/saml/corp/acs", strings.NewReader(form.Values().Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	return r
}

// failKind is the failure kind of a provider error ("" for nil).
func failKind(err error) string {
	if err == nil {
		return ""
	}
	_, rest, ok := strings.Cut(err.Error(), ": saml ")
	if !ok {
		return "unclassified: " + err.Error()
	}
	kind, _, _ := strings.Cut(rest, ":")
	return kind
}

var samlAda = samltest.User{NameID: "ada-0001", UserEmail: "Ada@Example.com", UserCommonName: "Ada Lovelace",
	Groups: []string{"eng", "admins", "eng"}}

func TestSAMLResponses(t *testing.T) {
	idp := samltest.New(t)
	signedA := samltest.Options{User: samlAda, SignAssertion: true}
	signedR := samltest.Options{User: samlAda, SignResponse: true}
	both := samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}
	with := func(o samltest.Options, edit func(*samltest.Options)) samltest.Options { edit(&o); return o }
	past := time.Now().Add(-2 * time.Hour)
	otherSP := otherServiceProvider(t, idp)

	cases := []struct {
		name     string
		settings mapSettings
		opts     samltest.Options
		// respond overrides how the response is obtained.
		respond func(t *testing.T, p *samlProvider, authnURL string) samltest.Form
		want    string
		check   func(t *testing.T, id *Identity)
	}{
		{name: "signed assertion only", opts: signedA, check: func(t *testing.T, id *Identity) {
			if id.Subject != "ada-0001" || id.Email != "ada@example.com" || id.EmailVerified || id.Name != "Ada Lovelace" {
				t.Fatalf("identity = %+v", id)
			}
			if strings.Join(id.Groups, ",") != "saml:group:eng,saml:group:admins" || strings.Join(id.AMR, ",") != "pwd" {
				t.Fatalf("groups %v, amr %v", id.Groups, id.AMR)
			}
		}},
		{name: "no username attribute, no username", opts: signedA, check: func(t *testing.T, id *Identity) {
			if id.Username != "" {
				t.Fatalf("username = %q", id.Username)
			}
		}},
		{name: "username from uid", opts: with(signedA, func(o *samltest.Options) { o.User.UserName = "ada.l" }),
			check: func(t *testing.T, id *Identity) {
				if id.Username != "ada.l" {
					t.Fatalf("username = %q", id.Username)
				}
			}},
		{name: "username attribute preferred over uid", opts: with(signedA, func(o *samltest.Options) {
			o.User.UserName = "ada.l"
			o.User.CustomAttributes = []saml.Attribute{{Name: "username", Values: []saml.AttributeValue{{Value: "alovelace"}}}}
		}), check: func(t *testing.T, id *Identity) {
			if id.Username != "alovelace" {
				t.Fatalf("username = %q", id.Username)
			}
		}},
		{name: "username attribute configured", settings: mapSettings{"attributes": map[string]any{"username": "mail"}},
			opts: signedA, check: func(t *testing.T, id *Identity) {
				if id.Username != "Ada@Example.com" {
					t.Fatalf("username = %q", id.Username)
				}
			}},
		{name: "oversized username dropped, not cut", opts: with(signedA, func(o *samltest.Options) {
			o.User.UserName = strings.Repeat("a", MaxUsernameLen+1)
		}), check: func(t *testing.T, id *Identity) {
			if id.Username != "" || id.Subject != "ada-0001" {
				t.Fatalf("username = %q", id.Username)
			}
		}},
		{name: "signed response only", opts: signedR},
		{name: "both signed", opts: both},
		{name: "encrypted assertion, signed inside", opts: with(signedA, func(o *samltest.Options) { o.Encrypt = true })},
		{name: "encrypted assertion in a signed response", opts: with(signedR, func(o *samltest.Options) { o.Encrypt = true })},
		{name: "trusted email is verified", settings: mapSettings{"trust_email": true}, opts: signedA, check: func(t *testing.T, id *Identity) {
			if !id.EmailVerified {
				t.Fatal("trust_email did not mark the email verified")
			}
		}},
		{name: "unsigned response refused", opts: samltest.Options{User: samlAda}, want: failSignature},
		{name: "require_signature response: assertion-only refused", settings: mapSettings{"require_signature": "response"}, opts: signedA, want: failSignature},
		{name: "require_signature response: signed response accepted", settings: mapSettings{"require_signature": "response"}, opts: signedR},
		{name: "require_signature assertion: response-only refused", settings: mapSettings{"require_signature": "assertion"}, opts: signedR, want: failSignature},
		{name: "require_signature assertion: both accepted", settings: mapSettings{"require_signature": "assertion"}, opts: both},
		{name: "require_encrypted_assertions: plain refused", settings: mapSettings{"require_encrypted_assertions": true}, opts: both, want: failEncryption},
		{name: "require_encrypted_assertions: encrypted accepted", settings: mapSettings{"require_encrypted_assertions": true}, opts: with(signedA, func(o *samltest.Options) { o.Encrypt = true })},
		{name: "PKCS#1 v1.5 key transport refused", opts: with(signedA, func(o *samltest.Options) {
			o.Encrypt = true
			o.Tamper = func(doc string) string {
				return strings.ReplaceAll(doc, "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p", rsa15)
			}
		}), want: failEncryption},
		{name: "signature wrapping: unsigned assertion injected before the signed one", opts: with(signedA, func(o *samltest.Options) {
			o.Tamper = injectAssertion(t, "before")
		}), want: failSignature},
		{name: "signature wrapping: unsigned assertion hidden in Extensions", opts: with(signedA, func(o *samltest.Options) {
			o.Tamper = injectAssertion(t, "extensions")
		}), want: failSignature},
		{name: "tampered attribute after signing", opts: with(both, func(o *samltest.Options) {
			o.Tamper = samltest.Replace(t, ">Ada@Example.com<", ">mallory@example.com<")
		}), want: failSignature},
		{name: "tampered NameID after signing (assertion signed)", opts: with(signedA, func(o *samltest.Options) {
			o.Tamper = samltest.Replace(t, ">ada-0001<", ">admin<")
		}), want: failSignature},
		{name: "wrong audience", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) {
				a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example/metadata"
			}
		}), want: failAudience},
		{name: "no audience restriction", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Conditions.AudienceRestrictions = nil }
		}), want: failAudience},
		{name: "expired assertion", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) {
				a.IssueInstant = past
				a.Conditions.NotBefore, a.Conditions.NotOnOrAfter = past, past.Add(5*time.Minute)
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = past.Add(5 * time.Minute)
			}
			o.EditResponse = func(r *saml.Response) { r.IssueInstant = past }
		}), want: failExpired},
		{name: "assertion not yet valid", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Conditions.NotBefore = time.Now().Add(time.Hour) }
		}), want: failExpired},
		{name: "wrong recipient", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) {
				a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://other.example/acs"
			}
		}), want: failDestination},
		{name: "wrong destination", opts: with(signedR, func(o *samltest.Options) {
			o.EditResponse = func(r *saml.Response) { r.Destination = "https://other.example/acs" }
		}), want: failDestination},
		{name: "another issuer", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Issuer.Value = "https://evil.example/metadata" }
		}), want: failIssuer},
		{name: "IdP refused the sign-in", opts: with(signedR, func(o *samltest.Options) {
			o.EditResponse = func(r *saml.Response) {
				r.Status.StatusCode = saml.StatusCode{Value: "urn:oasis:names:tc:SAML:2.0:status:Responder"}
			}
		}), want: failStatus},
		{name: "missing Conditions: the library's nil-pointer panic is an error", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Conditions = nil }
		}), want: failMalformed},
		{name: "missing SubjectConfirmationData: no panic", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Subject.SubjectConfirmations[0].SubjectConfirmationData = nil }
		}), want: failMalformed},
		{name: "no bearer subject confirmation", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertion = func(a *saml.Assertion) { a.Subject.SubjectConfirmations = nil }
		}), want: failSubject},
		{name: "spoofed NameID in another namespace", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertionXML = func(el *etree.Element) {
				subject := el.SelectElement("Subject")
				evil := subject.CreateElement("evil:NameID")
				evil.CreateAttr("xmlns:evil", "urn:example:evil")
				evil.CreateAttr("Format", string(saml.PersistentNameIDFormat))
				evil.SetText("admin")
			}
		}), want: failSubject},
		{name: "spoofed NameID placed first", opts: with(signedA, func(o *samltest.Options) {
			o.EditAssertionXML = func(el *etree.Element) {
				subject := el.SelectElement("Subject")
				evil := etree.NewElement("evil:NameID")
				evil.CreateAttr("xmlns:evil", "urn:example:evil")
				evil.SetText("admin")
				subject.InsertChildAt(0, evil)
			}
		}), want: failSubject},
		{name: "transient NameID refused", opts: with(signedA, func(o *samltest.Options) {
			o.User.NameIDFormat = string(saml.TransientNameIDFormat)
		}), want: failSubject},
		{name: "NameID format other than configured refused", opts: with(signedA, func(o *samltest.Options) {
			o.User.NameIDFormat = string(saml.EmailAddressNameIDFormat)
		}), want: failSubject},
		{name: "emailAddress NameID when configured, also the email", settings: mapSettings{"name_id_format": "emailAddress"},
			opts: with(signedA, func(o *samltest.Options) {
				o.User.NameIDFormat, o.User.NameID, o.User.UserEmail = string(saml.EmailAddressNameIDFormat), "grace@example.com", ""
			}), check: func(t *testing.T, id *Identity) {
				if id.Subject != "grace@example.com" || id.Email != "grace@example.com" {
					t.Fatalf("identity = %+v", id)
				}
			}},
		{name: "subject from a configured attribute", settings: mapSettings{"attributes": map[string]any{"subject": "uid", "groups": "eduPersonAffiliation"}},
			opts: with(signedA, func(o *samltest.Options) {
				o.User.UserName, o.User.NameIDFormat = "ada.l", string(saml.TransientNameIDFormat)
			}), check: func(t *testing.T, id *Identity) {
				if id.Subject != "ada.l" {
					t.Fatalf("subject = %q", id.Subject)
				}
			}},
		{name: "subject attribute missing", settings: mapSettings{"attributes": map[string]any{"subject": "employeeNumber"}}, opts: signedA, want: failSubject},
		{name: "response to another request of ours", opts: signedA,
			respond: func(t *testing.T, p *samlProvider, _ string) samltest.Form {
				ch, err := p.Begin(context.Background(), BeginRequest{State: "another-state-0123456789"})
				if err != nil {
					t.Fatal(err)
				}
				f, err := idp.Respond(ch.RedirectURL, signedA)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}, want: failRequest},
		{name: "RSA-SHA1 assertion refused by default", opts: with(signedA, func(o *samltest.Options) { o.SignatureMethod = dsig.RSASHA1SignatureMethod }), want: failAlgorithm},
		{name: "RSA-SHA1 response refused by default", opts: with(signedR, func(o *samltest.Options) { o.SignatureMethod = dsig.RSASHA1SignatureMethod }), want: failAlgorithm},
		{name: "RSA-SHA1 inside an encrypted assertion refused", opts: with(signedA, func(o *samltest.Options) {
			o.SignatureMethod, o.Encrypt = dsig.RSASHA1SignatureMethod, true
		}), want: failAlgorithm},
		{name: "SHA-1 digest under an RSA-SHA256 signature refused", opts: with(signedA, func(o *samltest.Options) {
			o.Tamper = samltest.Replace(t, "http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2000/09/xmldsig#sha1")
		}), want: failAlgorithm},
		{name: "RSA-SHA1 accepted with insecure_allow_sha1_signatures", settings: mapSettings{"insecure_allow_sha1_signatures": true},
			opts: with(both, func(o *samltest.Options) { o.SignatureMethod = dsig.RSASHA1SignatureMethod })},
		{name: "RSA-SHA1 encrypted accepted with insecure_allow_sha1_signatures", settings: mapSettings{"insecure_allow_sha1_signatures": true},
			opts: with(signedA, func(o *samltest.Options) { o.SignatureMethod, o.Encrypt = dsig.RSASHA1SignatureMethod, true })},
		{name: "insecure_allow_sha1_signatures does not accept a tampered answer", settings: mapSettings{"insecure_allow_sha1_signatures": true},
			opts: with(signedA, func(o *samltest.Options) {
				o.SignatureMethod = dsig.RSASHA1SignatureMethod
				o.Tamper = samltest.Replace(t, ">Ada@Example.com<", ">mallory@example.com<")
			}), want: failSignature},
		{name: "response to another SP's request", opts: both,
			respond: func(t *testing.T, _ *samlProvider, _ string) samltest.Form {
				f, err := idp.Respond(otherSP, both)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}, want: failDestination},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestSAML(t, idp, tc.settings)
			ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
			if err != nil {
				t.Fatal(err)
			}
			var form samltest.Form
			if tc.respond != nil {
				form = tc.respond(t, p, ch.RedirectURL)
			} else if form, err = idp.Respond(ch.RedirectURL, tc.opts); err != nil {
				t.Fatal(err)
			}
			id, err := p.Complete(context.Background(), CompleteRequest{HTTP: post(form), Saved: ch.Saved})
			if got := failKind(err); got != tc.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tc.want)
			}
			if err != nil {
				var ue *UserError
				t.Logf("refused: %v", err)
				if !errors.As(err, &ue) || ue.Message == "" || strings.Contains(ue.Message, "<") {
					t.Fatalf("error %v carries no clean message for the person", err)
				}
				if strings.Contains(err.Error(), "<saml") || strings.Contains(err.Error(), "ada-0001<") {
					t.Fatalf("the error echoes XML: %v", err)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, id)
			}
			// Every accepted assertion is accepted once.
			if _, err := p.Complete(context.Background(), CompleteRequest{HTTP: post(form), Saved: ch.Saved}); failKind(err) != failReplay {
				t.Fatalf("replayed response: %v", err)
			}
		})
	}
}

// injectAssertion returns a Tamper that copies the signed assertion,
// strips the copy's signature, makes it say "admin", and injects it.
func injectAssertion(t *testing.T, where string) func(string) string {
	return func(doc string) string {
		d := etree.NewDocument()
		if err := d.ReadFromString(doc); err != nil {
			t.Fatal(err)
		}
		root := d.Root()
		genuine := root.SelectElement("Assertion")
		evil := genuine.Copy()
		evil.RemoveChild(evil.SelectElement("Signature"))
		evil.CreateAttr("ID", "id-evil")
		evil.FindElement("./Subject/NameID").SetText("admin")
		switch where {
		case "before":
			root.InsertChildAt(genuine.Index(), evil)
		case "extensions":
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(evil)
			root.InsertChildAt(genuine.Index(), ext)
		}
		out, _ := d.WriteToString()
		return out
	}
}

// otherServiceProvider registers a second SP with the IdP and returns the
// redirect URL of an AuthnRequest it made.
func otherServiceProvider(t *testing.T, idp *samltest.IdP) string {
	key, cert := samltest.KeyPair(t)
	md, _ := url.Parse("https://other-sp.example/metadata")
	acs, _ := url.Parse("https://other-sp.example/acs")
	var idpMD saml.EntityDescriptor
	if err := xmlUnmarshal(idp.MetadataXML(), &idpMD); err != nil {
		t.Fatal(err)
	}
	sp := &saml.ServiceProvider{Key: key, Certificate: cert, MetadataURL: *md, AcsURL: *acs, IDPMetadata: &idpMD}
	idp.TrustSP(sp.Metadata())
	u, err := sp.MakeRedirectAuthenticationRequest("other-relay-state")
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

func TestSAMLUnsolicited(t *testing.T) {
	idp := samltest.New(t)
	signed := samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}
	target := mapSettings{"idp_initiated": map[string]any{"client_id": "reports", "redirect_uri": "https://reports.example/cb"}}
	off := newTestSAML(t, idp, nil)
	if _, ok := off.IdPInitiatedTarget(); ok {
		t.Fatal("IdP-initiated sign-in is on by default")
	}
	form, err := idp.Unsolicited(off.entityID, "", signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Complete(context.Background(), CompleteRequest{HTTP: post(form), Unsolicited: true}); failKind(err) != failUnsolicited {
		t.Fatalf("unsolicited while off: %v", err)
	}

	on := newTestSAML(t, idp, target)
	if got, ok := on.IdPInitiatedTarget(); !ok || got.ClientID != "reports" || got.Scope != "openid email profile" {
		t.Fatalf("target = %+v, %v", got, ok)
	}
	ch, _ := on.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
	solicited, err := idp.Respond(ch.RedirectURL, signed)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		form func() samltest.Form
		want string
	}{
		{"valid", func() samltest.Form { f, _ := idp.Unsolicited(on.entityID, "", signed); return f }, ""},
		{"tampered", func() samltest.Form {
			o := signed
			o.Tamper = samltest.Replace(t, ">Ada@Example.com<", ">mallory@example.com<")
			f, _ := idp.Unsolicited(on.entityID, "", o)
			return f
		}, failSignature},
		{"wrong audience", func() samltest.Form {
			o := signed
			o.EditAssertion = func(a *saml.Assertion) { a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example" }
			f, _ := idp.Unsolicited(on.entityID, "", o)
			return f
		}, failAudience},
		{"unsigned", func() samltest.Form {
			f, _ := idp.Unsolicited(on.entityID, "", samltest.Options{User: samlAda})
			return f
		}, failSignature},
		{"expired", func() samltest.Form {
			o := signed
			past := time.Now().Add(-2 * time.Hour)
			o.EditAssertion = func(a *saml.Assertion) { a.IssueInstant = past; a.Conditions.NotOnOrAfter = past }
			o.EditResponse = func(r *saml.Response) { r.IssueInstant = past }
			f, _ := idp.Unsolicited(on.entityID, "", o)
			return f
		}, failExpired},
		{"a solicited response posted as unsolicited", func() samltest.Form { return solicited }, failRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.form()
			_, err := on.Complete(context.Background(), CompleteRequest{HTTP: post(f), Unsolicited: true})
			if got := failKind(err); got != tc.want {
				t.Fatalf("outcome %q (%v), want %q", got, err, tc.want)
			}
			if err == nil {
				if _, err := on.Complete(context.Background(), CompleteRequest{HTTP: post(f), Unsolicited: true}); failKind(err) != failReplay {
					t.Fatalf("replayed unsolicited response: %v", err)
				}
			}
		})
	}
}

func TestSAMLBeginAndMetadata(t *testing.T) {
	idp := samltest.New(t)
	p := newTestSAML(t, idp, nil)
	ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef", Prompt: "login"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(ch.RedirectURL)
	q := u.Query()
	if !strings.HasPrefix(ch.RedirectURL, idp.SSOURL+"?") || q.Get("RelayState") != "state-0123456789abcdef" ||
		q.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" || !strings.HasPrefix(ch.Saved, "id-") {
		t.Fatalf("redirect = %s, saved %q", ch.RedirectURL, ch.Saved)
	}
	// The redirect-binding signature covers the query up to SigAlg and
	// verifies with the certificate the SP metadata publishes.
	signedPart := u.RawQuery[:strings.Index(u.RawQuery, "&Signature=")]
	sig, _ := base64.StdEncoding.DecodeString(q.Get("Signature"))
	sum := sha256.Sum256([]byte(signedPart))
	if err := rsa.VerifyPKCS1v15(p.cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("AuthnRequest signature: %v", err)
	}
	r := httptest.NewRequest(http.MethodGet, ch.RedirectURL, nil)
	areq, err := saml.NewIdpAuthnRequest(idp.IDP, r)
	if err != nil || areq.Validate() != nil {
		t.Fatal(err)
	}
	if areq.Request.ForceAuthn == nil || !*areq.Request.ForceAuthn || *areq.Request.NameIDPolicy.Format != string(saml.PersistentNameIDFormat) ||
		areq.Request.AssertionConsumerServiceURL != testBase+"/auth/saml/corp/acs" || areq.Request.ID != ch.Saved {
		t.Fatalf("AuthnRequest = %+v", areq.Request)
	}
	if _, err := p.Begin(context.Background(), BeginRequest{State: "not&safe"}); err == nil {
		t.Fatal("a state that would break the unescaped RelayState was accepted")
	}

	md, mediaType, err := p.Metadata(context.Background())
	if err != nil || mediaType != "application/samlmetadata+xml" {
		t.Fatal(err)
	}
	for _, want := range []string{`entityID="` + testBase + `/auth/saml/corp/metadata"`, `Location="` + testBase + `/auth/saml/corp/acs"`,
		`AuthnRequestsSigned="true"`, `WantAssertionsSigned="true"`, `use="encryption"`, `use="signing"`} {
		if !strings.Contains(string(md), want) {
			t.Errorf("metadata lacks %s", want)
		}
	}
	if strings.Contains(string(md), "HTTP-Artifact") {
		t.Error("metadata offers the artifact binding")
	}
	// Artifact resolution is refused, never attempted.
	form := url.Values{"SAMLart": {"AAQAAM..."}, "RelayState": {"x"}}
	req := httptest.NewRequest(http.MethodPost, testBase+"/auth/saml/corp/acs", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := p.Complete(context.Background(), CompleteRequest{HTTP: req, Saved: ch.Saved}); failKind(err) != failMalformed {
		t.Fatalf("artifact: %v", err)
	}
}

func TestSAMLSettings(t *testing.T) {
	idp := samltest.New(t)
	mdFile := idp.WriteMetadataFile(t)
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	base := func(extra mapSettings) mapSettings {
		s := mapSettings{"idp_metadata_file": mdFile, "sp_key": keyPEM, "sp_certificate": certPEM}
		for k, v := range extra {
			if v == nil {
				delete(s, k)
			} else {
				s[k] = v
			}
		}
		return s
	}
	cases := []struct {
		name     string
		settings mapSettings
		prod     bool
		want     string
	}{
		{"no metadata", base(mapSettings{"idp_metadata_file": nil}), false, "exactly one of idp_metadata_url"},
		{"both metadata sources", base(mapSettings{"idp_metadata_url": "https://idp.example/md"}), false, "exactly one of"},
		{"plain-HTTP metadata URL", base(mapSettings{"idp_metadata_file": nil, "idp_metadata_url": "http://idp.example/md"}), false, "must use https"},
		{"insecure knob refused in production", base(mapSettings{"insecure_http_metadata": true}), true, "cannot be used with GATEHOUSE_ENV=production"},
		{"SHA-1 knob refused in production", base(mapSettings{"insecure_allow_sha1_signatures": true}), true, "insecure_allow_sha1_signatures cannot be used with GATEHOUSE_ENV=production"},
		{"unknown field", base(mapSettings{"idp_metadata": "x"}), false, "not found"},
		{"bad require_signature", base(mapSettings{"require_signature": "none"}), false, "require_signature must be"},
		{"bad preset", base(mapSettings{"preset": "ping"}), false, "preset must be"},
		{"transient NameID", base(mapSettings{"name_id_format": "transient"}), false, "transient NameID changes"},
		{"key without certificate", base(mapSettings{"sp_certificate": nil}), false, "go together"},
		{"certificate of another key", base(mapSettings{"sp_certificate": string(pemCert(t, idp))}), false, "not the certificate of sp_key"},
		{"idp_initiated without client", base(mapSettings{"idp_initiated": map[string]any{"redirect_uri": "https://x/cb"}}), false, "needs client_id"},
		{"unreadable metadata file", base(mapSettings{"idp_metadata_file": "/nonexistent/md.xml"}), false, "no such file"},
		{"no storage for a generated key", base(mapSettings{"sp_key": nil, "sp_certificate": nil}), false, "no storage"},
		{"max_response_bytes too small", base(mapSettings{"max_response_bytes": 1000}), false, "max_response_bytes must be between 16384 and 1048576"},
		{"max_response_bytes too large", base(mapSettings{"max_response_bytes": 2 << 20}), false, "max_response_bytes must be between"},
		{"bad refresh", base(mapSettings{"idp_metadata_file": nil, "idp_metadata_url": "https://idp.example/md", "metadata_refresh": "5s"}), false, "at least 1m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv()
			env.Production = tc.prod
			_, err := newSAML("corp", tc.settings, env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("presets", func(t *testing.T) {
		for preset, subject := range map[string]string{"okta": "", "entra": msObjectID, "google": "", "adfs": ""} {
			p, err := newSAML("corp", base(mapSettings{"preset": preset}), testEnv())
			if err != nil {
				t.Fatalf("%s: %v", preset, err)
			}
			pol := p.(*samlProvider).policy
			if got := strings.Join(pol.attrs.subject, ""); got != subject {
				t.Errorf("%s: subject attribute %q", preset, got)
			}
			if preset == "google" && pol.nameIDFormat != saml.EmailAddressNameIDFormat {
				t.Errorf("google: NameID format %s", pol.nameIDFormat)
			}
			if preset == "entra" && pol.nameIDFormat != saml.UnspecifiedNameIDFormat {
				t.Errorf("entra: NameID format %s", pol.nameIDFormat)
			}
		}
	})
	t.Run("generated key is stored once and shared", func(t *testing.T) {
		secrets := &memSecrets{}
		env := testEnv()
		env.Secrets = secrets
		a, err := newSAML("corp", base(mapSettings{"sp_key": nil, "sp_certificate": nil}), env)
		if err != nil {
			t.Fatal(err)
		}
		b, err := newSAML("corp", base(mapSettings{"sp_key": nil, "sp_certificate": nil}), env)
		if err != nil {
			t.Fatal(err)
		}
		if !a.(*samlProvider).cert.Equal(b.(*samlProvider).cert) || secrets.creates.Load() != 1 {
			t.Fatalf("replicas disagree on the SP certificate (%d created)", secrets.creates.Load())
		}
	})
}

func pemCert(t *testing.T, idp *samltest.IdP) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(idp.Cert.Raw) + "\n-----END CERTIFICATE-----\n")
}

func TestSAMLMetadataByURL(t *testing.T) {
	idp := samltest.New(t)
	var fail atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(idp.MetadataXML())
	}))
	defer srv.Close()
	p := newTestSAML(t, idp, mapSettings{"idp_metadata_file": nil, "idp_metadata_url": srv.URL, "insecure_http_metadata": true})
	if fetches.Load() != 1 {
		t.Fatalf("fetches at start = %d", fetches.Load())
	}
	// Stale metadata is refreshed in the background; a failed refresh
	// keeps what was loaded.
	fail.Store(true)
	p.idp.mu.Lock()
	p.idp.fetchedAt, p.idp.lastTry = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	p.idp.mu.Unlock()
	if _, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"}); err != nil {
		t.Fatalf("sign-in while the refresh fails: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fetches.Load() != 2 {
		t.Fatalf("no background refresh (fetches = %d)", fetches.Load())
	}
	if _, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"}); err != nil {
		t.Fatalf("metadata dropped after a failed refresh: %v", err)
	}

	// An IdP that is down at start does not stop Gatehouse; sign-ins say
	// the IdP is unavailable until its metadata loads.
	down, err := newSAML("down", mapSettings{"idp_metadata_url": srv.URL, "insecure_http_metadata": true,
		"sp_key": string(pemKeyOf(t)), "sp_certificate": string(pemCert(t, idp))}, testEnv())
	if err != nil && !strings.Contains(err.Error(), "not the certificate") {
		t.Fatal(err)
	}
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	down, err = newSAML("down", mapSettings{"idp_metadata_url": srv.URL, "insecure_http_metadata": true,
		"sp_key": keyPEM, "sp_certificate": certPEM}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	_, err = down.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("sign-in without metadata: %v", err)
	}
}

func pemKeyOf(t *testing.T) []byte {
	_, _, keyPEM, _ := samltest.SPKeyPair(t)
	return []byte(keyPEM)
}

func TestParseIDPMetadata(t *testing.T) {
	idp := samltest.New(t)
	one := string(idp.MetadataXML())
	inner := one[strings.Index(one, "<EntityDescriptor"):]
	second := strings.Replace(inner, idp.MetadataURL, "https://second.example/md", 1)
	agg := `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + inner + second + `</EntitiesDescriptor>`
	cases := []struct {
		name, doc, entityID, want string
	}{
		{"single", one, "", ""},
		{"aggregate needs a choice", agg, "", "set idp_entity_id"},
		{"aggregate, chosen", agg, "https://second.example/md", ""},
		{"aggregate, unknown choice", agg, "https://third.example/md", "no identity provider with entity id"},
		{"not metadata", "<html/>", "", "neither"},
		{"not XML", "{}", "", "neither"},
		{"no signing certificate", strings.ReplaceAll(strings.ReplaceAll(one, `use="signing"`, `use="encryption"`), "<KeyDescriptor>", `<KeyDescriptor use="encryption">`), "", "no signing certificate"},
		{"no redirect binding", strings.ReplaceAll(one, "HTTP-Redirect", "HTTP-Artifact"), "", "HTTP-Redirect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md, err := parseIDPMetadata([]byte(tc.doc), tc.entityID)
			if tc.want == "" {
				if err != nil || md.EntityID == "" {
					t.Fatalf("%v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }

// TestSAMLAuthnContext: the assertion's AuthnContextClassRef becomes the
// identity's ACR, mapped to an AMR only for the classes whose meaning is
// unambiguous; its AuthnInstant becomes AuthTime. Missing, ambiguous or
// malformed contexts claim nothing.
func TestSAMLAuthnContext(t *testing.T) {
	idp := samltest.New(t)
	instant := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond).UTC()
	classes := func(refs ...string) func(*saml.Assertion) {
		return func(a *saml.Assertion) {
			st := a.AuthnStatements[0]
			st.AuthnInstant = instant
			a.AuthnStatements = nil
			for _, r := range refs {
				s := st
				s.AuthnContext = saml.AuthnContext{}
				if r != "-" {
					s.AuthnContext.AuthnContextClassRef = &saml.AuthnContextClassRef{Value: r}
				}
				a.AuthnStatements = append(a.AuthnStatements, s)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*saml.Assertion)
		editXML func(*etree.Element)
		acr     string
		amr     []string
		noTime  bool
	}{
		{name: "PasswordProtectedTransport", edit: classes(samlClassPrefix + "PasswordProtectedTransport"),
			acr: samlClassPrefix + "PasswordProtectedTransport", amr: []string{"pwd"}},
		{name: "MobileTwoFactorContract", edit: classes(samlClassPrefix + "MobileTwoFactorContract"),
			acr: samlClassPrefix + "MobileTwoFactorContract", amr: []string{"mfa"}},
		{name: "Entra ID multipleauthn", edit: classes("http://schemas.microsoft.com/claims/multipleauthn"),
			acr: "http://schemas.microsoft.com/claims/multipleauthn", amr: []string{"mfa"}},
		{name: "SmartcardPKI", edit: classes(samlClassPrefix + "SmartcardPKI"), acr: samlClassPrefix + "SmartcardPKI", amr: []string{"sc", "hwk"}},
		{name: "X509 says nothing of where the key lives", edit: classes(samlClassPrefix + "X509"), acr: samlClassPrefix + "X509"},
		{name: "unspecified", edit: classes(samlClassPrefix + "unspecified"), acr: samlClassPrefix + "unspecified"},
		{name: "a vendor's own class", edit: classes("https://idp.example/loa/high"), acr: "https://idp.example/loa/high"},
		{name: "a class merely containing TwoFactor", edit: classes("https://idp.example/NotTwoFactor"), acr: "https://idp.example/NotTwoFactor"},
		{name: "AuthnContext without a class", edit: classes("-")},
		{name: "no AuthnStatement", edit: func(a *saml.Assertion) { a.AuthnStatements = nil }, noTime: true},
		{name: "two statements naming different classes", edit: classes(samlClassPrefix+"Password", samlClassPrefix+"MobileTwoFactorContract")},
		{name: "two statements naming the same class", edit: classes(samlClassPrefix+"Password", samlClassPrefix+"Password"),
			acr: samlClassPrefix + "Password", amr: []string{"pwd"}},
		{name: "a class with a space", edit: classes("urn:loa high")},
		{name: "a class with a control character", edit: classes("urn:loa\x1b[2J")},
		{name: "a huge class", edit: classes("urn:" + strings.Repeat("a", maxACRLen))},
		{name: "a class in another namespace", edit: classes(samlClassPrefix + "MobileTwoFactorContract"),
			editXML: func(a *etree.Element) {
				ref := a.FindElement(".//AuthnContextClassRef")
				ref.Space = "x"
				ref.CreateAttr("xmlns:x", "urn:example:not-saml")
			}},
		{name: "an AuthnInstant in the future", edit: func(a *saml.Assertion) {
			classes(samlClassPrefix + "Password")(a)
			a.AuthnStatements[0].AuthnInstant = time.Now().Add(time.Hour)
		}, acr: samlClassPrefix + "Password", amr: []string{"pwd"}, noTime: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestSAML(t, idp, nil)
			ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
			if err != nil {
				t.Fatal(err)
			}
			form, err := idp.Respond(ch.RedirectURL, samltest.Options{User: samlAda, SignAssertion: true, EditAssertion: tc.edit, EditAssertionXML: tc.editXML})
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.Complete(context.Background(), CompleteRequest{HTTP: post(form), Saved: ch.Saved})
			if err != nil {
				t.Fatal(err)
			}
			if id.ACR != tc.acr || !slices.Equal(id.AMR, tc.amr) {
				t.Fatalf("acr %q amr %q; want %q %q", id.ACR, id.AMR, tc.acr, tc.amr)
			}
			if want := (map[bool]time.Time{false: instant})[tc.noTime]; !id.AuthTime.Equal(want) {
				t.Fatalf("auth time %v, want %v", id.AuthTime, want)
			}
			if _, ok := id.Claims["authn_context"]; ok != (tc.acr != "") {
				t.Fatalf("claims %v", id.Claims)
			}
		})
	}
}

// TestSAMLForceAuthn: the AuthnRequest asks the IdP for a fresh sign-in
// when the client sent any max_age, prompt=login or prompt=consent, and
// only then; the max_age travels in the saved data.
func TestSAMLForceAuthn(t *testing.T) {
	idp := samltest.New(t)
	p := newTestSAML(t, idp, nil)
	for _, tc := range []struct {
		name  string
		req   BeginRequest
		force bool
	}{
		{name: "plain"},
		{name: "select_account", req: BeginRequest{Prompt: "select_account"}},
		{name: "a word containing login", req: BeginRequest{Prompt: "nologin"}},
		{name: "login", req: BeginRequest{Prompt: "login"}, force: true},
		{name: "consent", req: BeginRequest{Prompt: "consent"}, force: true},
		{name: "select_account consent", req: BeginRequest{Prompt: "select_account consent"}, force: true},
		{name: "max_age=0", req: BeginRequest{MaxAge: intp(0)}, force: true},
		{name: "max_age=3600", req: BeginRequest{MaxAge: intp(3600)}, force: true},
		{name: "a ten-digit max_age", req: BeginRequest{MaxAge: intp(9_999_999_999)}, force: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.State = "state-0123456789abcdef"
			ch, err := p.Begin(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			areq, err := saml.NewIdpAuthnRequest(idp.IDP, httptest.NewRequest(http.MethodGet, ch.RedirectURL, nil))
			if err != nil || areq.Validate() != nil {
				t.Fatal(err)
			}
			if got := areq.Request.ForceAuthn != nil && *areq.Request.ForceAuthn; got != tc.force {
				t.Fatalf("ForceAuthn = %v, want %v", got, tc.force)
			}
			saved, err := decodeSAMLSaved(ch.Saved)
			if err != nil || saved.RequestID != areq.Request.ID || (saved.MaxAge == nil) != (tc.req.MaxAge == nil) ||
				(saved.MaxAge != nil && *saved.MaxAge != *tc.req.MaxAge) {
				t.Fatalf("saved %q = %+v (%v), request id %s", ch.Saved, saved, err, areq.Request.ID)
			}
		})
	}
}

// TestSAMLMaxAge: an answer whose AuthnInstant is older than the
// client's max_age (plus the clock skew) is refused, whatever the IdP
// made of ForceAuthn; a fresh one is accepted.
func TestSAMLMaxAge(t *testing.T) {
	idp := samltest.New(t)
	now := time.Now().UTC().Truncate(time.Second)
	instants := func(ts ...time.Time) func(*saml.Assertion) {
		return func(a *saml.Assertion) {
			st := a.AuthnStatements[0]
			a.AuthnStatements = nil
			for _, at := range ts {
				s := st
				s.AuthnInstant = at
				a.AuthnStatements = append(a.AuthnStatements, s)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		maxAge *int
		edit   func(*saml.Assertion)
		saved  func(string) string // changes the saved data handed to Complete
		want   string              // failure kind; "" for success
	}{
		{name: "fresh", maxAge: intp(600), edit: instants(now.Add(-time.Minute))},
		{name: "old", maxAge: intp(600), edit: instants(now.Add(-2 * time.Hour)), want: failMaxAge},
		{name: "old beyond the skew", maxAge: intp(600), edit: instants(now.Add(-600*time.Second - saml.MaxClockSkew - 5*time.Second)), want: failMaxAge},
		{name: "old within the skew", maxAge: intp(600), edit: instants(now.Add(-600*time.Second - saml.MaxClockSkew/2))},
		{name: "max_age=0 and an IdP session of ten minutes", maxAge: intp(0), edit: instants(now.Add(-10 * time.Minute)), want: failMaxAge},
		{name: "max_age=0 and a sign-in just now", maxAge: intp(0), edit: instants(now)},
		{name: "no AuthnStatement", maxAge: intp(600), edit: func(a *saml.Assertion) { a.AuthnStatements = nil }, want: failMaxAge},
		{name: "an AuthnInstant in the future only", maxAge: intp(600), edit: instants(now.Add(time.Hour)), want: failMaxAge},
		{name: "an old and a fresh statement", maxAge: intp(600), edit: instants(now.Add(-2*time.Hour), now.Add(-time.Minute))},
		{name: "a ten-digit max_age", maxAge: intp(9_999_999_999), edit: instants(now.Add(-365 * 24 * time.Hour))},
		{name: "no max_age and an old sign-in", edit: instants(now.Add(-30 * 24 * time.Hour))},
		{name: "saved data that is not JSON", maxAge: intp(600), edit: instants(now.Add(-time.Minute)),
			saved: func(s string) string { return s[:len(s)-1] }, want: failRequest},
		{name: "saved data naming no request", maxAge: intp(600), edit: instants(now.Add(-time.Minute)),
			saved: func(string) string { return `{"m":600}` }, want: failRequest},
		{name: "saved data naming another request", maxAge: intp(600), edit: instants(now.Add(-time.Minute)),
			saved: func(string) string { return `{"i":"id-other","m":600}` }, want: failRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestSAML(t, idp, nil)
			ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef", MaxAge: tc.maxAge})
			if err != nil {
				t.Fatal(err)
			}
			form, err := idp.Respond(ch.RedirectURL, samltest.Options{User: samlAda, SignAssertion: true, EditAssertion: tc.edit})
			if err != nil {
				t.Fatal(err)
			}
			saved := ch.Saved
			if tc.saved != nil {
				saved = tc.saved(saved)
			}
			id, err := p.Complete(context.Background(), CompleteRequest{HTTP: post(form), Saved: saved})
			if got := failKind(err); got != tc.want {
				t.Fatalf("failure %q (%v), want %q", got, err, tc.want)
			}
			if tc.want != "" {
				var ue *UserError
				if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &ue) || ue.Message == "" {
					t.Fatalf("refusal %v is not an invalid response with words for the person", err)
				}
				return
			}
			if id.AuthTime.IsZero() || now.Sub(id.AuthTime) < 0 {
				t.Fatalf("auth time %v", id.AuthTime)
			}
		})
	}
}
