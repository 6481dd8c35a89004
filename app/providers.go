package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/handlers"
	"github.com/gatehouse-id/gatehouse/providers"
)

// DevProviderName is the name of the built-in dev provider
// (GATEHOUSE_DEV_LOGIN).
const DevProviderName = "dev"

// buildProviders constructs the configured providers in order, plus the
// built-in dev provider when GATEHOUSE_DEV_LOGIN is on and no provider is
// already named "dev". Each kind validates its own settings; problems
// name the provider's position in the YAML file and the field, all at
// once. Upstream JWKS fetches are counted in metrics.
func buildProviders(cfg *config.Config, log *slog.Logger, metrics *handlers.Metrics) ([]providers.Provider, error) {
	env := providers.Env{
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		BaseURL:    cfg.Issuer,
		Production: cfg.Production(),
		Log:        log,
		OnJWKSFetch: func(provider, outcome string) {
			metrics.JWKSFetches.WithLabelValues(provider, outcome).Inc()
		},
	}
	var out []providers.Provider
	var problems []config.Problem
	named := map[string]bool{}
	for i := range cfg.File.Providers {
		pc := &cfg.File.Providers[i]
		field := fmt.Sprintf("providers[%d] (%s)", i, pc.Name)
		p, err := providers.New(pc.Type, pc.Name, pc, env)
		var se *providers.SettingsError
		switch {
		case errors.As(err, &se):
			for _, pr := range se.Problems {
				problems = append(problems, config.Problem{Field: field + "." + pr.Field, Message: pr.Message})
			}
			continue
		case err != nil:
			problems = append(problems, config.Problem{Field: field, Message: err.Error()})
			continue
		}
		out = append(out, p)
		named[pc.Name] = true
	}
	if len(problems) > 0 {
		closeProviders(out)
		return nil, &config.ValidationError{Problems: problems}
	}
	if cfg.DevLogin && !named[DevProviderName] {
		p, err := providers.NewDev(DevProviderName, env)
		if err != nil {
			closeProviders(out)
			return nil, fmt.Errorf("GATEHOUSE_DEV_LOGIN: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// providerReadiness is one /readyz check per provider that depends on its
// upstream (discovery). They are informative: an upstream outage shared
// by every replica must not take them all out of the load balancer, and
// with them sign-ins through the other providers and token refreshes.
func providerReadiness(provs []providers.Provider) []handlers.ReadinessCheck {
	var checks []handlers.ReadinessCheck
	for _, p := range provs {
		if rc, ok := p.(providers.ReadinessChecker); ok {
			checks = append(checks, handlers.ReadinessCheck{Name: "provider:" + p.Name(), Check: rc.Ready, Informative: true})
		}
	}
	return checks
}

// closeProviders stops the background work of providers that have some.
func closeProviders(provs []providers.Provider) {
	for _, p := range provs {
		if c, ok := p.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// DemoClientID is the public client behind /demo, registered in
// development unless the configuration already has a client of that id.
const DemoClientID = "gatehouse-demo"

func addDemoClient(cfg *config.Config) {
	if cfg.Production() {
		return
	}
	for _, c := range cfg.File.Clients {
		if c.ID == DemoClientID {
			return
		}
	}
	demo := strings.TrimSuffix(cfg.Issuer, "/") + "/demo/"
	cfg.File.Clients = append(cfg.File.Clients, config.Client{
		ID: DemoClientID, Name: "Gatehouse demo", Public: true,
		RedirectURIs: []string{demo}, PostLogoutRedirectURIs: []string{demo},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken},
	})
}
