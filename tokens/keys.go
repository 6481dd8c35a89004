package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-id/gatehouse/models"
)

// ErrWrongSecretKey reports stored signing keys that the configured secret
// cannot decrypt. Gatehouse then refuses to start rather than generate new
// keys, which would invalidate every token in circulation.
var ErrWrongSecretKey = errors.New("signing keys cannot be decrypted with this GATEHOUSE_SECRET_KEY")

// signingKeysPurpose is the DeriveKey purpose of the key that encrypts
// private signing keys at rest.
const signingKeysPurpose = "signing-keys"

// KeyStore is the storage a KeyManager needs; *models.Store implements it.
type KeyStore interface {
	// ListSigningKeys returns every stored key.
	ListSigningKeys(ctx context.Context) ([]models.SigningKey, error)
	// UpdateSigningKeys applies decide's change to the rows it is given in
	// one transaction serialized against every other UpdateSigningKeys on
	// the same database.
	UpdateSigningKeys(ctx context.Context, decide func(current []models.SigningKey) (models.SigningKeyChange, error)) error
}

var _ KeyStore = (*models.Store)(nil)

// KeyOptions configure a KeyManager.
type KeyOptions struct {
	// Algorithm of newly generated keys: RS256 (RSA-2048), ES256 (P-256)
	// or EdDSA (Ed25519). Existing keys keep theirs, so a change takes
	// effect at the next rotation (or at once after `gatehouse keys rotate`
	// plus the publish lead).
	Algorithm string
	// RotationPeriod is how long each key signs.
	RotationPeriod time.Duration
	// PublishLead is how long a new key is published before it signs; at
	// least the JWKS cache lifetime, so verifiers know it in time.
	PublishLead time.Duration
	// RetainAfterRetire is how long a retired key stays published: the
	// longest token lifetime plus clock skew.
	RetainAfterRetire time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// KeyState is a key's role at a given time.
type KeyState string

// Key states. Exactly one published key is active at any time once keys
// exist: the newest whose activation time has passed.
const (
	KeyPending KeyState = "pending" // published, not signing yet
	KeyActive  KeyState = "active"  // signs new tokens
	KeyRetired KeyState = "retired" // published until delete_after, verifies only
)

// KeyInfo describes one signing key; it holds no key material.
type KeyInfo struct {
	KID         string     `json:"kid"`
	Algorithm   string     `json:"alg"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatesAt time.Time  `json:"activates_at"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	DeleteAfter *time.Time `json:"delete_after,omitempty"`
	State       KeyState   `json:"state"`
}

// KeyManager holds Gatehouse's signing keys. Which key signs is a pure
// function of the stored rows and the time (the newest key whose
// activates_at has passed), so replicas sharing a database agree without
// talking to each other. Its methods are safe for concurrent use; Sign,
// VerifyAccessToken and JWKS never touch the database.
type KeyManager struct {
	store  KeyStore
	encKey []byte
	opts   KeyOptions

	mu  sync.Mutex // serializes Init, Reload and Rotate
	set atomic.Pointer[keySet]
	// retain is RetainAfterRetire, which RetainAtLeast may lengthen.
	retain atomic.Int64
}

// keySet is an immutable snapshot of the loaded keys.
type keySet struct {
	keys  []*keyEntry // newest first
	byKID map[string]*keyEntry
	algs  []jose.SignatureAlgorithm // of every loaded key: all that verification accepts
}

// keyEntry is one key's schedule; mat is nil where only metadata is needed.
type keyEntry struct {
	kid         string
	alg         string
	createdAt   time.Time
	activatesAt time.Time
	retiredAt   *time.Time
	deleteAfter *time.Time
	mat         *keyMaterial
}

// keyMaterial is a decrypted key, kept across reloads so parsing and
// signer construction happen once per key.
type keyMaterial struct {
	publicJWK string // the stored row, to notice a replaced row
	alg       jose.SignatureAlgorithm
	public    crypto.PublicKey
	private   crypto.Signer
	jwk       jose.JSONWebKey // public half with kid, alg and use=sig
	signers   sync.Map        // typ → jose.Signer
	compact   sync.Map        // typ → *compactSigner (nil: go-jose signs)
}

// keyAlgorithms are the algorithms Gatehouse generates and accepts.
var keyAlgorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256,
	"ES256": jose.ES256,
	"EdDSA": jose.EdDSA,
}

