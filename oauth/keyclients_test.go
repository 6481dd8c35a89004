package oauth

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestKeyClientsLoadWithoutSecret: a private_key_jwt client has no
// secret, wherever it is defined. One stored in the database (as the
// admin API stores it: no secret hash) is loaded by SyncClients and
// authenticates with its assertion, once per jti, never with a secret;
// a configuration file holding one is accepted by a reload
// (SetConfiguredClients), and its client authenticates too. A
// confidential secret client stored without a secret hash is still left
// out.
func TestKeyClientsLoadWithoutSecret(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		clk := &clock{now: time.Now().UTC()}
		k := newTestKey(t, "k1")
		doc := jwksDoc(t, k)
		put := func(id, settings string) {
			t.Helper()
			if err := store.CreateStoredClient(ctx, &models.StoredClient{ID: id, Settings: settings, Origin: models.ClientOriginAdmin,
				CreatedAt: clk.Now(), UpdatedAt: clk.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		put("stored-key", `{"token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"],"jwks":`+doc+`}`)
		put("stored-nosecret", `{"grant_types":["client_credentials"]}`)
		cfg := &config.Config{Issuer: "https://auth.example.com"}
		s := New(Options{Config: cfg, Store: store, Clients: store, AssertionJTIs: store, Now: clk.Now})
		if err := s.SyncClients(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Client("stored-nosecret"); ok {
			t.Fatal("a confidential secret client without a secret hash was loaded")
		}
		c, ok := s.Client("stored-key")
		if !ok {
			t.Fatal("a stored private_key_jwt client was not loaded")
		}
		if c.Source != ClientSourceDatabase || c.SecretHash != ([32]byte{}) {
			t.Fatalf("stored key client: source %q, secret hash set %v", c.Source, c.SecretHash != ([32]byte{}))
		}
		assertion := k.assertion(t, "stored-key", s.issuer, clk.Now())
		cred := ClientCredentials{AssertionType: ClientAssertionType, Assertion: assertion}
		if got, err := s.AuthenticateClient(ctx, cred, RequestMeta{}); err != nil || got.ID != "stored-key" {
			t.Fatalf("stored key client's assertion: %v", err)
		}
		if _, err := s.AuthenticateClient(ctx, cred, RequestMeta{}); err == nil {
			t.Fatal("a replayed assertion was accepted")
		}
		for _, secret := range []string{"", "anything-0123456789"} {
			if _, err := s.AuthenticateClient(ctx, ClientCredentials{ID: "stored-key", Secret: secret, Basic: true}, RequestMeta{}); err == nil {
				t.Fatalf("stored key client authenticated with secret %q", secret)
			}
		}

		// The configuration file's key client, as Load leaves it: no
		// secret, no secret hash.
		file := &config.Config{Issuer: cfg.Issuer, File: config.File{Clients: []config.Client{{ID: "file-key",
			TokenEndpointAuthMethod: config.AuthPrivateKeyJWT, JWKS: config.JWKS(doc),
			GrantTypes: []string{config.GrantClientCredentials}}}}}
		if err := s.SetConfiguredClients(file); err != nil {
			t.Fatalf("a reload with a private_key_jwt client was refused: %v", err)
		}
		clk.advance(time.Second)
		cred = ClientCredentials{AssertionType: ClientAssertionType, Assertion: k.assertion(t, "file-key", s.issuer, clk.Now())}
		if got, err := s.AuthenticateClient(ctx, cred, RequestMeta{}); err != nil || got.Source != ClientSourceConfig {
			t.Fatalf("reloaded key client's assertion: %v", err)
		}
		// A confidential secret client still needs its secret.
		file.File.Clients = append(file.File.Clients, config.Client{ID: "file-nosecret", GrantTypes: []string{config.GrantClientCredentials}})
		if err := s.SetConfiguredClients(file); err == nil {
			t.Fatal("a reload with a confidential client without a secret was accepted")
		}
	})
}
