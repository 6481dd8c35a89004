package providers

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// samlSeedTime is a second after the fixed-key test IdP made the signed
// responses among FuzzSAMLResponse's seeds (2026-11-23T16:40:32Z): at that
// time every seed is within its IssueInstant, Conditions and
// SubjectConfirmationData windows, so each reaches the check it is named
// for instead of failing on its age.
var samlSeedTime = time.Date(2026, 11, 23, 16, 40, 33, 0, time.UTC)

// atSAMLSeedTime sets the clock of crewjam/saml and of p to samlSeedTime
// until tb ends. crewjam/saml reads the time only from its package-level
// saml.TimeNow, so only a test that never runs beside another may use
// this: one that does not call t.Parallel (Go starts a package's parallel
// tests only once all its sequential tests have finished), or a fuzz
// target (run after every test, one input at a time in each process,
// whose fuzz function does not call t.Parallel).
func atSAMLSeedTime(tb testing.TB, p *samlProvider) {
	tb.Helper()
	prev := saml.TimeNow
	now := func() time.Time { return samlSeedTime }
	saml.TimeNow = now
	tb.Cleanup(func() { saml.TimeNow = prev })
	p.now = now
}

// samlAdaIdentity is the whole identity the test IdP signs for samlAda, as
// newTestSAML's provider maps it: every accepted response must yield
// exactly this, claims included.
func samlAdaIdentity() *Identity {
	return &Identity{
		Provider: "corp", Subject: "ada-0001", Email: "ada@example.com", EmailVerified: false,
		Name: "Ada Lovelace", Groups: []string{"saml:group:eng", "saml:group:admins"},
		Claims: map[string]any{
			"name_id":        "ada-0001",
			"name_id_format": string(saml.PersistentNameIDFormat),
			"authn_context":  "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
			"attributes": map[string][]string{
				"urn:oid:0.9.2342.19200300.100.1.3": {"Ada@Example.com"},
				"urn:oid:1.3.6.1.4.1.5923.1.1.1.6":  {"Ada@Example.com"},
				"urn:oid:2.5.4.3":                   {"Ada Lovelace"},
				"urn:oid:1.3.6.1.4.1.5923.1.1.1.1":  {"eng", "admins", "eng"},
			},
		},
		AMR: []string{"pwd"}, ACR: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
	}
}

// isSAMLAda reports whether id is samlAdaIdentity, with an AuthTime (the
// AuthnInstant, which differs from response to response) that is either
// absent or not after now (plus the library's clock skew).
func isSAMLAda(id *Identity, now time.Time) bool {
	if id == nil || id.AuthTime.After(now.Add(saml.MaxClockSkew)) {
		return false
	}
	c := *id
	c.AuthTime = time.Time{}
	return reflect.DeepEqual(&c, samlAdaIdentity())
}

// fuzzSAMLSetup returns FuzzSAMLResponse's provider, trusting the
// fixed-key IdP under the entity ids the seeds were made for, at
// samlSeedTime.
func fuzzSAMLSetup(tb testing.TB) (*samltest.IdP, *samlProvider) {
	idp := samltest.Offline(tb, "https://idp.fuzz.example")
	p := newTestSAML(tb, idp, nil)
	atSAMLSeedTime(tb, p)
	return idp, p
}

