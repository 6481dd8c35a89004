package providers

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	xrv "github.com/mattermost/xml-roundtrip-validator"
	dsig "github.com/russellhaering/goxmldsig"
)

// Validating a SAML response is crewjam/saml's ParseXMLResponse (status,
// issuer, destination, InResponseTo, times, signatures, decryption) wrapped
// in Gatehouse's own checks, for what the library leaves open:
//
//   - before it: one assertion per response, no more (signature wrapping);
//     the signature and encryption policy; no InResponseTo when unsolicited;
//   - around it: panics become errors (GO-2026-6909: a nil-pointer panic in
//     assertion validation);
//   - after it: the fields that matter are read namespace-aware from the
//     element the signature actually covered, never from the library's
//     namespace-blind struct (GO-2026-6909: NameID spoofing), and audience,
//     subject confirmation and replay are checked there.

const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
	nsXMLEnc    = "http://www.w3.org/2001/04/xmlenc#"
	bearer      = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	rsa15       = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
)

// Bounds on an answer, checked before anything builds a tree of it or
// looks at a signature: an anonymous POST must cost little to refuse.
const (
	// defaultMaxResponseBytes bounds the posted SAMLResponse: base64
	// characters, whitespace excluded. A signed and encrypted response
	// with 150 groups named by long LDAP DNs (Entra ID's most in a SAML
	// token) posts about 63 KiB; docs/providers-saml.md has the figures.
	defaultMaxResponseBytes = 128 << 10
	// minMaxResponseBytes and maxMaxResponseBytes bound max_response_bytes.
	minMaxResponseBytes = 16 << 10
	maxMaxResponseBytes = 1 << 20
	// bytesPerElement sets the element bound: one element per this many
	// bytes of the encoded answer (2,048 at the default). Real SAML
	// elements take 60 bytes or more each once encoded (an
	// AttributeValue with its prefix and type, base64), and each one the
	// bound lets through costs about 12 µs in the validators after it.
	bytesPerElement = 64
	// maxXMLDepth bounds nesting; a SAML response nests about 8 deep.
	maxXMLDepth = 32
	// maxRelayStateBytes is SAML's own limit (bindings §3.4.3).
	maxRelayStateBytes = 80
)

// Limits on what an assertion may carry into an Identity.
const (
	maxValueLen = 256
)

// Failure kinds: the first word of the audited reason, and what the page
// tells the person.
const (
	failSignature   = "signature"
	failAudience    = "audience"
	failExpired     = "expired"
	failReplay      = "replay"
	failRequest     = "request"
	failDestination = "destination"
	failIssuer      = "issuer"
	failStatus      = "status"
	failSubject     = "subject"
	failEncryption  = "encryption"
	failUnsolicited = "unsolicited"
	failMalformed   = "malformed"
	failAlgorithm   = "algorithm"
	failMaxAge      = "max_age"
)

var failMessages = map[string]string{
	failSignature:   "The identity provider's answer was not signed with its certificate, or was changed after signing, so it was not accepted.",
	failAudience:    "The identity provider's answer was meant for another service, not this one.",
	failExpired:     "The identity provider's answer has expired. Please sign in again; if this keeps happening, the clocks of the two services disagree.",
	failReplay:      "This sign-in answer was already used. Please sign in again.",
	failRequest:     "The identity provider's answer does not belong to the sign-in you started here. Please sign in again.",
	failDestination: "The identity provider's answer was addressed to another address than this service's.",
	failIssuer:      "The answer comes from another identity provider than the one configured.",
	failStatus:      "The identity provider did not sign you in.",
	failSubject:     "The identity provider did not identify you in a way this service accepts. Your administrator can check the NameID format and attribute settings.",
	failEncryption:  "The identity provider's answer could not be decrypted, or was not encrypted as this service requires.",
	failUnsolicited: "Sign-in started at the identity provider is not enabled for this service. Start from the application instead.",
	failMalformed:   "The identity provider's answer could not be read.",
	failAlgorithm:   "The identity provider signed its answer with SHA-1, which this service does not accept. Your administrator can switch the identity provider to SHA-256.",
	failMaxAge:      "The application asked for a recent sign-in, but the identity provider answered with an older one. Please sign in again.",
}

