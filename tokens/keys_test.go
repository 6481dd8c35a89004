package tokens

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// Test helpers are prefixed kt so they cannot clash with other files'.

const (
	ktSecret = "kt-test-secret-key-0123456789-abcdefghijkl"
	ktIssuer = "https://gatehouse.test"
	ktPeriod = 30 * 24 * time.Hour
	ktLead   = time.Hour
	ktRetain = 2 * time.Hour
)

var ktAlgs = []string{"RS256", "ES256", "EdDSA"}

// ktStart is the fake clock's start: whole seconds, far from real time.
var ktStart = time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)

type ktClock struct {
	mu sync.Mutex
	t  time.Time
}

func newKTClock() *ktClock { return &ktClock{t: ktStart} }

func (c *ktClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ktClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ktOptions(alg string, clock *ktClock) KeyOptions {
	return KeyOptions{Algorithm: alg, RotationPeriod: ktPeriod, PublishLead: ktLead, RetainAfterRetire: ktRetain, Now: clock.Now}
}

// ktNew returns an initialized manager.
func ktNew(t testing.TB, store KeyStore, alg string, clock *ktClock) *KeyManager {
	t.Helper()
	m, err := NewKeyManager(store, ktSecret, ktOptions(alg, clock))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// ktFresh gives one subtest a new clock and key manager for alg on store,
// and empties the key table afterwards so the next algorithm starts fresh.
func ktFresh(t *testing.T, store *models.Store, alg string) (*KeyManager, *ktClock) {
	t.Helper()
	clock := newKTClock()
	m := ktNew(t, store, alg, clock)
	t.Cleanup(func() { _ = store.Gorm().Exec("DELETE FROM signing_keys").Error })
	return m, clock
}

// ktClaims are full access-token claims valid for 15 minutes from now.
func ktClaims(now time.Time) AccessClaims {
	return AccessClaims{
		Issuer: ktIssuer, Subject: "0b6c8f3e-5d1a-4c7e-9f2b-1a2b3c4d5e6f",
		Audience: []string{"spa", "https://api.example.com"},
		Expiry:   now.Add(15 * time.Minute).Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		ID: "8e7d6c5b-4a39-4281-b7c6-d5e4f3a2b1c0", ClientID: "spa", SessionID: "5f4e3d2c-1b0a-4987-a6b5-c4d3e2f1a0b9",
		Scope: "openid email profile offline_access", Email: "ada@example.com", EmailVerified: new(true),
		Name: "Ada Lovelace", IdP: "github", OrgID: "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
		Roles:       []string{"admin", "member"},
		Permissions: []string{"kb:read", "kb:write", "members:read", "members:invite", "billing:read", "reports:*"},
	}
}

func ktSign(t testing.TB, m *KeyManager, c any, typ string) string {
	t.Helper()
	tok, err := m.Sign(c, typ)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ktHeader decodes a token's JOSE header without verifying anything.
func ktHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func ktActive(t testing.TB, m *KeyManager) KeyInfo {
	t.Helper()
	infos, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found []KeyInfo
	for _, i := range infos {
		if i.State == KeyActive {
			found = append(found, i)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one active key, got %+v", infos)
	}
	return found[0]
}

func ktRows(t testing.TB, s *models.Store) []models.SigningKey {
	t.Helper()
	rows, err := s.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// ktNeedle is one encoding of a private key; privateOnly when it carries
// nothing but private parts (a DER or PEM line of an RSA key also carries
// the public modulus, which the public JWK holds).
type ktNeedle struct {
	enc         []byte
	privateOnly bool
}

// ktPrivateEncodings returns the private parts of priv in every usual
// encoding a key could be stored in unsealed: the raw private scalars (RSA
// d, p and q; the EC scalar; the Ed25519 seed) as bytes, hex, base64 and
// base64url (a JWK's "d"); PKCS#8 and PKCS#1 or SEC1 DER, those DER in
// base64 (a PEM body without line breaks) and each full line of their PEM;
// and the PEM label.
func ktPrivateEncodings(t testing.TB, priv crypto.Signer) map[string]ktNeedle {
	t.Helper()
	ders := map[string][]byte{}
	scalars := map[string][]byte{}
	var d []byte // what a JWK's "d" encodes
	var err error
	if ders["PKCS#8 DER"], err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
		t.Fatal(err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		ders["PKCS#1 DER"] = x509.MarshalPKCS1PrivateKey(k)
		d = k.D.Bytes()
		scalars["RSA d"], scalars["RSA p"], scalars["RSA q"] = d, k.Primes[0].Bytes(), k.Primes[1].Bytes()
	case *ecdsa.PrivateKey:
		if ders["SEC1 DER"], err = x509.MarshalECPrivateKey(k); err != nil {
			t.Fatal(err)
		}
		if d, err = k.Bytes(); err != nil {
			t.Fatal(err)
		}
		scalars["EC d"] = d
	case ed25519.PrivateKey:
		d = k.Seed()
		scalars["Ed25519 seed"] = d
	default:
		t.Fatalf("unexpected private key type %T", priv)
	}
	jb, err := json.Marshal(jose.JSONWebKey{Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	var jwk struct {
		D string `json:"d"`
	}
	if err := json.Unmarshal(jb, &jwk); err != nil || jwk.D != base64.RawURLEncoding.EncodeToString(d) {
		t.Fatalf("the private JWK's d is not the private scalar in base64url: %v", err)
	}
	out := map[string]ktNeedle{"PEM label": {[]byte("PRIVATE"), true}}
	for name, b := range scalars {
		out[name] = ktNeedle{b, true}
		out[name+" hex"] = ktNeedle{[]byte(hex.EncodeToString(b)), true}
		out[name+" base64"] = ktNeedle{[]byte(base64.StdEncoding.EncodeToString(b)), true}
		out[name+" base64url (JWK)"] = ktNeedle{[]byte(base64.RawURLEncoding.EncodeToString(b)), true}
	}
	for name, der := range ders {
		out[name] = ktNeedle{enc: der}
		out[name+" base64"] = ktNeedle{enc: []byte(base64.StdEncoding.EncodeToString(der))}
		block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		for i, line := range bytes.Split(block, []byte("\n")) {
			if len(line) == 64 {
				out[fmt.Sprintf("%s PEM line %d", name, i)] = ktNeedle{enc: line}
			}
		}
	}
	return out
}

func ktJWKSKids(m *KeyManager) []string {
	var out []string
	for _, k := range m.JWKS().Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestNewKeyManagerOptions(t *testing.T) {
	store := models.NewStore(dbtest.SQLite(t))
	clock := newKTClock()
	good := ktOptions("ES256", clock)
	for _, tc := range []struct {
		name   string
		secret string
		mod    func(*KeyOptions)
	}{
		{"short secret", "too-short", func(*KeyOptions) {}},
		{"unknown algorithm", ktSecret, func(o *KeyOptions) { o.Algorithm = "HS256" }},
		{"no algorithm", ktSecret, func(o *KeyOptions) { o.Algorithm = "" }},
		{"period not longer than lead", ktSecret, func(o *KeyOptions) { o.RotationPeriod = o.PublishLead }},
		{"negative lead", ktSecret, func(o *KeyOptions) { o.PublishLead = -time.Second }},
		{"no retention", ktSecret, func(o *KeyOptions) { o.RetainAfterRetire = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			if _, err := NewKeyManager(store, tc.secret, o); err == nil {
				t.Fatal("accepted")
			} else if strings.Contains(err.Error(), ktSecret) {
				t.Fatal("error contains the secret")
			}
		})
	}
	if _, err := NewKeyManager(nil, ktSecret, good); err == nil {
		t.Fatal("nil store accepted")
	}
	m, err := NewKeyManager(store, ktSecret, good)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); err == nil {
		t.Fatal("Ready before Init")
	}
	if _, err := m.Sign(ktClaims(clock.Now()), TypAccessToken); err == nil {
		t.Fatal("Sign before Init")
	}
	if _, err := m.VerifyAccessToken("a.b.c", ktIssuer, clock.Now()); err == nil {
		t.Fatal("VerifyAccessToken before Init")
	}
	if n := len(m.JWKS().Keys); n != 0 {
		t.Fatalf("JWKS before Init has %d keys", n)
	}
}

func TestKeyGeneration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		store := models.NewStore(db)
		for _, alg := range ktAlgs {
			t.Run(alg, func(t *testing.T) {
				m, clock := ktFresh(t, store, alg)
				if err := m.Ready(); err != nil {
					t.Fatal(err)
				}
				active := ktActive(t, m)
				if active.Algorithm != alg || !active.ActivatesAt.Equal(clock.Now()) || active.RetiredAt != nil {
					t.Fatalf("first key = %+v", active)
				}
				set := m.set.Load()
				var ok bool
				switch k := set.byKID[active.KID].mat.private.(type) {
				case *rsa.PrivateKey:
					ok = alg == "RS256" && k.N.BitLen() == 2048
				case *ecdsa.PrivateKey:
					ok = alg == "ES256" && k.Curve == elliptic.P256()
				case ed25519.PrivateKey:
					ok = alg == "EdDSA"
				}
				if !ok {
					t.Fatalf("%s key is a %T", alg, set.byKID[active.KID].mat.private)
				}
				// The private key is stored sealed, not in the clear: no
				// usual encoding of it is in the row.
				found := false
				for _, r := range ktRows(t, store) {
					if r.ID != active.KID {
						continue
					}
					found = true
					for name, n := range ktPrivateEncodings(t, set.byKID[active.KID].mat.private) {
						if bytes.Contains(r.PrivateKeyEncrypted, n.enc) {
							t.Errorf("private_key_encrypted holds the private key in the clear (%s)", name)
						}
						if n.privateOnly && strings.Contains(r.PublicJWK, string(n.enc)) {
							t.Errorf("public_jwk holds the private key (%s)", name)
						}
					}
				}
				if !found {
					t.Fatalf("no stored row for key %s", active.KID)
				}

				tok := ktSign(t, m, ktClaims(clock.Now()), TypAccessToken)
				h := ktHeader(t, tok)
				if h["kid"] != active.KID || h["alg"] != alg || h["typ"] != "at+jwt" {
					t.Fatalf("header = %v", h)
				}
				got, err := m.VerifyAccessToken(tok, ktIssuer, clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				want := ktClaims(clock.Now())
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want)
				if string(gb) != string(wb) {
					t.Fatalf("claims round trip:\n got %s\nwant %s", gb, wb)
				}
			})
		}
	})
}

func TestKeyReloadOnRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		store := models.NewStore(db)
		clock := newKTClock()
		first := ktNew(t, store, "ES256", clock)
		tok := ktSign(t, first, ktClaims(clock.Now()), TypAccessToken)

		clock.Add(time.Minute)
		restarted := ktNew(t, store, "ES256", clock)
		if a, b := ktActive(t, first).KID, ktActive(t, restarted).KID; a != b {
			t.Fatalf("restart changed the active key: %s → %s", a, b)
		}
		if n := len(ktRows(t, store)); n != 1 {
			t.Fatalf("restart added keys: %d rows", n)
		}
		if _, err := restarted.VerifyAccessToken(tok, ktIssuer, clock.Now()); err != nil {
			t.Fatalf("token from before the restart: %v", err)
		}
		tok2 := ktSign(t, restarted, ktClaims(clock.Now()), TypAccessToken)
		if _, err := first.VerifyAccessToken(tok2, ktIssuer, clock.Now()); err != nil {
			t.Fatalf("token from after the restart: %v", err)
		}
		// A restart with another configured algorithm keeps the stored key.
		other := ktNew(t, store, "EdDSA", clock)
		if ktActive(t, other).Algorithm != "ES256" {
			t.Fatal("changing the algorithm replaced the active key at once")
		}
	})
}

func TestKeyWrongSecret(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		clock := newKTClock()
		ktNew(t, store, "EdDSA", clock)
		const wrongSecret = "another-secret-key-0123456789-abcdefghijk"

		// Even when a rotation is due, nothing may be written under the wrong key.
		clock.Add(ktPeriod)
		m, err := NewKeyManager(store, wrongSecret, ktOptions("EdDSA", clock))
		if err != nil {
			t.Fatal(err)
		}
		err = m.Init(ctx)
		if !errors.Is(err, ErrWrongSecretKey) {
			t.Fatalf("Init = %v, want ErrWrongSecretKey", err)
		}
		if !strings.Contains(err.Error(), "GATEHOUSE_SECRET_KEY") || strings.Contains(err.Error(), wrongSecret) {
			t.Fatalf("error text: %q", err)
		}
		if _, err := m.Rotate(ctx); !errors.Is(err, ErrWrongSecretKey) {
			t.Fatalf("Rotate = %v, want ErrWrongSecretKey", err)
		}
		if err := m.Reload(ctx); !errors.Is(err, ErrWrongSecretKey) {
			t.Fatalf("Reload = %v, want ErrWrongSecretKey", err)
		}
		if err := m.Ready(); err == nil {
			t.Fatal("Ready with undecryptable keys")
		}
		if n := len(ktRows(t, store)); n != 1 {
			t.Fatalf("a wrong secret wrote keys: %d rows", n)
		}
	})
}

