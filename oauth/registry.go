package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// The client registry: how the authorization server finds a client by
// id. Two sources feed it: the YAML file's clients (authoritative; a
// reload replaces them through SetConfiguredClients) and the clients
// stored in the database (admin API, console, Dynamic Client
// Registration), reloaded by SyncClients whenever the stored version
// counter moved. Both live in one immutable snapshot behind an atomic
// pointer: a lookup is one atomic load and a map read, with no lock and
// no database query, so the token endpoint's hot path (the refresh grant)
// costs what it did with a fixed map. Writers (a reload, a sync) build a
// new snapshot and swap it in, one at a time.

// ClientStore is where stored clients are read; *models.Store provides it.
type ClientStore interface {
	// ClientsVersion is the counter every change of stored clients moves.
	ClientsVersion(ctx context.Context) (int64, error)
	ListStoredClients(ctx context.Context) ([]models.StoredClient, error)
}

// Where a client is defined (Client.Source).
const (
	ClientSourceConfig   = "config"
	ClientSourceDatabase = "database"
)

// clientSnapshot is the registry at one moment; never modified once
// published.
type clientSnapshot struct {
	cfg        *config.Config
	configured map[string]*Client
	stored     map[string]*Client
	// version is the stored clients' version they were read at; loaded
	// is false until a first read succeeded.
	version int64
	loaded  bool
}

func (sn *clientSnapshot) lookup(id string) (*Client, bool) {
	if c, ok := sn.configured[id]; ok {
		return c, true
	}
	c, ok := sn.stored[id]
	return c, ok
}

// backchannelEndpoints maps every client with a backchannel_logout_uri,
// stored or from the file (which wins on a shared id), to it.
func (sn *clientSnapshot) backchannelEndpoints() map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]*Client{sn.stored, sn.configured} {
		for id, c := range m {
			if c.BackchannelLogoutURI != "" {
				out[id] = c.BackchannelLogoutURI
			} else {
				delete(out, id)
			}
		}
	}
	return out
}

// registry holds the current snapshot.
type registry struct {
	current atomic.Pointer[clientSnapshot]
	// mu serializes writers, so that a sync and a reload never publish
	// snapshots built from each other's stale parts.
	mu sync.Mutex
	// syncMu runs one SyncClients at a time, from its version read to
	// its publish: a sync that read older rows cannot publish them after
	// a later one (say, the one following a change made here).
	syncMu sync.Mutex
	store  ClientStore
}

// Client returns a registered client: a YAML client, or else a stored
// one. It takes no lock and reads no database.
func (s *Service) Client(id string) (*Client, bool) {
	return s.registry.current.Load().lookup(id)
}

