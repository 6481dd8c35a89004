package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/jwks"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2), the only one Gatehouse accepts.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Bounds of a client assertion (private_key_jwt).
const (
	// MaxClientAssertionBytes bounds client_assertion: larger ones are
	// refused before any parsing. Real assertions are well under 2 KiB.
	MaxClientAssertionBytes = 8 << 10
	// MaxClientAssertionLifetime bounds exp: after iat, and after now.
	MaxClientAssertionLifetime = 5 * time.Minute
	// ClientAssertionLeeway is the clock skew allowed on exp, nbf and iat.
	ClientAssertionLeeway = time.Minute
	// maxJTILength bounds the jti (it is stored hashed anyway).
	maxJTILength = 512
)

// How the keys of a jwks_uri client are fetched and kept: a kid the
// cached set does not know causes at most one fetch per
// clientKeysMinRefetch (package jwks); the set is refreshed in the
// background after its Cache-Control max-age, clamped to
// clientKeysFreshness.
const (
	clientKeysMinRefetch   = time.Minute
	clientKeysFetchTimeout = 10 * time.Second
)

var clientKeysFreshness = jwks.Freshness{Min: time.Minute, Default: 10 * time.Minute, Max: time.Hour}

// Why client authentication with an assertion failed, as the audit
// event's details say (never the assertion itself).
const (
	authFailAssertionType       = "unsupported_assertion_type"
	authFailAssertionTooLarge   = "assertion_too_large"
	authFailAssertionMalformed  = "assertion_malformed"
	authFailAssertionClaims     = "assertion_claims"
	authFailAssertionSubject    = "assertion_wrong_client"
	authFailAssertionForSecret  = "assertion_sent_for_secret_client"
	authFailAssertionUnknownKey = "assertion_unknown_key"
	authFailAssertionSignature  = "assertion_bad_signature"
	authFailAssertionReplay     = "assertion_replayed"
	authFailClientKeysDown      = "client_keys_unavailable"
	authFailKeyClientSecret     = "secret_sent_for_key_client"
	authFailWrongSecretMethod   = "wrong_secret_method"
)

// AssertionJTIs is the replay store of client assertions
// (models.Store): UseClientAssertionJTI reports true for the first use
// of (clientID, jtiHash), false for every later or concurrent one.
type AssertionJTIs interface {
	UseClientAssertionJTI(ctx context.Context, clientID, jtiHash string, expiresAt, now time.Time) (bool, error)
}

// assertionClaims are the claims RFC 7523 §3 requires of a client
// assertion (jwt.Audience reads a string or an array).
type assertionClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
}

// secretMethodRefused says why a client may not authenticate with the
// secret method cred used (an audit reason), or "": a private_key_jwt
// client never does, and a client fixed to client_secret_basic or
// client_secret_post uses that one only.
func (c *Client) secretMethodRefused(cred ClientCredentials) string {
	switch c.TokenEndpointAuthMethod {
	case config.AuthPrivateKeyJWT:
		return authFailKeyClientSecret
	case config.AuthClientSecretBasic:
		if !cred.Basic {
			return authFailWrongSecretMethod
		}
	case config.AuthClientSecretPost:
		if cred.Basic {
			return authFailWrongSecretMethod
		}
	}
	return ""
}

