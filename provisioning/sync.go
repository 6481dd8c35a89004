package provisioning

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
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
	// auto-created organization gets. ExternalID is set for {org}
	// targets only: the upstream organization the group names, which is
	// what the target stands for (Diff resolves it by mapping first).
	Slug       string
	Name       string
	ExternalID string
	// AltSlug is an {org} target's second choice, for when Slug belongs
	// to an organization that stands for something else (DistinctSlug).
	AltSlug string
	Role    string
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
				} else {
					t.AltSlug = DistinctSlug(t.Slug, provider, org)
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// RuleTargeting returns the first rule that may place people in an
// organization with this slug, so that no organization's admin takes
// the slug for their organization: a literal target naming it, and, with
// auto_create_orgs off, an {org} pattern that can produce it (as a
// target's slug or its DistinctSlug), since an unmapped organization at
// such a slug is claimed by the first upstream organization that names
// it. With auto_create_orgs on, {org} targets only join organizations
// mapped to their upstream organization, which a rename cannot fake.
func (p SyncPolicy) RuleTargeting(slug string) (Rule, bool) {
	for _, r := range p.Rules {
		switch {
		case !strings.Contains(r.Org, config.OrgPlaceholder):
			if r.Org == slug {
				return r, true
			}
		case !p.AutoCreateOrgs && patternProduces(r.Org, slug):
			return r, true
		}
	}
	return Rule{}, false
}

// slugified matches what Slugify makes of a non-empty value.
const slugified = `[a-z0-9]+(?:-[a-z0-9]+)*`

// patternProduces reports whether an {org} pattern can yield slug, as a
// target's slug or as its DistinctSlug (which may have cut the target's
// slug short).
func patternProduces(pattern, slug string) bool {
	parts := strings.Split(pattern, config.OrgPlaceholder)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re := regexp.MustCompile("^" + strings.Join(parts, slugified) + "$")
	if re.MatchString(slug) {
		return true
	}
	base, suffix, ok := cutLast(slug, "-")
	if !ok || len(suffix) != 8 || strings.Trim(suffix, "0123456789abcdef") != "" {
		return false
	}
	if re.MatchString(base) {
		return true
	}
	// Shortened to fit 63 characters: base is the start of a target slug.
	prefix, _, _ := strings.Cut(pattern, config.OrgPlaceholder)
	return len(slug) == maxSlug && (strings.HasPrefix(base, prefix) || strings.HasPrefix(prefix, base))
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
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

// maxSlug is the longest slug (config.ValidSlug).
const maxSlug = 63

// DistinctSlug is the slug an {org} target falls back to when its own is
// taken by an organization that does not stand for the provider's
// upstream organization externalID: slug, shortened to fit, and 8 hex
// digits of SHA-256 over provider and externalID ("foo-co-uk-1f0e3dad").
// Slugify is lossy ("foo.co.uk" and "foo-co.uk" both give "foo-co-uk"),
// so colliding upstream organizations need distinct slugs; being a pure
// function, concurrent first sign-ins of one upstream organization agree
// on it. The suffix only separates: the mapping decides who belongs.
func DistinctSlug(slug, provider, externalID string) string {
	sum := sha256.Sum256([]byte(provider + "\x00" + externalID))
	suffix := "-" + hex.EncodeToString(sum[:4])
	if len(slug)+len(suffix) > maxSlug {
		slug = strings.TrimRight(slug[:maxSlug-len(suffix)], "-")
	}
	return slug + suffix
}

// Slugify lowercases s and turns every run of characters other than
// letters and digits into one hyphen ("Acme.com" → "acme-com"). It is
// lossy: an organization found by a slug Slugify made is not proof of
// the upstream organization it stands for (see Diff).
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
	// OrgsBySlug maps slugs to organization ids: the organizations the
	// targets name by slug, and those their upstream organizations are
	// mapped to.
	OrgsBySlug map[string]string
	// ExternalIDs are the mappings (organization_external_ids), of every
	// provider, of the organizations in OrgsBySlug.
	ExternalIDs []models.OrganizationExternalID
	// Bindings map the literal targets bound to an organization
	// (org_sync_bindings) to its id; the organization is in OrgsBySlug
	// under its current slug.
	Bindings map[string]string
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
	ChangeCreateOrg ChangeKind = "create_org"
	// ChangeMapOrg maps an upstream organization to an existing
	// organization that stood for nothing yet (auto_create_orgs off).
	ChangeMapOrg ChangeKind = "map_org"
	// ChangeBindOrg binds a literal target to the existing organization
	// that has its slug, the first time sync uses it.
	ChangeBindOrg    ChangeKind = "bind_org"
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
	// map_org and add); OrgID is empty for an organization this sync
	// creates.
	Slug  string
	OrgID string
	// Name and ExternalID describe an organization to create or map.
	Name       string
	ExternalID string
	// Target is the literal target a create_org or bind_org binds the
	// organization to.
	Target string
	// MembershipID is the membership changed (empty for add).
	MembershipID string
	RoleID       string
	RoleName     string
	FromRoleID   string
	// Rule and Group say why (-1 and "" for memberships the upstream no
	// longer reports).
	Rule  int
	Group string
	// Reason says why a rule was skipped or a membership kept, or why an
	// organization to create or map does not have its rule's own slug.
	Reason string
}

// String is a compact description, for tests and logs.
func (c Change) String() string {
	org := cmp.Or(c.Slug, c.OrgID)
	switch c.Kind {
	case ChangeCreateOrg, ChangeMapOrg, ChangeBindOrg:
		if c.Reason != "" {
			return fmt.Sprintf("%s %s: %s", c.Kind, org, c.Reason)
		}
		return fmt.Sprintf("%s %s", c.Kind, org)
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
//   - an {org} target stands for an upstream organization: it goes to the
//     organization mapped to it (provider, external id) whatever its slug
//     now, and otherwise never to an organization standing for anything
//     else; see place;
//   - a literal target goes to the organization it is bound to, whatever
//     its slug now; unbound, to the organization with its slug, which it
//     is then bound to (so that no organization renamed to the slug later
//     takes its place); see place;
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
		t     Target
		orgID string
		role  *models.Role
	}
	wanted := map[string]*want{}      // by slug
	orgChanges := map[string]Change{} // create_org, map_org and bind_org, by slug
	var skips, upserts, leaves []Change
	skip := func(t Target, slug, orgID, reason string) {
		skips = append(skips, Change{Kind: ChangeSkip, Slug: slug, OrgID: orgID, Rule: t.Rule, Group: t.Group, Reason: reason})
	}
	adminOrg := func(slug string) string {
		return fmt.Sprintf("organization %q is the Gatehouse administrators'; sync never manages it", slug)
	}
	places := newPlacer(provider, p.AutoCreateOrgs, dir)
	for _, t := range p.Targets(provider, groups) {
		if t.Problem != "" {
			skip(t, "", "", t.Problem)
			continue
		}
		if t.Slug == models.AdminOrgSlug {
			// Whoever controls an upstream group must not become a
			// Gatehouse administrator: that organization is managed by
			// hand, and gets no look-alike either.
			skip(t, t.Slug, "", adminOrg(t.Slug))
			continue
		}
		pl := places.place(t)
		switch {
		case pl.problem != "":
			skip(t, t.Slug, "", pl.problem)
			continue
		case pl.orgID == models.AdminOrgID:
			skip(t, pl.slug, "", adminOrg(pl.slug))
			continue
		}
		role := dir.role(pl.orgID, t.Role)
		if role == nil {
			skip(t, pl.slug, pl.orgID, fmt.Sprintf("role %q does not exist in organization %q", t.Role, pl.slug))
			continue
		}
		if _, ok := orgChanges[pl.slug]; pl.change != nil && !ok {
			c := *pl.change
			c.Rule, c.Group = t.Rule, t.Group
			orgChanges[pl.slug] = c
		}
		if w := wanted[pl.slug]; w == nil || role.Level > w.role.Level {
			wanted[pl.slug] = &want{t: t, orgID: pl.orgID, role: role}
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
		c := Change{Slug: slug, OrgID: w.orgID, RoleID: w.role.ID, RoleName: w.role.Name, Rule: w.t.Rule, Group: w.t.Group}
		if w.orgID == "" {
			c.Kind = ChangeAdd // to an organization this sync creates
			upserts = append(upserts, c)
			continue
		}
		keep[w.orgID] = true
		m := held[w.orgID]
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
	creates := make([]Change, 0, len(orgChanges))
	for _, slug := range sortedKeys(orgChanges) {
		creates = append(creates, orgChanges[slug])
	}
	return slices.Concat(creates, skips, upserts, leaves)
}

// placement is where a target's membership goes.
type placement struct {
	slug string
	// orgID is empty for an organization this sync creates.
	orgID string
	// change, when set, is the create_org or map_org the organization needs.
	change *Change
	// problem, when set, is why the target cannot apply.
	problem string
}

// placer decides placements for one Diff, remembering those it made, so
// that two targets of one sign-in never create or map one slug for two
// different things.
type placer struct {
	provider   string
	autoCreate bool
	orgs       map[string]string // slug → organization id
	slugOf     map[string]string // organization id → slug
	mapped     map[string]bool   // organization ids mapped to anything, any provider
	byExternal map[string]string // this provider's external id → organization id
	// byUpstream are the placements made for this provider's external ids.
	byUpstream map[string]placement
	// pending are the organizations this Diff creates or maps, by slug.
	pending map[string]*Change
	// bound are the literal targets' bindings: target → organization id.
	bound map[string]string
	// binds are the bind_org changes this Diff makes, by target.
	binds map[string]*Change
}

func newPlacer(provider string, autoCreate bool, dir Directory) *placer {
	pl := &placer{provider: provider, autoCreate: autoCreate, orgs: dir.OrgsBySlug, slugOf: map[string]string{},
		mapped: map[string]bool{}, byExternal: map[string]string{}, byUpstream: map[string]placement{}, pending: map[string]*Change{},
		bound: dir.Bindings, binds: map[string]*Change{}}
	for slug, id := range dir.OrgsBySlug {
		pl.slugOf[id] = slug
	}
	for _, x := range dir.ExternalIDs {
		pl.mapped[x.OrganizationID] = true
		if x.Provider == provider {
			pl.byExternal[x.ExternalID] = x.OrganizationID
		}
	}
	return pl
}

// place finds the organization a target calls for.
//
// A literal slug means the organization bound to it (org_sync_bindings),
// whatever its slug is now. Unbound, it means the organization with that
// slug, which gets bound to it (bind_org), or one this sync creates with
// auto_create_orgs, bound to it on creation: the target follows that
// organization's id from then on, and an organization renamed to the
// slug later does not take its place.
//
// An {org} target means the upstream organization it names, and slugs
// are lossy, so a slug is never proof: the organization mapped to the
// upstream organization wins, whatever its slug is now. Without one, the
// target's slug and then its DistinctSlug are tried; an organization
// there is used only if it stands for nothing yet and auto_create_orgs is
// off (one an administrator made for the rule: it is then mapped, first
// come first served). With auto_create_orgs on, an unmapped organization
// was not made by sync for this upstream organization (by hand, or by a
// literal rule), so it is passed over like one standing for another.
func (pl *placer) place(t Target) placement {
	if t.ExternalID == "" {
		if id, ok := pl.bound[t.Slug]; ok {
			return placement{slug: cmp.Or(pl.slugOf[id], id), orgID: id}
		}
		switch id, ok := pl.orgs[t.Slug]; {
		case ok:
			if pl.binds[t.Slug] == nil {
				pl.binds[t.Slug] = &Change{Kind: ChangeBindOrg, Slug: t.Slug, OrgID: id, Target: t.Slug}
			}
			return placement{slug: t.Slug, orgID: id, change: pl.binds[t.Slug]}
		case pl.pending[t.Slug] != nil:
			return placement{slug: t.Slug, change: pl.pending[t.Slug]}
		case pl.autoCreate:
			pl.pending[t.Slug] = &Change{Kind: ChangeCreateOrg, Slug: t.Slug, Name: t.Name, Target: t.Slug}
			return placement{slug: t.Slug, change: pl.pending[t.Slug]}
		}
		return placement{problem: fmt.Sprintf("organization %q does not exist and auto_create_orgs is off", t.Slug)}
	}
	if done, ok := pl.byUpstream[t.ExternalID]; ok {
		return done
	}
	done := pl.placeUpstream(t)
	if done.problem == "" {
		pl.byUpstream[t.ExternalID] = done
		if done.change != nil {
			pl.pending[done.slug] = done.change
		}
	}
	return done
}

func (pl *placer) placeUpstream(t Target) placement {
	if id, ok := pl.byExternal[t.ExternalID]; ok {
		return placement{slug: cmp.Or(pl.slugOf[id], id), orgID: id}
	}
	var taken []string
	for _, slug := range []string{t.Slug, t.AltSlug} {
		id, exists := pl.orgs[slug]
		pending := pl.pending[slug] != nil
		why := ""
		if len(taken) > 0 {
			why = fmt.Sprintf("%q is taken by an organization that does not stand for %s organization %q", taken[0], pl.provider, t.ExternalID)
		}
		switch {
		case pending || (exists && (pl.mapped[id] || pl.autoCreate)):
			taken = append(taken, slug)
		case exists:
			return placement{slug: slug, orgID: id, change: &Change{Kind: ChangeMapOrg, Slug: slug, OrgID: id, ExternalID: t.ExternalID, Reason: why}}
		case pl.autoCreate:
			return placement{slug: slug, change: &Change{Kind: ChangeCreateOrg, Slug: slug, Name: t.Name, ExternalID: t.ExternalID, Reason: why}}
		case why != "":
			return placement{problem: fmt.Sprintf("organization %q does not exist and auto_create_orgs is off (%s)", slug, why)}
		default:
			return placement{problem: fmt.Sprintf("organization %q does not exist and auto_create_orgs is off", slug)}
		}
	}
	return placement{problem: fmt.Sprintf("%q and %q are taken by organizations that do not stand for %s organization %q",
		taken[0], taken[1], pl.provider, t.ExternalID)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Rule targets' reasons, as RuleTarget.Via says them.
const (
	// TargetBound: the rule's literal target was bound to the
	// organization when sync first created or found it.
	TargetBound = "bound"
	// TargetSlug: the literal target is bound to no organization yet;
	// the next sign-in the rule matches binds it to the organization with
	// that slug, this one.
	TargetSlug = "slug"
	// TargetUpstreamOrg: an {org} rule; the organization is mapped to an
	// upstream organization of a provider the rule applies to.
	TargetUpstreamOrg = "upstream_org"
	// TargetSlugPattern: an {org} rule whose pattern yields this slug,
	// with auto_create_orgs off (the rule would place people in it).
	TargetSlugPattern = "slug_pattern"
)

// RuleTarget is an org-sync rule that places people in an organization,
// and why.
type RuleTarget struct {
	Rule
	Via string
}

// RulesFor lists the rules that place people in org, in rule order:
// literal targets by the organization they are bound to (bindings maps a
// target to its organization's id; a target bound nowhere goes by slug),
// {org} targets by the upstream organizations org is mapped to
// (mappedProviders names their providers) or, without auto_create_orgs,
// by the slug pattern.
func (p SyncPolicy) RulesFor(org models.Organization, bindings map[string]string, mappedProviders []string) []RuleTarget {
	var out []RuleTarget
	for _, r := range p.Rules {
		via := ""
		switch {
		case !strings.Contains(r.Org, config.OrgPlaceholder):
			if id, ok := bindings[r.Org]; ok {
				if id == org.ID {
					via = TargetBound
				}
			} else if r.Org == org.Slug {
				via = TargetSlug
			}
		case slices.ContainsFunc(mappedProviders, func(p string) bool { return r.Provider == "" || r.Provider == p }):
			via = TargetUpstreamOrg
		case !p.AutoCreateOrgs && patternProduces(r.Org, org.Slug):
			via = TargetSlugPattern
		}
		if via != "" {
			out = append(out, RuleTarget{Rule: r, Via: via})
		}
	}
	return out
}
