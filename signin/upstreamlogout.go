package signin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// UpstreamLogoutReturnPath is where an upstream returns the browser after
// an upstream logout; it must be registered at the upstream as a
// post-logout redirect URI (issuer + this path).
const UpstreamLogoutReturnPath = "/auth/logout/upstream"

// upstreamLogoutTTL bounds the round trip through the upstream's logout.
const upstreamLogoutTTL = 10 * time.Minute

// upstreamLogoutState is sealed into the state of an upstream logout: where
// the browser goes once the upstream sent it back.
type upstreamLogoutState struct {
	// Dest is the client's registered post-logout redirect, already
	// checked; "" shows the signed-out page.
	Dest      string `json:"d,omitempty"`
	ExpiresAt int64  `json:"e"`
}

// upstreamLogout returns where to send the browser to end browser session
// bs at its upstream too, then come back and go on to dest; "" when its
// provider offers no upstream logout (upstream_logout unset) or cannot
// now: the logout at Gatehouse stands either way.
func (s *Service) upstreamLogout(ctx context.Context, bs *models.BrowserSession, dest string) string {
	prov, ok := s.providers.Get(bs.Provider)
	if !ok {
		return ""
	}
	ul, ok := prov.(providers.UpstreamLogout)
	if !ok {
		return ""
	}
	state, err := s.sealUpstreamLogoutState(upstreamLogoutState{Dest: dest, ExpiresAt: s.now().Add(upstreamLogoutTTL).Unix()})
	if err != nil {
		return ""
	}
	target, err := ul.LogoutURL(ctx, s.UpstreamLogoutOf(bs), strings.TrimSuffix(s.issuer, "/")+UpstreamLogoutReturnPath, state)
	if err != nil {
		s.log.WarnContext(ctx, "upstream logout skipped", slog.String("provider", bs.Provider), slog.String("error", err.Error()))
		return ""
	}
	return target
}

func (s *Service) sealUpstreamLogoutState(st upstreamLogoutState) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	sealed, err := tokens.Seal(s.sso.returnKey, plain, []byte(UpstreamLogoutReturnPath))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// maxUpstreamLogoutState bounds the state read back (a real one is short).
const maxUpstreamLogoutState = 4096

// UpstreamLogoutReturn answers the browser's return from an upstream
// logout: the state Gatehouse sealed sends it on to the client's
// registered post-logout redirect (302), or shows the signed-out page. A
// state that does not open or has expired shows the signed-out page too:
// the person is signed out of Gatehouse already, and nothing but a sealed
// state can pick where the browser goes (no open redirect).
func (s *Service) UpstreamLogoutReturn(ctx context.Context, r *http.Request) Outcome {
	signedOut := Outcome{Status: http.StatusOK, SignedOut: true}
	raw := r.URL.Query().Get("state")
	if raw == "" || len(raw) > maxUpstreamLogoutState {
		return signedOut
	}
	st, err := s.openUpstreamLogoutState(raw)
	if err != nil {
		s.log.InfoContext(ctx, "upstream logout return without a valid state", slog.String("error", err.Error()))
		return signedOut
	}
	if st.Dest == "" {
		return signedOut
	}
	return Outcome{Status: http.StatusFound, RedirectURL: st.Dest}
}

var errUpstreamLogoutState = fault.New(fault.LogoutUnverified, errors.New("upstream logout state does not open or has expired"))

func (s *Service) openUpstreamLogoutState(raw string) (*upstreamLogoutState, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, errUpstreamLogoutState
	}
	plain, err := tokens.Open(s.sso.returnKey, sealed, []byte(UpstreamLogoutReturnPath))
	if err != nil {
		return nil, errUpstreamLogoutState
	}
	var st upstreamLogoutState
	if json.Unmarshal(plain, &st) != nil || s.now().Unix() > st.ExpiresAt {
		return nil, errUpstreamLogoutState
	}
	return &st, nil
}
