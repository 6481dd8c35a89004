package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"gopkg.in/yaml.v3"
)

func jwkJSON(t *testing.T, keys ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClientAuthFields: token_endpoint_auth_method, jwks and jwks_uri
// are checked with one line per field: private_key_jwt needs public keys
// (inline or by URL, not both) and no secret; inline keys are public
// RSA (2048 bits or more), EC P-256 or Ed25519 signing keys, bounded in
// size and number, never private or symmetric; a jwks_uri is https, or
// plain HTTP to a loopback address outside production only.
func TestClientAuthFields(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	pub := func(k any, kid string) jose.JSONWebKey { return jose.JSONWebKey{Key: k, KeyID: kid} }
	good := jwkJSON(t, pub(&rsaKey.PublicKey, "r"), pub(&ecKey.PublicKey, "e"), pub(edPub, "d"))
	many := make([]jose.JSONWebKey, MaxClientKeys+1)
	for i := range many {
		many[i] = pub(edPub, strings.Repeat("k", i+1))
	}
	keyClient := func(extra string) string {
		return "clients:\n  - id: svc\n    grant_types: [client_credentials]\n" + extra
	}
	prod := map[string]string{"GATEHOUSE_ENV": "production", "GATEHOUSE_ISSUER": "https://auth.example.com", "GATEHOUSE_SECRET_KEY": goodKey}
	cases := []struct {
		name, yaml string
		env        map[string]string
		field, msg string // "" field: accepted
	}{
		{"inline keys as a mapping", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + good + "\n"), nil, "", ""},
		{"inline keys as a JSON string", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: '" + good + "'\n"), nil, "", ""},
		{"https jwks_uri", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: https://svc.example.com/jwks.json\n"), prod, "", ""},
		{"loopback http jwks_uri in development", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: http://127.0.0.1:8080/jwks.json\n"), nil, "", ""},
		{"secret method fixed", keyClient("    secret: svc-secret-0123456789\n    token_endpoint_auth_method: client_secret_post\n"), nil, "", ""},
		{"public client with none", "clients:\n  - {id: spa, public: true, redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: none}\n", nil, "", ""},

		{"unknown method", keyClient("    secret: svc-secret-0123456789\n    token_endpoint_auth_method: client_secret_jwt\n"), nil,
			"clients[0].token_endpoint_auth_method", "must be client_secret_basic, client_secret_post, private_key_jwt or none"},
		{"none for a confidential client", keyClient("    secret: svc-secret-0123456789\n    token_endpoint_auth_method: none\n"), nil,
			"clients[0].token_endpoint_auth_method", "none is for public clients"},
		{"a key method for a public client", "clients:\n  - {id: spa, public: true, redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: private_key_jwt}\n", nil,
			"clients[0].token_endpoint_auth_method", "a public client authenticates with none"},
		{"private_key_jwt with a secret", keyClient("    secret: svc-secret-0123456789\n    token_endpoint_auth_method: private_key_jwt\n    jwks: " + good + "\n"), nil,
			"clients[0].secret", "a private_key_jwt client has no secret"},
		{"private_key_jwt without keys", keyClient("    token_endpoint_auth_method: private_key_jwt\n"), nil,
			"clients[0].jwks", "needs its public keys"},
		{"both jwks and jwks_uri", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + good + "\n    jwks_uri: https://svc.example.com/jwks.json\n"), nil,
			"clients[0].jwks_uri", "not both"},
		{"keys for a secret client", keyClient("    secret: svc-secret-0123456789\n    jwks_uri: https://svc.example.com/jwks.json\n"), nil,
			"clients[0].jwks_uri", "only used with token_endpoint_auth_method: private_key_jwt"},
		{"a private key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub(rsaKey, "r")) + "\n"), nil,
			"clients[0].jwks", "keys[0] holds a private key"},
		{"a private Ed25519 key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub(edPriv, "d")) + "\n"), nil,
			"clients[0].jwks", "keys[0] holds a private key"},
		{"a symmetric key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub([]byte("0123456789abcdef0123456789abcdef"), "s")) + "\n"), nil,
			"clients[0].jwks", "keys[0] is a symmetric key"},
		{"a short RSA key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub(&smallRSA.PublicKey, "r")) + "\n"), nil,
			"clients[0].jwks", "RSA key of 1024 bits"},
		{"a P-384 key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub(&p384.PublicKey, "p")) + "\n"), nil,
			"clients[0].jwks", "curve other than P-256"},
		{"an alg the key cannot sign with", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " +
			jwkJSON(t, jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "e", Algorithm: "RS256"}) + "\n"), nil,
			"clients[0].jwks", `states alg "RS256"`},
		{"an encryption key", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " +
			jwkJSON(t, jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "r", Use: "enc"}) + "\n"), nil,
			"clients[0].jwks", `has use "enc"`},
		{"duplicate kids", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, pub(edPub, "k"), pub(&ecKey.PublicKey, "k")) + "\n"), nil,
			"clients[0].jwks", `kid "k" is used by another key`},
		{"too many keys", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: " + jwkJSON(t, many...) + "\n"), nil,
			"clients[0].jwks", "at most 16 are allowed"},
		{"too large", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: '{\"keys\":[], \"pad\":\"" + strings.Repeat("x", MaxClientJWKSBytes) + "\"}'\n"), nil,
			"clients[0].jwks", "larger than 65536 bytes"},
		{"not a key set", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: {kty: RSA}\n"), nil,
			"clients[0].jwks", "is not a JSON Web Key Set"},
		{"no keys", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks: {keys: []}\n"), nil,
			"clients[0].jwks", "has no keys"},
		{"plain-HTTP jwks_uri elsewhere", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: http://svc.example.com/jwks.json\n"), nil,
			"clients[0].jwks_uri", "must use https"},
		{"loopback http jwks_uri in production", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: http://127.0.0.1:8080/jwks.json\n"), prod,
			"clients[0].jwks_uri", "not allowed with GATEHOUSE_ENV=production"},
		{"relative jwks_uri", keyClient("    token_endpoint_auth_method: private_key_jwt\n    jwks_uri: /jwks.json\n"), nil,
			"clients[0].jwks_uri", "must be an absolute https URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAMLIn(t, tc.yaml, tc.env)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %s: %s", tc.field, tc.msg)
			}
			line := ""
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), tc.field+":") {
					line = l
				}
			}
			if !strings.Contains(line, tc.msg) {
				t.Fatalf("err = %v\nwant a line %s: ...%s...", err, tc.field, tc.msg)
			}
			if strings.Contains(err.Error(), `"n":`) || strings.Contains(err.Error(), `"d":`) {
				t.Fatalf("the error echoes key material: %v", err)
			}
		})
	}
}

