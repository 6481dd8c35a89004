package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/rbac"
)

// The admin API's authorization rule, in one place. Every request to the
// admin API passes these checks in this order; the first that fails
// answers.
//
//  1. The credential (Guard.CheckCredential, which the rbac middleware
//     runs once it has verified the token's signature, issuer, audience
//     and lifetime, like in any backend): a person's access token, not a
//     client's nor an API key's, since every admin change is someone's;
//     and that person's session is live, so disabling an administrator or
//     revoking their session cuts their admin access at once. Refused:
//     401, or 503 when a transient database fault keeps the session from
//     being checked (the credential may be fine).
//  2. The organization the request names (Guard.MayActOn, the rbac
//     organization check): a token acting in the administrators'
//     organization may name any organization, any other token only its
//     own. Refused: 403.
//  3. The route (Guard.Authorize, with the route's Route): an
//     instance-wide route takes only tokens acting in the administrators'
//     organization, whatever organization the request names, since check
//     2 passes a request naming the token's own (ErrAdministratorsOnly);
//     then the route's permission, against the person's membership and
//     grants as the database holds them now in the organization their
//     token acts in, never the copy in the token (*PermissionError).
//     Refused: 403.
//
// Past these, each operation of Service reads the actor's standing again
// (standingIn, asAdministrator) and applies the role hierarchy: nobody
// acts above their own level nor hands on grants they do not hold. The
// service repeats the organization and administrators' checks, so that
// no operation depends on the HTTP layer having run checks 2 and 3.

// ErrAdministratorsOnly (an ErrForbidden) refuses an instance-wide
// operation to an actor not acting in the administrators' organization.
// Guard.Authorize refuses such requests first; the service refuses them
// again, so that no route depends on the other.
var ErrAdministratorsOnly error = &refusal{ErrForbidden, fmt.Sprintf(
	"this is for Gatehouse administrators only, acting in the administrators' organization (%s)", models.AdminOrgID)}

// PermissionError (an ErrForbidden) refuses a request whose actor does
// not hold, now, the permission the route requires.
type PermissionError struct {
	// Required is the route's permission, such as admin:members-write.
	Required string
	// Reason says why the actor does not hold it.
	Reason string
}

// Error is ErrForbidden's text and the reason.
func (e *PermissionError) Error() string { return ErrForbidden.Error() + ": " + e.Reason }

// Unwrap lets callers test errors.Is(err, ErrForbidden).
func (e *PermissionError) Unwrap() error { return ErrForbidden }

// PublicMessage is the reason, written for the caller.
func (e *PermissionError) PublicMessage() string { return e.Reason }

// Route is what one admin API route requires of its caller on top of
// the credential and organization checks every route shares.
type Route struct {
	// Permission is the permission the caller must hold now, such as
	// admin:members-write.
	Permission string
	// InstanceWide restricts the route to tokens acting in the
	// administrators' organization.
	InstanceWide bool
}

// OrgRoute is the requirement of a route about one organization: the
// permission "admin:"+action, held in the organization the token acts in
// (for a Gatehouse administrator, the administrators' organization).
// GET /audit-events takes it too: an organization's admin reads their own
// organization's events there (ListAudit checks the filter). It panics on
// a malformed permission, which is a programming error.
func OrgRoute(action string) Route { return newRoute(action, false) }

// InstanceRoute is the requirement of an instance-wide route (every
// organization, users, their identities and sessions): the permission
// "admin:"+action, held in the administrators' organization by a token
// acting there. It panics like OrgRoute.
func InstanceRoute(action string) Route { return newRoute(action, true) }

func newRoute(action string, instanceWide bool) Route {
	perm := "admin:" + action
	if err := rbac.ValidatePermission(perm); err != nil {
		panic("admin route permission: " + err.Error())
	}
	return Route{Permission: perm, InstanceWide: instanceWide}
}

// GrantReader reads the roles and permissions of a person's active
// membership in an organization (models.ErrNotFound without one);
// *models.Store provides it.
type GrantReader interface {
	ActiveGrants(ctx context.Context, userID, orgID string) (*models.Grants, error)
}

// SessionChecker says whether a session is live (not revoked, not
// expired); tokens.SessionService provides it.
type SessionChecker interface {
	SessionActive(ctx context.Context, sessionID string) (bool, error)
}

// Guard applies the admin API's authorization rule (checks 1 to 3
// above). It holds no state of its own and is safe for concurrent use.
type Guard struct {
	grants   GrantReader
	sessions SessionChecker
}

// NewGuard returns the rule reading current grants from grants and
// session liveness from sessions.
func NewGuard(grants GrantReader, sessions SessionChecker) *Guard {
	return &Guard{grants: grants, sessions: sessions}
}

