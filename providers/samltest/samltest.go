// Package samltest runs a SAML identity provider in process for tests:
// crewjam/saml's IdentityProvider parses and validates the AuthnRequests
// Gatehouse sends and makes the assertions (DefaultAssertionMaker); the
// test decides how each response is signed, encrypted or tampered with.
package samltest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// User is the person the IdP signs in.
type User = saml.Session

// Options shape one response. The zero value is an unsigned response: set
// at least one of SignAssertion and SignResponse for a valid one.
type Options struct {
	User          User
	SignAssertion bool
	SignResponse  bool
	Encrypt       bool
	// EditAssertion changes the assertion before it is signed.
	EditAssertion func(*saml.Assertion)
	// EditAssertionXML changes the assertion element before it is signed.
	EditAssertionXML func(*etree.Element)
	// EditResponse changes the response before it is signed.
	EditResponse func(*saml.Response)
	// Tamper changes the serialized response after every signature.
	Tamper func(xml string) string
	// SignatureMethod is the XML signature algorithm of both signatures
	// (its hash is also the digest method); empty means RSA-SHA256.
	SignatureMethod string
}

// Form is the auto-posted form the IdP sends the browser back with.
type Form struct {
	URL          string
	SAMLResponse string
	RelayState   string
}

// Values is the form's body.
func (f Form) Values() url.Values {
	v := url.Values{"SAMLResponse": {f.SAMLResponse}}
	if f.RelayState != "" {
		v.Set("RelayState", f.RelayState)
	}
	return v
}

// DecodedXML is the response document.
func (f Form) DecodedXML() string {
	b, _ := base64.StdEncoding.DecodeString(f.SAMLResponse)
	return string(b)
}

// IdP is a running identity provider.
type IdP struct {
	// URL is the server's base URL; MetadataURL is also its entity id.
	URL, MetadataURL, SSOURL string
	Key                      *rsa.PrivateKey
	Cert                     *x509.Certificate
	IDP                      *saml.IdentityProvider

	mu  sync.Mutex
	sps map[string]*saml.EntityDescriptor
	// Default shapes the responses of the HTTP SSO endpoint.
	Default Options
}

// The IdP's and an SP's keys are fixed test keys (valid until 2126), so
// fuzz seeds signed with them stay meaningful and tests skip slow RSA key
// generation. They are public: nothing may ever trust them.
var (
	//go:embed testkey-idp.pem
	idpPEM []byte
	//go:embed testkey-sp.pem
	spPEM []byte
)

// KeyPair returns the IdP's test key and certificate.
func KeyPair(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) { return parseKeyPair(t, idpPEM) }

// SPKeyPair returns a service provider's test key and certificate, and
// both as PEM.
func SPKeyPair(t testing.TB) (key *rsa.PrivateKey, cert *x509.Certificate, keyPEM, certPEM string) {
	key, cert = parseKeyPair(t, spPEM)
	kb, rest := pem.Decode(spPEM)
	return key, cert, string(pem.EncodeToMemory(kb)), string(rest)
}