// NewKeyManager checks the options and returns a manager with no keys
// loaded; call Init before use. It does not touch the database.
func NewKeyManager(store KeyStore, secretKey string, opts KeyOptions) (*KeyManager, error) {
	switch {
	case store == nil:
		return nil, errors.New("tokens: key store is nil")
	case len(secretKey) < 32:
		return nil, errors.New("tokens: secret key must be at least 32 bytes")
	case keyAlgorithms[opts.Algorithm] == "":
		return nil, fmt.Errorf("tokens: signing algorithm must be RS256, ES256 or EdDSA, not %q", opts.Algorithm)
	case opts.PublishLead < 0 || opts.RotationPeriod <= opts.PublishLead:
		return nil, errors.New("tokens: key rotation period must be longer than the publish lead (≥ 0)")
	case opts.RetainAfterRetire <= 0:
		return nil, errors.New("tokens: retired keys must stay published for a positive duration")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &KeyManager{store: store, encKey: DeriveKey(secretKey, signingKeysPurpose), opts: opts}
	m.retain.Store(int64(opts.RetainAfterRetire))
	return m, nil
}

// Init loads the keys, creating the first one (active at once) when the
// database has none. Replicas starting together end with one key. It
// returns an error wrapping ErrWrongSecretKey, and changes nothing, when
// the stored keys were encrypted under another secret.
func (m *KeyManager) Init(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncLocked(ctx)
}

// Reload re-reads the keys, deletes those past delete_after, and performs
// a scheduled rotation when due: once the active key is older than
// RotationPeriod−PublishLead and no successor is pending, a new key is
// published that signs after PublishLead, and the old one is scheduled for
// retirement then. Call it every minute or so. On error the keys loaded
// before stay in use.
func (m *KeyManager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncLocked(ctx)
}

// Rotate publishes a new key now that signs after PublishLead (at once if
// there was no key), scheduling every current key's retirement for then.
func (m *KeyManager) Rotate(ctx context.Context) (KeyInfo, error) {
	return m.rotate(ctx, false)
}

// PendingKeyError refuses a rotation while the key an earlier rotation
// published has not started signing yet.
type PendingKeyError struct {
	KID         string
	ActivatesAt time.Time
}

func (e *PendingKeyError) Error() string {
	return fmt.Sprintf("signing key %s is published and signs from %s: rotate again after that",
		e.KID, e.ActivatesAt.UTC().Format(time.RFC3339))
}

// RotateIfNonePending is Rotate, refused with a *PendingKeyError while a
// key is pending (published, not signing yet). Each rotation keeps every
// earlier key published until the tokens it signed expire, so rotations
// in a row would pile keys into the JWKS until it outgrows what verifiers
// accept (the rbac package reads at most 1 MiB): one pending key at a
// time bounds it to about one key per GATEHOUSE_KEY_PUBLISH_LEAD. The
// check runs in the rotation's serialized transaction, so concurrent
// calls on any replica add one key.
func (m *KeyManager) RotateIfNonePending(ctx context.Context) (KeyInfo, error) {
	return m.rotate(ctx, true)
}

func (m *KeyManager) rotate(ctx context.Context, unlessPending bool) (KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := keyTime(m.opts.Now())
	// Prove the secret opens the existing keys before adding one under it.
	if _, err := m.loadFromStore(ctx, now); err != nil {
		return KeyInfo{}, err
	}
	cand, err := m.newKeyRow(now)
	if err != nil {
		return KeyInfo{}, err
	}
	err = m.store.UpdateSigningKeys(ctx, func(current []models.SigningKey) (models.SigningKeyChange, error) {
		if unlessPending {
			for _, r := range current {
				live := r.DeleteAfter == nil || now.Before(*r.DeleteAfter)
				if live && r.ActivatesAt.After(now) {
					return models.SigningKeyChange{}, &PendingKeyError{KID: r.ID, ActivatesAt: r.ActivatesAt}
				}
			}
		}
		ch, _ := m.keyChange(current, now, true, cand)
		return ch, nil
	})
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotate signing key: %w", err)
	}
	set, err := m.loadFromStore(ctx, now)
	if err != nil {
		return KeyInfo{}, err
	}
	m.set.Store(set)
	if e := set.byKID[cand.ID]; e != nil {
		return e.info(set.active(now), now), nil
	}
	return KeyInfo{}, errors.New("rotate signing key: the new key vanished")
}

