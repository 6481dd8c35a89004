package providers

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// BenchmarkSAMLComplete is what the ACS spends on one answer, by kind of
// answer, from the parsed form to the outcome (docs/performance.md):
//
//	go test -run '^$' -bench SAMLComplete -benchtime 20x -count 3 ./providers/
func BenchmarkSAMLComplete(b *testing.B) {
	idp := samltest.New(b)
	p := newTestSAML(b, idp, nil)
	ctx := context.Background()
	ch, err := p.Begin(ctx, BeginRequest{State: "state-0123456789abcdef"})
	if err != nil {
		b.Fatal(err)
	}
	form := func(doc []byte) *http.Request {
		v := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(doc)}}
		r := httptest.NewRequest(http.MethodPost, testBase+"/auth/saml/corp/acs", strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_ = r.ParseForm()
		return r
	}
	open := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-1" Version="2.0">`
	sibling := func(size int) []byte {
		return []byte(open + strings.Repeat("<a/>", (size-len(open)-17)/4) + "</samlp:Response>")
	}
	cases := []struct {
		name string
		doc  []byte
	}{
		{"junk 500 KB", sibling(500_000)},
		{"junk 96 KiB", sibling(96 << 10)},
		{"junk 2048 elements", []byte(open + strings.Repeat("<a/>", 2046) + "</samlp:Response>")},
		{"encrypted junk 64 KiB", encryptedResponse(b, p, ch.Saved, []byte(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">`+strings.Repeat("<a/>", 16<<10)+`</saml:Assertion>`))},
	}
	for _, tc := range cases {
		r := form(tc.doc)
		b.Run(fmt.Sprintf("%s (%d KiB posted)", tc.name, len(r.PostForm.Get("SAMLResponse"))>>10), func(b *testing.B) {
			var err error
			for b.Loop() {
				if _, err = p.Complete(ctx, CompleteRequest{HTTP: r, Saved: ch.Saved}); err == nil {
					b.Fatal("junk accepted")
				}
			}
			b.Log(err)
		})
	}
	many := samlAda
	many.Groups = nil
	for i := range 150 {
		many.Groups = append(many.Groups, fmt.Sprintf("CN=Group Number %04d,OU=Groups,OU=Corp,DC=corp,DC=example,DC=com", i))
	}
	for _, tc := range []struct {
		name string
		opts samltest.Options
	}{
		{"valid, signed, 3 groups", samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true}},
		{"valid, signed and encrypted, 150 groups", samltest.Options{User: many, SignAssertion: true, SignResponse: true, Encrypt: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				ch, _ := p.Begin(ctx, BeginRequest{State: "state-0123456789abcdef"})
				f, err := idp.Respond(ch.RedirectURL, tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				r := post(f)
				b.StartTimer()
				if _, err := p.Complete(ctx, CompleteRequest{HTTP: r, Saved: ch.Saved}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