// samlFail builds the error for a failure kind. The detail goes to the
// audit log; it is the library's or our own short reason, never the XML.
func samlFail(kind, detail string) error {
	base := ErrInvalidResponse
	if kind == failStatus {
		base = ErrDenied
	}
	return &UserError{Message: failMessages[kind], Err: fmt.Errorf("%w: saml %s: %s", base, kind, cleanDetail(detail))}
}

// cleanDetail keeps a reason short and printable.
func cleanDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "…"
	}
	return s
}

// classify maps a crewjam/saml error to a failure kind. The library's
// reasons are plain strings; the pinned version's wording is what the
// table-driven tests pin down.
func classify(err error) error {
	var ire *saml.InvalidResponseError
	if !errors.As(err, &ire) || ire.PrivateErr == nil {
		return samlFail(failMalformed, err.Error())
	}
	priv := ire.PrivateErr
	var bad saml.ErrBadStatus
	if errors.As(priv, &bad) {
		return samlFail(failStatus, "status "+bad.Status)
	}
	msg := priv.Error()
	kind := failMalformed
	for _, k := range []struct{ needle, kind string }{
		{"signature", failSignature},
		{"decrypt", failEncryption},
		{"AudienceRestriction", failAudience},
		{"expired", failExpired},
		{"not yet valid", failExpired},
		{"InResponseTo", failRequest},
		{"possible request IDs", failRequest},
		{"Destination", failDestination},
		{"Recipient", failDestination},
		{"ssuer", failIssuer},
	} {
		if strings.Contains(msg, k.needle) {
			kind = k.kind
			break
		}
	}
	return samlFail(kind, msg)
}

// encodedResponse returns the posted SAMLResponse without whitespace. It
// refuses, in one pass and before decoding anything, a form with none or
// several, one longer than max_response_bytes, or one that is not base64
// text.
func (p *samlProvider) encodedResponse(form url.Values) (string, error) {
	values := form["SAMLResponse"]
	switch {
	case len(values) == 0 || values[0] == "":
		return "", samlFail(failMalformed, "no SAMLResponse")
	case len(values) > 1:
		return "", samlFail(failMalformed, "several SAMLResponse fields")
	case len(values[0]) > 2*p.policy.maxResponse:
		// Line breaks every 64 or 76 characters are far below double.
		return "", samlFail(failMalformed, fmt.Sprintf("SAMLResponse larger than max_response_bytes (%d)", p.policy.maxResponse))
	}
	v := values[0]
	var b strings.Builder
	b.Grow(min(len(v), p.policy.maxResponse))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=':
			if b.Len() == p.policy.maxResponse {
				return "", samlFail(failMalformed, fmt.Sprintf("SAMLResponse larger than max_response_bytes (%d)", p.policy.maxResponse))
			}
			b.WriteByte(c)
		case c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			return "", samlFail(failMalformed, "SAMLResponse is not base64")
		}
	}
	return b.String(), nil
}

// decodeResponse decodes a SAMLResponse encodedResponse returned and scans
// it with a streaming XML decoder, refusing a DOCTYPE (or any other
// directive), more elements than its size allows, or deeper nesting than
// maxXMLDepth. Nothing is built: the scan costs a few milliseconds at
// most, far less than the well-formedness check, the tree and the
// signatures that come after it.
func (p *samlProvider) decodeResponse(encoded string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, samlFail(failMalformed, "SAMLResponse is not base64")
	}
	if err := scanXML(raw, max(p.policy.maxResponse/bytesPerElement, 1)); err != nil {
		return nil, samlFail(failMalformed, err.Error())
	}
	return raw, nil
}

