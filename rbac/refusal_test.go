package rbac_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// answer is a refusal's JSON body.
type answer struct {
	Error         string   `json:"error"`
	Reason        string   `json:"reason"`
	Description   string   `json:"error_description"`
	Required      string   `json:"required"`
	RequiredAny   []string `json:"required_any"`
	RequiredRole  []string `json:"required_role"`
	RequiredScope []string `json:"required_scope"`
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return a
}

// TestForbiddenReasons: every 403 says why, as a machine reason and a
// sentence, beside the fields that say what the route requires.
func TestForbiddenReasons(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, nil)
	withClaims := func(edit func(map[string]any), perms ...string) string {
		c := is.claims(perms...)
		edit(c)
		return is.sign(c, nil)
	}
	noOrg := func(c map[string]any) { delete(c, "org_id") }
	scoped := func(scope string) func(map[string]any) { return func(c map[string]any) { c["scope"] = scope } }
	keep := func(map[string]any) {}
	cases := []struct {
		name   string
		mw     func(http.Handler) http.Handler
		token  string
		path   string
		want   answer
		status int
	}{
		{"missing permission", m.RequirePermission("kb", "write"), withClaims(keep, "kb:read"), "/kb",
			answer{Reason: rbac.ReasonMissingPermission, Description: "the credential's permissions do not grant kb:write", Required: "kb:write"}, 403},
		{"missing permission with underscores", m.RequirePermission("api_key", "rotate"), withClaims(keep, "api-key:rotate"), "/kb",
			answer{Reason: rbac.ReasonMissingPermission, Description: "the credential's permissions do not grant api_key:rotate", Required: "api_key:rotate"}, 403},
		{"granted with underscores", m.RequirePermission("api_key", "rotate"), withClaims(keep, "api_key:*"), "/kb", answer{}, 200},
		{"missing any permission", m.RequireAnyPermission("kb:delete", "kb:admin"), withClaims(keep, "kb:read"), "/kb",
			answer{Reason: rbac.ReasonMissingPermission, Description: "the credential's permissions grant none of kb:delete, kb:admin",
				RequiredAny: []string{"kb:delete", "kb:admin"}}, 403},
		{"missing role", m.RequireRole("owner"), withClaims(keep), "/kb",
			answer{Reason: rbac.ReasonMissingRole, Description: "the credential does not hold the role owner", RequiredRole: []string{"owner"}}, 403},
		{"missing roles", m.RequireRole("owner", "admin"), withClaims(keep), "/kb",
			answer{Reason: rbac.ReasonMissingRole, Description: "the credential holds none of the roles owner, admin", RequiredRole: []string{"owner", "admin"}}, 403},
		{"no organization, missing permission", m.RequirePermission("kb", "read"), withClaims(noOrg), "/kb",
			answer{Reason: rbac.ReasonNoActiveOrganization, Description: "the credential acts in no organization; refresh the token with organization=<organization id> to act in one",
				Required: "kb:read"}, 403},
		{"no organization, missing role", m.RequireRole("member"), withClaims(func(c map[string]any) { delete(c, "org_id"); delete(c, "roles") }), "/kb",
			answer{Reason: rbac.ReasonNoActiveOrganization, Description: "the credential acts in no organization; refresh the token with organization=<organization id> to act in one",
				RequiredRole: []string{"member"}}, 403},
		{"no organization, one named", m.Authenticate(), withClaims(noOrg), "/kb?org_id=org-a",
			answer{Reason: rbac.ReasonNoActiveOrganization, Description: "the credential acts in no organization; refresh the token with organization=<organization id> to act in one"}, 403},
		{"no organization, granted anyway", m.RequirePermission("kb", "read"), withClaims(noOrg, "kb:read"), "/kb", answer{}, 200},
		{"other organization", m.RequirePermission("kb", "read"), withClaims(keep, "*"), "/kb?org_id=org-b",
			answer{Reason: rbac.ReasonOtherOrganization, Description: "the credential acts in another organization than this request concerns", Required: "kb:read"}, 403},
		{"other organization, Authenticate", m.Authenticate(), withClaims(keep), "/kb?org_id=org-b",
			answer{Reason: rbac.ReasonOtherOrganization, Description: "the credential acts in another organization than this request concerns"}, 403},
		{"missing scope", m.RequireScope("kb.write"), withClaims(scoped("openid kb.read")), "/kb",
			answer{Reason: rbac.ReasonMissingScope, Description: "the token was not granted the scope kb.write", RequiredScope: []string{"kb.write"}}, 403},
		{"missing one of two scopes", m.RequireScope("kb.read", "kb.write"), withClaims(scoped("kb.read")), "/kb",
			answer{Reason: rbac.ReasonMissingScope, Description: "the token was not granted every one of the scopes kb.read kb.write",
				RequiredScope: []string{"kb.read", "kb.write"}}, 403},
		{"no scope claim", m.RequireScope("kb.read"), withClaims(keep), "/kb",
			answer{Reason: rbac.ReasonMissingScope, Description: "the token was not granted the scope kb.read", RequiredScope: []string{"kb.read"}}, 403},
		{"scope granted", m.RequireScope("kb.read"), withClaims(scoped("openid kb.read")), "/kb", answer{}, 200},
		{"both scopes granted", m.RequireScope("kb.read", "kb.write"), withClaims(scoped("kb.write openid kb.read")), "/kb", answer{}, 200},
		{"scope prefix is not the scope", m.RequireScope("kb.read"), withClaims(scoped("kb.reader kb")), "/kb",
			answer{Reason: rbac.ReasonMissingScope, Description: "the token was not granted the scope kb.read", RequiredScope: []string{"kb.read"}}, 403},
		{"scope, no organization", m.RequireScope("kb.read"), withClaims(func(c map[string]any) { delete(c, "org_id"); c["scope"] = "kb.read" }), "/kb", answer{}, 200},
		{"scope, other organization", m.RequireScope("kb.read"), withClaims(scoped("kb.read")), "/kb?org_id=org-b",
			answer{Reason: rbac.ReasonOtherOrganization, Description: "the credential acts in another organization than this request concerns",
				RequiredScope: []string{"kb.read"}}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			withBearer(tc.token)(r)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("= %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if tc.status != 403 {
				return
			}
			tc.want.Error = "insufficient_permission"
			if got := decode(t, rec); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("body = %+v\nwant   %+v", got, tc.want)
			}
			if rec.Header().Get("WWW-Authenticate") != "" || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", rec.Header())
			}
		})
	}
}

