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
	var s genericOIDCSettings
	if err := decodeSettings(settings, &s); err != nil {
		return nil, err
	}
	e := &SettingsError{}
	cfg := s.check(e, env, "issuer", s.Issuer, name)
	cfg.audience = s.Audience
	if err := e.err(); err != nil {
		return nil, err
	}
	return newOIDCProvider(name, cfg, oidcKind{typ: "oidc"}, env), nil
}
