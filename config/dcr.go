package config

import (
	"crypto/sha256"
	"strings"
)

// Registration is OAuth 2.0 Dynamic Client Registration (RFC 7591 and
// 7592), off unless GATEHOUSE_DCR_ENABLED: who may register (holders of
// the initial access token) and within which limits.
type Registration struct {
	Enabled bool
	// InitialAccessTokenHash is the SHA-256 of
	// GATEHOUSE_DCR_INITIAL_ACCESS_TOKEN; the token itself is not kept.
	InitialAccessTokenHash [32]byte
	// RedirectHosts are the hosts a registered client's redirect URIs
	// (and post-logout ones) may name: "app.example.com" exactly, or
	// "*.example.com" for any subdomain of example.com.
	RedirectHosts []string
	// GrantTypes a registered client may ask for: authorization_code and
	// refresh_token (web clients).
	GrantTypes []string
	// MaxClients bounds the clients registered this way.
	MaxClients int
}

// AllowsRedirectHost reports whether host is one of RedirectHosts.
func (r *Registration) AllowsRedirectHost(host string) bool {
	host = strings.ToLower(host)
	for _, h := range r.RedirectHosts {
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// readRegistration reads the GATEHOUSE_DCR_* settings.
func (r *reader) readRegistration() Registration {
	reg := Registration{
		Enabled:       r.boolean("GATEHOUSE_DCR_ENABLED", false),
		RedirectHosts: r.list("GATEHOUSE_DCR_REDIRECT_HOSTS"),
		GrantTypes:    r.list("GATEHOUSE_DCR_GRANT_TYPES"),
		MaxClients:    r.integer("GATEHOUSE_DCR_MAX_CLIENTS", 100, 1),
	}
	if len(reg.GrantTypes) == 0 {
		reg.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	for i, h := range reg.RedirectHosts {
		reg.RedirectHosts[i] = strings.ToLower(h)
	}
	token := r.str("GATEHOUSE_DCR_INITIAL_ACCESS_TOKEN", "")
	if !reg.Enabled {
		return reg
	}
	if len(token) < 32 {
		r.fail("GATEHOUSE_DCR_INITIAL_ACCESS_TOKEN", "must be set, at least 32 characters, when GATEHOUSE_DCR_ENABLED is true; generate one with `openssl rand -base64 32`")
	}
	reg.InitialAccessTokenHash = sha256.Sum256([]byte(token))
	if len(reg.RedirectHosts) == 0 {
		r.fail("GATEHOUSE_DCR_REDIRECT_HOSTS", "must list the hosts registered redirect URIs may name (such as apps.example.com or *.apps.example.com) when GATEHOUSE_DCR_ENABLED is true")
	}
	for _, h := range reg.RedirectHosts {
		bare := strings.TrimPrefix(h, "*.")
		if bare == "" || strings.ContainsAny(bare, "/:*@ ") {
			r.fail("GATEHOUSE_DCR_REDIRECT_HOSTS", "%q must be a host name such as apps.example.com, or *.example.com", h)
		}
	}
	for _, g := range reg.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			r.fail("GATEHOUSE_DCR_GRANT_TYPES", "%q: registered clients are web clients; allow authorization_code and refresh_token only", g)
		}
	}
	return reg
}