// TestForbidFromCheck: Options.Check refuses a valid credential with 403
// and its own reason and sentence (a suspended membership), beside the
// route's required fields; AuthenticateRequest returns the
// *ForbiddenError; Refuse still answers 401.
func TestForbidFromCheck(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, func(o *rbac.Options) {
		o.Check = func(_ context.Context, p *rbac.Principal) error {
			switch p.Subject {
			case "suspended":
				return rbac.Forbid(rbac.ReasonMembershipInactive, "your membership in this organization is suspended")
			case "wrapped":
				return fmt.Errorf("membership: %w", rbac.Forbid("plan_expired", "the organization's plan has expired"))
			case "gone":
				return rbac.Refuse("the user is disabled")
			}
			return nil
		}
	})
	tokenOf := func(sub string) string {
		c := is.claims("kb:read")
		c["sub"] = sub
		return is.sign(c, nil)
	}
	h := m.RequirePermission("kb", "read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, tc := range []struct {
		sub    string
		status int
		want   answer
	}{
		{"active", 200, answer{}},
		{"suspended", 403, answer{Error: "insufficient_permission", Reason: "membership_inactive",
			Description: "your membership in this organization is suspended", Required: "kb:read"}},
		{"wrapped", 403, answer{Error: "insufficient_permission", Reason: "plan_expired",
			Description: "the organization's plan has expired", Required: "kb:read"}},
		{"gone", 401, answer{Error: "invalid_token", Description: "the user is disabled"}},
	} {
		r := httptest.NewRequest(http.MethodGet, "/kb", nil)
		withBearer(tokenOf(tc.sub))(r)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.status {
			t.Fatalf("%s: = %d %s", tc.sub, rec.Code, rec.Body)
		}
		if tc.status != 200 {
			if got := decode(t, rec); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: body = %+v, want %+v", tc.sub, got, tc.want)
			}
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/kb", nil)
	withBearer(tokenOf("suspended"))(r)
	p, err := m.AuthenticateRequest(r)
	var fe *rbac.ForbiddenError
	if p != nil || !errors.As(err, &fe) || fe.Reason != rbac.ReasonMembershipInactive || errors.Is(err, rbac.ErrInvalidToken) {
		t.Fatalf("AuthenticateRequest = %v, %v", p, err)
	}

	for _, bad := range []string{"", "Membership", "membership inactive", "x-y", strings.Repeat("a", 65)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Forbid(%q) did not panic", bad)
				}
			}()
			_ = rbac.Forbid(bad, "x")
		}()
	}
}