func TestKeyTamperedRow(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		clock := newKTClock()
		a := ktNew(t, store, "EdDSA", clock)
		kidA := ktActive(t, a).KID
		// Move another key's sealed private key into this row: the kid is
		// the additional data, so it must not open.
		other := ktNew(t, models.NewStore(dbtest.SQLite(t)), "EdDSA", clock)
		otherRows, _ := other.store.ListSigningKeys(ctx)
		err := store.Gorm().Model(&models.SigningKey{}).Where("id = ?", kidA).
			Update("private_key_encrypted", otherRows[0].PrivateKeyEncrypted).Error
		if err != nil {
			t.Fatal(err)
		}
		m, _ := NewKeyManager(store, ktSecret, ktOptions("EdDSA", clock))
		if err := m.Init(ctx); err == nil {
			t.Fatal("a swapped private key loaded")
		}
	})
}

func TestKeyRotationSchedule(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		clock := newKTClock()
		m := ktNew(t, store, "ES256", clock)
		k1 := ktActive(t, m).KID

		// A token that outlives the rotation, to follow the old key's life.
		long := ktClaims(clock.Now())
		long.Expiry = clock.Now().Add(ktPeriod + 10*ktRetain).Unix()

		clock.Add(ktPeriod - ktLead - time.Second)
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(ktRows(t, store)); n != 1 {
			t.Fatalf("rotated early: %d keys", n)
		}

		clock.Add(time.Second)
		oldTok := ktSign(t, m, long, TypAccessToken)
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		infos, _ := m.List(ctx)
		if len(infos) != 2 || infos[0].State != KeyPending || infos[1].KID != k1 || infos[1].State != KeyActive {
			t.Fatalf("after scheduled rotation: %+v", infos)
		}
		k2 := infos[0]
		if !k2.ActivatesAt.Equal(clock.Now().Add(ktLead)) {
			t.Fatalf("new key activates at %s, want now+lead %s", k2.ActivatesAt, clock.Now().Add(ktLead))
		}
		if r := infos[1].RetiredAt; r == nil || !r.Equal(k2.ActivatesAt) {
			t.Fatalf("old key retired_at = %v, want %s", r, k2.ActivatesAt)
		}
		if d := infos[1].DeleteAfter; d == nil || !d.Equal(k2.ActivatesAt.Add(ktRetain)) {
			t.Fatalf("old key delete_after = %v", d)
		}
		// Published before it signs.
		if kids := ktJWKSKids(m); len(kids) != 2 || kids[0] != k2.KID || kids[1] != k1 {
			t.Fatalf("JWKS kids = %v", kids)
		}
		if kid := ktHeader(t, ktSign(t, m, ktClaims(clock.Now()), TypAccessToken))["kid"]; kid != k1 {
			t.Fatalf("pending key signs: kid %v", kid)
		}
		// Reloading again does not pile up keys.
		clock.Add(ktLead / 2)
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(ktRows(t, store)); n != 2 {
			t.Fatalf("%d keys after a second reload", n)
		}

		// At activation the new key signs (no reload needed: the schedule
		// is in the rows); the old key still verifies.
		clock.Add(ktLead / 2)
		if kid := ktHeader(t, ktSign(t, m, ktClaims(clock.Now()), TypAccessToken))["kid"]; kid != k2.KID {
			t.Fatalf("after activation kid = %v, want %s", kid, k2.KID)
		}
		if a := ktActive(t, m); a.KID != k2.KID {
			t.Fatalf("List: active = %s", a.KID)
		}
		if _, err := m.VerifyAccessToken(oldTok, ktIssuer, clock.Now()); err != nil {
			t.Fatalf("old key's token during retention: %v", err)
		}

		// Just before delete_after: still published and verifying.
		clock.Add(ktRetain - time.Second)
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if kids := ktJWKSKids(m); len(kids) != 2 {
			t.Fatalf("retired key dropped early: %v", kids)
		}
		// At delete_after: gone from verification and the JWKS even before
		// the next reload, and deleted by it.
		clock.Add(time.Second)
		if _, err := m.VerifyAccessToken(oldTok, ktIssuer, clock.Now()); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("old key's token after delete_after: %v", err)
		}
		if kids := ktJWKSKids(m); len(kids) != 1 || kids[0] != k2.KID {
			t.Fatalf("JWKS after delete_after = %v", kids)
		}
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if rows := ktRows(t, store); len(rows) != 1 || rows[0].ID != k2.KID {
			t.Fatalf("rows after delete_after: %d", len(rows))
		}

		// The next rotation comes one period after the previous activation.
		clock.Add(ktPeriod - ktLead - ktRetain)
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(ktRows(t, store)); n != 2 {
			t.Fatalf("second rotation: %d keys", n)
		}
	})
}