// FuzzSAMLResponse drives the ACS parsing path (the cheap checks, then
// crewjam/saml inside Gatehouse's checks) with arbitrary response
// documents, at the time the signed seeds were made (samlSeedTime), so
// that each seed reaches the check it is named for
// (TestSAMLFuzzSeedsReachTheirChecks pins which). No input may panic out
// of Complete; a refusal is a UserError and nothing else; and an accepted
// response yields exactly the identity the IdP signed (subject, email,
// name, groups, claims, AMR), never a part an attacker changed. The seeds
// in testdata/fuzz are real responses of the fixed-key test IdP, the
// attacks the tests know, and inputs each cheap check refuses (cheap-*:
// size, DOCTYPE, element count, depth, tag matching, and the same for an
// assertion anyone encrypted to the SP certificate).
func FuzzSAMLResponse(f *testing.F) {
	idp, p := fuzzSAMLSetup(f)
	ch, err := p.Begin(context.Background(), BeginRequest{State: "state-0123456789abcdef"})
	if err != nil {
		f.Fatal(err)
	}
	// A genuine response made now (at samlSeedTime): accepted once, then a
	// replay.
	form, err := idp.Respond(ch.RedirectURL, samltest.Options{User: samlAda, SignAssertion: true, SignResponse: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(form.DecodedXML()), ch.Saved)
	f.Add([]byte("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"), "id-1")
	want := samlAdaIdentity()
	f.Fuzz(func(t *testing.T, doc []byte, requestID string) {
		r := post(samltest.Form{SAMLResponse: base64.StdEncoding.EncodeToString(doc)})
		id, err := p.Complete(context.Background(), CompleteRequest{HTTP: r, Saved: requestID})
		if err != nil {
			var ue *UserError
			if id != nil || !errors.As(err, &ue) {
				t.Fatalf("refusal is not a clean UserError: %+v, %v", id, err)
			}
			return
		}
		if !isSAMLAda(id, samlSeedTime) {
			t.Fatalf("accepted an identity the IdP never signed:\n got %#v\nwant %#v", id, want)
		}
	})
}

// readFuzzSeed reads a checked-in seed of FuzzSAMLResponse: a []byte
// document and a string request id.
func readFuzzSeed(t *testing.T, path string) (doc []byte, requestID string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a two-value corpus file", path)
	}
	d, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: document: %v", path, err)
	}
	id, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "string("), ")"))
	if err != nil {
		t.Fatalf("%s: request id: %v", path, err)
	}
	return []byte(d), id
}

// TestSAMLFuzzSeedsReachTheirChecks runs every checked-in seed of
// FuzzSAMLResponse as the target does and pins why each one is refused (or
// that it is accepted): a seed that stopped reaching its check, for
// example because it expired, only proves the check that stops it now.
func TestSAMLFuzzSeedsReachTheirChecks(t *testing.T) {
	_, p := fuzzSAMLSetup(t)
	inTable := map[string]bool{}
	for _, tc := range []struct {
		seed string
		// kind is the failure kind, "" for accepted; detail is part of the
		// audited reason.
		kind, detail string
	}{
		{"genuine-both-signed", "", ""},
		{"assertion-signed", "", ""},
		{"response-signed", "", ""},
		{"encrypted-assertion", "", ""},
		{"unsigned", failSignature, "signature element not present"},
		{"tampered-attribute", failSignature, "Signature could not be verified"},
		{"wrapping-injected", failSignature, "(signature wrapping)"},
		{"foreign-nameid", failSubject, "2 NameID elements, 1 in the SAML assertion namespace"},
		// GO-2026-6909: crewjam/saml dereferences the missing element.
		{"missing-conditions", failMalformed, "panic while validating"},
		{"missing-confirmation-data", failMalformed, "panic while validating"},
		{"doctype-entity", failMalformed, "DOCTYPE"},
		{"not-xml", failMalformed, "no element"},
		{"cheap-doctype-no-entities", failMalformed, "DOCTYPE"},
		{"cheap-encrypted-doctype", failMalformed, "decrypted assertion: a DOCTYPE"},
		{"cheap-encrypted-too-many", failMalformed, "decrypted assertion: more than"},
		{"cheap-mismatched-end-tag", failMalformed, "end tag does not match"},
		{"cheap-oversize", failMalformed, "larger than max_response_bytes"},
		{"cheap-too-deep", failMalformed, "nested deeper than"},
		{"cheap-too-many-elements", failMalformed, "more than 2048 elements"},
		{"cheap-unclosed", failMalformed, "an element is not closed"},
	} {
		inTable[tc.seed] = true
		t.Run(tc.seed, func(t *testing.T) {
			doc, requestID := readFuzzSeed(t, filepath.Join("testdata/fuzz/FuzzSAMLResponse", tc.seed))
			r := post(samltest.Form{SAMLResponse: base64.StdEncoding.EncodeToString(doc)})
			id, err := p.Complete(context.Background(), CompleteRequest{HTTP: r, Saved: requestID})
			if tc.kind == "" {
				if err != nil || !isSAMLAda(id, samlSeedTime) || id.AuthTime.IsZero() {
					t.Fatalf("genuine seed: %+v, %v", id, err)
				}
				return
			}
			if got := failKind(err); got != tc.kind || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("refused as %q (%v); want %s with %q", got, err, tc.kind, tc.detail)
			}
		})
	}
	files, err := filepath.Glob("testdata/fuzz/FuzzSAMLResponse/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("seed %s is not in the table: say which check it reaches", filepath.Base(f))
		}
	}
}
