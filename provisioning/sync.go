package provisioning

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// Org sync as a pure function: Diff compares the memberships a user has
// with what the upstream groups and the rules call for, and returns the
// changes; the service loads the inputs and applies the changes in the
// login's transaction. Nothing here touches the database, so every case is
// a table row in sync_test.go.

// OnLeave values: what happens to a synced membership the upstream no
// longer reports.
const (
	LeaveRemove  = "remove"
	LeaveSuspend = "suspend"
)

// Rule maps upstream groups to an organization and a role.
type Rule struct {
	// Index is the rule's position in org_sync.rules, for audit events.
	Index int
	// Match is an exact group or a glob (path.Match: * does not cross /).
	Match string
	// Org is a slug, or a pattern with {org}: the upstream organization
	// named by the group (see UpstreamOrg).
	Org  string
	Role string
	// Provider limits the rule to one provider name; "" means any.
	Provider string
}

// SyncPolicy is the configured org sync.
type SyncPolicy struct {
	Rules          []Rule
	OnLeave        string
	AutoCreateOrgs bool
}

// NewSyncPolicy converts the YAML configuration.
func NewSyncPolicy(c config.OrgSync) SyncPolicy {
	p := SyncPolicy{OnLeave: c.OnLeave, AutoCreateOrgs: c.AutoCreateOrgs}
	if p.OnLeave == "" {
		p.OnLeave = LeaveRemove
	}
	for i, r := range c.Rules {
		p.Rules = append(p.Rules, Rule{Index: i, Match: r.Match, Org: r.Org, Role: r.Role, Provider: r.Provider})
	}
	return p
}

// Target is one rule matching one upstream group: the organization and
// role it calls for.
type Target struct {
	Rule  int
	Group string
	// Slug of the organization; Name and ExternalID are what an
	// auto-created organization gets.
	Slug       string
	Name       string
	ExternalID string
	Role       string
	// Problem, when set, is why the rule cannot apply (Slug is empty).
	Problem string
}

