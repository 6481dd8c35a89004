package providers

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// The auth0 kind signs in through an Auth0 tenant. With Organizations,
// the organization asked for is passed upstream and the org_id/org_name
// claims are checked against it and against allowed_organizations; the
// org is reported as "auth0:org:<org_id>". Namespaced custom claims
// named in claims.groups become "auth0:group:<value>". Access tokens for
// the configured API audience (what SPAs using the Auth0 SDK hold) are
// accepted in token exchange.

type auth0Settings struct {
	oidcSettings `yaml:",inline"`
	// Domain is the tenant (or custom) domain, such as acme.eu.auth0.com.
	Domain string `yaml:"domain"`
	// Audience is the API identifier whose access tokens token exchange
	// accepts.
	Audience string `yaml:"audience"`
	// Organization is sent upstream when the sign-in names none.
	Organization string `yaml:"organization"`
	// AllowedOrganizations, when set, are the only org ids (or names)
	// whose members may sign in.
	AllowedOrganizations []string `yaml:"allowed_organizations"`
}

var auth0Domain = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$`)

func init() { Register("auth0", newAuth0) }

func newAuth0(name string, settings Settings, env Env) (Provider, error) {
	return buildOIDC(name, settings, env, func(s *auth0Settings, e *SettingsError) (oidcConfig, oidcKind) {
		domain := strings.ToLower(strings.TrimSpace(s.Domain))
		issuer := ""
		switch {
		case domain == "":
			e.add("domain", "is required, such as acme.eu.auth0.com")
		case !auth0Domain.MatchString(domain):
			e.add("domain", "%q must be the tenant host only, such as acme.eu.auth0.com (no https://, no path)", s.Domain)
		default:
			scheme := "https"
			if s.InsecureAllowHTTP {
				scheme = "http"
			}
			// Auth0's issuer ends with a slash; anything else fails discovery.
			issuer = scheme + "://" + domain + "/"
		}
		cfg := s.check(e, env, "domain", issuer, "Auth0")
		cfg.audience = s.Audience
		cfg.offlineScope()
		return cfg, auth0Kind(s.Organization, s.AllowedOrganizations)
	})
}

// auth0Kind passes the organization upstream and checks org_id/org_name
// against the one asked for and the allow-list (empty: any or none).
func auth0Kind(defaultOrg string, allowed []string) oidcKind {
	return oidcKind{
		typ: "auth0",
		authParams: func(req BeginRequest, saved *oidcSaved) url.Values {
			saved.Org = cmpOr(req.Organization, defaultOrg)
			if saved.Org == "" {
				return nil
			}
			return url.Values{"organization": {saved.Org}}
		},
		accept: func(c claimSet, id *Identity, requestedOrg string) error {
			orgID, orgName := c.str("org_id"), c.str("org_name")
			is := func(org string) bool { return org != "" && (org == orgID || strings.EqualFold(org, orgName)) }
			if requestedOrg != "" && !is(requestedOrg) {
				return Deny("You signed in to another Auth0 organization than the one requested.",
					fmt.Sprintf("org_id %q does not match the requested organization", truncate(orgID, 100)))
			}
			if len(allowed) > 0 && !slices.ContainsFunc(allowed, is) {
				return Deny("Your organization is not allowed to sign in here.",
					fmt.Sprintf("org_id %q is not in allowed_organizations", truncate(orgID, 100)))
			}
			if c.str("gty") == "client-credentials" {
				return Deny("A machine-to-machine token does not represent a person.", "gty is client-credentials")
			}
			id.Groups = appendGroups(id.Groups, "auth0:org:", []string{orgID})
			return nil
		},
	}
}
