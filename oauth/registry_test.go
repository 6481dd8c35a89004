package oauth

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestClientSecretOverlap: a rotated client accepts its current secret
// always, the replaced one only until its overlap ends, and nothing else
// (an empty secret neither).
func TestClientSecretOverlap(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &Client{}
	c.SecretHash = sha256.Sum256([]byte("new-secret"))
	c.previousSecretHash = sha256.Sum256([]byte("old-secret"))
	c.previousSecretUntil = now.Add(time.Hour)
	cases := []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"new-secret", now, true},
		{"old-secret", now, true},
		{"old-secret", now.Add(59 * time.Minute), true},
		{"old-secret", now.Add(time.Hour), false},
		{"new-secret", now.Add(48 * time.Hour), true},
		{"other", now, false},
		{"", now, false},
	}
	for _, tc := range cases {
		if got := c.checkSecret(tc.secret, tc.at); got != tc.want {
			t.Errorf("checkSecret(%q, %s) = %v, want %v", tc.secret, tc.at, got, tc.want)
		}
	}
	// A client never rotated has no previous secret to match.
	plain := &Client{}
	plain.SecretHash = sha256.Sum256([]byte("s"))
	if plain.checkSecret("", now) || !plain.checkSecret("s", now) {
		t.Error("a client without rotation")
	}
}

// TestRegistrySources: the registry serves the file's clients and the
// stored ones; SetConfiguredClients swaps the file's part and keeps the
// stored one, refuses an invalid set (keeping the old), and a file's
// client hides a stored one of the same id; SyncClients follows the
// stored version (a deleted client disappears, an invalid one is left
// out).
func TestRegistrySources(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		now := time.Now().UTC()
		put := func(id, settings string) {
			t.Helper()
			if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: id, Settings: settings, Origin: models.ClientOriginAdmin,
				CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		put("stored", `{"public":true,"redirect_uris":["https://s.example/cb"]}`)
		put("broken", `{"public":true}`) // no redirect URI: left out
		file := func(ids ...string) *config.Config {
			cfg := &config.Config{Issuer: "https://id.example"}
			for _, id := range ids {
				cfg.File.Clients = append(cfg.File.Clients, config.Client{ID: id, Public: true,
					RedirectURIs: []string{"https://f.example/cb"}, GrantTypes: []string{config.GrantAuthorizationCode}})
			}
			return cfg
		}
		s := New(Options{Config: file("yaml-a"), Clients: store})
		if err := s.SyncClients(ctx); err != nil {
			t.Fatal(err)
		}
		source := func(id string) string {
			if c, ok := s.Client(id); ok {
				return c.Source
			}
			return "-"
		}
		if source("yaml-a") != ClientSourceConfig || source("stored") != ClientSourceDatabase || source("broken") != "-" {
			t.Fatalf("sources: %s %s %s", source("yaml-a"), source("stored"), source("broken"))
		}
		if err := s.SetConfiguredClients(file("yaml-b")); err != nil {
			t.Fatal(err)
		}
		if source("yaml-a") != "-" || source("yaml-b") != ClientSourceConfig || source("stored") != ClientSourceDatabase {
			t.Fatal("reload did not swap the file's clients only")
		}
		if err := s.SetConfiguredClients(file("dup", "dup")); err == nil || !strings.Contains(err.Error(), "used by another client") {
			t.Fatalf("duplicate ids: %v", err)
		}
		if source("yaml-b") != ClientSourceConfig {
			t.Fatal("a refused reload changed the clients")
		}
		if err := s.SetConfiguredClients(file("stored")); err != nil {
			t.Fatal(err)
		}
		if source("stored") != ClientSourceConfig {
			t.Fatal("the file's client does not win over a stored one")
		}
		if _, err := store.DeleteStoredClient(ctx, "stored", "client_deleted", now); err != nil {
			t.Fatal(err)
		}
		if err := s.SetConfiguredClients(file("yaml-b")); err != nil {
			t.Fatal(err)
		}
		if err := s.SyncClients(ctx); err != nil {
			t.Fatal(err)
		}
		if source("stored") != "-" {
			t.Fatal("a deleted stored client is still served")
		}
	})
}

// TestStoredKeyClientLoads: a stored private_key_jwt client (which has
// no secret, so its row carries no secret hash) is loaded by the
// registry, authenticates with a client assertion and is refused a
// secret, on both databases.
func TestStoredKeyClientLoads(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		k := newTestKey(t, "k")
		settings, err := config.ClientJSON(config.Client{TokenEndpointAuthMethod: config.AuthPrivateKeyJWT,
			JWKS: config.JWKS(jwksDoc(t, k)), GrantTypes: []string{config.GrantClientCredentials}})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: "svc", Settings: string(settings),
			Origin: models.ClientOriginAdmin, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		s := New(Options{Config: &config.Config{Issuer: "https://auth.example.com"}, Store: store, Clients: store, AssertionJTIs: store})
		if err := s.SyncClients(ctx); err != nil {
			t.Fatal(err)
		}
		if c, ok := s.Client("svc"); !ok || c.Source != ClientSourceDatabase {
			t.Fatal("the stored private_key_jwt client is not loaded")
		}
		c, err := s.AuthenticateClient(ctx, ClientCredentials{AssertionType: ClientAssertionType,
			Assertion: k.assertion(t, "svc", s.issuer, time.Now())}, RequestMeta{})
		if err != nil || c.ID != "svc" {
			t.Fatalf("assertion refused: %v", err)
		}
		// The zero secret hash matches no secret, the empty one included.
		for _, secret := range []string{"", "anything-0123456789"} {
			if _, err := s.AuthenticateClient(ctx, ClientCredentials{ID: "svc", Secret: secret, Basic: true}, RequestMeta{}); err == nil {
				t.Fatalf("secret %q accepted", secret)
			}
		}
	})
}

