package providers

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// FuzzSAMLResponse drives the ACS parsing path (the cheap checks, then
// crewjam/saml inside Gatehouse's checks) with arbitrary response
// documents. No input may panic out of Complete, and none may yield an
// identity the IdP did not sign: the seeds in testdata/fuzz are real
// responses of a fixed-key test IdP (long expired by the time they run),
// the attacks the tests know, and inputs each cheap check refuses
// (cheap-*: size, DOCTYPE, element count, depth, tag matching, and the
// same for an assertion anyone encrypted to the SP certificate).
func FuzzSAMLResponse(f *testing.F) {
	idp := samltest.Offline(f, "https://idp.fuzz.example")
	p := newTestSAML(f, idp, nil)
	ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
	if err != nil {
		f.Fatal(err)
	}
	// A live, genuine response: accepted once, then a replay.
	form, err := idp.Respond(ch.RedirectURL, samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(form.DecodedXML()), ch.Saved)
	f.Add([]byte("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"), "id-1")
	f.Fuzz(func(t *testing.T, doc []byte, requestID string) {
		r := post(samltest.Form{SAMLResponse: base64.StdEncoding.EncodeToString(doc)})
		id, err := p.Complete(context.Background(), CompleteRequest{HTTP: r, Saved: requestID})
		if err == nil && (id.Subject != samlAda.NameID || id.Email != "ada@example.com") {
			t.Fatalf("accepted an identity the IdP never signed: %+v", id)
		}
	})
}
