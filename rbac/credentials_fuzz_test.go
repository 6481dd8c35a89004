package rbac

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzExtractCredential feeds arbitrary Authorization and X-API-Key
// headers and query strings, on upgrade requests and others. Whatever
// comes in: no panic, an accepted token has the shape of a compact JWS,
// an accepted key the shape of a Gatehouse key, no token or key
// parameter survives in the URL, and a credential from the query is
// accepted only on an upgrade with no other credential.
func FuzzExtractCredential(f *testing.F) {
	f.Add("Bearer aaa.bbb.ccc", "", "", true)
	f.Add("", "ghk_"+strings.Repeat("x", 43), "", false)
	f.Add("", "", "token=aaa.bbb.ccc&org_id=o", true)
	f.Add("bearer x", "key", "token=%zz&token=1", false)
	f.Add("Bearer a..b", "", "a=1;token=2", true)
	f.Add("", "", "key=ghk_"+strings.Repeat("k", 43), true)
	f.Add("", "", "k%65y=ghk_"+strings.Repeat("k", 43)+"&to%6Ben=a.b.c", true)
	f.Add("", "", "key=1&key=2;x", false)
	f.Fuzz(func(t *testing.T, auth, key, query string, upgrade bool) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.URL.RawQuery = query
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		if key != "" {
			r.Header.Set(APIKeyHeader, key)
		}
		if upgrade {
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
		}
		cred, err := extractCredential(r)
		if q, _ := url.ParseQuery(r.URL.RawQuery); q.Has(QueryToken) || q.Has(QueryKey) {
			t.Fatalf("credential parameter left in %q", r.URL.RawQuery)
		}
		if err == nil && auth == "" && key == "" && !upgrade {
			t.Fatalf("a credential from the query was accepted without an upgrade: %q", query)
		}
		if err != nil {
			if cred.value != "" {
				t.Fatal("a refused credential was returned")
			}
			return
		}
		switch cred.kind {
		case KindAccessToken:
			if strings.Count(cred.value, ".") != 2 || strings.Trim(cred.value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
				t.Fatalf("accepted token %q", cred.value)
			}
		case KindAPIKey:
			if !strings.HasPrefix(cred.value, APIKeyPrefix) || len(cred.value) != len(APIKeyPrefix)+apiKeyBodyLen {
				t.Fatalf("accepted key %q", cred.value)
			}
		default:
			t.Fatalf("kind %q", cred.kind)
		}
	})
}