// authenticateAssertion authenticates a private_key_jwt client by its
// client assertion (RFC 7523 §2.2, §3): a JWS in an asymmetric algorithm
// (ClientAssertionAlgs) verified with the client's registered keys, iss
// and sub the client id (and client_id, when sent, the same), aud the
// token endpoint or the issuer, exp present and at most
// MaxClientAssertionLifetime ahead, nbf and iat respected, and a jti
// never used before by that client (AssertionJTIs, kept until exp). The
// cheap checks run before the signature's, so junk costs no key fetch.
func (s *Service) authenticateAssertion(ctx context.Context, cred ClientCredentials,
	fail func(c *Client, reason string, err error) (*Client, error)) (*Client, error) {
	named, _ := s.Client(cred.ID) // the client the request names, if any (for the audit)
	switch {
	case cred.AssertionType == "":
		return nil, invalidRequest("client_assertion_type is required with client_assertion")
	case cred.Assertion == "":
		return nil, invalidRequest("client_assertion is required with client_assertion_type")
	case cred.AssertionType != ClientAssertionType:
		return fail(named, authFailAssertionType, invalidClient("unsupported client_assertion_type; use %s", ClientAssertionType))
	case len(cred.Assertion) > MaxClientAssertionBytes:
		return fail(named, authFailAssertionTooLarge, invalidClient("the client assertion is larger than %d bytes", MaxClientAssertionBytes))
	}
	jws, err := jose.ParseSigned(cred.Assertion, clientAssertionAlgs())
	var claims assertionClaims
	if err != nil || len(jws.Signatures) != 1 || json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) != nil {
		return fail(named, authFailAssertionMalformed,
			invalidClient("the client assertion must be a JWT signed with one of %s", strings.Join(config.ClientAssertionAlgs, ", ")))
	}
	id := cred.ID
	if id == "" {
		id = claims.Subject
	}
	c, ok := s.Client(id)
	if !ok {
		return fail(nil, authFailUnknownClient, invalidClient("client authentication failed"))
	}
	if c.TokenEndpointAuthMethod != config.AuthPrivateKeyJWT {
		return fail(c, authFailAssertionForSecret, invalidClient("client authentication failed"))
	}
	if claims.Issuer != c.ID || claims.Subject != c.ID {
		return fail(c, authFailAssertionSubject, invalidClient("the client assertion's iss and sub must both be the client id"))
	}
	now := s.now()
	if msg := s.assertionClaimsProblem(&claims, now); msg != "" {
		return fail(c, authFailAssertionClaims, invalidClient("the client assertion %s", msg))
	}
	keys, err := s.clientKeys.forClient(c)
	if err == nil {
		_, err = keys.VerifySignature(ctx, cred.Assertion)
	}
	switch {
	case err == nil:
	case errors.Is(err, jwks.ErrUnknownKey):
		return fail(c, authFailAssertionUnknownKey, invalidClient("client authentication failed"))
	case errors.Is(err, jwks.ErrBadSignature), errors.Is(err, jwks.ErrMalformed):
		return fail(c, authFailAssertionSignature, invalidClient("client authentication failed"))
	default:
		s.log.WarnContext(ctx, "client keys unavailable", slog.String("client_id", c.ID), slog.String("error", err.Error()))
		return fail(c, authFailClientKeysDown, invalidClient("the client's keys cannot be fetched right now"))
	}
	if s.jtis == nil {
		return nil, errors.New("oauth: no replay store for client assertions")
	}
	sum := sha256.Sum256([]byte(claims.ID))
	fresh, err := s.jtis.UseClientAssertionJTI(ctx, c.ID, hex.EncodeToString(sum[:]),
		claims.Expiry.Time().UTC().Add(ClientAssertionLeeway), now)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return fail(c, authFailAssertionReplay, invalidClient("the client assertion was already used (jti)"))
	}
	return c, nil
}

// assertionClaimsProblem says what is wrong with the time, audience and
// jti claims of a client assertion at now, or "".
func (s *Service) assertionClaimsProblem(cl *assertionClaims, now time.Time) string {
	token, issuer := s.endpoint("/auth/token"), strings.TrimSuffix(s.issuer, "/")
	if !slices.ContainsFunc(cl.Audience, func(a string) bool {
		return a == token || strings.TrimSuffix(a, "/") == issuer
	}) {
		return fmt.Sprintf("must name the token endpoint (%s) or the issuer (%s) in aud", token, s.issuer)
	}
	if cl.Expiry == nil {
		return "needs exp"
	}
	exp := cl.Expiry.Time()
	switch {
	case now.After(exp.Add(ClientAssertionLeeway)):
		return "has expired"
	case exp.Sub(now) > MaxClientAssertionLifetime+ClientAssertionLeeway:
		return fmt.Sprintf("lives too long: exp must be at most %s ahead", MaxClientAssertionLifetime)
	case cl.NotBefore != nil && cl.NotBefore.Time().After(now.Add(ClientAssertionLeeway)):
		return "is not valid yet (nbf)"
	}
	if cl.IssuedAt != nil {
		iat := cl.IssuedAt.Time()
		switch {
		case iat.After(now.Add(ClientAssertionLeeway)):
			return "was issued in the future (iat)"
		case exp.Sub(iat) > MaxClientAssertionLifetime:
			return fmt.Sprintf("lives too long: exp must be at most %s after iat", MaxClientAssertionLifetime)
		}
	}
	if cl.ID == "" || len(cl.ID) > maxJTILength {
		return fmt.Sprintf("needs a jti (at most %d characters)", maxJTILength)
	}
	return ""
}

