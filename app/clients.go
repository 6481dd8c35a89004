package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/config"
)

// startClientSync loads the clients stored in the database (a failure
// stops start-up: a replica must not serve without clients it should
// know), connects the admin API's client operations to the registry,
// and polls the stored clients' version every
// GATEHOUSE_CLIENTS_POLL_INTERVAL until Close, so a change made on any
// replica takes effect on this one within about that interval.
func (a *App) startClientSync(ctx context.Context) error {
	if err := a.OAuth.SyncClients(ctx); err != nil {
		return fmt.Errorf("stored clients: %w", err)
	}
	opts := ClientOptions(a.Config, a.OAuth.ConfiguredClients, func(ctx context.Context) {
		// This replica follows at once; the others at their next poll.
		if err := a.OAuth.SyncClients(context.WithoutCancel(ctx)); err != nil {
			a.Log.WarnContext(ctx, "stored clients not reloaded after a change; the next poll retries", slog.String("error", err.Error()))
		}
	})
	// A stored client names the providers of the file in force, which a
	// reload may have changed.
	opts.Current = a.CurrentConfig
	a.Admin.SetClients(opts)
	syncCtx, stop := context.WithCancel(context.Background())
	a.stopClientSync, a.clientSyncDone = stop, make(chan struct{})
	go func() {
		defer close(a.clientSyncDone)
		a.OAuth.RunClientSync(syncCtx, a.Config.ClientsPollInterval)
	}()
	return nil
}

// ClientOptions are the admin service's client settings for cfg: its
// validation, the bound on token lifetimes the signing keys' retention
// allows (MaxTokenTTL), the file's clients in force (configured, nil:
// cfg's with the console and demo clients the server adds) and what to
// do after a change.
func ClientOptions(cfg *config.Config, configured func() []config.Client, changed func(context.Context)) admin.ClientOptions {
	if configured == nil {
		// The console and demo clients the server adds are the file's
		// too (gatehouse clients works on a configuration as loaded):
		// listed, read-only, and no stored client may take their ids.
		withBuiltIn := *cfg
		withBuiltIn.File.Clients = slices.Clone(cfg.File.Clients)
		addDemoClient(&withBuiltIn)
		addConsoleClient(&withBuiltIn)
		list := withBuiltIn.File.Clients
		configured = func() []config.Client { return list }
	}
	return admin.ClientOptions{Config: cfg, Configured: configured, MaxTokenTTL: longestTokenTTL(cfg), Changed: changed}
}

// longestTokenTTL is the longest lifetime of a token Gatehouse signs
// under cfg: signing keys stay published this long after they retire.
func longestTokenTTL(cfg *config.Config) time.Duration {
	longest := max(cfg.AccessTokenTTL, cfg.IDTokenTTL)
	for _, c := range cfg.File.Clients {
		longest = max(longest, time.Duration(c.AccessTokenTTL), time.Duration(c.IDTokenTTL))
	}
	return longest
}
