package providers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

const responseOpen = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="id-1" Version="2.0">`

// junkResponse is a samlp:Response of about size bytes holding n empty
// elements per level, nested depth deep: what an anonymous POST costs
// the most to read for its size.
func junkResponse(size int) []byte {
	var b strings.Builder
	b.WriteString(responseOpen)
	for b.Len() < size-len("</samlp:Response>") {
		b.WriteString("<a/>")
	}
	b.WriteString("</samlp:Response>")
	return []byte(b.String())
}

func nested(depth int) []byte {
	return []byte(responseOpen + strings.Repeat("<a>", depth-1) + strings.Repeat("</a>", depth-1) + "</samlp:Response>")
}

func elements(n int) []byte {
	return []byte(responseOpen + strings.Repeat("<a/>", n-1) + "</samlp:Response>")
}

// wrap76 breaks base64 into CRLF-terminated lines of 76 characters, as
// some IdPs post it.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func formPost(v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testBase+"/auth/saml/corp/acs", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_ = r.ParseForm()
	return r
}

func b64(doc []byte) string { return base64.StdEncoding.EncodeToString(doc) }

// encryptedResponse is an unsigned Response answering inResponseTo, for
// p's ACS, holding plain as an assertion encrypted to p's certificate:
// anyone can make one.
func encryptedResponse(t testing.TB, p *samlProvider, inResponseTo string, plain []byte) []byte {
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES256CBC
	enc.DigestMethod = &xmlenc.SHA256
	data, err := enc.Encrypt(p.cert, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	doc := etree.NewDocument()
	resp := doc.CreateElement("samlp:Response")
	resp.CreateAttr("xmlns:samlp", nsProtocol)
	resp.CreateAttr("xmlns:saml", nsAssertion)
	resp.CreateAttr("ID", "id-1")
	resp.CreateAttr("Version", "2.0")
	resp.CreateAttr("InResponseTo", inResponseTo)
	resp.CreateAttr("IssueInstant", time.Now().UTC().Format(time.RFC3339))
	resp.CreateAttr("Destination", p.acsURL.String())
	resp.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Success")
	resp.CreateElement("saml:EncryptedAssertion").AddChild(data)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSAMLEncryptedJunk: an assertion anyone encrypted to the SP
// certificate, in a Response without a signature, gets the same bounds
// as the response before the library parses it.
func TestSAMLEncryptedJunk(t *testing.T) {
	idp := samltest.New(t)
	p := newTestSAML(t, idp, nil)
	ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	open := `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">`
	for _, tc := range []struct {
		name, plain, kind, want string
	}{
		{"too many elements", open + strings.Repeat("<a/>", 2048) + "</saml:Assertion>", failMalformed, "decrypted assertion: more than 2048 elements"},
		{"too deep", open + strings.Repeat("<a>", 32) + strings.Repeat("</a>", 32) + "</saml:Assertion>", failMalformed, "decrypted assertion: elements nested deeper"},
		{"DOCTYPE", `<!DOCTYPE a [<!ENTITY x "y">]>` + open + "&x;</saml:Assertion>", failMalformed, "decrypted assertion: a DOCTYPE"},
		{"within the bounds: refused for want of a signature", open + strings.Repeat("<a/>", 100) + "</saml:Assertion>", failSignature, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := encryptedResponse(t, p, ch.Saved, []byte(tc.plain))
			_, err := p.Complete(context.Background(), CompleteRequest{HTTP: formPost(url.Values{"SAMLResponse": {b64(doc)}}), Saved: ch.Saved})
			if failKind(err) != tc.kind || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %s: %q", err, tc.kind, tc.want)
			}
		})
	}
}