// CheckCredential is check 1, for rbac.Options.Check: the verified
// credential is a person's access token whose session is live; otherwise
// a refusal (401) saying which. When the session cannot be looked up the
// error wraps rbac.ErrUnavailable (503, whatever the database fault): the
// credential may be fine, and a 401 would sign the person out.
func (g *Guard) CheckCredential(ctx context.Context, p *rbac.Principal) error {
	if !p.IsUser() {
		return rbac.Refuse("the admin API takes a person's access token")
	}
	live, err := g.sessions.SessionActive(ctx, p.SessionID)
	if err != nil {
		// The database could not say: the credential may be fine, so the
		// answer is 503, never a 401 that signs the person out, and the
		// error's text stays in the log.
		return fmt.Errorf("%w: check session: %w", rbac.ErrUnavailable, err)
	}
	if !live {
		return rbac.Refuse("the session has ended")
	}
	return nil
}

// MayActOn is check 2, for rbac.Options.OrgCheck: a token acting in the
// administrators' organization may act on every organization, others
// only on their own (requested is "" when the request names none, which
// only the administrators' tokens pass). It reads nothing but the token.
func (g *Guard) MayActOn(p *rbac.Principal, requested string) bool {
	return p.OrgID == models.AdminOrgID || (requested != "" && requested == p.OrgID)
}

// Authorize is check 3: the actor may call a route requiring r. An
// instance-wide route refuses an actor not acting in the administrators'
// organization (ErrAdministratorsOnly). Then the actor must hold
// r.Permission now: their membership in the organization their token
// acts in is active in the database, and its role's grants, as stored
// now, cover the permission. A token's roles and permissions are a copy
// made when it was minted, up to an access-token lifetime ago: someone
// demoted, suspended, removed, or no longer a Gatehouse administrator is
// refused here (a *PermissionError) at their next request. The admin API
// calls it before every route, reads included.
func (g *Guard) Authorize(ctx context.Context, a Actor, r Route) error {
	if r.InstanceWide && !a.administrator() {
		return ErrAdministratorsOnly
	}
	grants, err := g.grants.ActiveGrants(ctx, a.UserID, a.OrgID)
	switch {
	case errors.Is(err, models.ErrNotFound):
		return &PermissionError{Required: r.Permission,
			Reason: "you are no longer an active member of the organization your token acts in"}
	case err != nil:
		return err
	case !rbac.Allowed(grants.Permissions, r.Permission):
		return &PermissionError{Required: r.Permission,
			Reason: fmt.Sprintf("your current role in the organization your token acts in does not grant %s", r.Permission)}
	}
	return nil
}

// administrator reports whether the actor's token acts in the
// administrators' organization, which makes them a Gatehouse
// administrator acting in every organization with their level there.
func (a Actor) administrator() bool { return a.OrgID == models.AdminOrgID }

// standing is what the actor may do in one organization, read fresh
// from the database (the token's copy may be minutes old).
type standing struct {
	level       int
	permissions []string
}

// standingIn returns the actor's level and grants for acting on orgID:
// their active membership there, or in the administrators' organization,
// whose standing applies everywhere. It is check 2 again, inside the
// service: a token acting in another organization is refused.
func (s *Service) standingIn(ctx context.Context, st Store, a Actor, orgID string) (standing, error) {
	from := orgID
	if a.administrator() {
		from = models.AdminOrgID
	} else if a.OrgID != orgID {
		return standing{}, forbidden("the token acts in another organization")
	}
	m, err := st.FindMember(ctx, from, a.UserID)
	if errors.Is(err, models.ErrNotFound) || (err == nil && m.Status != models.MembershipActive) {
		return standing{}, forbidden("you are no longer an active member of the organization")
	}
	if err != nil {
		return standing{}, err
	}
	g, err := st.ActiveGrants(ctx, a.UserID, from)
	if err != nil {
		return standing{}, err
	}
	return standing{level: m.RoleLevel, permissions: g.Permissions}, nil
}

// asAdministrator returns the actor's standing in the administrators'
// organization, which every instance-wide operation (all organizations,
// users, their identities and sessions, the whole audit trail) requires.
// It looks at the organization the actor's token acts in, never at one a
// request names: an organization's admin naming their own organization
// is still not a Gatehouse administrator.
func (s *Service) asAdministrator(ctx context.Context, st Store, a Actor) (standing, error) {
	if !a.administrator() {
		return standing{}, ErrAdministratorsOnly
	}
	return s.standingIn(ctx, st, a, models.AdminOrgID)
}