// List returns every stored key with its state now, newest first, read
// from the database (so it needs no Init).
func (m *KeyManager) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := m.opts.Now()
	set := newKeySet(rows, nil)
	active := set.active(now)
	out := make([]KeyInfo, 0, len(set.keys))
	for _, e := range set.keys {
		out = append(out, e.info(active, now))
	}
	return out, nil
}

// JWKS returns the public keys of every loaded key not past delete_after,
// pending ones included, newest first, each with kid, alg and use=sig. It
// never contains private key material.
func (m *KeyManager) JWKS() jose.JSONWebKeySet {
	set := m.set.Load()
	if set == nil {
		return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	}
	now := m.opts.Now()
	keys := make([]jose.JSONWebKey, 0, len(set.keys))
	for _, e := range set.keys {
		if e.live(now) {
			keys = append(keys, e.mat.jwk)
		}
	}
	return jose.JSONWebKeySet{Keys: keys}
}

// Ready returns nil when keys are loaded and one is active now.
func (m *KeyManager) Ready() error {
	set := m.set.Load()
	if set == nil {
		return errKeysNotLoaded
	}
	if set.active(m.opts.Now()) == nil {
		return errNoActiveKey
	}
	return nil
}

var (
	errKeysNotLoaded = errors.New("signing keys are not loaded")
	errNoActiveKey   = errors.New("no signing key is active")
)

// syncLocked loads the keys and writes what the schedule requires.
func (m *KeyManager) syncLocked(ctx context.Context) error {
	now := keyTime(m.opts.Now())
	rows, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	// Decrypt first: a wrong secret must fail before anything is written.
	set, err := m.loadSet(rows, now)
	if err != nil {
		return err
	}
	pre, needKey := m.keyChange(rows, now, false, nil)
	if !needKey && len(pre.Delete) == 0 {
		m.set.Store(set)
		return nil
	}
	var cand *models.SigningKey
	if needKey {
		// Generated outside the transaction (RSA takes a while); discarded
		// if another replica got there first.
		if cand, err = m.newKeyRow(now); err != nil {
			return err
		}
	}
	err = m.store.UpdateSigningKeys(ctx, func(current []models.SigningKey) (models.SigningKeyChange, error) {
		ch, _ := m.keyChange(current, now, false, cand)
		return ch, nil
	})
	if err != nil {
		return fmt.Errorf("update signing keys: %w", err)
	}
	if set, err = m.loadFromStore(ctx, now); err != nil {
		return err
	}
	m.set.Store(set)
	return nil
}

func (m *KeyManager) loadFromStore(ctx context.Context, now time.Time) (*keySet, error) {
	rows, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	return m.loadSet(rows, now)
}

// keyChange decides what the rows need at now: keys past delete_after
// deleted, and whether a new key is due (forced, none left, or scheduled
// rotation). With a candidate it also fills in the insert: active at once
// when it is the only key, else after PublishLead, superseding the others.
func (m *KeyManager) keyChange(rows []models.SigningKey, now time.Time, force bool, cand *models.SigningKey) (models.SigningKeyChange, bool) {
	var ch models.SigningKeyChange
	var live []models.SigningKey
	for _, r := range rows {
		if r.DeleteAfter != nil && !now.Before(*r.DeleteAfter) {
			ch.Delete = append(ch.Delete, r.ID)
		} else {
			live = append(live, r)
		}
	}
	need := force || len(live) == 0 || m.rotationDue(live, now)
	if !need || cand == nil {
		return ch, need
	}
	cand.ActivatesAt = now
	if len(live) > 0 {
		cand.ActivatesAt = now.Add(m.opts.PublishLead)
	}
	for _, r := range live {
		if r.RetiredAt == nil || r.RetiredAt.After(cand.ActivatesAt) {
			ch.Retire = append(ch.Retire, models.SigningKeyRetirement{
				ID:          r.ID,
				RetiredAt:   cand.ActivatesAt,
				DeleteAfter: cand.ActivatesAt.Add(time.Duration(m.retain.Load())),
			})
		}
	}
	ch.Insert = cand
	return ch, true
}

