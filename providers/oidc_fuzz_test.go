package providers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyUpstreamToken feeds arbitrary input to the validation every
// upstream token goes through (sign-in ID tokens and token exchange),
// against a live fake upstream. It must never panic, never accept a token
// that breaks a rule, and never echo the input in an error.
func FuzzVerifyUpstreamToken(f *testing.F) {
	const api = "https://api.example.com"
	p, fake := startKind(f, "auth0", nil)
	op := p.(*oidcProvider)
	d, err := op.ready(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fake.IDToken(nil))
	f.Add(fake.AccessToken(api, nil))
	f.Add(fake.IDToken(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	f.Add(fake.AccessToken("https://other.example.com", nil))
	f.Add(fake.Sign(map[string]any{"kid": "unknown"}, map[string]any{"iss": fake.Issuer}))
	// What single sign-on reads: auth_time, acr and amr, well-formed or not.
	f.Add(fake.IDToken(map[string]any{"acr": "urn:example:loa:2", "amr": []any{"pwd", "mfa"}, "auth_time": time.Now().Unix()}))
	f.Add(fake.IDToken(map[string]any{"acr": "gold\x00\n", "amr": []any{"pwd mfa", 1, nil, strings.Repeat("m", 64)}}))
	f.Add(fake.IDToken(map[string]any{"acr": strings.Repeat("a", 300), "amr": "pwd", "auth_time": "yesterday"}))
	f.Add(fake.IDToken(map[string]any{"acr": 3, "amr": []any{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, "auth_time": 1e300}))
	f.Add(fake.IDToken(map[string]any{"auth_time": time.Now().Add(time.Hour).Unix()}))
	checks := []tokenCheck{
		{idToken: true, audiences: []string{fake.ClientID}, parties: []string{fake.ClientID}, nonce: "n"},
		{idToken: true, audiences: []string{fake.ClientID}, parties: []string{fake.ClientID}},
		{audiences: []string{api}, parties: []string{fake.ClientID}, requireParty: true},
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, c := range checks {
			vt, err := op.verify(context.Background(), d, raw, c)
			if err != nil {
				var r *rejection
				if !errors.As(err, &r) {
					t.Fatalf("unclassified error: %v", err)
				}
				if len(raw) >= 16 && strings.Contains(err.Error(), raw) {
					t.Fatal("the token is echoed in the error")
				}
				continue
			}
			cl := vt.claims
			exp, _ := cl.number("exp")
			if cl.str("iss") != fake.Issuer || cl.str("sub") == "" || exp+60 <= time.Now().Unix() ||
				!slices.ContainsFunc(cl.audience(), func(a string) bool { return slices.Contains(c.audiences, a) }) ||
				(c.nonce != "" && cl.str("nonce") != c.nonce) {
				t.Fatalf("accepted a token that breaks a rule: %v", cl)
			}
			if at, ok := cl.number("auth_time"); ok && at > time.Now().Add(time.Minute).Unix() {
				t.Fatalf("accepted an auth_time in the future: %v", cl)
			}
			id, err := op.identity(cl, "")
			if err != nil {
				continue // a kind's rule refused the person
			}
			if len(id.ACR) > maxACRLen || !printableASCII(id.ACR, false) || len(id.AMR) > maxAMRValues {
				t.Fatalf("acr %q, amr %q passed through", id.ACR, id.AMR)
			}
			for _, m := range id.AMR {
				if m == "" || len(m) > maxAMRLen || !printableASCII(m, false) {
					t.Fatalf("amr value %q passed through", m)
				}
			}
		}
	})
}
