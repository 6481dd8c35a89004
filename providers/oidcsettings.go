package providers

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// oidcSettings are the YAML fields every OpenID Connect kind accepts;
// each kind inlines them into its own settings.
type oidcSettings struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
	DisplayName  string   `yaml:"display_name"`
	// Claims names the claims the identity is read from.
	Claims claimSettings `yaml:"claims"`
	// SigningAlgorithms upstream tokens may use; default RS256.
	SigningAlgorithms []string `yaml:"signing_algorithms"`
	// ClockSkew tolerated on exp, nbf and iat; default 60s, at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// JWKSRefetchInterval is the least time between two key fetches
	// triggered by tokens with an unknown kid; default 30s.
	JWKSRefetchInterval time.Duration `yaml:"jwks_refetch_interval"`
	// ExchangeClientIDs are the upstream applications whose tokens token
	// exchange accepts (ID token aud, access token azp); default client_id.
	ExchangeClientIDs []string `yaml:"exchange_client_ids"`
	// InsecureAllowHTTP permits a plain-HTTP issuer (tests, local IdPs).
	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`
	// UpstreamLogout ends the person's session at the upstream too when
	// they log out of Gatehouse (RP-Initiated Logout 1.0, through the
	// end_session_endpoint discovery names).
	UpstreamLogout bool `yaml:"upstream_logout"`
	// Upstream re-checks with the upstream refresh token (recheck.go).
	recheckSettings `yaml:",inline"`
}

// claimSettings name the upstream claims an identity is read from.
type claimSettings struct {
	Email         string     `yaml:"email"`
	EmailVerified string     `yaml:"email_verified"`
	Name          string     `yaml:"name"`
	Picture       string     `yaml:"picture"`
	Groups        stringList `yaml:"groups"`
	// Username is the claim the person's username is read from
	// (default preferred_username).
	Username string `yaml:"username"`
}

// stringList is a YAML string or list of strings.
type stringList []string

// UnmarshalYAML accepts `groups: roles` as well as `groups: [a, b]`.
func (l *stringList) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return errors.New("must be a claim name or a list of claim names")
	}
	*l = many
	return nil
}

// Defaults and bounds of the shared settings.
const (
	defaultClockSkew      = 60 * time.Second
	maxClockSkew          = 5 * time.Minute
	defaultJWKSRefetch    = 30 * time.Second
	maxUpstreamTokenBytes = 16 << 10
	maxUserInfoBytes      = 1 << 20
	maxGroupLen           = 256
)

// asymmetricAlgs are the algorithms signing_algorithms may name: never
// "none" or an HMAC, whose key would be the public key everyone has.
var asymmetricAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA}

// oidcConfig is a validated configuration of one OpenID Connect provider.
type oidcConfig struct {
	issuer          string
	clientID        string
	clientSecret    string
	scopes          []string
	displayName     string
	algs            []string
	skew            time.Duration
	minRefetch      time.Duration
	exchangeClients []string
	claims          claimSettings
	insecureHTTP    bool
	// audience, when set, makes access tokens for this API audience
	// acceptable in token exchange; empty refuses access tokens.
	audience string
	// upstreamLogout: the provider offers logout at the upstream.
	upstreamLogout bool
	// recheck is the re-check policy (recheck_interval and friends).
	recheck RecheckPolicy
}

// check validates the shared settings for a provider whose issuer is
// issuer (named issuerField in messages) and fills in the defaults.
func (s *oidcSettings) check(e *SettingsError, env Env, issuerField, issuer, defaultDisplay string) oidcConfig {
	c := oidcConfig{issuer: issuer, clientID: s.ClientID, clientSecret: s.ClientSecret, scopes: s.Scopes,
		displayName: s.DisplayName, algs: s.SigningAlgorithms, skew: s.ClockSkew, minRefetch: s.JWKSRefetchInterval,
		exchangeClients: s.ExchangeClientIDs, claims: s.Claims, insecureHTTP: s.InsecureAllowHTTP,
		upstreamLogout: s.UpstreamLogout}
	if c.clientID == "" {
		e.add("client_id", "is required (the client id of Gatehouse's application at the identity provider)")
	}
	if c.clientSecret == "" {
		e.add("client_secret", "is required; write it as ${NAME} to read it from the environment")
	}
	if len(c.scopes) == 0 {
		c.scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	} else if !slices.Contains(c.scopes, oidc.ScopeOpenID) {
		e.add("scopes", "must include openid")
	}
	if c.displayName == "" {
		c.displayName = defaultDisplay
	}
	if len(c.algs) == 0 {
		c.algs = []string{oidc.RS256}
	}
	for _, a := range c.algs {
		if !slices.Contains(asymmetricAlgs, a) {
			e.add("signing_algorithms", "%q is not allowed; use asymmetric algorithms only (%s)", a, strings.Join(asymmetricAlgs, ", "))
		}
	}
	switch {
	case c.skew == 0:
		c.skew = defaultClockSkew
	case c.skew < 0 || c.skew > maxClockSkew:
		e.add("clock_skew", "must be between 1s and %s", maxClockSkew)
	}
	switch {
	case c.minRefetch == 0:
		c.minRefetch = defaultJWKSRefetch
	case c.minRefetch < time.Second || c.minRefetch > time.Hour:
		e.add("jwks_refetch_interval", "must be between 1s and 1h")
	}
	if len(c.exchangeClients) == 0 {
		c.exchangeClients = []string{c.clientID}
	}
	if c.insecureHTTP && env.Production {
		e.add("insecure_allow_http", "not allowed with GATEHOUSE_ENV=production")
	}
	if issuer == "" {
		e.add(issuerField, "is required")
	} else if u, err := url.Parse(issuer); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil ||
		(u.Scheme != "https" && u.Scheme != "http") {
		e.add(issuerField, "must be an https URL such as https://idp.example.com")
	} else if u.Scheme == "http" && !c.insecureHTTP {
		e.add(issuerField, "must use https (plain HTTP only with insecure_allow_http, outside production)")
	}
	c.recheck = s.recheckSettings.check(e)
	c.claims.Email = cmpOr(c.claims.Email, "email")
	c.claims.EmailVerified = cmpOr(c.claims.EmailVerified, "email_verified")
	c.claims.Name = cmpOr(c.claims.Name, "name")
	c.claims.Picture = cmpOr(c.claims.Picture, "picture")
	c.claims.Username = cmpOr(c.claims.Username, "preferred_username")
	return c
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// offlineScope adds offline_access to the scopes when re-checks were
// configured explicitly (recheck_interval set): the upstream issues a
// refresh token only for it (OpenID Connect Core §11; Okta, Auth0,
// Keycloak). Without recheck_interval, a refresh token the upstream
// issues anyway is kept and used, and nothing more is asked.
func (c *oidcConfig) offlineScope() {
	if c.recheck.Required && !slices.Contains(c.scopes, "offline_access") {
		c.scopes = append(slices.Clone(c.scopes), "offline_access")
	}
}
