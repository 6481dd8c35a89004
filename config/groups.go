package config

import (
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// GroupsClaim is a client's `groups` block: which groups the `groups`
// claim of its tokens and UserInfo carries when it asks for the `groups`
// scope. A client without the block may not ask for the scope
// (invalid_scope): no client sees a person's upstream groups unless its
// configuration says which.
//
// The claim is built at every issuance from the groups the session's
// identity reported at its last sign-in: each group matching one of Allow
// (path.Match globs over the typed string, such as "github:team:acme/*";
// `*` does not cross `/`), with the first matching StripPrefix removed;
// then, with IncludeOrgRoles, the user's active Gatehouse memberships as
// "<org-slug>:<role>". Duplicates are dropped; the order is the
// upstream's, then the roles sorted.
type GroupsClaim struct {
	// Allow lists the upstream groups the client may see (globs).
	Allow []string `yaml:"allow"`
	// StripPrefix lists prefixes removed from allowed groups, such as
	// "github:team:" (the first that matches is removed).
	StripPrefix StringList `yaml:"strip_prefix"`
	// IncludeOrgRoles adds the user's Gatehouse organization roles.
	IncludeOrgRoles bool `yaml:"include_org_roles"`
}

// Allows reports whether the upstream group g passes the allow-list.
func (g *GroupsClaim) Allows(group string) bool {
	for _, p := range g.Allow {
		if ok, _ := path.Match(p, group); ok {
			return true
		}
	}
	return false
}

// Strip removes the first of StripPrefix that group starts with.
func (g *GroupsClaim) Strip(group string) string {
	for _, p := range g.StripPrefix {
		if rest, ok := strings.CutPrefix(group, p); ok {
			return rest
		}
	}
	return group
}

// StringList is a YAML string or list of strings.
type StringList []string

// UnmarshalYAML accepts `x: a` as well as `x: [a, b]`.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var many []string
	if err := n.Decode(&many); err != nil {
		return fmt.Errorf("line %d: must be a string or a list of strings", n.Line)
	}
	*l = many
	return nil
}

// GroupsScope is the scope that asks for the groups claim.
const GroupsScope = "groups"

// validateGroups checks a client's groups block and scopes.
func validateGroups(r *reader, field string, cl *Client) {
	for _, sc := range cl.Scopes {
		if sc == GroupsScope {
			r.fail(field+"scopes", "must not list %q: give the client a groups block (allow, strip_prefix, include_org_roles) instead", GroupsScope)
		}
	}
	g := cl.Groups
	if g == nil {
		return
	}
	if len(g.Allow) == 0 && !g.IncludeOrgRoles {
		r.fail(field+"groups", "needs allow (globs of upstream groups such as \"github:team:acme/*\") or include_org_roles: true; without them it grants nothing")
	}
	for _, p := range g.Allow {
		if p == "" {
			r.fail(field+"groups.allow", "an empty pattern matches nothing")
		} else if _, err := path.Match(p, ""); err != nil {
			r.fail(field+"groups.allow", "%q is not a valid glob pattern", p)
		}
	}
	for _, p := range g.StripPrefix {
		if p == "" {
			r.fail(field+"groups.strip_prefix", "an empty prefix strips nothing")
		}
	}
	if len(g.StripPrefix) > 0 && len(g.Allow) == 0 {
		r.fail(field+"groups.strip_prefix", "strips upstream groups, but allow lets none through")
	}
}