func TestKeyManualRotate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		clock := newKTClock()
		m, err := NewKeyManager(store, ktSecret, ktOptions("EdDSA", clock))
		if err != nil {
			t.Fatal(err)
		}
		// On an empty database the rotated-in key is the only one: active at once.
		first, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if first.State != KeyActive || m.Ready() != nil {
			t.Fatalf("first key from Rotate: %+v", first)
		}
		clock.Add(time.Minute)
		second, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if second.State != KeyPending || !second.ActivatesAt.Equal(clock.Now().Add(ktLead)) {
			t.Fatalf("second = %+v", second)
		}
		// Rotating again before it activates supersedes the pending key too.
		clock.Add(time.Minute)
		third, err := m.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		infos, _ := m.List(ctx)
		if len(infos) != 3 || infos[0].KID != third.KID || infos[1].KID != second.KID || infos[2].KID != first.KID {
			t.Fatalf("List = %+v", infos)
		}
		// Each key retires when its successor activates.
		if r := infos[1].RetiredAt; r == nil || !r.Equal(third.ActivatesAt) {
			t.Fatalf("second retired_at = %v, want %s", r, third.ActivatesAt)
		}
		if r := infos[2].RetiredAt; r == nil || !r.Equal(second.ActivatesAt) {
			t.Fatalf("first retired_at = %v, want %s", r, second.ActivatesAt)
		}
		if infos[2].State != KeyActive || infos[1].State != KeyPending {
			t.Fatalf("states = %s %s %s", infos[0].State, infos[1].State, infos[2].State)
		}
		clock.Add(ktLead)
		if a := ktActive(t, m); a.KID != third.KID {
			t.Fatalf("active = %s, want the last rotated key", a.KID)
		}
	})
}

