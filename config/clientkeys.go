package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"gopkg.in/yaml.v3"
)

// How a client authenticates at the token, revocation and introspection
// endpoints (token_endpoint_auth_method, RFC 7591 §2 names).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
	AuthNone              = "none"
)

// ClientAssertionAlgs are the JWS algorithms a private_key_jwt client
// may sign its assertions with: asymmetric only (no none, no HMAC, so a
// public key can never serve as a shared secret).
var ClientAssertionAlgs = []string{"RS256", "PS256", "ES256", "EdDSA"}

// Bounds on a client's keys, inline or fetched from its jwks_uri.
const (
	// MaxClientJWKSBytes bounds an inline jwks and a fetched key set.
	MaxClientJWKSBytes = 64 << 10
	// MaxClientKeys bounds the keys in a client's key set.
	MaxClientKeys = 16
	// minClientRSABits: shorter RSA keys are refused.
	minClientRSABits = 2048
)

// JWKS is a JSON Web Key Set (RFC 7517) written inline: in YAML as a
// mapping (`jwks: {keys: [...]}`) or as a string holding the JSON
// document (handy with ${ENV} expansion); in JSON as the object. It keeps
// the document as JSON; ParseClientJWKS reads the keys.
type JWKS []byte

// UnmarshalYAML accepts a mapping or a string of JSON.
func (j *JWKS) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			*j = nil
			return nil
		}
		*j = JWKS(n.Value)
		return nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("line %d: jwks is not a JSON Web Key Set: %v", n.Line, err)
	}
	*j = b
	return nil
}

// MarshalYAML writes the key set as a mapping.
func (j JWKS) MarshalYAML() (any, error) {
	if len(j) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(j, &v); err != nil {
		return string(j), nil
	}
	return v, nil
}

// MarshalJSON writes the document as it is (null when empty).
func (j JWKS) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	if !json.Valid(j) {
		return json.Marshal(string(j))
	}
	return []byte(j), nil
}

// UnmarshalJSON keeps the document (or the JSON text a string holds).
func (j *JWKS) UnmarshalJSON(b []byte) error {
	switch {
	case bytes.Equal(b, []byte("null")):
		*j = nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*j = JWKS(s)
	default:
		*j = JWKS(bytes.Clone(b))
	}
	return nil
}

// ParseClientJWKS reads a client's inline key set strictly: at most
// MaxClientJWKSBytes and MaxClientKeys, every key public (no private
// parts, no symmetric keys), of a family ClientAssertionAlgs covers (RSA
// of 2048 bits or more, EC P-256, Ed25519), for signing, with distinct
// kids. The error names the first key at fault and never echoes key
// material.
func ParseClientJWKS(doc []byte) ([]jose.JSONWebKey, error) {
	if len(doc) > MaxClientJWKSBytes {
		return nil, fmt.Errorf("is larger than %d bytes", MaxClientJWKSBytes)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil || raw.Keys == nil {
		return nil, errors.New(`is not a JSON Web Key Set (an object with "keys": [...])`)
	}
	switch {
	case len(raw.Keys) == 0:
		return nil, errors.New("has no keys")
	case len(raw.Keys) > MaxClientKeys:
		return nil, fmt.Errorf("has %d keys; at most %d are allowed", len(raw.Keys), MaxClientKeys)
	}
	keys := make([]jose.JSONWebKey, 0, len(raw.Keys))
	kids := map[string]bool{}
	for i, r := range raw.Keys {
		var probe struct {
			Kty string `json:"kty"`
			D   string `json:"d"`
			K   string `json:"k"`
		}
		_ = json.Unmarshal(r, &probe)
		switch {
		case probe.Kty == "oct" || probe.K != "":
			return nil, fmt.Errorf("keys[%d] is a symmetric key: register public keys only (RSA, EC P-256 or Ed25519)", i)
		case probe.D != "":
			return nil, fmt.Errorf("keys[%d] holds a private key: register only its public part (leave out \"d\" and the other private members)", i)
		}
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil {
			return nil, fmt.Errorf("keys[%d] is not a valid JSON Web Key", i)
		}
		if msg := ClientKeyProblem(k); msg != "" {
			return nil, fmt.Errorf("keys[%d] %s", i, msg)
		}
		if kids[k.KeyID] {
			return nil, fmt.Errorf("keys[%d]: kid %q is used by another key", i, k.KeyID)
		}
		kids[k.KeyID] = true
		keys = append(keys, k)
	}
	return keys, nil
}

// ClientKeyProblem says why k cannot verify a client's assertions, or "":
// it must be a valid public signing key of a family ClientAssertionAlgs
// covers, with a matching alg when it states one.
func ClientKeyProblem(k jose.JSONWebKey) string {
	if !k.Valid() {
		return "is not a valid JSON Web Key"
	}
	if !k.IsPublic() {
		return "holds a private key: register only its public part"
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Sprintf("has use %q; a client's keys are for signing (use sig or leave it out)", k.Use)
	}
	var algs []string
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < minClientRSABits {
			return fmt.Sprintf("is an RSA key of %d bits; at least %d are needed", pk.N.BitLen(), minClientRSABits)
		}
		algs = []string{"RS256", "PS256"}
	case *ecdsa.PublicKey:
		if pk.Curve != elliptic.P256() {
			return "is an EC key on a curve other than P-256 (ES256)"
		}
		algs = []string{"ES256"}
	case ed25519.PublicKey:
		algs = []string{"EdDSA"}
	default:
		return "is not an RSA, EC P-256 or Ed25519 public key"
	}
	if k.Algorithm != "" && !slices.Contains(algs, k.Algorithm) {
		return fmt.Sprintf("states alg %q; this key may sign with %v", k.Algorithm, algs)
	}
	return ""
}

