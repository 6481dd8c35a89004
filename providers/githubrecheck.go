package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// githubSaved is what the github kind keeps to re-check a person: the
// OAuth App's user access token (GitHub's do not expire; the person or an
// organization owner can revoke them) and the numeric user id it was
// issued for.
type githubSaved struct {
	AccessToken string `json:"at"`
	Subject     string `json:"sub"`
}

func githubRecheckSaved(token, subject string) string {
	raw, _ := json.Marshal(githubSaved{AccessToken: token, Subject: subject})
	return string(raw)
}

// RecheckPolicy is the provider's recheck_interval and friends.
func (p *githubProvider) RecheckPolicy() RecheckPolicy { return p.recheck }

// Recheck reads the person again with the kept access token, exactly as
// a sign-in does (readIdentity): a 401 (the token was revoked, the
// authorization removed, the account deleted or suspended), another user
// behind the token, or no longer being in allowed_organizations /
// allowed_teams is ErrGone; rate limits, server errors and timeouts are
// ErrUnavailable. The token is not rotated.
func (p *githubProvider) Recheck(ctx context.Context, saved string) (*Identity, string, error) {
	var s githubSaved
	if err := json.Unmarshal([]byte(saved), &s); err != nil || s.AccessToken == "" || s.Subject == "" {
		return nil, "", fmt.Errorf("%w: no GitHub access token kept for a re-check", ErrUnavailable)
	}
	id, err := p.readIdentity(ctx, s.AccessToken)
	switch {
	case errors.Is(err, errGitHubTokenRefused):
		return nil, saved, gone("GitHub refused the kept access token (401)")
	case errors.Is(err, ErrDenied):
		return nil, saved, gone("%v", err)
	case errors.Is(err, ErrUnavailable):
		return nil, saved, err
	case err != nil:
		// A 403 (an organization's SSO or IP policy), an answer Gatehouse
		// does not understand: not proof the person is gone.
		return nil, saved, fmt.Errorf("%w: %v", ErrUnavailable, err)
	case id.Subject != s.Subject:
		return nil, saved, gone("the kept access token now belongs to GitHub user %s", truncate(id.Subject, 20))
	}
	id.Recheck = saved
	return id, saved, nil
}