func TestJWKSContent(t *testing.T) {
	store := models.NewStore(dbtest.SQLite(t))
	for _, alg := range ktAlgs {
		t.Run(alg, func(t *testing.T) {
			m, _ := ktFresh(t, store, alg)
			if _, err := m.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(m.JWKS())
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want active + pending", len(doc.Keys))
			}
			for _, k := range doc.Keys {
				for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
					if _, has := k[private]; has {
						t.Fatalf("JWKS key has private member %q", private)
					}
				}
				if k["use"] != "sig" || k["alg"] != alg {
					t.Fatalf("use/alg = %v/%v", k["use"], k["alg"])
				}
				one, _ := json.Marshal(k)
				var jwk jose.JSONWebKey
				if err := json.Unmarshal(one, &jwk); err != nil || !jwk.IsPublic() {
					t.Fatalf("not a public JWK: %v", err)
				}
				tp, _ := jwk.Thumbprint(crypto.SHA256)
				if want := base64.RawURLEncoding.EncodeToString(tp); k["kid"] != want {
					t.Fatalf("kid %v is not the RFC 7638 thumbprint %s", k["kid"], want)
				}
			}
		})
	}
}

// TestKeyReplicasAgree runs several managers, each on its own connection
// pool, against one database: as replicas of a deployment would.
func TestKeyReplicasAgree(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			target := dbtest.SQLiteTarget(t)
			if dialect == "postgres" {
				target = dbtest.PostgresTarget(t)
			}
			const replicas = 4
			clock := newKTClock()
			stores := make([]*models.Store, replicas)
			for i := range stores {
				db, err := models.Open(ctx, target, models.PoolSettings{MaxOpenConns: 4})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				if i == 0 {
					mig, err := migrations.New(db.SQL, db.Dialect)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := mig.Up(ctx); err != nil {
						t.Fatal(err)
					}
				}
				stores[i] = models.NewStore(db)
			}
			ms := make([]*KeyManager, replicas)
			for i := range ms {
				m, err := NewKeyManager(stores[i], ktSecret, ktOptions("ES256", clock))
				if err != nil {
					t.Fatal(err)
				}
				ms[i] = m
			}
			all := func(what string, fn func(m *KeyManager) error) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make([]error, replicas)
				for i, m := range ms {
					wg.Go(func() { errs[i] = fn(m) })
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("%s on replica %d: %v", what, i, err)
					}
				}
			}
			agree := func() string {
				t.Helper()
				var kids []string
				for _, m := range ms {
					kids = append(kids, ktHeader(t, ktSign(t, m, ktClaims(clock.Now()), TypAccessToken))["kid"].(string))
				}
				for _, k := range kids {
					if k != kids[0] {
						t.Fatalf("replicas sign with different keys: %v", kids)
					}
				}
				return kids[0]
			}

			all("Init", func(m *KeyManager) error { return m.Init(ctx) })
			if n := len(ktRows(t, stores[0])); n != 1 {
				t.Fatalf("concurrent first start made %d keys", n)
			}
			k1 := agree()

			rotated, err := ms[1].Rotate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all("Reload", func(m *KeyManager) error { return m.Reload(ctx) })
			if k := agree(); k != k1 {
				t.Fatalf("pending key signs: %s", k)
			}
			for i, m := range ms {
				if kids := ktJWKSKids(m); len(kids) != 2 || kids[0] != rotated.KID {
					t.Fatalf("replica %d publishes %v", i, kids)
				}
			}
			clock.Add(ktLead)
			all("Reload", func(m *KeyManager) error { return m.Reload(ctx) })
			if k := agree(); k != rotated.KID {
				t.Fatalf("after the lead replicas sign with %s, want %s", k, rotated.KID)
			}

			// A scheduled rotation due on every replica at once adds one key
			// (and the first key, long past delete_after, is gone).
			clock.Add(ktPeriod - ktLead)
			all("Reload", func(m *KeyManager) error { return m.Reload(ctx) })
			if rows := ktRows(t, stores[0]); len(rows) != 2 || !rows[0].ActivatesAt.After(clock.Now()) || rows[1].ID != rotated.KID {
				t.Fatalf("concurrent scheduled rotation: %d keys, want the active one and one pending", len(rows))
			}
			clock.Add(ktLead)
			k3 := agree()
			if k3 == rotated.KID || k3 == k1 {
				t.Fatal("scheduled key did not take over")
			}
		})
	}
}