// scanXML walks doc token by token, counting elements and nesting.
func scanXML(doc []byte, maxElements int) error {
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	// Like etree: the declared encoding is not converted. The scan only
	// counts; the parsers after it decide what the text means.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	elements := 0
	var open []xml.Name // at most maxXMLDepth
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			elements++
			switch {
			case elements > maxElements:
				return fmt.Errorf("more than %d elements", maxElements)
			case len(open) == maxXMLDepth:
				return fmt.Errorf("elements nested deeper than %d", maxXMLDepth)
			}
			open = append(open, t.Name)
		case xml.EndElement:
			if len(open) == 0 || open[len(open)-1] != t.Name {
				return errors.New("not well-formed XML: an end tag does not match its start tag")
			}
			open = open[:len(open)-1]
		case xml.Directive:
			// A DOCTYPE declares entities (billion laughs) and external
			// references; SAML has no use for one.
			return errors.New("a DOCTYPE or other directive is refused")
		}
	}
	if len(open) > 0 {
		return errors.New("not well-formed XML: an element is not closed")
	}
	if elements == 0 {
		return errors.New("no element")
	}
	return nil
}

// validate turns a decoded SAMLResponse, past the cheap checks, into an
// Identity or a failure.
func (p *samlProvider) validate(ctx context.Context, sp *saml.ServiceProvider, raw []byte, saved samlSaved, unsolicited bool) (id *Identity, err error) {
	defer func() {
		if r := recover(); r != nil {
			id, err = nil, samlFail(failMalformed, fmt.Sprintf("panic while validating: %v", r))
		}
	}()
	raw, err = p.precheck(raw, unsolicited)
	if err != nil {
		return nil, err
	}
	rec := &signatureRecorder{allowSHA1: p.policy.allowSHA1}
	spc := *sp
	spc.SignatureVerifier = rec
	spc.AllowIDPInitiated = unsolicited
	requestID := saved.RequestID
	var ids []string
	if !unsolicited {
		ids = []string{requestID}
	}
	a, err := spc.ParseXMLResponse(raw, ids, p.acsURL)
	if rec.refused != "" {
		return nil, samlFail(failAlgorithm, rec.refused+" (insecure_allow_sha1_signatures is off)")
	}
	if err != nil {
		return nil, classify(err)
	}
	switch {
	case p.policy.signed == "response" && rec.find(nsProtocol, "Response", "") == nil:
		return nil, samlFail(failSignature, "the Response is not signed (require_signature: response)")
	case p.policy.signed == "assertion" && rec.find(nsAssertion, "Assertion", a.ID) == nil:
		return nil, samlFail(failSignature, "the Assertion is not signed (require_signature: assertion)")
	}
	el, err := rec.assertion(a.ID, p.key)
	if err != nil {
		return nil, samlFail(failSignature, err.Error())
	}
	f, err := p.readAssertion(el, requestID, unsolicited)
	if err != nil {
		return nil, err
	}
	if saved.MaxAge != nil {
		if err := p.checkMaxAge(f, *saved.MaxAge); err != nil {
			return nil, err
		}
	}
	// The assertion is refused by the library once IssueInstant is older
	// than MaxIssueDelay, so its id is needed only that long (plus skew).
	issued := a.IssueInstant
	if now := p.now(); issued.Before(now) {
		issued = now
	}
	fresh, err := p.replay.Remember(ctx, p.name, a.ID, issued.Add(saml.MaxIssueDelay+saml.MaxClockSkew))
	if err != nil {
		return nil, fmt.Errorf("saml replay cache: %w", err)
	}
	if !fresh {
		return nil, samlFail(failReplay, "assertion "+cleanDetail(a.ID)+" was already accepted")
	}
	return p.identity(f)
}

