package app

import (
	"context"
	"strings"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// ConsoleClientID is the public client behind the admin console at
// /admin/, registered in every environment unless the configuration
// already has a client of that id (which then replaces it).
const ConsoleClientID = "gatehouse-admin-console"

// addConsoleClient registers the admin console: a public client (code
// flow with PKCE, refresh tokens) whose only redirect URI is /admin/ on
// the issuer, and whose tokens are for the admin API's audience only.
func addConsoleClient(cfg *config.Config) {
	if hasClient(cfg, ConsoleClientID) {
		return
	}
	console := strings.TrimSuffix(cfg.Issuer, "/") + "/admin/"
	cfg.File.Clients = append(cfg.File.Clients, config.Client{
		ID: ConsoleClientID, Name: "Gatehouse admin console", Public: true,
		RedirectURIs: []string{console}, PostLogoutRedirectURIs: []string{console},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken},
		Audience:   []string{cfg.AdminAudience},
	})
}

// hasClient reports whether the configuration file defines a client of
// this id (which then replaces an automatically registered one).
func hasClient(cfg *config.Config, id string) bool {
	for _, c := range cfg.File.Clients {
		if c.ID == id {
			return true
		}
	}
	return false
}

// keyRing adapts the key manager to what the admin API lists and rotates.
type keyRing struct{ keys *tokens.KeyManager }

func signingKeyView(k tokens.KeyInfo) admin.SigningKey {
	return admin.SigningKey{KID: k.KID, Algorithm: k.Algorithm, State: string(k.State), CreatedAt: k.CreatedAt,
		ActivatesAt: k.ActivatesAt, RetiredAt: k.RetiredAt, DeleteAfter: k.DeleteAfter}
}

func (r keyRing) SigningKeys(ctx context.Context) ([]admin.SigningKey, error) {
	list, err := r.keys.List(ctx)
	out := make([]admin.SigningKey, 0, len(list))
	for _, k := range list {
		out = append(out, signingKeyView(k))
	}
	return out, err
}

// RotateSigningKey refuses while a key is pending (see
// tokens.KeyManager.RotateIfNonePending); `gatehouse keys rotate` does not.
func (r keyRing) RotateSigningKey(ctx context.Context) (admin.SigningKey, error) {
	k, err := r.keys.RotateIfNonePending(ctx)
	return signingKeyView(k), err
}
