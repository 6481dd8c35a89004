package providers

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

func intp(n int) *int { return &n }

// TestOIDCForwardsMaxAgeAndACRValues: every OpenID Connect kind passes the
// client's max_age and acr_values upstream, checks the auth_time that
// comes back, and passes acr and amr through.
func TestOIDCForwardsMaxAgeAndACRValues(t *testing.T) {
	for _, kind := range []string{"oidc", "google", "auth0"} {
		t.Run(kind, func(t *testing.T) {
			p, fake := startKind(t, kind, func(o *providertest.Options) {
				o.User["acr"] = "urn:example:loa:2"
				o.User["amr"] = []any{"pwd", "otp"}
			})
			before := time.Now().Add(-time.Second)
			id, err := signIn(t, p, BeginRequest{MaxAge: intp(300), ACRValues: "urn:example:loa:2 urn:example:loa:3"})
			if err != nil {
				t.Fatal(err)
			}
			q := fake.LastAuthorize()
			if q.Get("max_age") != "300" || q.Get("acr_values") != "urn:example:loa:2 urn:example:loa:3" {
				t.Fatalf("authorization request = %v", q)
			}
			if id.ACR != "urn:example:loa:2" || !slices.Equal(id.AMR, []string{"pwd", "otp"}) ||
				id.AuthTime.Before(before.Truncate(time.Second)) || id.AuthTime.After(time.Now()) {
				t.Fatalf("acr %q, amr %v, auth_time %v", id.ACR, id.AMR, id.AuthTime)
			}
			if id.UpstreamLogout != "" {
				t.Fatal("an identity without upstream_logout carries an upstream logout")
			}
			if _, ok := p.(UpstreamLogout); ok {
				t.Fatal("a provider without upstream_logout implements UpstreamLogout")
			}
			// Without them, neither is sent, and what the upstream says
			// about the sign-in still passes through.
			if id, err = signIn(t, p, BeginRequest{}); err != nil {
				t.Fatal(err)
			}
			if q := fake.LastAuthorize(); q.Has("max_age") || q.Has("acr_values") {
				t.Fatalf("authorization request = %v", q)
			}
			if id.ACR != "urn:example:loa:2" || len(id.AMR) != 2 || !id.AuthTime.IsZero() {
				t.Fatalf("acr %q, amr %v, auth_time %v", id.ACR, id.AMR, id.AuthTime)
			}
		})
	}
}