// precheck refuses what the library would let through, before it runs.
func (p *samlProvider) precheck(raw []byte, unsolicited bool) ([]byte, error) {
	if err := xrv.Validate(bytes.NewReader(raw)); err != nil {
		return nil, samlFail(failMalformed, "not well-formed XML: "+err.Error())
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, samlFail(failMalformed, "XML: "+err.Error())
	}
	root := doc.Root()
	if root == nil || root.Tag != "Response" || root.NamespaceURI() != nsProtocol {
		return nil, samlFail(failMalformed, "not a samlp:Response")
	}
	// One assertion, a direct child of the Response. A second one anywhere
	// (beside it, inside an Extensions, Advice or Object element) is how
	// signature wrapping smuggles an unsigned assertion past a valid
	// signature over the genuine one.
	var total, direct, encrypted int
	for _, e := range root.FindElements(".//*") {
		switch {
		case e.Tag == "Assertion" || e.Tag == "EncryptedAssertion":
			total++
		case e.Tag == "EncryptionMethod" && e.SelectAttrValue("Algorithm", "") == rsa15:
			// xmlenc would decrypt it; PKCS#1 v1.5 key transport turns the
			// ACS into a padding oracle for the SP key (Bleichenbacher).
			return nil, samlFail(failEncryption, "RSA PKCS#1 v1.5 key transport is refused; use RSA-OAEP")
		}
	}
	for _, e := range root.ChildElements() {
		if (e.Tag == "Assertion" || e.Tag == "EncryptedAssertion") && e.NamespaceURI() == nsAssertion {
			direct++
			if e.Tag == "EncryptedAssertion" {
				encrypted++
			}
		}
	}
	if total > 1 || total != direct {
		return nil, samlFail(failSignature, fmt.Sprintf("%d assertions in the response, %d where one belongs (signature wrapping)", total, direct))
	}
	if encrypted == 1 && !signedDirectly(root) {
		// In a Response without a signature of its own, crewjam/saml
		// decrypts the assertion and parses it before looking for its
		// signature, and anyone can encrypt to the SP certificate: the
		// plaintext gets the bounds the response got, before that.
		for _, e := range root.ChildElements() {
			if e.Tag != "EncryptedAssertion" {
				continue
			}
			plain, err := decryptAssertionXML(e, p.key)
			if err != nil {
				return nil, samlFail(failEncryption, err.Error())
			}
			if err := scanXML(plain, max(p.policy.maxResponse/bytesPerElement, 1)); err != nil {
				return nil, samlFail(failMalformed, "decrypted assertion: "+err.Error())
			}
		}
	}
	if p.policy.requireEncryption && direct == 1 && encrypted == 0 {
		return nil, samlFail(failEncryption, "the assertion is not encrypted (require_encrypted_assertions)")
	}
	if unsolicited && root.SelectAttrValue("InResponseTo", "") != "" {
		// SAML profiles §4.1.4.5: an unsolicited response carries none. One
		// that does answers some request, maybe another browser's.
		return nil, samlFail(failRequest, "an unsolicited response carries InResponseTo")
	}
	if p.policy.signed == "assertion" {
		// Drop the Response's own signature, so the library requires (and
		// checks) the assertion's: with a signed Response it would not.
		removed := false
		for _, e := range root.ChildElements() {
			if e.Tag == "Signature" && e.NamespaceURI() == nsDSig {
				root.RemoveChild(e)
				removed = true
			}
		}
		if removed {
			out, err := doc.WriteToBytes()
			if err != nil {
				return nil, samlFail(failMalformed, "re-serialize: "+err.Error())
			}
			return out, nil
		}
	}
	return raw, nil
}

// signatureRecorder verifies signatures exactly as crewjam/saml would and
// keeps what each signature covered: the validated element as the signer
// signed it, which is what Gatehouse then reads. Unless allowSHA1, it
// refuses every signature of an element that carries an SHA-1 signature
// or digest anywhere, before verifying anything.
type signatureRecorder struct {
	allowSHA1 bool
	verified  []*etree.Element
	// refused says which SHA-1 algorithm was refused, "" when none was.
	refused string
}

// sha1Algorithms are the SHA-1 signature and digest methods of XML
// signatures (RFC 3275, RFC 4051, RFC 6931).
var sha1Algorithms = map[string]bool{
	dsig.RSASHA1SignatureMethod:                   true,
	dsig.ECDSASHA1SignatureMethod:                 true,
	"http://www.w3.org/2000/09/xmldsig#dsa-sha1":  true,
	"http://www.w3.org/2000/09/xmldsig#hmac-sha1": true,
	"http://www.w3.org/2000/09/xmldsig#sha1":      true,
}

// sha1Use returns the first SHA-1 algorithm a signature in el (at any
// depth) names as its SignatureMethod or a DigestMethod, or "".
func sha1Use(el *etree.Element) string {
	for _, sig := range el.FindElements(".//Signature") {
		if sig.NamespaceURI() != nsDSig {
			continue
		}
		for _, m := range append(sig.FindElements("./SignedInfo/SignatureMethod"), sig.FindElements("./SignedInfo/Reference/DigestMethod")...) {
			if alg := m.SelectAttrValue("Algorithm", ""); sha1Algorithms[alg] && m.NamespaceURI() == nsDSig {
				return alg
			}
		}
	}
	return ""
}

