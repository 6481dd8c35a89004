package providers

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestOIDCSettings: each kind checks its own settings and names every
// bad field at once; dangerous knobs refuse production.
func TestOIDCSettings(t *testing.T) {
	const creds = "client_id: app\nclient_secret: s3cret-s3cret\n"
	for _, tc := range []struct {
		name, typ, yaml string
		production      bool
		// want lists "field: message fragment" expected among the problems;
		// empty means the settings are valid.
		want []string
	}{
		{name: "nothing", typ: "oidc", yaml: "{}", want: []string{"client_id: is required", "client_secret: is required", "issuer: is required"}},
		{name: "plain HTTP issuer", typ: "oidc", yaml: creds + "issuer: http://idp.example.com", want: []string{"issuer: must use https"}},
		{name: "issuer with a query", typ: "oidc", yaml: creds + "issuer: https://idp.example.com/?x=1", want: []string{"issuer: must be an https URL"}},
		{name: "insecure HTTP in production", typ: "oidc", production: true,
			yaml: creds + "issuer: http://localhost:1\ninsecure_allow_http: true", want: []string{"insecure_allow_http: not allowed with GATEHOUSE_ENV=production"}},
		{name: "scopes without openid", typ: "oidc", yaml: creds + "issuer: https://localhost:1\nscopes: [email]", want: []string{"scopes: must include openid"}},
		{name: "alg none", typ: "oidc", yaml: creds + "issuer: https://localhost:1\nsigning_algorithms: [RS256, none]", want: []string{`signing_algorithms: "none" is not allowed`}},
		{name: "HMAC", typ: "oidc", yaml: creds + "issuer: https://localhost:1\nsigning_algorithms: [HS256]", want: []string{`signing_algorithms: "HS256" is not allowed`}},
		{name: "skew too large", typ: "oidc", yaml: creds + "issuer: https://localhost:1\nclock_skew: 10m", want: []string{"clock_skew: must be between"}},
		{name: "refetch too eager", typ: "oidc", yaml: creds + "issuer: https://localhost:1\njwks_refetch_interval: 10ms", want: []string{"jwks_refetch_interval: must be between"}},
		{name: "generic, complete", typ: "oidc", yaml: creds + "issuer: https://localhost:1\nscopes: [openid, groups]\nclaims: {groups: [groups, roles], email: mail}\n" +
			"signing_algorithms: [RS256, ES256]\nclock_skew: 30s\njwks_refetch_interval: 1m\naudience: api://default\nexchange_client_ids: [spa]\ndisplay_name: Okta"},
		{name: "Google groups claim", typ: "google", yaml: creds + "claims: {groups: groups}", want: []string{"claims.groups: Google ID tokens carry no groups"}},
		{name: "Google domain that is a URL", typ: "google", yaml: creds + "hosted_domains: [https://example.com]", want: []string{`hosted_domains: "https://example.com" is not a domain`}},
		{name: "Google issuer override in production", typ: "google", production: true, yaml: creds + "insecure_issuer: https://localhost:1",
			want: []string{"insecure_issuer: not allowed with GATEHOUSE_ENV=production"}},
		{name: "Google, complete", typ: "google", yaml: creds + "hosted_domains: [example.com]\ninsecure_issuer: https://localhost:1"},
		{name: "Auth0 without domain", typ: "auth0", yaml: creds, want: []string{"domain: is required"}},
		{name: "Auth0 domain as a URL", typ: "auth0", yaml: creds + "domain: https://acme.auth0.com/", want: []string{"domain: \"https://acme.auth0.com/\" must be the tenant host only"}},
		{name: "Auth0, complete", typ: "auth0", yaml: creds + "domain: localhost:1\naudience: https://api.example.com\norganization: org_1\n" +
			"allowed_organizations: [org_1]\nclaims: {groups: \"https://acme.example/groups\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.typ, "up", yamlSettings(tc.yaml), Env{Production: tc.production})
			if p != nil {
				_ = p.(interface{ Close() error }).Close()
			}
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid settings refused: %v", err)
				}
				return
			}
			var se *SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("want a SettingsError, got %v", err)
			}
			var got []string
			for _, pr := range se.Problems {
				got = append(got, pr.Field+": "+pr.Message)
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("missing %q among %q", w, got)
				}
			}
		})
	}
}

func TestOIDCSettingsDerived(t *testing.T) {
	p, err := New("auth0", "tenant", yamlSettings("client_id: app\nclient_secret: s\ndomain: Localhost:1\n"), Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.(interface{ Close() error }).Close()
	op := p.(*oidcProvider)
	if op.cfg.issuer != "https://localhost:1/" || op.DisplayName() != "Auth0" || !slices.Equal(op.cfg.exchangeClients, []string{"app"}) ||
		op.cfg.skew != defaultClockSkew || !slices.Equal(op.cfg.algs, []string{"RS256"}) {
		t.Fatalf("derived configuration = %+v", op.cfg)
	}
	if _, err := New("oidc", "x", yamlSettings("client-id: app"), Env{}); err == nil || !strings.Contains(err.Error(), "client-id") {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := New("oidc", "x", nil, Env{}); err == nil {
		t.Fatal("no settings accepted")
	}
}
