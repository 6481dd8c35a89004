package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// Groups and usernames downstream (issue 15). A session's tokens and
// UserInfo state the username and upstream groups of the identity the
// session came through (models.Session.IdentityID), as of its last
// sign-in: preferred_username under the profile scope, and under the
// groups scope a groups claim filtered by the client's `groups` block
// (config.GroupsClaim).

// Bounds of the groups claim. A claim that would hold more values or
// encode to more bytes (JSON) is left out of the tokens and UserInfo
// entirely and an AuditGroupsOmitted event says why: a relying party
// that authorizes by group must never see a list silently cut short. The
// byte bound keeps an access token well under the 16 KiB Gatehouse and
// rbac verify, and ID tokens inside what cookie-splitting proxies and
// request headers carry.
const (
	MaxGroupsClaimValues = 200
	MaxGroupsClaimBytes  = 4096
)

// AuditGroupsOmitted is the audit event of a groups claim left out of a
// token or UserInfo answer because it exceeded MaxGroupsClaimValues or
// MaxGroupsClaimBytes.
const AuditGroupsOmitted = "groups_claim.omitted"

// identityFacts are what a session's identity states downstream.
type identityFacts struct {
	username string
	groups   []string
	// orgRoles are the user's organization roles; nil when not read
	// (the client does not include them).
	orgRoles []string
}

// groupsOverflow says by how much a groups claim exceeded its bounds.
type groupsOverflow struct {
	values, bytes int
}

// groupsClaim builds the groups claim the client's configuration lets it
// see from a session's upstream groups and the user's organization
// roles: the allowed upstream groups with their prefix stripped, then the
// roles when included, without duplicates. It returns nil for none, and
// an overflow (and no claim) when the result exceeds the bounds.
func (c *Client) groupsClaim(upstream, orgRoles []string) ([]string, *groupsOverflow) {
	g := c.Groups
	if g == nil {
		return nil, nil
	}
	var out []string
	add := func(v string) {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, u := range upstream {
		if g.Allows(u) {
			add(g.Strip(u))
		}
	}
	if g.IncludeOrgRoles {
		for _, r := range orgRoles {
			add(r)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	size := 0
	if len(out) <= MaxGroupsClaimValues {
		b, _ := json.Marshal(out)
		size = len(b)
	}
	if len(out) > MaxGroupsClaimValues || size > MaxGroupsClaimBytes {
		return nil, &groupsOverflow{values: len(out), bytes: size}
	}
	return out, nil
}

// wantsIdentity reports whether minting for scopes states anything of
// the session's identity: preferred_username (profile) or groups.
func (c *Client) wantsIdentity(scopes []string) bool {
	return slices.Contains(scopes, "profile") || c.wantsGroups(scopes)
}

// wantsGroups reports whether the scopes grant the client a groups claim.
func (c *Client) wantsGroups(scopes []string) bool {
	return c.Groups != nil && slices.Contains(scopes, config.GroupsScope)
}

// sessionIdentity reads what the session's identity states, for the
// scopes being issued: nothing when they ask for none of it; the
// organization roles only when the client includes them in its groups.
func (s *Service) sessionIdentity(ctx context.Context, client *Client, sess *models.Session, scopes []string) (*identityFacts, error) {
	f := &identityFacts{}
	if !client.wantsIdentity(scopes) {
		return f, nil
	}
	if sess.IdentityID != nil {
		id, err := s.store.FindIdentityByID(ctx, *sess.IdentityID)
		switch {
		case err == nil:
			f.username, f.groups = id.Username, id.Groups()
		case !errors.Is(err, models.ErrNotFound): // unlinked meanwhile: nothing to state
			return nil, err
		}
	}
	if client.wantsGroups(scopes) && client.Groups.IncludeOrgRoles {
		roles, err := s.store.UserOrgRoles(ctx, sess.UserID)
		if err != nil {
			return nil, err
		}
		f.orgRoles = roles
	}
	return f, nil
}

// groupsFor is the groups claim of a token or UserInfo answer for the
// scopes: nil without the groups scope, without groups, or over the
// bounds, in which case it records AuditGroupsOmitted (where names what
// was issued).
func (s *Service) groupsFor(ctx context.Context, client *Client, sess *models.Session, scopes []string, f *identityFacts, where string) []string {
	if !client.wantsGroups(scopes) {
		return nil
	}
	groups, over := client.groupsClaim(f.groups, f.orgRoles)
	if over != nil {
		meta, _ := RequestMetaFrom(ctx)
		s.audit(context.WithoutCancel(ctx), models.AuditEvent{Type: AuditGroupsOmitted, Outcome: models.OutcomeFailure,
			SubjectUserID: ptr(sess.UserID), ClientID: client.ID, Provider: sess.Provider, IP: meta.IP, RequestID: meta.RequestID},
			map[string]any{"session_id": sess.ID, "issued": where, "values": over.values, "bytes": over.bytes,
				"max_values": MaxGroupsClaimValues, "max_bytes": MaxGroupsClaimBytes,
				"reason": "the groups claim exceeds its bound and was left out; narrow the client's groups.allow"})
	}
	return groups
}
