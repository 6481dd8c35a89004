package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

func doctorLines(checks []app.DoctorCheck) string {
	var b strings.Builder
	for _, c := range checks {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

func wantLine(t *testing.T, out, status, what string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, status+" ") && strings.Contains(l, what) {
			return
		}
	}
	t.Fatalf("no %q line containing %q in:\n%s", status, what, out)
}

// TestDoctor runs `gatehouse doctor`'s checks against a running
// Gatehouse on PostgreSQL with OIDC, Google, Auth0 and SAML upstreams
// (real httptest servers), then breaks one thing at a time: the issuer's
// discovery names another issuer, an upstream's discovery is down, the
// database cannot be reached, the local clock is off. No line shows a
// secret.
func TestDoctor(t *testing.T) {
	up := startUpstreams(t)
	idp := samltest.New(t)
	yaml := upstreamYAML(up.okta, up.google, up.tenantA, up.tenantB) + `  - name: corp
    type: saml
    idp_metadata_url: ` + idp.URL + `/metadata
    insecure_http_metadata: true
`
	s := apptest.Start(t, apptest.Options{YAML: yaml, Postgres: true})
	ctx := context.Background()
	cfg := *s.App.Config

	checks := app.Doctor(ctx, &cfg, app.DoctorOptions{})
	out := doctorLines(checks)
	for _, c := range checks {
		if c.Status == app.DoctorFail {
			t.Fatalf("a healthy deployment fails a check:\n%s", out)
		}
	}
	wantLine(t, out, "warn", "issuer "+cfg.Issuer+" is plain HTTP (loopback only)")
	wantLine(t, out, "ok", "issuer "+cfg.Issuer+" reachable; discovery names it")
	wantLine(t, out, "ok", "database postgres 127.0.0.1:5432/")
	wantLine(t, out, "ok", "migrations current")
	wantLine(t, out, "ok", "signing keys: ")
	wantLine(t, out, "ok", "provider okta (oidc): register the redirect URI "+s.URL+"/auth/callback/okta")
	wantLine(t, out, "ok", "provider okta (oidc): discovery and JWKS reachable")
	wantLine(t, out, "ok", "provider google (google): discovery and JWKS reachable")
	wantLine(t, out, "ok", "provider tenant-a (auth0): discovery and JWKS reachable")
	wantLine(t, out, "ok", "provider corp (saml): register SP entity id and metadata "+s.URL+"/auth/saml/corp/metadata, ACS "+s.URL+"/auth/saml/corp/acs")
	wantLine(t, out, "ok", "provider corp (saml): IdP metadata "+idp.URL+"/metadata loaded")
	wantLine(t, out, "ok", "clock within 30s")

	wrong := cfg
	wrong.Issuer = s.URL + "/other"
	up.okta.SetDiscoveryDown(true)
	wrong.DatabaseURL = "postgres://gatehouse:s3cret-password@127.0.0.1:1/gatehouse?connect_timeout=2"
	checks = app.Doctor(ctx, &wrong, app.DoctorOptions{Now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
	out = doctorLines(checks)
	wantLine(t, out, "fail", "issuer "+wrong.Issuer+": discovery answers HTTP 404")
	wantLine(t, out, "fail", "provider okta (oidc): discovery ")
	wantLine(t, out, "fail", "database postgres 127.0.0.1:1/gatehouse")
	wantLine(t, out, "warn", "clock: 2m") // 2m0s or 2m1s: Date has a one-second resolution
	if strings.Contains(out, "s3cret-password") || strings.Contains(out, up.okta.ClientSecret) {
		t.Fatalf("doctor shows a secret:\n%s", out)
	}
}
