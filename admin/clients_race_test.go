package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

const raceInitialToken = "initial-access-token-0123456789abcdef"

// clientService is the admin service's client operations on a real
// database, with Dynamic Client Registration on (at most maxRegistered
// clients, redirect URIs on app.example.com).
func clientService(t *testing.T, db *models.DB, maxRegistered int) (*admin.Service, *models.Store) {
	t.Helper()
	store := models.NewStore(db)
	svc := admin.New(admin.NewStore(store), nil, nil)
	cfg := &config.Config{Issuer: "https://id.example.com", Registration: config.Registration{Enabled: true,
		InitialAccessTokenHash: sha256.Sum256([]byte(raceInitialToken)), RedirectHosts: []string{"app.example.com"},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken}, MaxClients: maxRegistered}}
	svc.SetClients(admin.ClientOptions{Config: cfg})
	return svc, store
}

func secretHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestConcurrentClientChangesAreNotLost: changes of one stored client
// made at the same time (on one replica or several) each start from the
// client as the other left it. A secret rotation racing an update keeps
// both: the rotated secret is the one stored (the update never writes
// the replaced secret back, which would revive a secret rotated away
// because it leaked) and the update's field is there too. Concurrent
// rotations chain: the secrets in force are the last two handed out,
// never the original one.
func TestConcurrentClientChangesAreNotLost(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		svc, store := clientService(t, db, 10)
		created, err := svc.ConsoleCreateClient(ctx, map[string]any{"client_id": "svc", "grant_types": []any{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		original := created.Secret
		for i := range 8 {
			name := "name-" + string(rune('a'+i))
			var wg sync.WaitGroup
			var rotated *admin.ClientSecret
			var rotErr, updErr error
			wg.Add(2)
			go func() { defer wg.Done(); rotated, rotErr = svc.ConsoleRotateClientSecret(ctx, "svc", 0) }()
			go func() { defer wg.Done(); _, updErr = svc.ConsoleUpdateClient(ctx, "svc", map[string]any{"name": name}) }()
			wg.Wait()
			if rotErr != nil || updErr != nil {
				t.Fatalf("round %d: rotate %v, update %v", i, rotErr, updErr)
			}
			row, err := store.FindStoredClient(ctx, "svc")
			if err != nil {
				t.Fatal(err)
			}
			if row.SecretHash != secretHash(rotated.Secret) {
				t.Fatalf("round %d: the secret a rotation handed out is not the one stored (a concurrent update wrote the old one back)", i)
			}
			got, err := svc.ConsoleGetClient(ctx, "svc")
			if err != nil || got["name"] != name {
				t.Fatalf("round %d: name = %v (%v), want %s: the rotation undid the update", i, got["name"], err, name)
			}
		}

		var mu sync.Mutex
		handed := map[string]bool{}
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := svc.ConsoleRotateClientSecret(ctx, "svc", time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				handed[secretHash(res.Secret)] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		row, err := store.FindStoredClient(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		if !handed[row.SecretHash] || !handed[row.PreviousSecretHash] || row.SecretHash == row.PreviousSecretHash {
			t.Fatal("after concurrent rotations the secrets in force are not the last two handed out")
		}
		if row.PreviousSecretHash == secretHash(original) {
			t.Fatal("the original secret survived six rotations")
		}
	})
}

// TestRegistrationLimitHoldsUnderConcurrency: registrations racing each
// other (a flood with the initial access token, across replicas) never
// store more clients than GATEHOUSE_DCR_MAX_CLIENTS; the others are
// refused with 403 access_denied.
func TestRegistrationLimitHoldsUnderConcurrency(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		const limit = 3
		svc, store := clientService(t, db, limit)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok, refused := 0, 0
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := svc.RegisterClient(ctx, admin.Actor{}, raceInitialToken, "https://id.example.com",
					admin.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}})
				mu.Lock()
				defer mu.Unlock()
				var re *admin.RegistrationError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &re) && re.Status == 403 && re.Code == "access_denied":
					refused++
				default:
					t.Errorf("registration: %v", err)
				}
			}()
		}
		wg.Wait()
		n, err := store.CountStoredClients(ctx, models.ClientOriginRegistration)
		if err != nil {
			t.Fatal(err)
		}
		if ok != limit || n != limit || refused != 16-limit {
			t.Fatalf("%d registered (%d stored), %d refused; want %d registered, %d refused", ok, n, refused, limit, 16-limit)
		}
	})
}