// validateClientAuth checks token_endpoint_auth_method, jwks and
// jwks_uri of the client at field (the secret rules are validateFile's).
func validateClientAuth(r *reader, unsafe func(field, msg string), field string, cl *Client) {
	m := cl.TokenEndpointAuthMethod
	switch m {
	case "", AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone:
	default:
		r.fail(field+".token_endpoint_auth_method", "must be client_secret_basic, client_secret_post, private_key_jwt or none, not %q", m)
		return
	}
	switch {
	case m == AuthNone && !cl.Public:
		r.fail(field+".token_endpoint_auth_method", "none is for public clients: set public: true, or choose a method that authenticates")
	case cl.Public && m != "" && m != AuthNone:
		r.fail(field+".token_endpoint_auth_method", "a public client authenticates with none; remove it or set public: false")
	case m == AuthPrivateKeyJWT && cl.Secret != "":
		r.fail(field+".secret", "a private_key_jwt client has no secret; remove it")
	}
	hasKeys := len(cl.JWKS) > 0 || cl.JWKSURI != ""
	switch {
	case m == AuthPrivateKeyJWT && !hasKeys:
		r.fail(field+".jwks", "a private_key_jwt client needs its public keys: jwks (inline) or jwks_uri")
	case m == AuthPrivateKeyJWT && len(cl.JWKS) > 0 && cl.JWKSURI != "":
		r.fail(field+".jwks_uri", "give jwks or jwks_uri, not both")
	case m != AuthPrivateKeyJWT && hasKeys:
		name := ".jwks"
		if cl.JWKSURI != "" {
			name = ".jwks_uri"
		}
		r.fail(field+name, "keys are only used with token_endpoint_auth_method: private_key_jwt")
	}
	if len(cl.JWKS) > 0 {
		if _, err := ParseClientJWKS(cl.JWKS); err != nil {
			r.fail(field+".jwks", "%v", err)
		}
	}
	if u := cl.JWKSURI; u != "" {
		pu, err := url.Parse(u)
		switch {
		case err != nil || pu.Host == "" || (pu.Scheme != "https" && pu.Scheme != "http"):
			r.fail(field+".jwks_uri", "%q must be an absolute https URL", u)
		case pu.Fragment != "" || pu.User != nil:
			r.fail(field+".jwks_uri", "%q must not contain a fragment or user information", u)
		case pu.Scheme == "http" && !IsLoopbackHost(pu.Hostname()):
			r.fail(field+".jwks_uri", "%q must use https (plain HTTP only to a loopback address, outside production)", u)
		case pu.Scheme == "http":
			unsafe(field+".jwks_uri", "plain-HTTP jwks_uri "+u)
		}
	}
}