// TestSAMLCheapChecks: what is refused before the IdP metadata is even
// looked at, so before the well-formedness check, the tree and any
// signature. The provider's IdP is down: an answer that got past the
// cheap checks would fail as "unavailable", not as "malformed".
func TestSAMLCheapChecks(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	p, err := newSAML("corp", mapSettings{"idp_metadata_url": down.URL, "insecure_http_metadata": true,
		"sp_key": keyPEM, "sp_certificate": certPEM}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		form url.Values
		want string
	}{
		{"no SAMLResponse", url.Values{"RelayState": {"r"}}, "no SAMLResponse"},
		{"two SAMLResponse fields", url.Values{"SAMLResponse": {b64(elements(2)), b64(elements(2))}}, "several SAMLResponse"},
		{"500 KB of junk", url.Values{"SAMLResponse": {b64(junkResponse(500_000))}}, "larger than max_response_bytes (131072)"},
		{"just over the cap", url.Values{"SAMLResponse": {strings.Repeat("A", 128<<10+4)}}, "larger than max_response_bytes"},
		{"over the cap only once whitespace is dropped", url.Values{"SAMLResponse": {wrap76(strings.Repeat("A", 128<<10+4))}}, "larger than max_response_bytes"},
		{"not base64 text", url.Values{"SAMLResponse": {"PHNhbWxwOlJlc3BvbnNl<script>"}}, "not base64"},
		{"base64 that does not decode", url.Values{"SAMLResponse": {"AAAAA"}}, "not base64"},
		{"artifact binding", url.Values{"SAMLart": {"AAQAAM"}, "SAMLResponse": {b64(elements(2))}}, "artifact binding"},
		{"DOCTYPE", url.Values{"SAMLResponse": {b64([]byte(`<!DOCTYPE r [<!ENTITY x "y">]>` + responseOpen + `&x;</samlp:Response>`))}}, "DOCTYPE"},
		{"DOCTYPE without entities", url.Values{"SAMLResponse": {b64([]byte(`<?xml version="1.0"?><!DOCTYPE samlp:Response>` + responseOpen + `</samlp:Response>`))}}, "DOCTYPE"},
		{"one element too many", url.Values{"SAMLResponse": {b64(elements(2049))}}, "more than 2048 elements"},
		{"nested one level too deep", url.Values{"SAMLResponse": {b64(nested(33))}}, "deeper than 32"},
		{"not XML", url.Values{"SAMLResponse": {b64([]byte("{\"saml\": true}"))}}, "no element"},
		{"mismatched tags", url.Values{"SAMLResponse": {b64([]byte(responseOpen + "<a></b></samlp:Response>"))}}, "not well-formed"},
		{"unclosed element", url.Values{"SAMLResponse": {b64([]byte(responseOpen + "<a/>"))}}, "not well-formed"},
		{"bad syntax", url.Values{"SAMLResponse": {b64([]byte(responseOpen + "<a b=c/></samlp:Response>"))}}, "not well-formed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := p.Complete(context.Background(), CompleteRequest{HTTP: formPost(tc.form), Saved: "id-1"})
			if failKind(err) != failMalformed || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want malformed: %q", err, tc.want)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Fatal("the answer reached the metadata")
			}
			t.Logf("refused in %v: %v", time.Since(start), err)
		})
	}
	// Within the bounds, the answer goes on to the metadata (here: down).
	for name, doc := range map[string][]byte{"2048 elements": elements(2048), "nested 32 deep": nested(32)} {
		_, err := p.Complete(context.Background(), CompleteRequest{HTTP: formPost(url.Values{"SAMLResponse": {b64(doc)}}), Saved: "id-1"})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: %v, want to pass the cheap checks", name, err)
		}
	}
}

