package providers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// TestSAMLReady: a provider whose IdP metadata could not be loaded is not
// ready and says why; a readiness probe retries the fetch in the
// background (at most once per retryEmpty), and once it loads the
// provider is ready. A failed refresh of loaded metadata keeps it ready;
// metadata from a file is ready from the start.
func TestSAMLReady(t *testing.T) {
	idp := samltest.New(t)
	var down atomic.Bool
	var fetches atomic.Int32
	down.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(idp.MetadataXML())
	}))
	defer srv.Close()
	_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
	pr, err := newSAML("corp", mapSettings{"idp_metadata_url": srv.URL, "insecure_http_metadata": true,
		"sp_key": keyPEM, "sp_certificate": certPEM}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*samlProvider)
	rc, ok := pr.(ReadinessChecker)
	if !ok {
		t.Fatal("a SAML provider does not report readiness")
	}
	err = rc.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("Ready with the IdP down = %v", err)
	}
	// The start-up fetch was moments ago: probes do not fetch again.
	for range 5 {
		_ = rc.Ready(context.Background())
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("fetches after probes within retryEmpty = %d, want 1", n)
	}

	down.Store(false)
	p.idp.mu.Lock()
	p.idp.lastTry = time.Now().Add(-time.Hour)
	p.idp.mu.Unlock()
	if err := rc.Ready(context.Background()); err == nil {
		t.Fatal("Ready before the retried fetch finished")
	}
	deadline := time.Now().Add(10 * time.Second)
	for rc.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never ready after the IdP came back: %v", rc.Ready(context.Background()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (one retry)", n)
	}

	// A failed refresh keeps the loaded metadata: still ready.
	down.Store(true)
	if err := p.idp.load(context.Background()); err == nil {
		t.Fatal("refresh against a down IdP succeeded")
	}
	if err := rc.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after a failed refresh = %v", err)
	}

	file := newTestSAML(t, idp, nil)
	if err := file.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with a metadata file = %v", err)
	}
}
