package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// gatehouse is the HTTP client of one Gatehouse.
type gatehouse struct {
	base      string
	client    string
	secret    string
	provider  string // the provider sign-ins go through ("dev": its form)
	transport *http.Transport
	http      *http.Client
	timeout   time.Duration
	// token posts to the token endpoint with client_secret_basic; nil
	// when the server is not plain HTTP.
	token *leanClient
}

func newGatehouse(o options) *gatehouse {
	tr := &http.Transport{MaxIdleConns: 2 * (o.concurrency + 4), MaxIdleConnsPerHost: o.concurrency + 4, IdleConnTimeout: time.Minute}
	g := &gatehouse{base: o.base, client: o.client, secret: o.secret, provider: o.provider, transport: tr, timeout: o.requestTimeout,
		http: &http.Client{Transport: tr, Timeout: o.requestTimeout, CheckRedirect: noRedirects}}
	g.token = newLeanClient(g, "/auth/token", o.concurrency+4)
	return g
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// tokenAnswer is a token endpoint's answer, success or error.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

// send sends req and reads the answer; kind is "" for a 2xx answer,
// else what went wrong: "transport: …" or "http STATUS [oauth error]".
func (g *gatehouse) send(req *http.Request) ([]byte, string) {
	resp, err := g.http.Do(req)
	if err != nil {
		return nil, transportKind(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, transportKind(err)
	}
	return body, answerKind(resp.StatusCode, body)
}

// answerKind is "" for a 2xx answer, else "http STATUS [oauth error]".
func answerKind(status int, body []byte) string {
	if status/100 == 2 {
		return ""
	}
	if status == http.StatusServiceUnavailable && bytes.Contains(body, []byte("No server is available")) {
		return "http 503 from the load balancer: no replica ready" // HAProxy's own page
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return strings.TrimSpace(fmt.Sprintf("http %d %s", status, e.Error))
}

func transportKind(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the method and URL are not the kind
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = fmt.Errorf("%s: %w", oe.Op, oe.Err) // nor the connection's ports
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "transport: timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "transport: connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "transport: connection reset"
	}
	return "transport: " + err.Error()
}

// tokenRequest posts form to the token endpoint as the client
// (client_secret_basic when basic, else client_id in the form).
func (g *gatehouse) tokenRequest(ctx context.Context, form string, basic bool) (*tokenAnswer, string) {
	if basic && g.token != nil {
		var a *tokenAnswer
		kind := g.token.post(ctx, form, func(body []byte, kind string) string {
			if kind != "" {
				a = &tokenAnswer{}
				_ = json.Unmarshal(body, a)
				return kind
			}
			var err error
			if a, err = tokenFields(body); err != nil {
				return "answer is not JSON"
			}
			return ""
		})
		if a == nil {
			a = &tokenAnswer{}
		}
		return a, kind
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/auth/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(g.client), url.QueryEscape(g.secret))
	}
	body, kind := g.send(req)
	var a tokenAnswer
	if body != nil {
		if err := json.Unmarshal(body, &a); err != nil && kind == "" {
			return nil, "answer is not JSON"
		}
	}
	return &a, kind
}

// signingAlg is the algorithm of the first key Gatehouse publishes.
func (g *gatehouse) signingAlg(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/.well-known/jwks.json", nil)
	body, kind := g.send(req)
	if kind != "" {
		return "", fmt.Errorf("GET /.well-known/jwks.json: %s", kind)
	}
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 || set.Keys[0].Alg == "" {
		return "", fmt.Errorf("GET /.well-known/jwks.json: no key with an alg (%v)", err)
	}
	return set.Keys[0].Alg, nil
}

var stateField = regexp.MustCompile(`name="state" value="([^"]+)"`)

// signIn runs the authorization code flow with PKCE for email at client,
// through the dev provider's form (email in groups) or, with another
// provider, through that upstream (which signs login_hint in at once, as
// examples/fakeidp does), with the organization hint when set, and
// exchanges the code: with client_secret_basic when secret is set, as a
// public client otherwise.
func (g *gatehouse) signIn(ctx context.Context, client, secret, redirectURI, email, groups, organization string) (*tokenAnswer, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Transport: g.transport, Jar: jar, Timeout: g.timeout, CheckRedirect: noRedirects}
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirectURI},
		"scope": {"openid email profile"}, "state": {randomString(12)}, "provider": {g.provider}, "login_hint": {email},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if organization != "" {
		q.Set("organization", organization)
	}
	step := func(req *http.Request, want int) (*http.Response, string, error) {
		if !loopback(req.URL.Hostname()) {
			return nil, "", fmt.Errorf("refusing to follow %s off this machine", req.URL.Host)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != want {
			return nil, "", fmt.Errorf("%s %s = %d, want %d: %.200s", req.Method, req.URL.Path, resp.StatusCode, want, body)
		}
		return resp, string(body), nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/auth/login?"+q.Encode(), nil)
	resp, _, err := step(req, http.StatusFound)
	if err != nil {
		return nil, err
	}
	form, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("authorize: bad Location: %w", err)
	}
	var back *url.URL
	if g.provider == "dev" {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, form.String(), nil)
		_, page, err := step(req, http.StatusOK)
		if err != nil {
			return nil, err
		}
		m := stateField.FindStringSubmatch(page)
		if m == nil {
			return nil, errors.New("dev form: no state field (is the dev provider enabled?)")
		}
		post := url.Values{"state": {m[1]}, "email": {email}, "name": {"Load " + email}, "groups": {groups}}
		target := url.URL{Scheme: form.Scheme, Host: form.Host, Path: form.Path}
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(post.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, _, err = step(req, http.StatusSeeOther); err != nil {
			return nil, err
		}
		back, err = url.Parse(resp.Header.Get("Location"))
	} else {
		// The upstream's authorization endpoint, then Gatehouse's callback:
		// redirects until one leads to the client.
		next := form
		for hop := 0; hop < 5 && !strings.HasPrefix(next.String(), redirectURI); hop++ {
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
			if resp, err = hc.Do(req); err != nil {
				return nil, fmt.Errorf("sign-in at %s: %w", next.Path, err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
				return nil, fmt.Errorf("GET %s = %d, want a redirect: %.200s", next.Path, resp.StatusCode, body)
			}
			if next, err = next.Parse(resp.Header.Get("Location")); err != nil {
				return nil, fmt.Errorf("GET %s: bad Location: %w", req.URL.Path, err)
			}
			if !strings.HasPrefix(next.String(), redirectURI) && !loopback(next.Hostname()) {
				return nil, fmt.Errorf("refusing to follow %s off this machine", next.Host)
			}
		}
		back = next
	}
	if err != nil || back == nil || back.Query().Get("code") == "" {
		return nil, fmt.Errorf("sign-in ended at %q, not the client with a code", resp.Header.Get("Location"))
	}
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/auth/token", nil)
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	} else {
		exchange.Set("client_id", client)
	}
	req.Body = io.NopCloser(strings.NewReader(exchange.Encode()))
	req.ContentLength = int64(len(exchange.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, kind := g.send(req)
	if kind != "" {
		return nil, fmt.Errorf("code exchange: %s: %.200s", kind, body)
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.AccessToken == "" {
		return nil, fmt.Errorf("code exchange: no access token in %.200s", body)
	}
	return &a, nil
}

// api calls the admin API with token; out receives the JSON answer.
func (g *gatehouse) api(ctx context.Context, method, path, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, g.base+"/api/v1/admin"+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s = %d: %.300s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// kindOf classifies a failed sign-in for the error table.
func kindOf(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i > 0 && strings.Contains(msg[:i], " = ") {
		return "sign-in: " + msg[:i]
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return "sign-in: " + msg
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// claimsOf decodes a JWT's payload without checking it (the load tool
// only reports what the tokens say).
func claimsOf(jwt string, v any) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