// VerifySignature implements saml.SignatureVerifier.
func (r *signatureRecorder) VerifySignature(vc *dsig.ValidationContext, el *etree.Element) error {
	if !r.allowSHA1 {
		if alg := sha1Use(el); alg != "" {
			r.refused = "SHA-1 XML signature algorithm " + alg + " on " + el.Tag
			return errors.New("cannot validate signature on " + el.Tag + ": " + r.refused)
		}
	}
	signed, err := vc.Validate(el)
	if err != nil {
		return fmt.Errorf("cannot validate signature on %s: %v", el.Tag, err)
	}
	r.verified = append(r.verified, signed)
	return nil
}

// find returns a verified element by namespace, tag and (unless empty) ID.
func (r *signatureRecorder) find(ns, tag, id string) *etree.Element {
	for _, e := range r.verified {
		if e.Tag == tag && e.NamespaceURI() == ns && (id == "" || e.SelectAttrValue("ID", "") == id) {
			return e
		}
	}
	return nil
}

// assertion returns the signed form of the assertion with the given id:
// the assertion itself when its signature was verified, else the one
// inside the verified Response (decrypted when it is encrypted).
func (r *signatureRecorder) assertion(id string, key *rsa.PrivateKey) (*etree.Element, error) {
	if a := r.find(nsAssertion, "Assertion", id); a != nil {
		return a, nil
	}
	resp := r.find(nsProtocol, "Response", "")
	if resp == nil {
		return nil, errors.New("no verified signature covers the assertion")
	}
	for _, c := range resp.ChildElements() {
		if c.NamespaceURI() != nsAssertion {
			continue
		}
		el := c
		if c.Tag == "EncryptedAssertion" {
			var err error
			if el, err = decryptAssertion(c, key); err != nil {
				return nil, err
			}
		}
		if el.Tag == "Assertion" && el.NamespaceURI() == nsAssertion && el.SelectAttrValue("ID", "") == id {
			return el, nil
		}
	}
	return nil, errors.New("the signed Response does not contain the accepted assertion")
}

// signedDirectly reports whether el has an XML signature of its own.
func signedDirectly(el *etree.Element) bool {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == nsDSig {
			return true
		}
	}
	return false
}

// decryptAssertionXML decrypts an EncryptedAssertion as crewjam/saml does
// (its decryptElement is not exported), returning the plaintext.
func decryptAssertionXML(encEl *etree.Element, key *rsa.PrivateKey) ([]byte, error) {
	var data *etree.Element
	for _, c := range encEl.ChildElements() {
		if c.Tag == "EncryptedData" && c.NamespaceURI() == nsXMLEnc {
			data = c
		}
	}
	if data == nil {
		return nil, errors.New("EncryptedAssertion without EncryptedData")
	}
	var k any = key
	if keyEl := encEl.FindElement("./EncryptedKey"); keyEl != nil {
		var err error
		if k, err = xmlenc.Decrypt(key, keyEl); err != nil {
			return nil, fmt.Errorf("decrypt key: %v", err)
		}
	}
	plain, err := xmlenc.Decrypt(k, data)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %v", err)
	}
	return plain, nil
}

// decryptAssertion decrypts and parses an EncryptedAssertion.
func decryptAssertion(encEl *etree.Element, key *rsa.PrivateKey) (*etree.Element, error) {
	plain, err := decryptAssertionXML(encEl, key)
	if err != nil {
		return nil, err
	}
	if err := xrv.Validate(bytes.NewReader(plain)); err != nil {
		return nil, fmt.Errorf("decrypted assertion: %v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(plain); err != nil || doc.Root() == nil {
		return nil, errors.New("decrypted assertion does not parse")
	}
	return doc.Root(), nil
}

// assertionFacts is what Gatehouse reads from a signed assertion.
type assertionFacts struct {
	nameID, nameIDFormat string
	// byName and byFriendly map attribute names to their values.
	byName, byFriendly map[string][]string
	// authnContexts holds each AuthnStatement's AuthnContextClassRef (""
	// for a statement without one); authnInstants their AuthnInstant.
	authnContexts []string
	authnInstants []string
}

// childrenNamed returns el's child elements with the local name tag, in
// any namespace, and how many of them are in ns.
func childrenNamed(el *etree.Element, ns, tag string) (all []*etree.Element, inNS int) {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			all = append(all, c)
			if c.NamespaceURI() == ns {
				inNS++
			}
		}
	}
	return all, inNS
}

