package providers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/providers/providertest"
)

// TestCallbackIssParameter (RFC 9207): an upstream whose discovery says
// authorization_response_iss_parameter_supported names itself in every
// authorization response, so a callback for it without iss (or with an
// empty one) is not its answer — a mix-up attacker's — and is refused
// before the code is redeemed. An upstream that does not advertise it
// signs in without iss, and a wrong iss is refused from either.
func TestCallbackIssParameter(t *testing.T) {
	for _, kind := range []string{"oidc", "google", "auth0"} {
		for _, advertised := range []bool{true, false} {
			name := kind + map[bool]string{true: " advertising iss", false: " not advertising iss"}[advertised]
			t.Run(name, func(t *testing.T) {
				p, fake := startKind(t, kind, func(o *providertest.Options) { o.IssParameter = advertised })
				ctx := context.Background()
				// authorize runs the browser to the upstream and back; mutate
				// changes the callback's query.
				authorize := func(mutate func(q url.Values)) (*Identity, string, error) {
					t.Helper()
					ch, err := p.Begin(ctx, BeginRequest{State: "state-" + randomString(8), CallbackURL: oidcTestCallback})
					if err != nil {
						t.Fatal(err)
					}
					resp, err := noFollow.Get(ch.RedirectURL)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					back, err := url.Parse(resp.Header.Get("Location"))
					if err != nil || !strings.HasPrefix(back.String(), oidcTestCallback+"?") {
						t.Fatalf("upstream authorize = %d %q", resp.StatusCode, resp.Header.Get("Location"))
					}
					q := back.Query()
					if got := q.Get("iss"); advertised && got != fake.Issuer {
						t.Fatalf("the fake sent iss %q, want %q", got, fake.Issuer)
					}
					genuine := back.String()
					mutate(q)
					back.RawQuery = q.Encode()
					id, err := p.Complete(ctx, CompleteRequest{HTTP: httptest.NewRequest(http.MethodGet, back.String(), nil),
						CallbackURL: oidcTestCallback, Saved: ch.Saved})
					if err != nil {
						// The genuine answer still redeems: the refusal came
						// before the code was spent at the upstream.
						if _, gerr := p.Complete(ctx, CompleteRequest{HTTP: httptest.NewRequest(http.MethodGet, genuine, nil),
							CallbackURL: oidcTestCallback, Saved: ch.Saved}); gerr != nil {
							t.Fatalf("after a refused callback, the genuine one fails: %v", gerr)
						}
					}
					return id, q.Get("code"), err
				}

				if id, _, err := authorize(func(url.Values) {}); err != nil || id.Subject == "" {
					t.Fatalf("genuine callback: %+v, %v", id, err)
				}
				if id, _, err := authorize(func(q url.Values) { q.Set("iss", fake.Issuer) }); err != nil || id.Subject == "" {
					t.Fatalf("callback with the right iss: %+v, %v", id, err)
				}
				for what, mutate := range map[string]func(q url.Values){
					"without iss":    func(q url.Values) { q.Del("iss") },
					"empty iss":      func(q url.Values) { q.Set("iss", "") },
					"another iss":    func(q url.Values) { q.Set("iss", "https://evil.example") },
					"iss with slash": func(q url.Values) { q.Set("iss", strings.TrimSuffix(fake.Issuer, "/")+"/x") },
				} {
					mustRefuse := advertised || what == "another iss" || what == "iss with slash"
					id, code, err := authorize(mutate)
					if !mustRefuse {
						if err != nil {
							t.Fatalf("%s from an upstream that does not advertise iss: %v", what, err)
						}
						continue
					}
					var ue *UserError
					if id != nil || !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &ue) || ue.Message != verifyFailed {
						t.Fatalf("%s: identity %+v, err %v; want a refusal", what, id, err)
					}
					if strings.Contains(err.Error(), code) {
						t.Fatalf("%s: the code leaks into the error: %v", what, err)
					}
				}
			})
		}
	}
}
