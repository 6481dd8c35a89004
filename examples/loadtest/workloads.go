package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// adminSetup makes (or finds) the organization o.org, its role "load"
// with o.permissions permissions, through the admin API as o.adminEmail,
// and returns the organization's id, the permissions and the
// administrator's access token.
func adminSetup(ctx context.Context, g *gatehouse, o options) (orgID string, perms []string, token string, err error) {
	admin, err := g.signIn(ctx, o.adminClient, "", o.adminRedirectURI, o.adminEmail, "", "org-admin")
	if err != nil {
		return "", nil, "", fmt.Errorf("administrator sign-in as %s (run `gatehouse admin grant %s` first): %w", o.adminEmail, o.adminEmail, err)
	}
	token = admin.AccessToken
	type org struct {
		ID   string `json:"id"`
		Slug string `json:"slug"`
	}
	// An earlier run made it already, or sync did: find it first.
	var list struct {
		Items []org `json:"items"`
	}
	if _, err := g.api(ctx, http.MethodGet, "/orgs?limit=200", token, nil, &list); err != nil {
		return "", nil, "", err
	}
	for _, x := range list.Items {
		if x.Slug == o.org {
			orgID = x.ID
		}
	}
	if orgID == "" {
		var made org
		if _, err := g.api(ctx, http.MethodPost, "/orgs", token, map[string]string{"slug": o.org, "name": "Load test"}, &made); err != nil {
			return "", nil, "", err
		}
		orgID = made.ID
	}
	if o.mode == "mix" {
		// What the example backend (examples/backend) enforces.
		perms = []string{"kb:read", "kb:write"}
	}
	for i := len(perms); i < o.permissions; i++ {
		perms = append(perms, fmt.Sprintf("resource%02d:read", i))
	}
	var roles struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if _, err := g.api(ctx, http.MethodGet, "/orgs/"+orgID+"/roles?limit=200", token, nil, &roles); err != nil {
		return "", nil, "", err
	}
	for _, r := range roles.Items {
		if r.Name == "load" {
			_, err := g.api(ctx, http.MethodPatch, "/orgs/"+orgID+"/roles/"+r.ID, token, map[string]any{"permissions": perms}, nil)
			return orgID, perms, token, err
		}
	}
	_, err = g.api(ctx, http.MethodPost, "/orgs/"+orgID+"/roles", token,
		map[string]any{"name": "load", "level": 20, "permissions": perms}, nil)
	return orgID, perms, token, err
}

// signInUsers signs in o.concurrency users of o.userPrefix at o.client,
// in orgID when set, and checks what their access tokens carry.
func signInUsers(ctx context.Context, g *gatehouse, o options, orgID string, perms []string) ([]*tokenAnswer, string, error) {
	users := make([]*tokenAnswer, o.concurrency)
	for i := range users {
		email := fmt.Sprintf("%s-%d@load.test", o.userPrefix, i)
		a, err := g.signIn(ctx, o.client, o.secret, o.redirectURI, email, o.groups, orgID)
		if err != nil {
			return nil, "", fmt.Errorf("sign-in of %s: %w", email, err)
		}
		users[i] = a
	}
	var c struct {
		OrgID         string   `json:"org_id"`
		Permissions   []string `json:"permissions"`
		EmailVerified *bool    `json:"email_verified"`
	}
	if err := claimsOf(users[0].AccessToken, &c); err != nil {
		return nil, "", fmt.Errorf("access token: %w", err)
	}
	if orgID != "" && (c.OrgID != orgID || len(c.Permissions) != len(perms)) {
		return nil, "", fmt.Errorf("access token has org_id %q and %d permissions, want %s and %d (is there an org-sync rule for dev:group:%s → %s, role load?)",
			c.OrgID, len(c.Permissions), orgID, len(perms), o.groups, o.org)
	}
	what := "users without organization"
	if orgID != "" {
		what = fmt.Sprintf("users in organization %s (%s) with %d permissions", o.org, orgID, len(c.Permissions))
	}
	if c.EmailVerified != nil && *c.EmailVerified {
		what += ", email_verified"
	}
	return users, what, nil
}

