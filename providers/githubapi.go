package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The GitHub REST API client the github provider reads a person with:
// one call (get) with the pinned API version, a bounded answer and
// GitHub's rate-limit and error conventions; every page of a listing
// (getAll) by the Link header, kept on the configured API host
// (nextPage); and GitHub's sign that it left organizations out
// (githubPartial).

const (
	// githubAPIVersion pins the REST API version GitHub answers with, so a
	// future default cannot change the fields Gatehouse reads.
	githubAPIVersion = "2022-11-28"
	// githubMaxPages bounds a listing (100 items a page). More is not a
	// real account; stopping early would report too few groups, so it is
	// an error rather than a partial answer.
	githubMaxPages = 50
	// githubMaxBody bounds one API answer (a page of 100 teams is ~300 KB).
	githubMaxBody = 4 << 20
)

// errGitHubTokenRefused marks an API answer 401: the access token is no
// longer valid (revoked, the authorization removed, the account gone).
var errGitHubTokenRefused = errors.New("token refused")

// getAll reads every page of an API list into all, following the Link
// header to the end. It reports whether any page said GitHub left items
// out (githubPartial).
func getAll[T any](ctx context.Context, p *githubProvider, token, path string, all *[]T) (partial bool, err error) {
	next := p.apiURL + path + "?per_page=100"
	for page := 0; next != ""; page++ {
		if page == githubMaxPages {
			return partial, &UserError{Message: githubMsgBadAnswer,
				Err: fmt.Errorf("%w: GitHub %s has more than %d pages", ErrInvalidResponse, path, githubMaxPages)}
		}
		var items []T
		h, err := p.get(ctx, token, next, &items)
		if err != nil {
			return partial, err
		}
		*all = append(*all, items...)
		partial = partial || githubPartial(h)
		if next, err = nextPage(h.Get("Link"), p.api); err != nil {
			return partial, &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub %s: %v", ErrInvalidResponse, path, err)}
		}
	}
	return partial, nil
}

// githubPartial reports whether an answer carries GitHub's
// `X-GitHub-SSO: partial-results; organizations=<ids>`: the listing left
// out organizations that enforce SAML single sign-on which the token is
// not authorized for. The ids are GitHub's numeric organization ids,
// which Gatehouse does not keep, so only the fact is used.
func githubPartial(h http.Header) bool {
	for _, v := range h.Values("X-GitHub-SSO") {
		directive, _, _ := strings.Cut(v, ";")
		if strings.EqualFold(strings.TrimSpace(directive), "partial-results") {
			return true
		}
	}
	return false
}

// get calls the REST API and decodes a JSON answer; it returns the
// answer's headers (pagination, single sign-on).
func (p *githubProvider) get(ctx context.Context, token, rawURL string, into any) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("User-Agent", "Gatehouse")
	path := req.URL.Path // errors name the endpoint only
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, &UserError{Message: githubMsgUnavailable, Err: fmt.Errorf("%w: GitHub %s: %v", ErrUnavailable, path, redactURLError(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, githubMaxBody+1))
	if err != nil {
		return nil, &UserError{Message: githubMsgUnavailable, Err: fmt.Errorf("%w: GitHub %s: reading the answer: %v", ErrUnavailable, path, err)}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case githubUnavailable(resp, body):
		return nil, &UserError{Message: githubMsgUnavailable, Err: fmt.Errorf("%w: GitHub %s answered %d%s", ErrUnavailable, path, resp.StatusCode, rateLimitDetail(resp))}
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, &UserError{Message: githubMsgRetry, Err: fmt.Errorf("%w: GitHub %s refused the access token (401, %w)", ErrInvalidResponse, path, errGitHubTokenRefused)}
	case resp.StatusCode == http.StatusForbidden:
		// Not a rate limit: an organization's SAML or IP allow-list
		// policy, or a missing scope. Retrying alone will not help.
		return nil, &UserError{Message: githubMsgForbidden, Err: fmt.Errorf("%w: GitHub %s answered 403: %s", ErrInvalidResponse, path, githubMessage(body))}
	default:
		return nil, &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub %s answered %d: %s", ErrInvalidResponse, path, resp.StatusCode, githubMessage(body))}
	}
	if len(body) > githubMaxBody {
		return nil, &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub %s answer is larger than %d bytes", ErrInvalidResponse, path, githubMaxBody)}
	}
	if err := json.Unmarshal(body, into); err != nil {
		return nil, &UserError{Message: githubMsgBadAnswer, Err: fmt.Errorf("%w: GitHub %s: %v", ErrInvalidResponse, path, err)}
	}
	return resp.Header, nil
}

// githubUnavailable reports an answer worth retrying later: a server
// error, or a primary or secondary rate limit (403 or 429 with
// X-RateLimit-Remaining: 0, Retry-After, or GitHub's rate-limit message).
func githubUnavailable(resp *http.Response, body []byte) bool {
	switch {
	case resp.StatusCode >= 500:
		return true
	case resp.StatusCode == http.StatusTooManyRequests:
		return true
	case resp.StatusCode == http.StatusForbidden:
		return resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != "" ||
			strings.Contains(strings.ToLower(githubMessage(body)), "rate limit")
	}
	return false
}

func rateLimitDetail(resp *http.Response) string {
	var parts []string
	if v := resp.Header.Get("Retry-After"); v != "" {
		parts = append(parts, "retry after "+truncateASCII(v, 32)+"s")
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		parts = append(parts, "rate limit exhausted until "+truncateASCII(resp.Header.Get("X-RateLimit-Reset"), 32))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// githubMessage is the `message` of a GitHub error body, bounded, for logs.
func githubMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &e)
	return truncateASCII(e.Message, 200)
}

func truncateASCII(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n]
	}
	return s
}

// nextPage returns the rel="next" URL of a Link header (RFC 8288), or ""
// on the last page. The access token is sent to that URL, so it must be
// on the configured API host, under the API path.
func nextPage(link string, api *url.URL) (string, error) {
	rest := link
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			return "", nil
		}
		end := strings.IndexByte(rest, '>')
		if rest[0] != '<' || end < 0 {
			return "", errors.New("malformed Link header")
		}
		target := rest[1:end]
		rest = rest[end+1:]
		// The parameters run to the next comma outside a quoted string.
		i, quoted := 0, false
		for ; i < len(rest) && (quoted || rest[i] != ','); i++ {
			switch {
			case rest[i] == '"':
				quoted = !quoted
			case rest[i] == '\\' && quoted:
				i++
			}
		}
		params := rest[:min(i, len(rest))]
		rest = rest[min(i, len(rest)):]
		if !linkIsNext(params) {
			continue
		}
		u, err := api.Parse(target)
		if err != nil {
			return "", errors.New("malformed next link")
		}
		if u.Scheme != api.Scheme || u.Host != api.Host || u.User != nil || u.Fragment != "" ||
			!strings.HasPrefix(u.Path, strings.TrimSuffix(api.Path, "/")+"/") {
			return "", errors.New("next link leaves the configured API URL")
		}
		return u.String(), nil
	}
}

// linkIsNext reports whether link parameters (`; rel="next"; ...`) carry
// the relation type next (rel may list several, space-separated).
func linkIsNext(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
			continue
		}
		for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
			if strings.EqualFold(rel, "next") {
				return true
			}
		}
	}
	return false
}