// TestRegistrationReportsItsAuthMethod: a client registered for
// client_secret_post is answered and read back with that method (the
// one it must use), and an update that leaves the method out returns it
// to the default, client_secret_basic, as answered.
func TestRegistrationReportsItsAuthMethod(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		svc, store := clientService(t, db, 5)
		md := admin.ClientMetadata{RedirectURIs: []string{"https://app.example.com/cb"}, TokenEndpointAuthMethod: config.AuthClientSecretPost}
		reg, err := svc.RegisterClient(ctx, admin.Actor{}, raceInitialToken, "https://id.example.com", md)
		if err != nil {
			t.Fatal(err)
		}
		if reg.TokenEndpointAuthMethod != config.AuthClientSecretPost {
			t.Fatalf("registered with client_secret_post, answered %q", reg.TokenEndpointAuthMethod)
		}
		read, err := svc.ReadRegistration(ctx, reg.ClientID, reg.RegistrationAccessToken, "https://id.example.com")
		if err != nil || read.TokenEndpointAuthMethod != config.AuthClientSecretPost {
			t.Fatalf("read back: %+v, %v", read, err)
		}
		md.ClientID, md.TokenEndpointAuthMethod = reg.ClientID, ""
		upd, err := svc.UpdateRegistration(ctx, admin.Actor{}, reg.ClientID, reg.RegistrationAccessToken, "https://id.example.com", md)
		if err != nil {
			t.Fatal(err)
		}
		row, err := store.FindStoredClient(ctx, reg.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := config.ParseClientJSON([]byte(row.Settings))
		if err != nil {
			t.Fatal(err)
		}
		if upd.TokenEndpointAuthMethod != config.AuthClientSecretBasic || stored.TokenEndpointAuthMethod != "" {
			t.Fatalf("after an update without a method: answered %q, stored %q", upd.TokenEndpointAuthMethod, stored.TokenEndpointAuthMethod)
		}
	})
}

// TestConcurrentClientDeleteAndChanges: a stored client deleted while
// it is being updated and rotated (from other replicas, say) ends
// deleted, and every change either happened before the deletion or is
// told the client is gone: no change fails otherwise (changes take the
// clients' change lock before any client row, so none waits for
// another in a deadlock), and none brings the client back.
func TestConcurrentClientDeleteAndChanges(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		svc, store := clientService(t, db, 10)
		for i := range 8 {
			if _, err := svc.ConsoleCreateClient(ctx, map[string]any{"client_id": "gone", "grant_types": []any{"client_credentials"}}); err != nil {
				t.Fatal(err)
			}
			errs := make([]error, 4)
			var wg sync.WaitGroup
			for j, op := range []func() error{
				func() error { _, err := svc.ConsoleUpdateClient(ctx, "gone", map[string]any{"name": "x"}); return err },
				func() error { _, err := svc.ConsoleRotateClientSecret(ctx, "gone", time.Hour); return err },
				func() error { _, err := svc.ConsoleDeleteClient(ctx, "gone"); return err },
				func() error { _, err := svc.ConsoleUpdateClient(ctx, "gone", map[string]any{"name": "y"}); return err },
			} {
				wg.Add(1)
				go func() { defer wg.Done(); errs[j] = op() }()
			}
			wg.Wait()
			for j, err := range errs {
				if err != nil && !errors.Is(err, models.ErrNotFound) {
					t.Fatalf("round %d, change %d: %v", i, j, err)
				}
			}
			if errs[2] != nil {
				t.Fatalf("round %d: the deletion failed: %v", i, errs[2])
			}
			if _, err := store.FindStoredClient(ctx, "gone"); !errors.Is(err, models.ErrNotFound) {
				t.Fatalf("round %d: the client is still stored after its deletion (%v)", i, err)
			}
		}
	})
}