// one returns the single child named tag in ns; any other element of that
// name, in any namespace, is an error.
func one(el *etree.Element, tag string) (*etree.Element, error) {
	all, inNS := childrenNamed(el, nsAssertion, tag)
	if len(all) != 1 || inNS != 1 {
		return nil, fmt.Errorf("%d %s elements (%d in the SAML assertion namespace), want exactly one", len(all), tag, inNS)
	}
	return all[0], nil
}

// readAssertion checks the subject confirmation and audience of a signed
// assertion and reads its subject, attributes and authentication context.
func (p *samlProvider) readAssertion(a *etree.Element, requestID string, unsolicited bool) (*assertionFacts, error) {
	f := &assertionFacts{byName: map[string][]string{}, byFriendly: map[string][]string{}}
	subject, err := one(a, "Subject")
	if err != nil {
		return nil, samlFail(failSubject, err.Error())
	}
	if all, _ := childrenNamed(subject, nsAssertion, "EncryptedID"); len(all) > 0 {
		return nil, samlFail(failSubject, "encrypted NameIDs are not supported")
	}
	switch nameIDs, inNS := childrenNamed(subject, nsAssertion, "NameID"); {
	case len(nameIDs) > 1 || len(nameIDs) != inNS:
		// The spoofing GO-2026-6909 allows: a NameID in another namespace
		// that a namespace-blind reader takes for the real one.
		return nil, samlFail(failSubject, fmt.Sprintf("%d NameID elements, %d in the SAML assertion namespace", len(nameIDs), inNS))
	case len(nameIDs) == 1:
		f.nameID = strings.TrimSpace(nameIDs[0].Text())
		f.nameIDFormat = nameIDs[0].SelectAttrValue("Format", string(saml.UnspecifiedNameIDFormat))
	}
	confirmed := false
	for _, sc := range subject.ChildElements() {
		if sc.Tag != "SubjectConfirmation" || sc.NamespaceURI() != nsAssertion || sc.SelectAttrValue("Method", "") != bearer {
			continue
		}
		data, err := one(sc, "SubjectConfirmationData")
		if err != nil {
			return nil, samlFail(failDestination, "bearer SubjectConfirmation: "+err.Error())
		}
		switch irt := data.SelectAttrValue("InResponseTo", ""); {
		case data.SelectAttrValue("Recipient", "") != p.acsURL.String():
			return nil, samlFail(failDestination, "SubjectConfirmationData Recipient is not this ACS")
		case data.SelectAttrValue("NotOnOrAfter", "") == "":
			return nil, samlFail(failExpired, "SubjectConfirmationData without NotOnOrAfter")
		case unsolicited && irt != "":
			return nil, samlFail(failRequest, "an unsolicited assertion carries InResponseTo")
		case !unsolicited && irt != requestID:
			return nil, samlFail(failRequest, "SubjectConfirmationData InResponseTo does not match the request")
		}
		confirmed = true
	}
	if !confirmed {
		return nil, samlFail(failSubject, "no bearer SubjectConfirmation")
	}
	if err := p.checkAudience(a); err != nil {
		return nil, err
	}
	for _, st := range a.ChildElements() {
		if st.NamespaceURI() != nsAssertion {
			continue
		}
		switch st.Tag {
		case "AttributeStatement":
			for _, at := range st.ChildElements() {
				if at.Tag != "Attribute" || at.NamespaceURI() != nsAssertion {
					continue
				}
				var vals []string
				for _, v := range at.ChildElements() {
					if v.Tag == "AttributeValue" && v.NamespaceURI() == nsAssertion {
						vals = append(vals, strings.TrimSpace(v.Text()))
					}
				}
				if n := at.SelectAttrValue("Name", ""); n != "" {
					f.byName[n] = append(f.byName[n], vals...)
				}
				if n := at.SelectAttrValue("FriendlyName", ""); n != "" {
					f.byFriendly[n] = append(f.byFriendly[n], vals...)
				}
			}
		case "AuthnStatement":
			class := ""
			for _, ac := range st.ChildElements() {
				if ac.Tag != "AuthnContext" || ac.NamespaceURI() != nsAssertion {
					continue
				}
				for _, ref := range ac.ChildElements() {
					if ref.Tag == "AuthnContextClassRef" && ref.NamespaceURI() == nsAssertion {
						class = strings.TrimSpace(ref.Text())
					}
				}
			}
			f.authnContexts = append(f.authnContexts, class)
			f.authnInstants = append(f.authnInstants, st.SelectAttrValue("AuthnInstant", ""))
		}
	}
	return f, nil
}

