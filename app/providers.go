package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/handlers"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// DevProviderName is the name of the built-in dev provider
// (GATEHOUSE_DEV_LOGIN).
const DevProviderName = "dev"

// buildProviders constructs the configured providers in order, plus the
// built-in dev provider when GATEHOUSE_DEV_LOGIN is on and no provider is
// already named "dev". Each kind validates its own settings; problems
// name the provider's position in the YAML file and the field, all at
// once. Upstream JWKS fetches are counted in metrics.
func buildProviders(cfg *config.Config, store *models.Store, log *slog.Logger, metrics *handlers.Metrics) ([]providers.Provider, error) {
	return rebuildProviders(cfg, store, log, metrics, nil)
}

// rebuildProviders is buildProviders keeping the instances running
// offers for providers whose kind settings did not change (a reload):
// their JWKS, discovery and SAML metadata caches live on. Only the
// instances it builds are closed when it fails.
func rebuildProviders(cfg *config.Config, store *models.Store, log *slog.Logger, metrics *handlers.Metrics,
	running *providerGeneration) ([]providers.Provider, error) {
	env := providers.Env{
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		BaseURL:    cfg.Issuer,
		Production: cfg.Production(),
		Log:        log,
		Secrets:    &secretStore{store: store, key: tokens.DeriveKey(cfg.SecretKey, "provider-secrets")},
		Replay:     replayCache{store: store},
		OnJWKSFetch: func(provider, outcome string) {
			metrics.JWKSFetches.WithLabelValues(provider, outcome).Inc()
		},
	}
	var out, built []providers.Provider
	var problems []config.Problem
	named := map[string]bool{}
	for i := range cfg.File.Providers {
		pc := &cfg.File.Providers[i]
		field := fmt.Sprintf("providers[%d] (%s)", i, pc.Name)
		var err error
		p := running.reusable(pc)
		if p == nil {
			if p, err = providers.New(pc.Type, pc.Name, pc, env); err == nil {
				built = append(built, p)
			}
		}
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
		if err := checkIdPInitiated(cfg, p); err != nil {
			problems = append(problems, config.Problem{Field: field + ".idp_initiated", Message: err.Error()})
			continue
		}
		out = append(out, p)
		named[pc.Name] = true
	}
	if len(problems) > 0 {
		closeProviders(built)
		return nil, &config.ValidationError{Problems: problems}
	}
	if cfg.DevLogin && !named[DevProviderName] {
		p := running.builtInDev()
		if p == nil {
			var err error
			if p, err = providers.NewDev(DevProviderName, env); err != nil {
				closeProviders(built)
				return nil, fmt.Errorf("GATEHOUSE_DEV_LOGIN: %w", err)
			}
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
	if cfg.Production() || hasClient(cfg, DemoClientID) {
		return
	}
	demo := strings.TrimSuffix(cfg.Issuer, "/") + "/demo/"
	cfg.File.Clients = append(cfg.File.Clients, config.Client{
		ID: DemoClientID, Name: "Gatehouse demo", Public: true,
		// /demo/silent.html receives the answers of the demo's silent renewal
		// (prompt=none in a hidden iframe).
		RedirectURIs: []string{demo, demo + "silent.html"}, PostLogoutRedirectURIs: []string{demo},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken},
	})
}

// checkIdPInitiated refuses an IdP-initiated target that cannot receive
// sign-ins: an unknown client, an unregistered redirect URI, a client not
// allowed the provider or the code flow, or a public client (which must use
// PKCE, and an unsolicited sign-in has no challenge to bind the code to).
func checkIdPInitiated(cfg *config.Config, p providers.Provider) error {
	ip, ok := p.(providers.IdPInitiated)
	if !ok {
		return nil
	}
	t, on := ip.IdPInitiatedTarget()
	if !on {
		return nil
	}
	for _, c := range cfg.File.Clients {
		if c.ID != t.ClientID {
			continue
		}
		switch {
		case c.Public:
			return fmt.Errorf("client %q is public: IdP-initiated sign-ins need a confidential client (no PKCE is possible)", c.ID)
		case !c.AllowsGrant(config.GrantAuthorizationCode):
			return fmt.Errorf("client %q may not use authorization_code", c.ID)
		case len(c.AllowedProviders) > 0 && !contains(c.AllowedProviders, p.Name()):
			return fmt.Errorf("client %q does not allow provider %q", c.ID, p.Name())
		case !contains(c.RedirectURIs, t.RedirectURI):
			return fmt.Errorf("%q is not a redirect URI of client %q", t.RedirectURI, c.ID)
		}
		return nil
	}
	return fmt.Errorf("client %q is not configured", t.ClientID)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// secretStore keeps provider-generated key material in provider_secrets,
// sealed with AES-256-GCM under a key derived from GATEHOUSE_SECRET_KEY and
// bound to its provider and name.
type secretStore struct {
	store *models.Store
	key   []byte
}

func (s *secretStore) LoadOrCreate(ctx context.Context, provider, name string, create func() ([]byte, error)) ([]byte, error) {
	aad := []byte("provider-secret/" + provider + "/" + name)
	sealed, err := s.store.LoadOrCreateProviderSecret(ctx, provider, name, func() ([]byte, error) {
		plain, err := create()
		if err != nil {
			return nil, err
		}
		return tokens.Seal(s.key, plain, aad)
	}, nowUTC())
	if err != nil {
		return nil, err
	}
	plain, err := tokens.Open(s.key, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("stored key of provider %s cannot be decrypted: was GATEHOUSE_SECRET_KEY changed? (%w)", provider, err)
	}
	return plain, nil
}

// replayCache remembers SAML assertion ids in saml_replays.
type replayCache struct {
	store *models.Store
}

func (r replayCache) Remember(ctx context.Context, provider, id string, expiresAt time.Time) (bool, error) {
	return r.store.RememberAssertion(ctx, provider, id, expiresAt.UTC(), nowUTC())
}