// TestKeyRotateIfNonePending: while a rotated-in key waits for its
// publish lead, RotateIfNonePending refuses with a *PendingKeyError
// naming it and changes nothing; once it signs, the next rotation is
// accepted. Rotate (the operator's command) is not bounded.
func TestKeyRotateIfNonePending(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		clock := newKTClock()
		m := ktNew(t, models.NewStore(db), "EdDSA", clock)
		first := ktActive(t, m)
		second, err := m.RotateIfNonePending(ctx)
		if err != nil || second.State != KeyPending {
			t.Fatalf("first rotation = %+v, %v", second, err)
		}
		clock.Add(time.Minute)
		for range 3 {
			_, err := m.RotateIfNonePending(ctx)
			var pending *PendingKeyError
			if !errors.As(err, &pending) || pending.KID != second.KID || !pending.ActivatesAt.Equal(second.ActivatesAt) {
				t.Fatalf("rotation while %s is pending: %v", second.KID, err)
			}
		}
		infos, _ := m.List(ctx)
		if len(infos) != 2 || len(m.JWKS().Keys) != 2 {
			t.Fatalf("refused rotations left %d keys, %d published", len(infos), len(m.JWKS().Keys))
		}
		if r := infos[1].RetiredAt; infos[1].KID != first.KID || r == nil || !r.Equal(second.ActivatesAt) {
			t.Fatalf("the active key's retirement moved: %+v", infos[1])
		}
		clock.Add(ktLead)
		third, err := m.RotateIfNonePending(ctx)
		if err != nil || third.State != KeyPending {
			t.Fatalf("rotation once %s signs = %+v, %v", second.KID, third, err)
		}
		if _, err := m.Rotate(ctx); err != nil {
			t.Fatalf("Rotate while a key is pending: %v", err)
		}
	})
}