// checkAudience requires an AudienceRestriction, and that every one of
// them names this service provider (SAML core §2.5.1.4: all must hold).
func (p *samlProvider) checkAudience(a *etree.Element) error {
	cond, err := one(a, "Conditions")
	if err != nil {
		return samlFail(failAudience, err.Error())
	}
	restrictions := 0
	for _, ar := range cond.ChildElements() {
		if ar.Tag != "AudienceRestriction" || ar.NamespaceURI() != nsAssertion {
			continue
		}
		restrictions++
		ok := false
		for _, au := range ar.ChildElements() {
			if au.Tag == "Audience" && au.NamespaceURI() == nsAssertion && strings.TrimSpace(au.Text()) == p.entityID {
				ok = true
			}
		}
		if !ok {
			return samlFail(failAudience, "an AudienceRestriction does not name this service provider")
		}
	}
	if restrictions == 0 {
		return samlFail(failAudience, "no AudienceRestriction")
	}
	return nil
}

// values returns the values of the first of names the assertion carries.
func (f *assertionFacts) values(names []string) []string {
	for _, n := range names {
		if v, ok := f.byName[n]; ok {
			return v
		}
	}
	for _, n := range names {
		if v, ok := f.byFriendly[n]; ok {
			return v
		}
	}
	return nil
}

func (f *assertionFacts) first(names []string) string {
	for _, v := range f.values(names) {
		if v != "" && len(v) <= maxValueLen {
			return v
		}
	}
	return ""
}

// identity maps the facts of a signed assertion to an Identity.
func (p *samlProvider) identity(f *assertionFacts) (*Identity, error) {
	pol := p.policy
	var subject string
	if pol.attrs.subject != nil {
		vals := f.values(pol.attrs.subject)
		if len(vals) != 1 || vals[0] == "" || len(vals[0]) > maxValueLen {
			return nil, samlFail(failSubject, fmt.Sprintf("subject attribute %q has %d values, want one", pol.attrs.subject[0], len(vals)))
		}
		subject = vals[0]
	} else {
		switch {
		case f.nameID == "" || len(f.nameID) > maxValueLen:
			return nil, samlFail(failSubject, "no usable NameID")
		case f.nameIDFormat == string(saml.TransientNameIDFormat):
			return nil, samlFail(failSubject, "a transient NameID changes at every sign-in; configure a persistent one or attributes.subject")
		case pol.nameIDFormat != saml.UnspecifiedNameIDFormat && f.nameIDFormat != string(pol.nameIDFormat):
			return nil, samlFail(failSubject, fmt.Sprintf("NameID format %q, want %q", cleanDetail(f.nameIDFormat), pol.nameIDFormat))
		}
		subject = f.nameID
	}
	email := f.first(pol.attrs.email)
	if email == "" && f.nameIDFormat == string(saml.EmailAddressNameIDFormat) {
		email = f.nameID
	}
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
		email = ""
	}
	email = strings.ToLower(email)
	name := f.first(pol.attrs.name)
	if name == "" {
		name = strings.TrimSpace(f.first(pol.attrs.firstName) + " " + f.first(pol.attrs.lastName))
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range f.values(pol.attrs.groups) {
		if g == "" || len(g) > maxValueLen || seen[g] || len(groups) == maxGroups {
			continue
		}
		seen[g] = true
		groups = append(groups, "saml:group:"+g)
	}
	claims := map[string]any{"name_id": f.nameID, "name_id_format": f.nameIDFormat, "attributes": f.byName}
	class := f.authnClass()
	if class != "" {
		claims["authn_context"] = class
	}
	return &Identity{
		Provider: p.name, Subject: subject, Email: email, EmailVerified: email != "" && pol.trustEmail,
		Name: name, Username: CleanUsername(f.first(pol.attrs.username)), Groups: groups, Claims: claims, AMR: amrFor(class), ACR: class,
		AuthTime: f.authnInstant(p.now()),
	}, nil
}

