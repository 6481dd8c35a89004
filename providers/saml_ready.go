package providers

import (
	"context"
	"fmt"
)

// Ready reports whether the IdP's metadata is loaded: a SAML provider
// without it cannot start a sign-in. Metadata kept after a failed refresh
// still counts as loaded (sign-ins work with it), as OIDC discovery does.
// Without metadata, Ready starts one fetch in the background when the last
// attempt is older than retryEmpty, so a provider whose IdP was down at
// start recovers without waiting for a sign-in, and probes cannot turn
// into a stream of upstream fetches.
func (p *samlProvider) Ready(context.Context) error {
	m := p.idp
	m.mu.Lock()
	loaded, lastErr := m.current != nil, m.lastErr
	retry := !loaded && m.url != "" && !m.refreshing && m.now().Sub(m.lastTry) >= retryEmpty
	if retry {
		m.refreshing = true
	}
	m.mu.Unlock()
	if loaded {
		return nil
	}
	if retry {
		m.loadDetached("SAML IdP metadata still not loaded")
	}
	if lastErr != nil {
		return fmt.Errorf("IdP metadata not loaded: %w", lastErr)
	}
	return fmt.Errorf("IdP metadata not loaded yet")
}
