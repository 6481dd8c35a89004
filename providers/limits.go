package providers

import (
	"fmt"
	"io"
	"net/http"
)

// Upstream answers are read through a bound: an upstream that sends more
// than any real answer holds is refused with an error naming the bound,
// never read into memory without end. The bounds are generous; real
// answers are kilobytes.
//
//   - maxDiscoveryBytes: an OpenID Connect discovery document (here)
//   - maxJWKSBytes: a JSON Web Key Set (jwks.MaxBodyBytes, oidckeys.go)
//   - maxUserInfoBytes: a UserInfo answer (oidcflow.go)
//   - githubMaxBody: one GitHub API page (githubapi.go)
//   - maxMetadataBytes: SAML IdP metadata (saml_idp.go)
//
// Token endpoint answers are bounded by golang.org/x/oauth2 (1 MiB).
const maxDiscoveryBytes = 1 << 20

// errAnswerTooLarge is wrapped by the error of an upstream answer larger
// than its bound.
var errAnswerTooLarge = fmt.Errorf("%w: answer too large", ErrInvalidResponse)

// boundedClient returns a copy of client whose answer bodies fail to read
// past max bytes, for libraries that read bodies whole (go-oidc's
// discovery); what names the answer in the error.
func boundedClient(client *http.Client, max int64, what string) *http.Client {
	c := *client
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = boundedTransport{base: base, max: max, what: what}
	return &c
}

type boundedTransport struct {
	base http.RoundTripper
	max  int64
	what string
}

func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, max: t.max, what: t.what}
	return resp, nil
}

// boundedBody reads up to max bytes and fails on the byte after them.
type boundedBody struct {
	io.ReadCloser
	read, max int64
	what      string
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.read > b.max {
		return 0, tooLarge(b.what, b.max)
	}
	if room := b.max + 1 - b.read; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if b.read > b.max {
		return n - 1, tooLarge(b.what, b.max)
	}
	return n, err
}

// tooLarge is the error of an answer larger than its bound.
func tooLarge(what string, max int64) error {
	return fmt.Errorf("%w: %s larger than %d bytes", errAnswerTooLarge, what, max)
}