func parseKeyPair(t testing.TB, data []byte) (*rsa.PrivateKey, *x509.Certificate) {
	kb, rest := pem.Decode(data)
	cb, _ := pem.Decode(rest)
	if kb == nil || cb == nil {
		t.Fatal("samltest: bad embedded key")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// NewKeyPair makes a fresh RSA-2048 key and self-signed certificate.
func NewKeyPair(t testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// New starts an IdP serving GET /metadata and GET /sso, stopped at cleanup.
// By default it signs both the assertion and the response.
func New(t testing.TB) *IdP { return NewOnHost(t, "") }

// NewOnHost is New with the IdP's URLs naming host (for example
// "localhost") instead of the listener's address, so that a browser takes
// it for another site than a server on 127.0.0.1; "" keeps the address.
func NewOnHost(t testing.TB, host string) *IdP {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base := srv.URL
	if host != "" {
		u, _ := url.Parse(srv.URL)
		base = "http://" + host + ":" + u.Port()
	}
	i := Offline(t, base)
	mux.HandleFunc("GET /metadata", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(i.MetadataXML())
	})
	mux.HandleFunc("GET /sso", func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		opts := i.Default
		i.mu.Unlock()
		form, err := i.Respond(i.URL+r.URL.RequestURI(), opts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = formPage.Execute(w, form)
	})
	return i
}

// Offline returns an IdP that claims base as its URL but serves nothing:
// for tests that need fixed entity ids (fuzz seeds) and call Respond.
func Offline(t testing.TB, base string) *IdP {
	key, cert := KeyPair(t)
	i := &IdP{Key: key, Cert: cert, sps: map[string]*saml.EntityDescriptor{},
		Default: Options{SignAssertion: true, SignResponse: true},
		URL:     base, MetadataURL: base + "/metadata", SSOURL: base + "/sso"}
	mdURL, _ := url.Parse(i.MetadataURL)
	ssoURL, _ := url.Parse(i.SSOURL)
	i.IDP = &saml.IdentityProvider{Key: key, Certificate: cert, MetadataURL: *mdURL, SSOURL: *ssoURL,
		ServiceProviderProvider: i, SignatureMethod: dsig.RSASHA256SignatureMethod}
	return i
}

var formPage = template.Must(template.New("").Parse(`<html><form method="post" action="{{.URL}}" id="SAMLResponseForm">` +
	`<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}" />` +
	`<input type="hidden" name="RelayState" value="{{.RelayState}}" />` +
	`<input type="submit" value="Continue" /></form></html>`))

var (
	formAction = regexp.MustCompile(`action="([^"]*)"`)
	formField  = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)
)

// ParseFormPage reads the form of the SSO endpoint's HTML page.
func ParseFormPage(page string) (Form, error) {
	var f Form
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return f, errors.New("no form in the page")
	}
	f.URL = htmlUnescape(m[1])
	for _, fm := range formField.FindAllStringSubmatch(page, -1) {
		switch fm[1] {
		case "SAMLResponse":
			f.SAMLResponse = htmlUnescape(fm[2])
		case "RelayState":
			f.RelayState = htmlUnescape(fm[2])
		}
	}
	return f, nil
}

func htmlUnescape(s string) string {
	var out string
	_ = xml.Unmarshal([]byte("<x>"+s+"</x>"), &out)
	return out
}

// MetadataXML is the IdP's metadata document.
func (i *IdP) MetadataXML() []byte {
	b, _ := xml.MarshalIndent(i.IDP.Metadata(), "", "  ")
	return b
}

// WriteMetadataFile writes the metadata to a file in a temporary folder.
func (i *IdP) WriteMetadataFile(t testing.TB) string {
	p := t.TempDir() + "/idp-metadata.xml"
	if err := os.WriteFile(p, i.MetadataXML(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetDefault changes the options of the HTTP SSO endpoint.
func (i *IdP) SetDefault(o Options) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.Default = o
}

// TrustSP registers a service provider by its metadata.
func (i *IdP) TrustSP(md *saml.EntityDescriptor) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.sps[md.EntityID] = md
}

// TrustSPMetadata registers a service provider by its metadata document.
func (i *IdP) TrustSPMetadata(t testing.TB, doc []byte) *saml.EntityDescriptor {
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(doc, &md); err != nil {
		t.Fatalf("SP metadata: %v", err)
	}
	i.TrustSP(&md)
	return &md
}

// TrustSPMetadataURL fetches a service provider's metadata and registers it.
func (i *IdP) TrustSPMetadataURL(t testing.TB, u string) *saml.EntityDescriptor {
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("SP metadata %s = %d %s", u, resp.StatusCode, doc)
	}
	return i.TrustSPMetadata(t, doc)
}

// GetServiceProvider implements saml.ServiceProviderProvider.
func (i *IdP) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if md, ok := i.sps[id]; ok {
		return md, nil
	}
	return nil, os.ErrNotExist
}

// Respond answers the AuthnRequest in a redirect-binding URL (as the
// browser would bring it to the SSO endpoint).
func (i *IdP) Respond(authnURL string, o Options) (Form, error) {
	r := httptest.NewRequest(http.MethodGet, authnURL, nil)
	req, err := saml.NewIdpAuthnRequest(i.IDP, r)
	if err != nil {
		return Form{}, err
	}
	if err := req.Validate(); err != nil {
		return Form{}, fmt.Errorf("AuthnRequest refused by the IdP: %w", err)
	}
	return i.respond(req, o)
}