// rotationDue reports whether the active key is old enough that its
// successor must be published now, and none is pending yet.
func (m *KeyManager) rotationDue(live []models.SigningKey, now time.Time) bool {
	set := newKeySet(live, nil)
	active := set.active(now)
	if active == nil || set.keys[0] != active {
		return false // no key signs yet, or a successor is already pending
	}
	return !now.Before(active.activatesAt.Add(m.opts.RotationPeriod - m.opts.PublishLead))
}

// loadSet decrypts the rows not past delete_after, reusing keys already
// loaded, into a snapshot.
func (m *KeyManager) loadSet(rows []models.SigningKey, now time.Time) (*keySet, error) {
	prev := m.set.Load()
	mats := make(map[string]*keyMaterial, len(rows))
	var live []models.SigningKey
	for _, r := range rows {
		if r.DeleteAfter != nil && !now.Before(*r.DeleteAfter) {
			continue
		}
		live = append(live, r)
		if prev != nil {
			if e := prev.byKID[r.ID]; e != nil && e.mat.publicJWK == r.PublicJWK && e.alg == r.Algorithm {
				mats[r.ID] = e.mat
				continue
			}
		}
		mat, err := m.openKey(r)
		if err != nil {
			return nil, err
		}
		mats[r.ID] = mat
	}
	return newKeySet(live, mats), nil
}

// openKey decrypts one stored key and checks it is what its row claims.
func (m *KeyManager) openKey(r models.SigningKey) (*keyMaterial, error) {
	alg := keyAlgorithms[r.Algorithm]
	if alg == "" {
		return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", r.ID, r.Algorithm)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal([]byte(r.PublicJWK), &jwk); err != nil || !jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("signing key %s: stored public key is not a valid public JWK", r.ID)
	}
	if kid, err := keyThumbprint(&jwk); err != nil || kid != r.ID {
		return nil, fmt.Errorf("signing key %s: stored public key does not match its kid", r.ID)
	}
	der, err := Open(m.encKey, r.PrivateKeyEncrypted, []byte(r.ID))
	if errors.Is(err, ErrDecrypt) {
		return nil, fmt.Errorf("%w (key %s): start with the secret key the keys were created with", ErrWrongSecretKey, r.ID)
	} else if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: private key does not parse", r.ID)
	}
	priv, ok := parsed.(crypto.Signer)
	pub, okPub := jwk.Key.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !okPub || !pub.Equal(priv.Public()) || !keyFitsAlg(priv, r.Algorithm) {
		return nil, fmt.Errorf("signing key %s: private key does not match its public key or algorithm", r.ID)
	}
	jwk.KeyID, jwk.Algorithm, jwk.Use = r.ID, r.Algorithm, "sig"
	mat := &keyMaterial{publicJWK: r.PublicJWK, alg: alg, public: jwk.Key, private: priv, jwk: jwk}
	// Build the usual signers now: it proves the key signs, and keeps
	// construction off the request path.
	for _, typ := range []string{TypAccessToken, TypIDToken} {
		if _, err := mat.signer(r.ID, typ); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		if _, err := mat.compactSigner(r.ID, typ); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
		}
	}
	return mat, nil
}

