package signin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/fault"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
	"github.com/gatehouse-id/gatehouse/oauth"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/providers/samltest"
)

// yamlSettings are provider settings written as YAML.
type yamlSettings string

func (y yamlSettings) Decode(into any) error {
	d := yaml.NewDecoder(strings.NewReader(string(y)))
	d.KnownFields(true)
	return d.Decode(into)
}

// seenIDs is an in-memory providers.ReplayCache.
type seenIDs struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *seenIDs) Remember(_ context.Context, provider, id string, _ time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids[provider+"|"+id] {
		return false, nil
	}
	s.ids[provider+"|"+id] = true
	return true, nil
}

// TestAnswersWaitForAValidationSlot: when every validation slot stays
// busy, an answer is turned away with 503 and Retry-After after a short
// wait, and the sign-in it names stays open for the retry; once a slot is
// free, the same answer is validated (and, refused, ends the sign-in).
func TestAnswersWaitForAValidationSlot(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		idp := samltest.Offline(t, "https://idp.example")
		_, _, keyPEM, certPEM := samltest.SPKeyPair(t)
		settings := "idp_metadata_file: " + idp.WriteMetadataFile(t) + "\nsp_key: |\n  " + strings.ReplaceAll(strings.TrimSpace(keyPEM), "\n", "\n  ") +
			"\nsp_certificate: |\n  " + strings.ReplaceAll(strings.TrimSpace(certPEM), "\n", "\n  ") + "\n"
		prov, err := providers.New("saml", "corp", yamlSettings(settings), providers.Env{BaseURL: "https://auth.example.com",
			HTTPClient: &http.Client{Timeout: time.Second}, Replay: &seenIDs{ids: map[string]bool{}}})
		if err != nil {
			t.Fatal(err)
		}
		store := models.NewStore(db)
		cfg := &config.Config{Issuer: "https://auth.example.com", SecretKey: strings.Repeat("s", 40), LoginStateTTL: time.Minute,
			File: config.File{Clients: []config.Client{{ID: "spa", Public: true, RedirectURIs: []string{"https://app.example.com/cb"}}}}}
		set := providers.NewSet([]providers.Provider{prov})
		server := oauth.New(oauth.Options{Config: cfg, Providers: set, Store: store})
		s := New(Options{Issuer: cfg.Issuer, SecretKey: cfg.SecretKey, LoginStateTTL: cfg.LoginStateTTL, Providers: set, Server: server, Store: store})
		ch, cookie, err := s.begin(ctx, &oauth.AuthorizeParams{ClientID: "spa", RedirectURI: "https://app.example.com/cb"}, "corp")
		if err != nil {
			t.Fatal(err)
		}
		toIdP, _ := url.Parse(ch.RedirectURL)
		relay := toIdP.Query().Get("RelayState")
		if cookie.Name != CookieName(relay) {
			t.Fatalf("cookie %s for RelayState %s", cookie.Name, relay)
		}
		answer := func() *http.Request {
			form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))},
				"RelayState": {relay}, ResubmitField: {"1"}}
			r := httptest.NewRequest(http.MethodPost, "https://auth.example.com/auth/saml/corp/acs", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
			_ = r.ParseForm()
			return r
		}
		consumed := func() bool {
			p, err := store.FindPendingLogin(ctx, stateHash(relay))
			if err != nil {
				t.Fatal(err)
			}
			return p.ConsumedAt != nil
		}

		for range cap(s.answers) {
			s.answers <- struct{}{}
		}
		start := time.Now()
		err = s.AssertionPost(ctx, "corp", answer(), oauth.RequestMeta{}).Err
		if fault.Of(err) != fault.Busy {
			t.Fatalf("answer while busy = %v", err)
		}
		if waited := time.Since(start); waited < answerWait || waited > answerWait+2*time.Second {
			t.Fatalf("turned away after %v", waited)
		}
		if consumed() {
			t.Fatal("an answer turned away busy ended the sign-in")
		}

		<-s.answers
		err = s.AssertionPost(ctx, "corp", answer(), oauth.RequestMeta{}).Err
		if fault.Of(err) != fault.UpstreamInvalid || !errors.Is(err, providers.ErrInvalidResponse) {
			t.Fatalf("answer once a slot is free = %v", err)
		}
		if !consumed() || len(s.answers) != cap(s.answers)-1 {
			t.Fatalf("consumed %v, slots taken %d of %d", consumed(), len(s.answers), cap(s.answers))
		}
		err = s.AssertionPost(ctx, "corp", answer(), oauth.RequestMeta{}).Err
		if fault.Of(err) != fault.LoginExpired {
			t.Fatalf("the same answer again = %v", err)
		}
	})
}

// TestStartOverOnFault: a database fault during an answer's second POST
// offers a fresh start (the sign-in may be consumed), not a reload; other
// errors pass unchanged.
func TestStartOverOnFault(t *testing.T) {
	dbFault := fmt.Errorf("consume: %w", &pgconn.PgError{Code: "57P01"})
	if err := startOverOnFault(dbFault); fault.Of(err) != fault.SignInInterrupted || !errors.Is(err, dbFault) {
		t.Fatalf("a fault = %#v", err)
	}
	other := errors.New("not a fault")
	if err := startOverOnFault(other); err != other {
		t.Fatalf("another error = %v", err)
	}
	page := fault.New(fault.OtherBrowser, dbFault)
	if err := startOverOnFault(page); err != page {
		t.Fatalf("a page error = %v", err)
	}
	if startOverOnFault(nil) != nil {
		t.Fatal("nil became an error")
	}
}
