package oauth

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/config"
)

// TestGroupsClaimFilter: what a client's groups block lets through of a
// session's upstream groups and organization roles, and the bound past
// which the claim is left out whole.
func TestGroupsClaimFilter(t *testing.T) {
	upstream := []string{"github:org:acme", "github:team:acme/platform-sre", "github:team:acme/web", "github:team:navy/cobol",
		"oidc:group:engineering", "oidc:group:Platform Admins", "saml:group:CN=admins,OU=Groups,DC=corp"}
	roles := []string{"acme:admin", "navy:member"}
	many, short := make([]string, 201), make([]string, 201)
	for i := range many {
		many[i], short[i] = fmt.Sprintf("github:team:acme/t%03d", i), fmt.Sprintf("t%03d", i)
	}
	// Stripped to a few bytes each, 200 values fit the byte bound.
	teams := &config.GroupsClaim{Allow: []string{"github:team:acme/*"}, StripPrefix: []string{"github:team:acme/"}}
	long := make([]string, 40)
	for i := range long {
		long[i] = fmt.Sprintf("oidc:group:%s%02d", strings.Repeat("x", 100), i)
	}
	for _, tc := range []struct {
		name     string
		groups   *config.GroupsClaim
		upstream []string
		roles    []string
		want     []string
		over     bool
	}{
		{name: "no groups block", groups: nil, upstream: upstream, roles: roles, want: nil},
		{name: "team glob", groups: &config.GroupsClaim{Allow: []string{"github:team:acme/*"}}, upstream: upstream,
			want: []string{"github:team:acme/platform-sre", "github:team:acme/web"}},
		{name: "star does not cross a slash", groups: &config.GroupsClaim{Allow: []string{"github:*"}}, upstream: upstream,
			want: []string{"github:org:acme"}},
		{name: "everything", groups: &config.GroupsClaim{Allow: []string{"*", "*/*"}}, upstream: upstream, want: upstream},
		{name: "exact names", groups: &config.GroupsClaim{Allow: []string{"oidc:group:Platform Admins", "saml:group:CN=admins,OU=Groups,DC=corp"}},
			upstream: upstream, want: []string{"oidc:group:Platform Admins", "saml:group:CN=admins,OU=Groups,DC=corp"}},
		{name: "strip prefixes", groups: &config.GroupsClaim{Allow: []string{"github:team:*/*", "oidc:group:*"},
			StripPrefix: []string{"github:team:", "oidc:group:"}}, upstream: upstream,
			want: []string{"acme/platform-sre", "acme/web", "navy/cobol", "engineering", "Platform Admins"}},
		{name: "stripping merges duplicates", groups: &config.GroupsClaim{Allow: []string{"oidc:group:*", "saml:group:*"},
			StripPrefix: []string{"oidc:group:", "saml:group:"}}, upstream: []string{"oidc:group:eng", "saml:group:eng"},
			want: []string{"eng"}},
		{name: "org roles added after the upstream groups", groups: &config.GroupsClaim{Allow: []string{"github:team:acme/web"},
			IncludeOrgRoles: true}, upstream: upstream, roles: roles, want: []string{"github:team:acme/web", "acme:admin", "navy:member"}},
		{name: "org roles only", groups: &config.GroupsClaim{IncludeOrgRoles: true}, upstream: upstream, roles: roles,
			want: []string{"acme:admin", "navy:member"}},
		{name: "org roles not included", groups: &config.GroupsClaim{Allow: []string{"nothing"}}, upstream: upstream, roles: roles, want: nil},
		{name: "nothing allowed", groups: &config.GroupsClaim{Allow: []string{"github:team:other/*"}}, upstream: upstream, want: nil},
		{name: "no upstream groups", groups: &config.GroupsClaim{Allow: []string{"*"}}, want: nil},
		{name: "200 values fit", groups: teams, upstream: many[:200], want: short[:200]},
		{name: "201 values left out", groups: teams, upstream: many, over: true},
		{name: "200 and a role left out", groups: &config.GroupsClaim{Allow: teams.Allow, StripPrefix: teams.StripPrefix, IncludeOrgRoles: true},
			upstream: many[:200], roles: roles[:1], over: true},
		{name: "200 long values over the byte bound", groups: &config.GroupsClaim{Allow: []string{"github:team:acme/*"}},
			upstream: many[:200], over: true},
		{name: "over the byte bound left out", groups: &config.GroupsClaim{Allow: []string{"oidc:group:*"}}, upstream: long, over: true},
		{name: "the filter brings it under the bound", groups: &config.GroupsClaim{Allow: []string{"oidc:group:x*0"}}, upstream: long,
			want: []string{long[0], long[10], long[20], long[30]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{Client: config.Client{ID: "c", Groups: tc.groups}}
			got, over := c.groupsClaim(tc.upstream, tc.roles)
			if (over != nil) != tc.over || !slices.Equal(got, tc.want) || (tc.over && got != nil) {
				t.Fatalf("groupsClaim = %q, overflow %+v; want %q, over %v", got, over, tc.want, tc.over)
			}
			if over != nil && over.values <= MaxGroupsClaimValues && over.bytes <= MaxGroupsClaimBytes {
				t.Fatalf("overflow %+v within the bounds", over)
			}
		})
	}
}

// TestGroupsScopeAllowed: the groups scope is grantable only to a client
// with a groups block; the claim needs the scope.
func TestGroupsScopeAllowed(t *testing.T) {
	with := &Client{Client: config.Client{ID: "a", Groups: &config.GroupsClaim{Allow: []string{"*"}}}}
	without := &Client{Client: config.Client{ID: "b", Scopes: []string{"kb:read"}}}
	if !with.AllowsScope("groups") || without.AllowsScope("groups") {
		t.Fatal("AllowsScope(groups)")
	}
	if _, e := without.requestedScope("openid groups"); e == nil || e.Code != "invalid_scope" {
		t.Fatalf("groups for a client without a groups block: %v", e)
	}
	if sc, e := with.requestedScope("openid groups profile"); e != nil || sc != "openid groups profile" {
		t.Fatalf("requestedScope = %q %v", sc, e)
	}
	// A session granted groups before the block was removed mints no more.
	if sc := without.grantableScope("openid groups kb:read"); sc != "openid kb:read" {
		t.Fatalf("grantableScope = %q", sc)
	}
	if !with.wantsGroups([]string{"openid", "groups"}) || with.wantsGroups([]string{"openid", "profile"}) ||
		without.wantsGroups([]string{"groups"}) || !with.wantsIdentity([]string{"profile"}) {
		t.Fatal("wantsGroups / wantsIdentity")
	}
}