// TestOIDCSSOClaims: max_age is enforced on the ID token's auth_time, and
// acr and amr pass through only well-formed.
func TestOIDCSSOClaims(t *testing.T) {
	now := time.Now().Unix()
	eight := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}
	for _, tc := range []struct {
		name   string
		claims map[string]any // set on the ID token (nil value: removed)
		begin  BeginRequest
		// want is a substring of the refusal; "" for success.
		want    string
		acr     string
		amr     []string
		param   map[string]string // authorization request parameters ("": absent)
		hasAuth bool              // Identity.AuthTime is set
	}{
		{name: "max_age met", begin: BeginRequest{MaxAge: intp(60)}, hasAuth: true},
		{name: "max_age without auth_time", begin: BeginRequest{MaxAge: intp(60)}, claims: map[string]any{"auth_time": nil},
			want: "no auth_time"},
		{name: "max_age with auth_time as a string", begin: BeginRequest{MaxAge: intp(60)},
			claims: map[string]any{"auth_time": fmt.Sprint(now)}, want: "no auth_time"},
		{name: "max_age with auth_time too old", begin: BeginRequest{MaxAge: intp(300)},
			claims: map[string]any{"auth_time": now - 300 - 61 - 5}, want: "older than the max_age"},
		{name: "max_age with auth_time old within the skew", begin: BeginRequest{MaxAge: intp(300)},
			claims: map[string]any{"auth_time": now - 300 - 30}, hasAuth: true},
		{name: "max_age=0 and an upstream session of two minutes", begin: BeginRequest{MaxAge: intp(0)},
			claims: map[string]any{"auth_time": now - 120}, want: "older than the max_age", param: map[string]string{"max_age": "0"}},
		{name: "negative max_age counts as 0", begin: BeginRequest{MaxAge: intp(-5)},
			claims: map[string]any{"auth_time": now - 120}, want: "older than the max_age", param: map[string]string{"max_age": "0"}},
		{name: "a ten-digit max_age beyond a time.Duration is never exceeded", begin: BeginRequest{MaxAge: intp(9_999_999_999)},
			claims: map[string]any{"auth_time": now - 86400*365}, hasAuth: true, param: map[string]string{"max_age": "9999999999"}},
		{name: "auth_time in the future", claims: map[string]any{"auth_time": now + 600}, want: "auth_time"},
		{name: "auth_time without max_age", claims: map[string]any{"auth_time": now - 86400}, hasAuth: true},
		{name: "acr", claims: map[string]any{"acr": "urn:mace:incommon:iap:silver"}, acr: "urn:mace:incommon:iap:silver"},
		{name: "acr with a control character", claims: map[string]any{"acr": "gold\x00\x1b[31m"}},
		{name: "acr with a newline", claims: map[string]any{"acr": "gold\nlevel"}},
		{name: "acr with a space", claims: map[string]any{"acr": "gold level"}},
		{name: "acr huge", claims: map[string]any{"acr": strings.Repeat("a", maxACRLen+1)}},
		{name: "acr at the bound", claims: map[string]any{"acr": strings.Repeat("a", maxACRLen)}, acr: strings.Repeat("a", maxACRLen)},
		{name: "acr not a string", claims: map[string]any{"acr": 2}},
		{name: "acr non-ASCII", claims: map[string]any{"acr": "gold\u202e"}},
		{name: "amr", claims: map[string]any{"amr": []any{"pwd", "mfa", "pwd"}}, amr: []string{"pwd", "mfa"}},
		{name: "amr a string", claims: map[string]any{"amr": "pwd"}},
		{name: "amr an object", claims: map[string]any{"amr": map[string]any{"pwd": true}}},
		{name: "amr with non-strings", claims: map[string]any{"amr": []any{1, "pwd", map[string]any{}, nil, true}}, amr: []string{"pwd"}},
		{name: "amr value with a space", claims: map[string]any{"amr": []any{"pwd mfa", "otp"}}, amr: []string{"otp"}},
		{name: "amr value with a tab", claims: map[string]any{"amr": []any{"pwd\tmfa"}}},
		{name: "amr value too long", claims: map[string]any{"amr": []any{strings.Repeat("m", maxAMRLen+1), "hwk"}}, amr: []string{"hwk"}},
		{name: "amr empty value", claims: map[string]any{"amr": []any{""}}},
		{name: "amr with too many values", claims: map[string]any{"amr": []any{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10"}},
			amr: eight},
		{name: "acr_values with a control character are not sent", begin: BeginRequest{ACRValues: "gold\r\nx"},
			param: map[string]string{"acr_values": ""}},
		{name: "acr_values too long are not sent", begin: BeginRequest{ACRValues: strings.Repeat("a ", maxACRValuesLen)},
			param: map[string]string{"acr_values": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, fake := startKind(t, "oidc", nil)
			fake.SetIDTokenHook(func(d *providertest.TokenDraft) {
				for k, v := range tc.claims {
					if v == nil {
						delete(d.Claims, k)
					} else {
						d.Claims[k] = v
					}
				}
			})
			id, err := signIn(t, p, tc.begin)
			for k, v := range tc.param {
				if got := fake.LastAuthorize().Get(k); got != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			if tc.want != "" {
				var ue *UserError
				if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue) {
					t.Fatalf("want a refusal containing %q, got %v", tc.want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if id.ACR != tc.acr || !slices.Equal(id.AMR, tc.amr) || id.AuthTime.IsZero() == tc.hasAuth {
				t.Fatalf("acr %q amr %q auth_time %v; want acr %q amr %q auth_time set %v", id.ACR, id.AMR, id.AuthTime, tc.acr, tc.amr, tc.hasAuth)
			}
		})
	}
}

// TestOIDCPromptUpstream: every OpenID Connect kind asks its upstream
// for a login where the client asked for consent (Gatehouse honours
// consent as a new sign-in), and passes the other values as they are.
func TestOIDCPromptUpstream(t *testing.T) {
	for _, kind := range []string{"oidc", "google", "auth0"} {
		p, fake := startKind(t, kind, nil)
		for _, tc := range []struct{ prompt, want string }{
			{"", ""},
			{"consent", "login"},
			{"login", "login"},
			{"login consent", "login"},
			{"consent login", "login"},
			{"consent select_account", "login select_account"},
			{"select_account", "select_account"},
		} {
			t.Run(kind+"/"+tc.prompt, func(t *testing.T) {
				if _, err := signIn(t, p, BeginRequest{Prompt: tc.prompt}); err != nil {
					t.Fatal(err)
				}
				q := fake.LastAuthorize()
				if got := q.Get("prompt"); got != tc.want || q.Has("prompt") != (tc.want != "") {
					t.Fatalf("upstream prompt = %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestMaxAgeWithSkew(t *testing.T) {
	for _, tc := range []struct {
		seconds int
		skew    time.Duration
		want    time.Duration
	}{
		{0, 0, 0},
		{-5, time.Minute, time.Minute},
		{300, time.Minute, 6 * time.Minute},
		{9_223_372_036, 0, 9_223_372_036 * time.Second},
		{9_223_372_036, time.Minute, math.MaxInt64},
		{9_999_999_999, time.Minute, math.MaxInt64},
	} {
		if got := maxAgeWithSkew(tc.seconds, tc.skew); got != tc.want {
			t.Errorf("maxAgeWithSkew(%d, %v) = %v, want %v", tc.seconds, tc.skew, got, tc.want)
		}
	}
}

// TestUserInfoCannotSupplySignInFacts: auth_time, acr and amr come from
// the ID token alone; a UserInfo answer carrying them changes nothing,
// and cannot satisfy max_age.
func TestUserInfoCannotSupplySignInFacts(t *testing.T) {
	p, fake := startKind(t, "oidc", func(o *providertest.Options) {
		o.UserInfoOnly = []string{"email", "email_verified", "name", "groups"}
	})
	fake.SetUserInfoHook(func(c map[string]any) {
		c["acr"], c["amr"], c["auth_time"] = "urn:example:loa:3", []any{"mfa"}, time.Now().Unix()
	})
	id, err := signIn(t, p, BeginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "ada@example.com" || id.ACR != "" || id.AMR != nil || !id.AuthTime.IsZero() {
		t.Fatalf("identity = %+v", id)
	}
	fake.SetIDTokenHook(func(d *providertest.TokenDraft) { delete(d.Claims, "auth_time") })
	if _, err := signIn(t, p, BeginRequest{MaxAge: intp(60)}); !errors.Is(err, ErrInvalidResponse) ||
		!strings.Contains(err.Error(), "no auth_time") {
		t.Fatalf("max_age satisfied by UserInfo: %v", err)
	}
}