// TestClientsLoadedReportsLongestLifetime: each published set of clients
// reports its longest token lifetime, a stored client's included, so
// the signing keys outlive the tokens of a stored client whose lifetime
// the file in force no longer allows (a file changed since it was
// saved).
func TestClientsLoadedReportsLongestLifetime(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	store := models.NewStore(db)
	now := time.Now().UTC()
	if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: "long", Origin: models.ClientOriginAdmin, CreatedAt: now, UpdatedAt: now,
		Settings: `{"public":true,"redirect_uris":["https://s.example/cb"],"access_token_ttl":"12h"}`}); err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	cfg := &config.Config{Issuer: "https://id.example", AccessTokenTTL: 5 * time.Minute, IDTokenTTL: 10 * time.Minute}
	s := New(Options{Config: cfg, Clients: store, Hooks: Hooks{ClientsLoaded: func(d time.Duration) { got = append(got, d) }}})
	if err := s.SyncClients(ctx); err != nil {
		t.Fatal(err)
	}
	// The file has no clients: nothing before the sync.
	if len(got) != 2 || got[0] != 0 || got[1] != 12*time.Hour {
		t.Fatalf("longest lifetimes reported = %v, want [0s 12h]", got)
	}
	if _, err := store.DeleteStoredClient(ctx, "long", "client_deleted", now); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncClients(ctx); err != nil {
		t.Fatal(err)
	}
	if got[len(got)-1] != 0 {
		t.Fatalf("after the deletion: %v", got)
	}
}

// pausingStore is a real store whose first ListStoredClients waits for
// release once it has read, so a test can run a second sync in between.
type pausingStore struct {
	*models.Store
	paused, release chan struct{}
	calls           atomic.Int32
}

func (p *pausingStore) ListStoredClients(ctx context.Context) ([]models.StoredClient, error) {
	rows, err := p.Store.ListStoredClients(ctx)
	if p.calls.Add(1) == 1 {
		close(p.paused)
		<-p.release
	}
	return rows, err
}

// TestClientSyncNeverStepsBack: a sync that read the stored clients
// before a change cannot publish them over the rows a later sync (the
// one a change made on this replica runs) published: the new client
// stays served.
func TestClientSyncNeverStepsBack(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	store := &pausingStore{Store: models.NewStore(db), paused: make(chan struct{}), release: make(chan struct{})}
	s := New(Options{Config: &config.Config{Issuer: "https://id.example"}, Clients: store})
	first := make(chan error, 1)
	go func() { first <- s.SyncClients(ctx) }() // the poll, before the change
	<-store.paused
	now := time.Now().UTC()
	if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: "new", Origin: models.ClientOriginAdmin, CreatedAt: now, UpdatedAt: now,
		Settings: `{"public":true,"redirect_uris":["https://s.example/cb"]}`}); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- s.SyncClients(ctx) }() // the one after the change
	// Without the serialization the second sync finishes here, before
	// the first publishes; with it, it waits for the first. Either way
	// the outcome must be the same (the wait only gives a wrong order
	// its chance; it decides nothing).
	var secondErr error
	secondDone := false
	select {
	case secondErr = <-second:
		secondDone = true
	case <-time.After(200 * time.Millisecond):
	}
	close(store.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !secondDone {
		secondErr = <-second
	}
	if secondErr != nil {
		t.Fatal(secondErr)
	}
	if _, ok := s.Client("new"); !ok {
		t.Fatal("an older sync published over a newer one: the new client is not served")
	}
}

// TestStoredClientsCheckedAgainAfterReload: a stored client left out
// because the file had no provider it names is served once a reload
// adds the provider, and left out again once a reload removes it,
// without any change to the stored clients.
func TestStoredClientsCheckedAgainAfterReload(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	store := models.NewStore(db)
	now := time.Now().UTC()
	if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: "named", Origin: models.ClientOriginAdmin, CreatedAt: now, UpdatedAt: now,
		Settings: `{"public":true,"redirect_uris":["https://s.example/cb"],"allowed_providers":["later"]}`}); err != nil {
		t.Fatal(err)
	}
	file := func(providers ...string) *config.Config {
		cfg := &config.Config{Issuer: "https://id.example"}
		for _, p := range providers {
			cfg.File.Providers = append(cfg.File.Providers, config.Provider{Name: p, Type: "dev"})
		}
		return cfg
	}
	s := New(Options{Config: file("first"), Clients: store})
	served := func(when string, want bool) {
		t.Helper()
		if err := s.SyncClients(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Client("named"); ok != want {
			t.Fatalf("%s: served = %v, want %v", when, ok, want)
		}
	}
	served("without its provider", false)
	if err := s.SetConfiguredClients(file("first", "later")); err != nil {
		t.Fatal(err)
	}
	served("after a reload adding its provider", true)
	if err := s.SetConfiguredClients(file("first")); err != nil {
		t.Fatal(err)
	}
	served("after a reload removing it", false)
}
