package provisioning_test

import (
	"slices"
	"testing"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/provisioning"
)

// TestIdentityKeepsGroupsAndUsername: every sign-in stores what the
// upstream said of the person's groups and username on the identity it
// came through, replacing what the last one said (a group gone upstream
// is gone), for a first sign-in and returning ones; other identities keep theirs.
func TestIdentityKeepsGroupsAndUsername(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db, provisioning.Options{LinkByEmail: map[string]bool{"github": true}})
		stored := func(res *provisioning.Result) *models.Identity {
			t.Helper()
			id, err := f.store.FindIdentityByID(f.ctx, res.IdentityID)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		for _, step := range []struct {
			name     string
			username string
			groups   []string
		}{
			{"first sign-in", "grace-h", []string{"github:org:acme", "github:team:acme/platform"}},
			{"a team more, a new login", "grace", []string{"github:org:acme", "github:team:acme/platform", "github:team:acme/web"}},
			{"teams left", "grace", []string{"github:org:acme"}},
			{"no groups, no username", "", nil},
		} {
			in := identity("github", "42", "grace@example.com", true, step.groups...)
			in.Username = step.username
			res := f.login(in)
			id := stored(res)
			if id.Username != step.username || !slices.Equal(id.Groups(), step.groups) {
				t.Fatalf("%s: stored %q %q, want %q %q", step.name, id.Username, id.Groups(), step.username, step.groups)
			}
		}
		// Other identities of the same address keep their own.
		gh := identity("google", "g-42", "grace@example.com", true, "google:domain:example.com")
		gh.Username = "grace@example.com"
		first := f.login(identity("dev", "d-42", "grace@example.com", true))
		res := f.login(gh)
		if id := stored(res); id.Username != "grace@example.com" || !slices.Equal(id.Groups(), []string{"google:domain:example.com"}) {
			t.Fatalf("second identity stored %q %q", id.Username, id.Groups())
		}
		if id := stored(first); id.Username != "" || id.Groups() != nil {
			t.Fatalf("first identity changed: %q %q", id.Username, id.Groups())
		}
	})
}