// checkMaxAge enforces the client's max_age on a solicited answer: the
// assertion's AuthnInstant (the latest one not in the future) must be at
// most maxAge seconds, plus the clock skew the library tolerates, before
// now. ForceAuthn asked the IdP for a fresh sign-in; an IdP that ignores
// it and answers from an older session of its own is refused here, so
// an old session never passes for the recent sign-in the client asked
// for. An assertion without a usable AuthnInstant is refused as well.
func (p *samlProvider) checkMaxAge(f *assertionFacts, maxAge int) error {
	now := p.now()
	at := f.authnInstant(now)
	if at.IsZero() {
		return samlFail(failMaxAge, "no AuthnInstant although max_age was requested")
	}
	if now.Sub(at) > maxAgeWithSkew(maxAge, saml.MaxClockSkew) {
		return samlFail(failMaxAge, fmt.Sprintf("AuthnInstant %s is older than the max_age of %d seconds", at.Format(time.RFC3339), maxAge))
	}
	return nil
}

// authnClass is the assertion's authentication context class: the
// AuthnContextClassRef its AuthnStatements name, when they all name the
// same one and it is printable ASCII of at most maxACRLen bytes; ""
// otherwise (none, ambiguous or malformed: nothing is claimed).
func (f *assertionFacts) authnClass() string {
	if len(f.authnContexts) == 0 {
		return ""
	}
	class := f.authnContexts[0]
	for _, c := range f.authnContexts[1:] {
		if c != class {
			return ""
		}
	}
	if len(class) > maxACRLen || !printableASCII(class, false) {
		return ""
	}
	return class
}

// authnInstant is the latest AuthnInstant of the assertion's
// AuthnStatements that is not in the future (beyond the clock skew the
// library tolerates); zero when there is none.
func (f *assertionFacts) authnInstant(now time.Time) time.Time {
	var latest time.Time
	for _, s := range f.authnInstants {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err == nil && !t.After(now.Add(saml.MaxClockSkew)) && t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() {
		return latest
	}
	return latest.UTC()
}

// amrFor maps a SAML authentication context class to RFC 8176 values,
// for the classes whose meaning is unambiguous only; any other class
// (Kerberos, X509 — a certificate that may live in software —,
// unspecified, a vendor's own) yields none, and the class itself still
// reaches the client as acr.
func amrFor(class string) []string {
	return slices.Clone(samlClassAMR[class])
}

// samlClassAMR are the authentication context classes (SAML 2.0
// Authentication Context, and a few widespread others) with an
// unambiguous RFC 8176 method.
var samlClassAMR = map[string][]string{
	samlClassPrefix + "Password":                        {"pwd"},
	samlClassPrefix + "PasswordProtectedTransport":      {"pwd"},
	samlClassPrefix + "SecureRemotePassword":            {"pwd"},
	samlClassPrefix + "Smartcard":                       {"sc"},
	samlClassPrefix + "SmartcardPKI":                    {"sc", "hwk"},
	samlClassPrefix + "SoftwarePKI":                     {"swk"},
	samlClassPrefix + "TimeSyncToken":                   {"otp"},
	samlClassPrefix + "MobileTwoFactorContract":         {"mfa"},
	samlClassPrefix + "MobileTwoFactorUnregistered":     {"mfa"},
	"http://schemas.microsoft.com/claims/multipleauthn": {"mfa"}, // Entra ID, AD FS
	"https://refeds.org/profile/mfa":                    {"mfa"}, // REFEDS MFA profile
	"urn:federation:authentication:windows":             {"wia"}, // AD FS Windows integrated authentication
}

const samlClassPrefix = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