// ConfiguredClients returns the YAML file's clients currently in force,
// by id.
func (s *Service) ConfiguredClients() []config.Client {
	sn := s.registry.current.Load()
	out := make([]config.Client, 0, len(sn.configured))
	for _, c := range sn.configured {
		out = append(out, c.Client)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IsConfiguredClient reports whether id names a YAML file's client.
func (s *Service) IsConfiguredClient(id string) bool {
	_, ok := s.registry.current.Load().configured[id]
	return ok
}

// SetConfiguredClients replaces the YAML file's clients with cfg's (a
// reload of the file), atomically: a request sees either the old set or
// the new one. cfg's clients are checked again first (unique ids, each
// client's rules); on error nothing changes. Stored clients stay; one
// whose id a YAML client now takes is hidden behind it (the file is
// authoritative) and logged. The stored clients are checked again under
// cfg at the next SyncClients (call it after this to apply at once).
func (s *Service) SetConfiguredClients(cfg *config.Config) error {
	if err := cfg.ValidateConfiguredClients(); err != nil {
		return err
	}
	s.setConfiguredClients(cfg)
	return nil
}

func (s *Service) setConfiguredClients(cfg *config.Config) {
	s.registry.mu.Lock()
	defer s.registry.mu.Unlock()
	old := s.registry.current.Load()
	// The stored clients were checked against the previous file (the
	// providers they may name): loaded false makes the next sync read
	// and check them again under this one, bringing back one the old
	// file left out and leaving out one this file no longer allows.
	next := &clientSnapshot{cfg: cfg, configured: make(map[string]*Client, len(cfg.File.Clients)),
		stored: old.stored, version: old.version}
	for _, c := range cfg.File.Clients {
		cl := newClient(c, cfg)
		cl.Source = ClientSourceConfig
		next.configured[c.ID] = cl
	}
	s.warnShadowed(next)
	s.publish(next)
}

// SyncClients reloads the stored clients when their version moved since
// the last read (one small query otherwise) and swaps them in. A stored
// client that no longer passes validation (say, its allowed provider was
// removed from the file) is left out and logged; the others load.
func (s *Service) SyncClients(ctx context.Context) error {
	st := s.registry.store
	if st == nil {
		return nil
	}
	s.registry.syncMu.Lock()
	defer s.registry.syncMu.Unlock()
	// Read the version before the rows: a change between the two is
	// either in the rows or moves the version again for the next poll.
	v, err := st.ClientsVersion(ctx)
	if err != nil {
		return fmt.Errorf("read clients version: %w", err)
	}
	if cur := s.registry.current.Load(); cur.loaded && cur.version == v {
		return nil
	}
	rows, err := st.ListStoredClients(ctx)
	if err != nil {
		return fmt.Errorf("read clients: %w", err)
	}
	s.registry.mu.Lock()
	defer s.registry.mu.Unlock()
	old := s.registry.current.Load()
	next := &clientSnapshot{cfg: old.cfg, configured: old.configured, stored: make(map[string]*Client, len(rows)),
		version: v, loaded: true}
	for _, row := range rows {
		c, err := StoredClient(old.cfg, row)
		if err != nil {
			s.log.ErrorContext(ctx, "stored client not loaded: its settings are not valid",
				slog.String("client_id", row.ID), slog.String("error", err.Error()))
			continue
		}
		next.stored[row.ID] = c
	}
	s.warnShadowed(next)
	s.publish(next)
	return nil
}

// RunClientSync calls SyncClients every interval until ctx ends, so a
// change made on any replica takes effect here within about interval.
// Failures are logged and retried at the next tick.
func (s *Service) RunClientSync(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.SyncClients(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			s.log.WarnContext(ctx, "stored clients could not be reloaded; the ones loaded stay in force until it works again",
				slog.String("error", err.Error()))
		case err == nil && failing:
			failing = false
			s.log.InfoContext(ctx, "stored clients reloaded again")
		}
	}
}

// StoredClient turns a stored row into a client, checking its settings
// with the YAML clients' rules under cfg.
func StoredClient(cfg *config.Config, row models.StoredClient) (*Client, error) {
	cc, err := config.ParseClientJSON([]byte(row.Settings))
	if err != nil {
		return nil, err
	}
	cc.ID = row.ID
	if err := cfg.ValidateClient(&cc); err != nil {
		return nil, err
	}
	c := newClient(cc, cfg)
	c.Source = ClientSourceDatabase
	// A private_key_jwt client has no secret (admin.usesSecret): its
	// row carries no hash, and an all-zero SecretHash matches nothing.
	if !cc.Public && cc.TokenEndpointAuthMethod != config.AuthPrivateKeyJWT {
		h, err := hex.DecodeString(row.SecretHash)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("client %s has no valid secret hash", row.ID)
		}
		copy(c.SecretHash[:], h)
		if row.PreviousSecretExpiresAt != nil {
			if h, err := hex.DecodeString(row.PreviousSecretHash); err == nil && len(h) == sha256.Size {
				copy(c.previousSecretHash[:], h)
				c.previousSecretUntil = *row.PreviousSecretExpiresAt
			}
		}
	}
	return c, nil
}

func (s *Service) warnShadowed(sn *clientSnapshot) {
	for id := range sn.stored {
		if _, ok := sn.configured[id]; ok {
			s.log.Warn("a stored client is hidden by the configuration file's client of the same id", slog.String("client_id", id))
		}
	}
}

// publish swaps sn in and lets the failure counters (and the signing
// keys' retention, Hooks.ClientsLoaded) follow the set of clients. The
// caller holds registry.mu.
func (s *Service) publish(sn *clientSnapshot) {
	s.registry.current.Store(sn)
	if s.hooks.ClientsChanged != nil {
		s.hooks.ClientsChanged(sn.backchannelEndpoints())
	}
	if f := s.hooks.ClientsLoaded; f != nil {
		var longest time.Duration
		for _, m := range []map[string]*Client{sn.configured, sn.stored} {
			for _, c := range m {
				longest = max(longest, c.AccessTTL, c.IDTokenTTL)
			}
		}
		f(longest)
	}
	if s.authFailures != nil {
		ids := make([]string, 0, len(sn.configured)+len(sn.stored))
		for id := range sn.configured {
			ids = append(ids, id)
		}
		for id := range sn.stored {
			ids = append(ids, id)
		}
		s.authFailures.track(ids)
	}
}

// checkSecret compares secret in constant time against the client's
// current secret and, until its overlap ends, the one a rotation
// replaced. Both comparisons always run.
func (c *Client) checkSecret(secret string, now time.Time) bool {
	sum := sha256.Sum256([]byte(secret))
	cur := subtle.ConstantTimeCompare(sum[:], c.SecretHash[:])
	prev := subtle.ConstantTimeCompare(sum[:], c.previousSecretHash[:])
	if c.previousSecretUntil.IsZero() || !now.Before(c.previousSecretUntil) {
		prev = 0
	}
	return cur|prev == 1 && secret != ""
}