func clientAssertionAlgs() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(config.ClientAssertionAlgs))
	for i, a := range config.ClientAssertionAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}

// clientKeys holds one key cache (package jwks) per private_key_jwt
// client that has authenticated, made at its first assertion and made
// again when the client's keys are registered anew (another jwks or
// jwks_uri). There is at most one entry per registered client.
type clientKeys struct {
	mu     sync.Mutex
	caches map[string]*clientKeyCache
	client *http.Client
	now    func() time.Time
}

type clientKeyCache struct {
	source string // what the keys came from: the jwks_uri, or the inline set's hash
	cache  *jwks.Cache
}

// newClientKeys fetches jwks_uri documents with client; nil: a client
// with a timeout that follows no redirects (a key set moved elsewhere is
// a change the client registers).
func newClientKeys(client *http.Client, now func() time.Time) *clientKeys {
	if client == nil {
		client = &http.Client{Timeout: clientKeysFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &clientKeys{caches: map[string]*clientKeyCache{}, client: client, now: now}
}

// forClient returns the key cache of c's registered keys.
func (k *clientKeys) forClient(c *Client) (*jwks.Cache, error) {
	source := "uri " + c.JWKSURI
	if c.JWKSURI == "" {
		sum := sha256.Sum256(c.JWKS)
		source = "inline " + hex.EncodeToString(sum[:])
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.caches[c.ID]; e != nil && e.source == source {
		return e.cache, nil
	}
	var fetch jwks.Fetcher
	if c.JWKSURI != "" {
		fetch = clientKeysFetcher(jwks.HTTPFetcherLimit(k.client, c.JWKSURI, clientKeysFreshness, config.MaxClientJWKSBytes))
	} else {
		keys, err := config.ParseClientJWKS(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("client %s: jwks %v", c.ID, err)
		}
		fetch = func(context.Context) ([]jose.JSONWebKey, time.Duration, error) { return keys, 24 * time.Hour, nil }
	}
	cache := jwks.New(jwks.Options{Fetch: fetch, MinRefetch: clientKeysMinRefetch, Algorithms: config.ClientAssertionAlgs,
		FetchTimeout: clientKeysFetchTimeout, Now: k.now})
	k.caches[c.ID] = &clientKeyCache{source: source, cache: cache}
	return cache, nil
}

// clientKeysFetcher keeps, of a fetched key set, the keys a client may
// sign with (config.ClientKeyProblem), and refuses a set of more than
// config.MaxClientKeys keys (the cached keys stay in use).
func clientKeysFetcher(fetch jwks.Fetcher) jwks.Fetcher {
	return func(ctx context.Context) ([]jose.JSONWebKey, time.Duration, error) {
		keys, maxAge, err := fetch(ctx)
		if err != nil {
			return nil, 0, err
		}
		if len(keys) > config.MaxClientKeys {
			return nil, 0, fmt.Errorf("the key set has %d keys; at most %d are allowed", len(keys), config.MaxClientKeys)
		}
		kept := keys[:0]
		for _, key := range keys {
			if config.ClientKeyProblem(key) == "" {
				kept = append(kept, key)
			}
		}
		return kept, maxAge, nil
	}
}