// newKeyRow generates a key of the configured algorithm as a row to store.
func (m *KeyManager) newKeyRow(now time.Time) (*models.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch m.opts.Algorithm {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil || priv == nil {
		return nil, fmt.Errorf("generate %s signing key: %v", m.opts.Algorithm, err)
	}
	return m.keyRow(priv, m.opts.Algorithm, now)
}

// keyRow seals a private key under the derived key, bound to its kid.
func (m *KeyManager) keyRow(priv crypto.Signer, alg string, now time.Time) (*models.SigningKey, error) {
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	kid, err := keyThumbprint(&jwk)
	if err != nil {
		return nil, err
	}
	jwk.KeyID = kid
	pub, err := json.Marshal(jwk)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	sealed, err := Seal(m.encKey, der, []byte(kid))
	clear(der)
	if err != nil {
		return nil, err
	}
	return &models.SigningKey{
		ID: kid, Algorithm: alg, PublicJWK: string(pub), PrivateKeyEncrypted: sealed,
		CreatedAt: now, ActivatesAt: now,
	}, nil
}

// keyThumbprint is the RFC 7638 SHA-256 thumbprint, base64url: the kid.
func keyThumbprint(jwk *jose.JSONWebKey) (string, error) {
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

func keyFitsAlg(priv crypto.Signer, alg string) bool {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return alg == "RS256" && k.N.BitLen() >= 2048
	case *ecdsa.PrivateKey:
		return alg == "ES256" && k.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		return alg == "EdDSA"
	}
	return false
}

// keyTime normalizes times to what both databases store exactly.
func keyTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func keyTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := keyTime(*t)
	return &v
}

// newKeySet orders rows newest first (activation, then creation, then kid:
// a total order, so every replica picks the same key).
func newKeySet(rows []models.SigningKey, mats map[string]*keyMaterial) *keySet {
	set := &keySet{byKID: make(map[string]*keyEntry, len(rows))}
	for _, r := range rows {
		e := &keyEntry{
			kid: r.ID, alg: r.Algorithm, mat: mats[r.ID],
			createdAt: keyTime(r.CreatedAt), activatesAt: keyTime(r.ActivatesAt),
			retiredAt: keyTimePtr(r.RetiredAt), deleteAfter: keyTimePtr(r.DeleteAfter),
		}
		set.keys = append(set.keys, e)
		set.byKID[e.kid] = e
		if a := keyAlgorithms[e.alg]; a != "" && !slices.Contains(set.algs, a) {
			set.algs = append(set.algs, a)
		}
	}
	slices.SortFunc(set.keys, func(a, b *keyEntry) int {
		if c := b.activatesAt.Compare(a.activatesAt); c != 0 {
			return c
		}
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		switch {
		case a.kid > b.kid:
			return -1
		case a.kid < b.kid:
			return 1
		}
		return 0
	})
	return set
}

// active is the newest live key whose activation time has passed.
func (s *keySet) active(now time.Time) *keyEntry {
	for _, e := range s.keys {
		if !e.activatesAt.After(now) && e.live(now) {
			return e
		}
	}
	return nil
}

// live reports whether the key is still published at now.
func (e *keyEntry) live(now time.Time) bool {
	return e.deleteAfter == nil || now.Before(*e.deleteAfter)
}

func (e *keyEntry) info(active *keyEntry, now time.Time) KeyInfo {
	state := KeyRetired
	switch {
	case e.activatesAt.After(now):
		state = KeyPending
	case e == active:
		state = KeyActive
	}
	return KeyInfo{
		KID: e.kid, Algorithm: e.alg, CreatedAt: e.createdAt, ActivatesAt: e.activatesAt,
		RetiredAt: e.retiredAt, DeleteAfter: e.deleteAfter, State: state,
	}
}

// compactSigner returns the cached compact signer for typ, building it
// on first use; nil when the key is of a kind only go-jose signs with.
func (k *keyMaterial) compactSigner(kid, typ string) (*compactSigner, error) {
	if s, ok := k.compact.Load(typ); ok {
		return s.(*compactSigner), nil
	}
	s, err := newCompactSigner(k.private, k.alg, kid, typ)
	if err != nil {
		return nil, err
	}
	got, _ := k.compact.LoadOrStore(typ, s)
	return got.(*compactSigner), nil
}

// signer returns the cached jose signer for typ, building it on first use.
func (k *keyMaterial) signer(kid, typ string) (jose.Signer, error) {
	if s, ok := k.signers.Load(typ); ok {
		return s.(jose.Signer), nil
	}
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.private, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return nil, fmt.Errorf("build signer: %w", err)
	}
	got, _ := k.signers.LoadOrStore(typ, s)
	return got.(jose.Signer), nil
}
