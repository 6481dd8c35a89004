package tokens_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/rbac"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// keyFixture is an organization with an API key service on a stopped clock.
type keyFixture struct {
	t     *testing.T
	ctx   context.Context
	store *models.Store
	org   *models.Organization
	now   time.Time
	svc   *tokens.APIKeyService
}

func newKeyFixture(t *testing.T, db *models.DB) *keyFixture {
	f := &keyFixture{t: t, ctx: context.Background(), store: models.NewStore(db), org: &models.Organization{Slug: "acme"},
		now: time.Now().UTC().Truncate(time.Microsecond)}
	if err := f.store.CreateOrganization(f.ctx, f.org); err != nil {
		t.Fatal(err)
	}
	f.svc = tokens.NewAPIKeyService(f.store, func() time.Time { return f.now })
	return f
}

// key stores a new key of the organization granting kb:read and returns
// its secret and row.
func (f *keyFixture) key(disabled bool, expires *time.Time) (string, *models.APIKey) {
	secret, prefix, hash, err := tokens.NewAPIKey()
	if err != nil {
		f.t.Fatal(err)
	}
	k := &models.APIKey{OrganizationID: f.org.ID, Name: "k", Prefix: prefix, KeyHash: hash, Permissions: `["kb:read"]`,
		Disabled: disabled, ExpiresAt: expires, CreatedAt: f.now, UpdatedAt: f.now}
	if err := f.store.CreateAPIKey(f.ctx, k); err != nil {
		f.t.Fatal(err)
	}
	return secret, k
}

// TestAPIKeys: a key is found by its prefix, accepted only whole, live
// and enabled; its use reaches the database at Flush, once per key.
func TestAPIKeys(t *testing.T) {
	if tokens.APIKeyPrefix != rbac.APIKeyPrefix {
		t.Fatalf("tokens and rbac disagree on the key prefix: %q, %q", tokens.APIKeyPrefix, rbac.APIKeyPrefix)
	}
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newKeyFixture(t, db)
		ctx, store, now, svc := f.ctx, f.store, f.now, f.svc
		mk := func(disabled bool, expires *time.Time) string {
			secret, k := f.key(disabled, expires)
			if len(k.Prefix) != 12 || secret[:12] != k.Prefix || k.KeyHash == secret || !tokens.IsAPIKey(secret) {
				t.Fatalf("key %q prefix %q", secret, k.Prefix)
			}
			return secret
		}
		live := mk(false, nil)
		other := []byte(live)
		other[12] ^= 1 // another base64url character: same prefix, other secret
		past := now.Add(-time.Second)
		cases := []struct {
			name, key string
			ok        bool
		}{
			{"live", live, true},
			{"same prefix, other secret", string(other), false},
			{"disabled", mk(true, nil), false},
			{"expired", mk(false, &past), false},
			{"unknown", "ghk_" + live[4:12] + "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", false},
			{"malformed", "ghk_short", false},
			{"refresh token", "ghr_" + live[4:], false},
		}
		for _, tc := range cases {
			k, err := svc.Resolve(ctx, tc.key)
			switch {
			case tc.ok && (err != nil || k.PermissionList()[0] != "kb:read"):
				t.Errorf("%s: %v, %v", tc.name, k, err)
			case !tc.ok && !errors.Is(err, tokens.ErrAPIKeyInvalid):
				t.Errorf("%s: err = %v, want ErrAPIKeyInvalid", tc.name, err)
			}
		}
		for range 100 {
			if _, err := svc.Resolve(ctx, live); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := store.FindAPIKeyByPrefix(ctx, live[:12])
		if got.LastUsedAt != nil {
			t.Fatal("use written before the flush")
		}
		if err := svc.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ = store.FindAPIKeyByPrefix(ctx, live[:12])
		if got.LastUsedAt == nil || !got.LastUsedAt.Equal(now) {
			t.Fatalf("last_used_at = %v, want %v", got.LastUsedAt, now)
		}
		// An older time never overwrites a newer one (another replica's).
		if err := store.TouchAPIKeys(ctx, map[string]time.Time{got.ID: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		got, _ = store.FindAPIKeyByPrefix(ctx, live[:12])
		if !got.LastUsedAt.Equal(now) {
			t.Fatalf("last_used_at went back to %v", got.LastUsedAt)
		}
	})
}

// TestAPIKeyLive: what a token exchanged for a key depends on: the key
// exists in that organization, is enabled and unexpired, as of now.
func TestAPIKeyLive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newKeyFixture(t, db)
		ctx, store, org, now, svc := f.ctx, f.store, f.org, f.now, f.svc
		mk := func(disabled bool, expires *time.Time) string {
			_, k := f.key(disabled, expires)
			return k.ID
		}
		past, future := now.Add(-time.Second), now.Add(time.Hour)
		deleted := mk(false, nil)
		if err := store.DeleteAPIKey(ctx, org.ID, deleted); err != nil {
			t.Fatal(err)
		}
		live := mk(false, &future)
		cases := []struct {
			name, org, id string
			live          bool
		}{
			{"live", org.ID, live, true},
			{"live without expiry", org.ID, mk(false, nil), true},
			{"disabled", org.ID, mk(true, nil), false},
			{"expired", org.ID, mk(false, &past), false},
			{"expires now", org.ID, mk(false, &now), false},
			{"deleted", org.ID, deleted, false},
			{"another organization's id", "org-other", live, false},
			{"unknown", org.ID, "nope", false},
		}
		for _, tc := range cases {
			if got, err := svc.Live(ctx, tc.org, tc.id); err != nil || got != tc.live {
				t.Errorf("%s: Live = %v, %v; want %v", tc.name, got, err, tc.live)
			}
		}
	})
}