// TestSAMLResponseSizeLimit: a real signed and encrypted response with
// many groups fits the default cap; max_response_bytes moves the cap (and
// the element bound with it) and is itself bounded.
func TestSAMLResponseSizeLimit(t *testing.T) {
	idp := samltest.New(t)
	many := samlAda
	many.Groups = nil
	for i := range 150 {
		many.Groups = append(many.Groups, fmt.Sprintf("CN=Group Number %04d,OU=Groups,OU=Corp,DC=corp,DC=example,DC=com", i))
	}
	opts := samltest.Options{User: many, SignAssertion: true, SignResponse: true, Encrypt: true}
	for _, tc := range []struct {
		name     string
		settings mapSettings
		want     string
	}{
		{"default cap", nil, ""},
		{"a smaller cap", mapSettings{"max_response_bytes": 32 << 10}, failMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestSAML(t, idp, tc.settings)
			ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
			if err != nil {
				t.Fatal(err)
			}
			form, err := idp.Respond(ch.RedirectURL, opts)
			if err != nil {
				t.Fatal(err)
			}
			form.SAMLResponse = wrap76(form.SAMLResponse)
			t.Logf("150 groups, signed and encrypted: %d bytes of base64", len(strings.Join(strings.Fields(form.SAMLResponse), "")))
			id, err := p.Complete(context.Background(), CompleteRequest{HTTP: post(form), Saved: ch.Saved})
			if failKind(err) != tc.want {
				t.Fatalf("outcome %v, want %q", err, tc.want)
			}
			if err == nil && len(id.Groups) != 150 {
				t.Fatalf("groups = %d", len(id.Groups))
			}
		})
	}
	t.Run("a larger cap allows more elements", func(t *testing.T) {
		p := newTestSAML(t, idp, mapSettings{"max_response_bytes": 256 << 10})
		_, err := p.Complete(context.Background(), CompleteRequest{HTTP: formPost(url.Values{"SAMLResponse": {b64(elements(4000))}}), Saved: "id-1"})
		if err == nil || strings.Contains(err.Error(), "elements") {
			t.Fatalf("4000 elements under a 256 KiB cap: %v", err)
		}
		_, err = p.Complete(context.Background(), CompleteRequest{HTTP: formPost(url.Values{"SAMLResponse": {b64(elements(4097))}}), Saved: "id-1"})
		if !strings.Contains(fmt.Sprint(err), "more than 4096 elements") {
			t.Fatalf("4097 elements under a 256 KiB cap: %v", err)
		}
	})
}

// TestSAMLCheckPost: the fields the ACS posts again from its own origin
// are the SAMLResponse (whitespace dropped) and a RelayState SAML allows,
// nothing else; nothing is decoded.
func TestSAMLCheckPost(t *testing.T) {
	idp := samltest.New(t)
	p := newTestSAML(t, idp, nil)
	resp := wrap76(b64(elements(200)))
	fields, state, err := p.CheckPost(url.Values{"SAMLResponse": {resp}, "RelayState": {"state-0123456789abcdef"}, "evil": {"<script>"}})
	if err != nil || state != "state-0123456789abcdef" || len(fields) != 2 ||
		fields["SAMLResponse"] != b64(elements(200)) || fields["RelayState"] != state {
		t.Fatalf("fields %v, state %q, err %v", fields, state, err)
	}
	long := strings.Repeat("r", 81)
	fields, state, err = p.CheckPost(url.Values{"SAMLResponse": {resp}, "RelayState": {long}})
	if err != nil || state != "" || len(fields) != 1 {
		t.Fatalf("an 81-byte RelayState: fields %v, state %q, err %v", fields, state, err)
	}
	// A refused answer still names its state, so the sign-in can be ended.
	_, state, err = p.CheckPost(url.Values{"SAMLResponse": {"%%%"}, "RelayState": {"state-0123456789abcdef"}})
	if failKind(err) != failMalformed || state != "state-0123456789abcdef" {
		t.Fatalf("refused answer: state %q, err %v", state, err)
	}
	// Junk that is valid base64 is not looked into here.
	if _, _, err := p.CheckPost(url.Values{"SAMLResponse": {b64(nested(100))}}); err != nil {
		t.Fatalf("CheckPost decoded the answer: %v", err)
	}
	if p.PostURL() != testBase+"/auth/saml/corp/acs" {
		t.Fatalf("PostURL = %s", p.PostURL())
	}
}
