package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// TestReadyzSAMLMetadata: a SAML provider whose IdP metadata cannot be
// loaded at start is reported by /readyz as failing, the replica degraded
// but still serving (200), like an OIDC provider whose discovery fails;
// the other checks stay ok.
func TestReadyzSAMLMetadata(t *testing.T) {
	idp := samltest.New(t)
	var down atomic.Bool
	down.Store(true)
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		resp, err := http.Get(idp.URL + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer gate.Close()
	s := apptest.Start(t, apptest.Options{YAML: samlYAML(gate.URL, "")})
	resp, body := get(t, s.URL+"/readyz")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"provider:corp":"failing"`) ||
		!strings.Contains(body, `"status":"degraded"`) || !strings.Contains(body, `"database":"ok"`) {
		t.Fatalf("/readyz with the IdP's metadata unreachable = %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "502") || strings.Contains(body, gate.URL) {
		t.Fatalf("/readyz shows the error's detail: %s", body)
	}

	healthy := samltest.New(t)
	s2 := apptest.Start(t, apptest.Options{YAML: samlYAML(healthy.URL, "")})
	resp, body = get(t, s2.URL+"/readyz")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"provider:corp":"ok"`) || !strings.Contains(body, `"status":"ready"`) {
		t.Fatalf("/readyz with the IdP's metadata loaded = %d %s", resp.StatusCode, body)
	}
}
