package oauth

import (
	"fmt"

	"github.com/gatehouse-id/gatehouse/config"
)

// SetConfiguredClients replaces the clients of the configuration file
// with cfg's (a reload on SIGHUP). cfg must be a configuration
// config.Load accepted: the client ids are checked again here (unique,
// present) so that no half-valid table is ever stored, and on an error
// nothing changes. The swap is atomic: a request that already looked its
// client up finishes with it, every later lookup sees the new table, and
// a removed client is unknown from then on (invalid_client, or the
// error page of an authorization request).
func (s *Service) SetConfiguredClients(cfg *config.Config) error {
	if cfg == nil {
		return fmt.Errorf("oauth: no configuration")
	}
	seen := map[string]bool{}
	for i, c := range cfg.File.Clients {
		switch {
		case c.ID == "":
			return fmt.Errorf("oauth: clients[%d] has no id", i)
		case seen[c.ID]:
			return fmt.Errorf("oauth: clients[%d]: id %q is used by another client", i, c.ID)
		}
		seen[c.ID] = true
	}
	s.storeClients(cfg)
	return nil
}

// storeClients builds the client table of cfg and makes it current.
func (s *Service) storeClients(cfg *config.Config) {
	table := make(map[string]*Client, len(cfg.File.Clients))
	ids := make([]string, 0, len(cfg.File.Clients))
	for _, c := range cfg.File.Clients {
		table[c.ID] = newClient(c, s.cfg)
		ids = append(ids, c.ID)
	}
	// Failed authentications of a new client are counted under its id
	// from its first request on.
	s.authFailures.track(ids)
	s.clients.Store(&table)
}

// trustedEmailProviders names the providers whose verified emails count
// now (a reload may change trusted_email).
func (s *Service) trustedEmailProviders() []string {
	if s.provisioner == nil {
		return nil
	}
	return s.provisioner.TrustedEmailProviders()
}