// Unsolicited makes an IdP-initiated response for a registered SP.
func (i *IdP) Unsolicited(spEntityID, relayState string, o Options) (Form, error) {
	md, err := i.GetServiceProvider(nil, spEntityID)
	if err != nil {
		return Form{}, fmt.Errorf("unknown SP %s", spEntityID)
	}
	req := &saml.IdpAuthnRequest{IDP: i.IDP, HTTPRequest: httptest.NewRequest(http.MethodGet, i.SSOURL, nil),
		RelayState: relayState, Now: saml.TimeNow(), ServiceProviderMetadata: md}
	for _, d := range md.SPSSODescriptors {
		for _, e := range d.AssertionConsumerServices {
			if e.Binding == saml.HTTPPostBinding && req.ACSEndpoint == nil {
				e, d := e, d
				req.ACSEndpoint, req.SPSSODescriptor = &e, &d
			}
		}
	}
	if req.ACSEndpoint == nil {
		return Form{}, errors.New("SP has no POST ACS")
	}
	return i.respond(req, o)
}

func (i *IdP) respond(req *saml.IdpAuthnRequest, o Options) (Form, error) {
	user := o.User
	if user.NameID == "" {
		user.NameID = "ada-0001"
	}
	if user.NameIDFormat == "" {
		user.NameIDFormat = string(saml.PersistentNameIDFormat)
	}
	if user.ID == "" {
		user.ID = "session-" + randomHex(8)
		user.CreateTime = time.Now()
		user.ExpireTime = time.Now().Add(time.Hour)
		user.Index = randomHex(8)
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, &user); err != nil {
		return Form{}, err
	}
	if o.EditAssertion != nil {
		o.EditAssertion(req.Assertion)
	}
	assertionEl := req.Assertion.Element()
	if o.EditAssertionXML != nil {
		o.EditAssertionXML(assertionEl)
	}
	var err error
	if o.SignAssertion {
		if assertionEl, err = i.sign(assertionEl, o.SignatureMethod); err != nil {
			return Form{}, err
		}
	}
	if o.Encrypt {
		if assertionEl, err = encrypt(assertionEl, req.SPSSODescriptor); err != nil {
			return Form{}, err
		}
	}
	resp := &saml.Response{
		Destination: req.ACSEndpoint.Location, ID: "id-" + randomHex(20), InResponseTo: req.Request.ID,
		IssueInstant: req.Now, Version: "2.0",
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: i.MetadataURL},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	if o.EditResponse != nil {
		o.EditResponse(resp)
	}
	respEl := resp.Element()
	respEl.AddChild(assertionEl)
	if o.SignResponse {
		if respEl, err = i.sign(respEl, o.SignatureMethod); err != nil {
			return Form{}, err
		}
	}
	doc := etree.NewDocument()
	doc.SetRoot(respEl)
	out, err := doc.WriteToString()
	if err != nil {
		return Form{}, err
	}
	if o.Tamper != nil {
		out = o.Tamper(out)
	}
	return Form{URL: req.ACSEndpoint.Location, SAMLResponse: base64.StdEncoding.EncodeToString([]byte(out)),
		RelayState: req.RelayState}, nil
}

// sign adds an enveloped signature (RSA-SHA256 unless method names
// another), placed after the Issuer as the SAML schema wants it.
func (i *IdP) sign(el *etree.Element, method string) (*etree.Element, error) {
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
		Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if method == "" {
		method = dsig.RSASHA256SignatureMethod
	}
	if err := ctx.SetSignatureMethod(method); err != nil {
		return nil, err
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return nil, err
	}
	// The enveloped-signature transform leaves the Signature out of the
	// digest, so it may go where the schema wants it: after the Issuer.
	at := len(el.Child)
	if issuer := el.SelectElement("Issuer"); issuer != nil {
		at = issuer.Index() + 1
	}
	el.InsertChildAt(at, sig)
	return el, nil
}

// encrypt wraps the assertion in an EncryptedAssertion for the SP's
// encryption certificate, as crewjam/saml's IdP does.
func encrypt(el *etree.Element, sp *saml.SPSSODescriptor) (*etree.Element, error) {
	var certData string
	for _, kd := range sp.KeyDescriptors {
		if kd.Use == "encryption" && len(kd.KeyInfo.X509Data.X509Certificates) > 0 {
			certData = kd.KeyInfo.X509Data.X509Certificates[0].Data
		}
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(certData), ""))
	if err != nil || len(der) == 0 {
		return nil, errors.New("SP metadata has no encryption certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	doc.SetRoot(el)
	buf, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES256CBC
	enc.DigestMethod = &xmlenc.SHA256
	data, err := enc.Encrypt(cert, buf, nil)
	if err != nil {
		return nil, err
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.AddChild(data)
	return ea, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Replace returns a Tamper function replacing old by new once, failing
// the test when old does not occur.
func Replace(t testing.TB, old, new string) func(string) string {
	return func(doc string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("tamper: %q not in the response", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
}