// TestClientJSONRoundTrip: a client's new fields survive JSON (how
// database clients are stored) and YAML unchanged.
func TestClientKeysJSONRoundTrip(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	doc := jwkJSON(t, jose.JSONWebKey{Key: edPub, KeyID: "d"})
	in := Client{ID: "svc", TokenEndpointAuthMethod: AuthPrivateKeyJWT, JWKS: JWKS(doc), JWKSURI: ""}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"token_endpoint_auth_method":"private_key_jwt"`) || !strings.Contains(string(b), `"jwks":{"keys":[`) ||
		strings.Contains(string(b), "jwks_uri") {
		t.Fatalf("JSON = %s", b)
	}
	var out Client
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.TokenEndpointAuthMethod != AuthPrivateKeyJWT || string(out.JWKS) != doc {
		t.Fatalf("round trip = %+v", out)
	}
	if _, err := ParseClientJWKS(out.JWKS); err != nil {
		t.Fatal(err)
	}
	type holder struct {
		JWKS JWKS `yaml:"jwks"`
	}
	y, err := yaml.Marshal(holder{out.JWKS})
	if err != nil {
		t.Fatal(err)
	}
	var back holder
	if err := yaml.Unmarshal(y, &back); err != nil {
		t.Fatal(err)
	}
	keys, err := ParseClientJWKS(back.JWKS)
	if err != nil || len(keys) != 1 || keys[0].KeyID != "d" {
		t.Fatalf("YAML round trip: %v, %v\n%s", keys, err, y)
	}
	// A client stored in the database keeps its keys.
	stored, err := ClientJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	read, err := ParseClientJSON(stored)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := ParseClientJWKS(read.JWKS); err != nil || len(keys) != 1 || read.TokenEndpointAuthMethod != AuthPrivateKeyJWT {
		t.Fatalf("stored round trip: %v, %v\n%s", keys, err, stored)
	}
}