// TestErrorWriterAndOnRefusal: a backend replaces the answer and learns
// every refusal (401, 403, 503) as a typed value; rbac writes nothing
// itself then, and the callback sees no credential.
func TestErrorWriterAndOnRefusal(t *testing.T) {
	is := newIssuer(t)
	var mu sync.Mutex
	var seen []rbac.Refusal
	m := newMiddleware(t, is, func(o *rbac.Options) {
		o.OnRefusal = func(r *http.Request, f *rbac.Refusal) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, *f)
			if f.Status == 403 {
				if p, ok := rbac.PrincipalFrom(r.Context()); !ok || p != f.Principal {
					t.Error("the request of a 403 does not carry its principal")
				}
			}
		}
		o.WriteError = func(w http.ResponseWriter, r *http.Request, f *rbac.Refusal) {
			w.Header().Set("X-Refusal", f.Reason)
			if f.Status == http.StatusForbidden {
				w.WriteHeader(http.StatusNotFound) // a backend hiding what exists
				_, _ = w.Write([]byte(`{"message":"` + f.Description + `"}`))
				return
			}
			rbac.WriteRefusal(w, f)
		}
	})
	h := m.RequirePermission("kb", "write")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tok := is.token("kb:read")
	do := func(edit func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/kb", nil)
		edit(r)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	rec := do(withBearer(tok))
	if rec.Code != 404 || rec.Header().Get("X-Refusal") != "missing_permission" || !strings.Contains(rec.Body.String(), "do not grant kb:write") {
		t.Fatalf("403 through the writer = %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	rec = do(func(*http.Request) {})
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("401 through WriteRefusal = %d %v", rec.Code, rec.Header())
	}
	expired := is.claims("kb:write")
	expired["exp"] = 1
	rec = do(withBearer(is.sign(expired, nil)))
	if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired = %d %v", rec.Code, rec.Header())
	}
	is.down.Store(true)
	rec = do(func(r *http.Request) { r.Header.Set("X-API-Key", "ghk_"+strings.Repeat("D", 43)) })
	is.down.Store(false)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("503 = %d %v", rec.Code, rec.Header())
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 {
		t.Fatalf("%d refusals seen, want 4", len(seen))
	}
	want := []struct {
		status      int
		code        string
		reason      string
		principal   bool
		cause       bool
		description string
	}{
		{403, "insufficient_permission", "missing_permission", true, false, "the credential's permissions do not grant kb:write"},
		{401, "invalid_token", "", false, true, "a bearer access token is required"},
		{401, "invalid_token", "", false, true, "the access token has expired"},
		{503, "temporarily_unavailable", "", false, true, "the credential cannot be checked right now; try again shortly"},
	}
	for i, w := range want {
		f := seen[i]
		if f.Status != w.status || f.Code != w.code || f.Reason != w.reason || (f.Principal != nil) != w.principal ||
			(f.Cause != nil) != w.cause || f.Description != w.description {
			t.Errorf("refusal %d = %+v, want %+v", i, f, w)
		}
		if f.Status == 503 && (f.RetryAfter != 5 || !errors.Is(f.Cause, rbac.ErrUnavailable)) {
			t.Errorf("503 refusal = %+v", f)
		}
		if f.Status == 403 && (f.Required != "kb:write" || f.Principal.Subject != "user-1") {
			t.Errorf("403 refusal = %+v", f)
		}
		if strings.Contains(fmt.Sprintf("%+v %v", f, f.Cause), tok[:30]) {
			t.Errorf("refusal %d holds the token", i)
		}
		if !json.Valid(f.Body()) {
			t.Errorf("Body() = %s", f.Body())
		}
	}
}

// TestRefusalBody: the default body of a refusal built by hand.
func TestRefusalBody(t *testing.T) {
	f := &rbac.Refusal{Status: 403, Code: rbac.CodeInsufficientPermission, Reason: rbac.ReasonMissingRole,
		Description: "no", RequiredRole: []string{"owner"}}
	if got := string(f.Body()); got != `{"error":"insufficient_permission","reason":"missing_role","error_description":"no","required_role":["owner"]}` {
		t.Fatalf("Body() = %s", got)
	}
	rec := httptest.NewRecorder()
	rbac.WriteRefusal(rec, &rbac.Refusal{Status: 503, Code: rbac.CodeTemporarilyUnavailable, RetryAfter: 7})
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "7" || rec.Header().Get("Cache-Control") != "no-store" ||
		rec.Body.String() != `{"error":"temporarily_unavailable"}` {
		t.Fatalf("WriteRefusal = %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// TestRequireScopeRefusesKeys: API keys carry no scopes, so a
// RequireScope route refuses them, saying so.
func TestRequireScopeRefusesKeys(t *testing.T) {
	is := newIssuer(t)
	m := newMiddleware(t, is, nil)
	key := "ghk_" + strings.Repeat("S", 43)
	is.apiKeys[key] = map[string]any{"active": true, "token_type": "api_key", "sub": "apikey:ks", "jti": "ks",
		"org_id": "org-a", "permissions": []string{"*"}, "scope": "kb.read"}
	h := m.RequireScope("kb.read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/kb", nil)
	r.Header.Set("X-API-Key", key)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	want := answer{Error: "insufficient_permission", Reason: "missing_scope",
		Description: "API keys and webhooks carry no scopes; this route takes an access token granted the scope kb.read", RequiredScope: []string{"kb.read"}}
	if got := decode(t, rec); rec.Code != 403 || !reflect.DeepEqual(got, want) {
		t.Fatalf("= %d %+v", rec.Code, got)
	}
	for _, bad := range [][]string{nil, {""}, {"kb read"}, {`kb"read`}, {"kb\\read"}, {"kb.lés"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RequireScope(%q) did not panic", bad)
				}
			}()
			m.RequireScope(bad...)
		}()
	}
	if p := rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAPIKey, Scope: "kb.read"}); p.HasScopes("kb.read") {
		t.Fatal("an API key has a scope")
	}
	if p := rbac.NewPrincipal(rbac.Principal{Kind: rbac.KindAccessToken, Scope: " kb.read  openid "}); !p.HasScopes("openid", "kb.read") || p.HasScopes("kb") {
		t.Fatal("HasScopes")
	}
}
