package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

type testKey struct {
	key *ecdsa.PrivateKey
	kid string
}

func newTestKey(t *testing.T, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{k, kid}
}

func jwksDoc(t *testing.T, keys ...testKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.kid})
	}
	b, _ := json.Marshal(set)
	return string(b)
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// assertion signs a valid assertion of client at now, aud the issuer.
func (k testKey) assertion(t *testing.T, client, issuer string, now time.Time) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": client, "sub": client, "aud": issuer, "iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(), "jti": randomToken(12)})
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

// clock is a test clock safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// keyService is a Service with private_key_jwt clients on a real
// database and a clock the test moves; its failed authentications go to
// a failureLog.
func keyService(t *testing.T, db *models.DB, clk *clock, clients ...config.Client) (*Service, *failureLog) {
	t.Helper()
	cfg := &config.Config{Issuer: "https://auth.example.com", File: config.File{Clients: clients}}
	store := models.NewStore(db)
	s := New(Options{Config: cfg, Store: store, AssertionJTIs: store, Now: clk.Now})
	ids := make([]string, len(clients))
	for i, c := range clients {
		ids[i] = c.ID
	}
	f, l := newFailureLog(ids...)
	f.now = clk.Now
	s.authFailures = f
	return s, l
}

// lastReason is the reason of the latest failure row written.
func (l *failureLog) lastReason() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.rows) == 0 {
		return ""
	}
	r, _ := l.rows[len(l.rows)-1].details["reason"].(string)
	return r
}

// TestClientKeysRotateThroughJWKSURI: a jwks_uri client's keys are
// fetched at its first assertion; a kid rotated in is refused without a
// fetch until clientKeysMinRefetch has passed, then fetched; a withdrawn
// key stops verifying; a key set that is too large or has too many keys
// fails the fetch and the cached keys stay in use.
func TestClientKeysRotateThroughJWKSURI(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		k1, k2, k3 := newTestKey(t, "k1"), newTestKey(t, "k2"), newTestKey(t, "k3")
		var doc atomic.Value
		doc.Store(jwksDoc(t, k1))
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			_, _ = w.Write([]byte(doc.Load().(string)))
		}))
		defer srv.Close()
		clk := &clock{now: time.Now().UTC()}
		s, l := keyService(t, db, clk, config.Client{ID: "svc", TokenEndpointAuthMethod: config.AuthPrivateKeyJWT, JWKSURI: srv.URL})
		auth := func(k testKey) (string, error) {
			_, err := s.AuthenticateClient(ctx, ClientCredentials{AssertionType: ClientAssertionType,
				Assertion: k.assertion(t, "svc", s.issuer, clk.Now())}, RequestMeta{})
			return l.lastReason(), err
		}
		step := func(name string, k testKey, ok bool, reason string, fetches int32) {
			t.Helper()
			clk.advance(time.Second)
			got, err := auth(k)
			if (err == nil) != ok || (!ok && got != reason) || hits.Load() != fetches {
				t.Fatalf("%s: err = %v, reason %q, %d fetches; want ok=%v, %q, %d", name, err, got, hits.Load(), ok, reason, fetches)
			}
		}
		step("first assertion", k1, true, "", 1)
		doc.Store(jwksDoc(t, k2))
		step("rotated kid within the throttle", k2, false, authFailAssertionUnknownKey, 1)
		step("again", k2, false, authFailAssertionUnknownKey, 1)
		step("the old key is still cached", k1, true, "", 1)
		clk.advance(clientKeysMinRefetch)
		step("rotated kid after the throttle", k2, true, "", 2)
		step("the withdrawn key", k1, false, authFailAssertionUnknownKey, 2)

		// Too many keys: the fetch fails, k2 stays.
		many := []testKey{k3}
		for range config.MaxClientKeys {
			many = append(many, newTestKey(t, "x"+strings.Repeat("x", len(many))))
		}
		doc.Store(jwksDoc(t, many...))
		clk.advance(clientKeysMinRefetch)
		step("a key set with too many keys", k3, false, authFailClientKeysDown, 3)
		step("the cached key after a failed fetch", k2, true, "", 3)
		// Too large: the same.
		doc.Store(`{"keys":[],"pad":"` + strings.Repeat("x", config.MaxClientJWKSBytes) + `"}`)
		clk.advance(clientKeysMinRefetch)
		step("an oversized key set", k3, false, authFailClientKeysDown, 4)
		step("the cached key after an oversized set", k2, true, "", 4)
	})
}

// TestClientAuthMethodReasons: each refusal of a fixed method is
// invalid_client with its own audit reason.
func TestClientAuthMethodReasons(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	k := newTestKey(t, "k")
	clk := &clock{now: time.Now().UTC()}
	basicOnly := config.Client{ID: "basic", TokenEndpointAuthMethod: config.AuthClientSecretBasic}
	basicOnly.SecretHash = sha256Of("basic-secret-0123456789")
	postOnly := config.Client{ID: "post", TokenEndpointAuthMethod: config.AuthClientSecretPost}
	postOnly.SecretHash = sha256Of("post-secret-0123456789")
	either := config.Client{ID: "either", SecretHash: sha256Of("either-secret-0123456789")}
	s, l := keyService(t, db, clk, basicOnly, postOnly, either,
		config.Client{ID: "svc", TokenEndpointAuthMethod: config.AuthPrivateKeyJWT, JWKS: config.JWKS(jwksDoc(t, k))})
	assertion := k.assertion(t, "svc", s.issuer, clk.Now())
	cases := []struct {
		name   string
		cred   ClientCredentials
		reason string // "": accepted
	}{
		{"basic at a basic client", ClientCredentials{ID: "basic", Secret: "basic-secret-0123456789", Basic: true}, ""},
		{"post at a basic client", ClientCredentials{ID: "basic", Secret: "basic-secret-0123456789"}, authFailWrongSecretMethod},
		{"post at a post client", ClientCredentials{ID: "post", Secret: "post-secret-0123456789"}, ""},
		{"basic at a post client", ClientCredentials{ID: "post", Secret: "post-secret-0123456789", Basic: true}, authFailWrongSecretMethod},
		{"basic at a client of either", ClientCredentials{ID: "either", Secret: "either-secret-0123456789", Basic: true}, ""},
		{"post at a client of either", ClientCredentials{ID: "either", Secret: "either-secret-0123456789"}, ""},
		{"an assertion", ClientCredentials{AssertionType: ClientAssertionType, Assertion: assertion}, ""},
		{"the assertion again", ClientCredentials{AssertionType: ClientAssertionType, Assertion: assertion}, authFailAssertionReplay},
		{"a secret at the key client", ClientCredentials{ID: "svc", Secret: "either-secret-0123456789", Basic: true}, authFailKeyClientSecret},
		{"an assertion at a secret client", ClientCredentials{ID: "either", AssertionType: ClientAssertionType,
			Assertion: k.assertion(t, "either", s.issuer, clk.Now())}, authFailAssertionForSecret},
		{"another key under the client's kid", ClientCredentials{AssertionType: ClientAssertionType,
			Assertion: newTestKey(t, "k").assertion(t, "svc", s.issuer, clk.Now())}, authFailAssertionSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh log: each failure is written with its reason.
			s.authFailures, l = newFailureLog("basic", "post", "either", "svc")
			c, err := s.AuthenticateClient(ctx, tc.cred, RequestMeta{})
			if tc.reason == "" {
				if err != nil || c == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != "invalid_client" || l.lastReason() != tc.reason {
				t.Fatalf("err = %v, reason %q; want invalid_client, %q", err, l.lastReason(), tc.reason)
			}
		})
	}
}
