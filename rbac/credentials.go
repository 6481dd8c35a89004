package rbac

import (
	"net/http"
	"net/url"
	"strings"
)

// APIKeyPrefix starts every Gatehouse API key; the rest is 43 base64url
// characters (256 random bits). Keys are recognisable by secret scanners,
// and a malformed key is refused without asking Gatehouse.
const APIKeyPrefix = "ghk_"

// APIKeyHeader carries an API key.
const APIKeyHeader = "X-API-Key"

// apiKeyBodyLen is the length of a key after its prefix.
const apiKeyBodyLen = 43

// maxTokenLen bounds what is parsed: Gatehouse's tokens are a few KiB.
const maxTokenLen = 16 << 10

// credential is what a request presented.
type credential struct {
	kind  Kind
	value string
}

// credentialError says why a request's credentials are unusable; the
// text is safe to show and never contains the credential.
type credentialError string

// Error is the reason, as shown to the caller.
func (e credentialError) Error() string { return string(e) }

const (
	errNoCredential    credentialError = "a bearer access token is required"
	errNotBearer       credentialError = "the Authorization header must be the Bearer scheme, one space and an access token"
	errMalformedToken  credentialError = "the access token is malformed"
	errMalformedAPIKey credentialError = "the API key is malformed"
	errTwoCredentials  credentialError = "send one credential: an Authorization header, an X-API-Key header, or on a WebSocket upgrade a token or key query parameter"
)

// Query parameters that carry a credential on a WebSocket upgrade, which
// browsers cannot send headers with.
const (
	// QueryToken carries an access token: ?token=<access token>.
	QueryToken = "token"
	// QueryKey carries an API key: ?key=<API key>.
	QueryKey = "key"
)

// extractCredential finds the request's one credential: "Authorization:
// Bearer <jwt>" (exactly that scheme and one space), "X-API-Key: <key>",
// or, only on a WebSocket upgrade, the query parameter token (an access
// token) or key (an API key). Both parameters are removed from the
// request URL whatever the request, so access logs that run after this
// never see them.
func extractCredential(r *http.Request) (credential, error) {
	q := stripQueryCredentials(r)
	auth, key := r.Header.Values("Authorization"), r.Header.Values(APIKeyHeader)
	n := len(auth) + len(key)
	if q.tokens+q.keys > 0 && isWebSocketUpgrade(r) {
		n += q.tokens + q.keys
	} else {
		q = queryCredentials{}
	}
	switch {
	case n == 0:
		return credential{}, errNoCredential
	case n > 1:
		return credential{}, errTwoCredentials
	case len(auth) == 1:
		return parseBearer(auth[0])
	case len(key) == 1:
		return parseAPIKey(key[0])
	case q.keys == 1:
		return parseAPIKey(q.key)
	default:
		return parseJWTSyntax(q.token)
	}
}

// parseBearer reads an Authorization header value.
func parseBearer(h string) (credential, error) {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return credential{}, errNotBearer
	}
	return parseJWTSyntax(tok)
}

// parseJWTSyntax accepts three non-empty base64url segments, nothing else
// (no padding, no spaces), before any decoding is spent on it.
func parseJWTSyntax(tok string) (credential, error) {
	if len(tok) == 0 || len(tok) > maxTokenLen {
		return credential{}, errMalformedToken
	}
	dots, seg := 0, 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == '.':
			if seg == 0 {
				return credential{}, errMalformedToken
			}
			dots, seg = dots+1, 0
		case base64URLChar(c):
			seg++
		default:
			return credential{}, errMalformedToken
		}
	}
	if dots != 2 || seg == 0 {
		return credential{}, errMalformedToken
	}
	return credential{kind: KindAccessToken, value: tok}, nil
}

// parseAPIKey checks a key's shape: the prefix and 43 base64url characters.
func parseAPIKey(k string) (credential, error) {
	body, ok := strings.CutPrefix(k, APIKeyPrefix)
	if !ok || len(body) != apiKeyBodyLen {
		return credential{}, errMalformedAPIKey
	}
	for i := 0; i < len(body); i++ {
		if !base64URLChar(body[i]) {
			return credential{}, errMalformedAPIKey
		}
	}
	return credential{kind: KindAPIKey, value: k}, nil
}

func base64URLChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// isWebSocketUpgrade reports an RFC 6455 opening handshake: a GET with
// "Connection: upgrade" (among other tokens) and "Upgrade: websocket".
// Browsers cannot set headers on WebSocket requests, so only they may
// carry a credential in the URL.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoAtLeast(1, 1) && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// queryCredentials are the credential parameters a URL held: the first
// value of each and how many there were.
type queryCredentials struct {
	token, key   string
	tokens, keys int
}

// stripQueryCredentials removes every "token" and "key" query parameter
// from the request URL (and RequestURI), however their names are
// percent-encoded. The URL is changed in place: middleware that logs
// after the handler reads the cleaned URL.
func stripQueryCredentials(r *http.Request) queryCredentials {
	var out queryCredentials
	if r.URL == nil {
		return out
	}
	raw := r.URL.RawQuery
	if !strings.Contains(raw, QueryToken) && !strings.Contains(raw, QueryKey) && !strings.Contains(raw, "%") {
		return out
	}
	q, err := url.ParseQuery(raw)
	tokens, hasToken := q[QueryToken]
	keys, hasKey := q[QueryKey]
	if !hasToken && !hasKey {
		if err != nil {
			// Unparseable (a bad escape, a semicolon): a credential may hide
			// in what could not be read, under any spelling of its name, so
			// the whole query goes. RawQuery first: RequestURI is made from it.
			r.URL.RawQuery = ""
			r.RequestURI = r.URL.RequestURI()
		}
		return out
	}
	if hasToken {
		out.token, out.tokens = tokens[0], len(tokens)
	}
	if hasKey {
		out.key, out.keys = keys[0], len(keys)
	}
	delete(q, QueryToken)
	delete(q, QueryKey)
	r.URL.RawQuery = q.Encode()
	r.RequestURI = r.URL.RequestURI()
	return out
}
