package app

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/providers"
)

// DevProviderName is the name of the built-in dev provider
// (GATEHOUSE_DEV_LOGIN).
const DevProviderName = "dev"

// buildProviders constructs the configured providers in order, plus the
// built-in dev provider when GATEHOUSE_DEV_LOGIN is on and no provider is
// already named "dev". Each kind validates its own settings; problems
// name the provider's position in the YAML file.
func buildProviders(cfg *config.Config) ([]providers.Provider, error) {
	env := providers.Env{
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		BaseURL:    cfg.Issuer,
		Production: cfg.Production(),
	}
	var out []providers.Provider
	named := map[string]bool{}
	for i := range cfg.File.Providers {
		pc := &cfg.File.Providers[i]
		p, err := providers.New(pc.Type, pc.Name, pc, env)
		if err != nil {
			return nil, &config.ValidationError{Problems: []config.Problem{{
				Field: fmt.Sprintf("providers[%d] (%s)", i, pc.Name), Message: err.Error()}}}
		}
		out = append(out, p)
		named[pc.Name] = true
	}
	if cfg.DevLogin && !named[DevProviderName] {
		p, err := providers.NewDev(DevProviderName, env)
		if err != nil {
			return nil, fmt.Errorf("GATEHOUSE_DEV_LOGIN: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
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