// signInLoadUsers signs the load's users in, first giving them an
// organization with the requested number of permissions when there are
// any; it returns the users' tokens, a description of them and the
// organization ("" for none).
func signInLoadUsers(ctx context.Context, g *gatehouse, o options) (users []*tokenAnswer, what, orgID string, err error) {
	var perms []string
	if o.permissions > 0 {
		if orgID, perms, _, err = adminSetup(ctx, g, o); err != nil {
			return nil, "", "", err
		}
	}
	users, what, err = signInUsers(ctx, g, o, orgID, perms)
	return users, what, orgID, err
}

func prepareRefresh(ctx context.Context, g *gatehouse, o options) (*workload, error) {
	users, what, orgID, err := signInLoadUsers(ctx, g, o)
	if err != nil {
		return nil, err
	}
	chains := make([]string, len(users))
	for i, u := range users {
		if u.RefreshToken == "" {
			return nil, fmt.Errorf("client %s got no refresh token (grant_types needs refresh_token)", o.client)
		}
		chains[i] = u.RefreshToken
	}
	var idTokens, resigned atomic.Int64
	w := &workload{describe: fmt.Sprintf("%d refresh chains, client_secret_basic, %s", len(chains), what)}
	w.do = func(ctx context.Context, i int) string {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {chains[i]}}.Encode()
		a, kind := g.tokenRequest(ctx, form, true)
		switch {
		case kind == "" && (a.RefreshToken == "" || a.AccessToken == ""):
			return "answer without access or refresh token"
		case kind == "":
			chains[i] = a.RefreshToken
			if a.IDToken != "" {
				idTokens.Add(1)
			}
		case strings.HasPrefix(kind, "http 503"):
			// Retry with the same token after Retry-After, as a client does.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		case strings.Contains(kind, "invalid_grant") && resigned.Add(1) <= int64(len(chains)):
			// The chain is dead: sign the user in again (at most once per
			// chain overall), the error stays counted.
			email := fmt.Sprintf("%s-%d@load.test", o.userPrefix, i)
			if u, err := g.signIn(ctx, o.client, o.secret, o.redirectURI, email, o.groups, orgID); err == nil {
				chains[i] = u.RefreshToken
			}
		}
		return kind
	}
	// The first answers tell whether refreshes carry ID tokens: probe one
	// chain before the run.
	if kind := w.do(ctx, 0); kind != "" {
		return nil, errors.New("first refresh: " + kind)
	}
	w.idTokens = idTokens.Load() > 0
	if w.idTokens {
		w.describe += ", an ID token with every refresh"
	} else {
		w.describe += ", no ID token on refresh"
	}
	return w, nil
}

func prepareExchange(ctx context.Context, g *gatehouse, o options) (*workload, error) {
	if o.permissions < 1 {
		o.permissions = 1
	}
	orgID, perms, token, err := adminSetup(ctx, g, o)
	if err != nil {
		return nil, err
	}
	var key struct {
		Key string `json:"key"`
	}
	if _, err := g.api(ctx, http.MethodPost, "/orgs/"+orgID+"/api-keys", token,
		map[string]any{"name": "load " + o.userPrefix, "permissions": perms}, &key); err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {key.Key},
		"subject_token_type": {"urn:gatehouse:params:oauth:token-type:api-key"}}.Encode()
	return &workload{
		describe: fmt.Sprintf("an API key of %s with %d permissions exchanged for access tokens, client_secret_basic", o.org, len(perms)),
		do: func(ctx context.Context, _ int) string {
			a, kind := g.tokenRequest(ctx, form, true)
			if kind == "" && a.AccessToken == "" {
				return "answer without access token"
			}
			return kind
		}}, nil
}

func prepareBearer(ctx context.Context, g *gatehouse, o options) (*workload, error) {
	users, what, _, err := signInLoadUsers(ctx, g, o)
	if err != nil {
		return nil, err
	}
	if o.mode == "me" {
		return &workload{describe: "GET /auth/me with the access tokens of " + what,
			do: func(ctx context.Context, i int) string {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/auth/me", nil)
				req.Header.Set("Authorization", "Bearer "+users[i].AccessToken)
				_, kind := g.send(req)
				return kind
			}}, nil
	}
	return &workload{describe: "introspection (client_secret_basic) of the access tokens of " + what,
		do: func(ctx context.Context, i int) string {
			form := url.Values{"token": {users[i].AccessToken}}.Encode()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/auth/introspect", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(g.client), url.QueryEscape(g.secret))
			body, kind := g.send(req)
			if kind == "" && !strings.Contains(string(body), `"active":true`) {
				return "introspection: not active"
			}
			return kind
		}}, nil
}
