package config

import (
	"slices"
	"strings"
	"testing"
)

// TestGroupsClaimConfig: a client's groups block is validated at load
// (every problem names its field) and strip_prefix takes a string or a
// list.
func TestGroupsClaimConfig(t *testing.T) {
	const head = "clients:\n  - id: a\n    public: true\n    redirect_uris: [https://a.example.com/cb]\n"
	for _, tc := range []struct{ name, body, want string }{
		{"empty block", "    groups: {}\n", "clients[0].groups: needs allow"},
		{"bad glob", "    groups: {allow: ['github:team:[']}\n", `clients[0].groups.allow: "github:team:[" is not a valid glob pattern`},
		{"empty pattern", "    groups: {allow: ['']}\n", "clients[0].groups.allow: an empty pattern matches nothing"},
		{"empty prefix", "    groups: {allow: ['*'], strip_prefix: ['']}\n", "clients[0].groups.strip_prefix: an empty prefix strips nothing"},
		{"strip without allow", "    groups: {include_org_roles: true, strip_prefix: 'github:team:'}\n", "clients[0].groups.strip_prefix: strips upstream groups, but allow lets none through"},
		{"groups as a plain scope", "    scopes: [groups]\n", `clients[0].scopes: must not list "groups"`},
		{"unknown field", "    groups: {allowed: ['*']}\n", "field allowed not found"},
		{"include_org_roles not a bool", "    groups: {include_org_roles: maybe}\n", "is not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, head+tc.body)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	c, _, err := load(t, map[string]string{"GATEHOUSE_CONFIG": writeYAML(t, head+
		"    groups: {allow: ['github:team:acme/*', 'oidc:group:*'], strip_prefix: 'github:team:'}\n"+
		"  - id: b\n    public: true\n    redirect_uris: [https://b.example.com/cb]\n"+
		"    groups: {allow: ['*'], strip_prefix: ['oidc:group:', 'saml:group:'], include_org_roles: true}\n"+
		"  - id: c\n    public: true\n    redirect_uris: [https://c.example.com/cb]\n    groups: {include_org_roles: true}\n")})
	if err != nil {
		t.Fatal(err)
	}
	a, b, cc := c.File.Clients[0].Groups, c.File.Clients[1].Groups, c.File.Clients[2].Groups
	if !slices.Equal(a.StripPrefix, []string{"github:team:"}) || a.IncludeOrgRoles || len(a.Allow) != 2 ||
		!slices.Equal(b.StripPrefix, []string{"oidc:group:", "saml:group:"}) || !b.IncludeOrgRoles || !cc.IncludeOrgRoles {
		t.Fatalf("groups = %+v %+v %+v", a, b, cc)
	}
	if !a.Allows("github:team:acme/eng") || a.Allows("github:team:other/eng") || a.Allows("github:team:acme/eng/x") ||
		!a.Allows("oidc:group:Platform Admins") || a.Strip("github:team:acme/eng") != "acme/eng" || a.Strip("oidc:group:x") != "oidc:group:x" {
		t.Fatal("Allows/Strip")
	}
}
