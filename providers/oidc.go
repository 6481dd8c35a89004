package providers

// The oidc kind is any OpenID Connect issuer found by discovery (Okta,
// Keycloak, Dex, Entra ID, ...): configurable scopes and claim names,
// groups from a configured claim reported as "oidc:group:<value>".

type genericOIDCSettings struct {
	oidcSettings `yaml:",inline"`
	// Issuer is the issuer URL exactly as the discovery document names it.
	Issuer string `yaml:"issuer"`
	// Audience, when set, lets token exchange accept access tokens (JWTs)
	// issued for this API audience.
	Audience string `yaml:"audience"`
}

func init() { Register("oidc", newGenericOIDC) }

func newGenericOIDC(name string, settings Settings, env Env) (Provider, error) {
	return buildOIDC(name, settings, env, func(s *genericOIDCSettings, e *SettingsError) (oidcConfig, oidcKind) {
		cfg := s.check(e, env, "issuer", s.Issuer, name)
		cfg.audience = s.Audience
		cfg.offlineScope()
		return cfg, oidcKind{typ: "oidc"}
	})
}