// Targets returns, in rule order then group order, what each rule matching
// one of the groups calls for. Groups are typed strings such as
// "github:team:acme/platform".
func (p SyncPolicy) Targets(provider string, groups []string) []Target {
	var out []Target
	for _, r := range p.Rules {
		if r.Provider != "" && r.Provider != provider {
			continue
		}
		for _, g := range groups {
			if ok, _ := path.Match(r.Match, g); !ok {
				continue
			}
			t := Target{Rule: r.Index, Group: g, Role: r.Role, Slug: r.Org, Name: r.Org}
			if strings.Contains(r.Org, config.OrgPlaceholder) {
				org := UpstreamOrg(g)
				t.Slug = strings.ReplaceAll(r.Org, config.OrgPlaceholder, Slugify(org))
				t.Name = strings.ReplaceAll(r.Org, config.OrgPlaceholder, org)
				t.ExternalID = org
				if org == "" || !config.ValidSlug(t.Slug) {
					t.Problem = fmt.Sprintf("group %q names no organization usable in %q", g, r.Org)
					t.Slug = ""
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// UpstreamOrg is the organization a typed group names: the value after the
// second colon, up to a slash ("github:team:acme/platform" → "acme",
// "google:domain:acme.com" → "acme.com"); "" when there is none.
func UpstreamOrg(group string) string {
	parts := strings.SplitN(group, ":", 3)
	if len(parts) < 3 {
		return ""
	}
	org, _, _ := strings.Cut(parts[2], "/")
	return org
}

// Slugify lowercases s and turns every run of characters other than
// letters and digits into one hyphen ("Acme.com" → "acme-com").
func Slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// Directory is what Diff knows of existing organizations and roles.
type Directory struct {
	// OrgsBySlug maps slugs to organization ids.
	OrgsBySlug map[string]string
	// Roles are the system roles and the roles of the organizations in
	// OrgsBySlug, as far as the targets name them.
	Roles []models.Role
}

// role finds the role name for an organization: the organization's own
// role of that name first, else the system role.
func (d Directory) role(orgID, name string) *models.Role {
	var system *models.Role
	for i := range d.Roles {
		r := &d.Roles[i]
		switch {
		case r.Name != name:
		case r.OrganizationID != nil && orgID != "" && *r.OrganizationID == orgID:
			return r
		case r.OrganizationID == nil:
			system = r
		}
	}
	return system
}

// ChangeKind names what a Change does.
type ChangeKind string

// Change kinds, in the order Diff returns them.
const (
	ChangeCreateOrg  ChangeKind = "create_org"
	ChangeSkip       ChangeKind = "skip"
	ChangeAdd        ChangeKind = "add"
	ChangeRole       ChangeKind = "change_role"
	ChangeReactivate ChangeKind = "reactivate"
	ChangeRemove     ChangeKind = "remove"
	ChangeSuspend    ChangeKind = "suspend"
	// ChangeKeep is a removal or suspension not made because the upstream
	// said its groups were incomplete; applying it only audits.
	ChangeKeep ChangeKind = "keep"
)

// keepReason is the Reason of ChangeKeep, by the change it stands for.
var keepReason = map[ChangeKind]string{
	ChangeRemove:  "not removed: the upstream's answer left groups out, so a missing group may still be the person's",
	ChangeSuspend: "not suspended: the upstream's answer left groups out, so a missing group may still be the person's",
}

// Change is one step of org sync.
type Change struct {
	Kind ChangeKind
	// Slug is the organization's slug where known (always for create_org,
	// add and skip); OrgID is empty for an organization this sync creates.
	Slug  string
	OrgID string
	// Name and ExternalID describe an organization to create.
	Name       string
	ExternalID string
	// MembershipID is the membership changed (empty for add).
	MembershipID string
	RoleID       string
	RoleName     string
	FromRoleID   string
	// Rule and Group say why (-1 and "" for memberships the upstream no
	// longer reports).
	Rule  int
	Group string
	// Reason says why a rule was skipped or a membership kept.
	Reason string
}

// String is a compact description, for tests and logs.
func (c Change) String() string {
	org := cmp.Or(c.Slug, c.OrgID)
	switch c.Kind {
	case ChangeCreateOrg:
		return fmt.Sprintf("create_org %s", org)
	case ChangeSkip:
		return fmt.Sprintf("skip rule %d: %s", c.Rule, c.Reason)
	case ChangeKeep:
		return fmt.Sprintf("keep %s: %s", org, c.Reason)
	case ChangeRemove, ChangeSuspend:
		return fmt.Sprintf("%s %s", c.Kind, org)
	}
	return fmt.Sprintf("%s %s %s", c.Kind, org, c.RoleName)
}

// Diff returns the changes that make the user's memberships synced from
// provider match what the groups and rules call for:
//
//   - an organization the rules call for gets a membership with the
//     highest-level role any matching rule names (ties: the earlier rule);
//   - an organization that does not exist is created with AutoCreateOrgs,
//     else the rule is skipped; a rule naming an unknown role is skipped
//     too, leaving a membership it would have set as it is;
//   - a membership made by hand, or synced from another provider, is
//     never touched, even when a rule names its organization;
//   - a synced membership the upstream no longer reports is removed or,
//     with OnLeave "suspend", suspended; a suspended one reported again is
//     reactivated;
//   - when partial (the upstream said it left groups out), additions and
//     changes still apply, but a membership that would be removed or
//     suspended gets a ChangeKeep instead: a missing group proves nothing.
func (p SyncPolicy) Diff(provider string, current []models.Membership, groups []string, partial bool, dir Directory) []Change {
	source := models.SyncSource(provider)
	type want struct {
		t    Target
		role *models.Role
	}
	wanted := map[string]*want{} // by slug
	var creates, skips, upserts, leaves []Change
	for _, t := range p.Targets(provider, groups) {
		if t.Problem != "" {
			skips = append(skips, Change{Kind: ChangeSkip, Rule: t.Rule, Group: t.Group, Reason: t.Problem})
			continue
		}
		orgID, exists := dir.OrgsBySlug[t.Slug]
		if t.Slug == models.AdminOrgSlug || orgID == models.AdminOrgID {
			// Whoever controls an upstream group must not become a
			// Gatehouse administrator: that organization is managed by hand.
			skips = append(skips, Change{Kind: ChangeSkip, Slug: t.Slug, Rule: t.Rule, Group: t.Group,
				Reason: fmt.Sprintf("organization %q is the Gatehouse administrators'; sync never manages it", t.Slug)})
			continue
		}
		if !exists && !p.AutoCreateOrgs {
			skips = append(skips, Change{Kind: ChangeSkip, Slug: t.Slug, Rule: t.Rule, Group: t.Group,
				Reason: fmt.Sprintf("organization %q does not exist and auto_create_orgs is off", t.Slug)})
			continue
		}
		role := dir.role(orgID, t.Role)
		if role == nil {
			skips = append(skips, Change{Kind: ChangeSkip, Slug: t.Slug, OrgID: orgID, Rule: t.Rule, Group: t.Group,
				Reason: fmt.Sprintf("role %q does not exist in organization %q", t.Role, t.Slug)})
			continue
		}
		if w := wanted[t.Slug]; w == nil || role.Level > w.role.Level {
			wanted[t.Slug] = &want{t: t, role: role}
		}
	}
	held := map[string]*models.Membership{}
	for i := range current {
		held[current[i].OrganizationID] = &current[i]
	}
	// Organizations the upstream still reports. A rule that cannot apply
	// (an unknown role) keeps what is there: a configuration mistake must
	// not strip people of their access.
	keep := map[string]bool{}
	for _, c := range skips {
		if c.OrgID != "" {
			keep[c.OrgID] = true
		}
	}
	for _, slug := range sortedKeys(wanted) {
		w := wanted[slug]
		orgID, exists := dir.OrgsBySlug[slug]
		c := Change{Slug: slug, OrgID: orgID, RoleID: w.role.ID, RoleName: w.role.Name, Rule: w.t.Rule, Group: w.t.Group}
		if !exists {
			creates = append(creates, Change{Kind: ChangeCreateOrg, Slug: slug, Name: w.t.Name, ExternalID: w.t.ExternalID,
				Rule: w.t.Rule, Group: w.t.Group})
			c.Kind = ChangeAdd
			upserts = append(upserts, c)
			continue
		}
		keep[orgID] = true
		m := held[orgID]
		switch {
		case m == nil:
			c.Kind = ChangeAdd
		case m.Source != source:
			continue // made by hand or by another provider: not ours to change
		case m.Status != models.MembershipActive:
			c.Kind = ChangeReactivate
		case m.RoleID != w.role.ID:
			c.Kind = ChangeRole
		default:
			continue // already as wanted
		}
		if m != nil {
			c.MembershipID, c.FromRoleID = m.ID, m.RoleID
		}
		upserts = append(upserts, c)
	}
	for _, m := range current {
		if m.Source != source || keep[m.OrganizationID] {
			continue
		}
		c := Change{Kind: ChangeRemove, OrgID: m.OrganizationID, MembershipID: m.ID, FromRoleID: m.RoleID, Rule: -1}
		if p.OnLeave == LeaveSuspend {
			if m.Status == models.MembershipSuspended {
				continue
			}
			c.Kind = ChangeSuspend
		}
		if partial {
			c.Kind, c.Reason = ChangeKeep, keepReason[c.Kind]
		}
		leaves = append(leaves, c)
	}
	slices.SortFunc(leaves, func(a, b Change) int { return cmp.Compare(a.OrgID, b.OrgID) })
	return slices.Concat(creates, skips, upserts, leaves)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
