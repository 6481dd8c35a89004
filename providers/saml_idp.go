package providers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	xrv "github.com/mattermost/xml-roundtrip-validator"
)

// idpMetadata holds an IdP's metadata from a file (read once) or a URL
// (fetched with the provider's HTTP client, refreshed in the background
// when older than refresh, and kept when a refresh fails).
type idpMetadata struct {
	file, url, entityID string
	refresh             time.Duration
	client              *http.Client
	log                 *slog.Logger
	now                 func() time.Time

	mu        sync.Mutex
	current   *saml.EntityDescriptor
	fetchedAt time.Time
	lastTry   time.Time
	// lastErr is why the last load failed (nil after a success).
	lastErr    error
	refreshing bool
	fetchMu    sync.Mutex
}

// maxMetadataBytes bounds a metadata document; federation aggregates are
// out of scope, single-IdP documents are a few kilobytes.
const maxMetadataBytes = 4 << 20

// retryEmpty is how often a provider without any metadata tries again.
const retryEmpty = 10 * time.Second

func newIDPMetadata(s *samlSettings, env Env) (*idpMetadata, error) {
	m := &idpMetadata{file: s.IdPMetadataFile, url: s.IdPMetadataURL, entityID: s.IdPEntityID,
		refresh: 24 * time.Hour, client: env.HTTPClient, log: env.Log, now: time.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case (m.file == "") == (m.url == ""):
		return nil, errors.New("set exactly one of idp_metadata_url and idp_metadata_file")
	case m.url != "":
		u, err := url.Parse(m.url)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("idp_metadata_url %q is not an absolute http(s) URL", m.url)
		}
		if u.Scheme == "http" && !s.InsecureHTTPMetadata {
			return nil, errors.New("idp_metadata_url must use https: metadata is not signed, so TLS is what protects the IdP's certificate (insecure_http_metadata: true allows http outside production)")
		}
		if m.client == nil || m.client.Timeout == 0 {
			return nil, errors.New("saml needs an HTTP client with a timeout (internal: Env.HTTPClient)")
		}
	}
	if s.InsecureHTTPMetadata && env.Production {
		return nil, errors.New("insecure_http_metadata cannot be used with GATEHOUSE_ENV=production")
	}
	if s.MetadataRefresh != "" {
		d, err := time.ParseDuration(s.MetadataRefresh)
		if err != nil || d < time.Minute {
			return nil, fmt.Errorf("metadata_refresh %q must be a duration of at least 1m, such as 24h", s.MetadataRefresh)
		}
		m.refresh = d
	}
	return m, nil
}

// load reads or fetches the metadata now, remembering why it failed.
func (m *idpMetadata) load(ctx context.Context) error {
	err := m.loadOnce(ctx)
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
	return err
}

func (m *idpMetadata) loadOnce(ctx context.Context) error {
	m.fetchMu.Lock()
	defer m.fetchMu.Unlock()
	m.mu.Lock()
	m.lastTry = m.now()
	m.mu.Unlock()
	var data []byte
	var err error
	if m.file != "" {
		data, err = os.ReadFile(m.file)
		if err != nil {
			return fmt.Errorf("idp_metadata_file: %v", unwrapPath(err))
		}
	} else if data, err = m.fetch(ctx); err != nil {
		return fmt.Errorf("idp_metadata_url: %v", err)
	}
	md, err := parseIDPMetadata(data, m.entityID)
	if err != nil {
		return fmt.Errorf("IdP metadata: %v", err)
	}
	m.mu.Lock()
	m.current, m.fetchedAt = md, m.now()
	m.mu.Unlock()
	return nil
}

func (m *idpMetadata) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMetadataBytes {
		return nil, errors.New("document too large")
	}
	return data, nil
}

// get returns the current metadata, starting a background refresh when it
// is stale. Without any metadata yet it tries a fetch inline, at most
// every retryEmpty, so a down IdP does not turn every sign-in into a wait.
func (m *idpMetadata) get(ctx context.Context) (*saml.EntityDescriptor, error) {
	m.mu.Lock()
	cur, age, tried := m.current, m.now().Sub(m.fetchedAt), m.now().Sub(m.lastTry)
	startRefresh := cur != nil && m.url != "" && age > m.refresh && !m.refreshing && tried > retryEmpty
	if startRefresh {
		m.refreshing = true
	}
	m.mu.Unlock()
	if startRefresh {
		m.loadDetached("SAML IdP metadata refresh failed; keeping the metadata already loaded")
	}
	if cur != nil {
		return cur, nil
	}
	if tried < retryEmpty {
		return nil, errors.New("not loaded; the last attempt failed moments ago")
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current, nil
}

// loadDetached loads the metadata in the background, detached from the
// request that asked (a sign-in or a probe must not cancel the fetch it
// happened to trigger), logs failure on failure and clears refreshing,
// which the caller set.
func (m *idpMetadata) loadDetached(failure string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.load(ctx); err != nil {
			m.log.Warn(failure, slog.String("error", err.Error()))
		}
		m.mu.Lock()
		m.refreshing = false
		m.mu.Unlock()
	}()
}

// parseIDPMetadata reads an EntityDescriptor, or picks one IdP out of an
// EntitiesDescriptor (the one named entityID, or the only IdP in it), and
// checks it can be used: a redirect-binding SSO endpoint and at least one
// signing certificate that parses.
func parseIDPMetadata(data []byte, entityID string) (*saml.EntityDescriptor, error) {
	if err := xrv.Validate(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("not well-formed XML: %v", err)
	}
	var candidates []saml.EntityDescriptor
	var one saml.EntityDescriptor
	if err := xml.Unmarshal(data, &one); err == nil {
		candidates = append(candidates, one)
	} else {
		var many saml.EntitiesDescriptor
		if err := xml.Unmarshal(data, &many); err != nil {
			return nil, errors.New("neither an EntityDescriptor nor an EntitiesDescriptor")
		}
		var walk func(d saml.EntitiesDescriptor)
		walk = func(d saml.EntitiesDescriptor) {
			candidates = append(candidates, d.EntityDescriptors...)
			for _, sub := range d.EntitiesDescriptors {
				walk(sub)
			}
		}
		walk(many)
	}
	var idps []saml.EntityDescriptor
	for _, c := range candidates {
		if len(c.IDPSSODescriptors) > 0 && (entityID == "" || c.EntityID == entityID) {
			idps = append(idps, c)
		}
	}
	switch {
	case len(idps) == 0 && entityID != "":
		return nil, fmt.Errorf("no identity provider with entity id %q", entityID)
	case len(idps) == 0:
		return nil, errors.New("no identity provider (IDPSSODescriptor) in it")
	case len(idps) > 1:
		return nil, errors.New("several identity providers in it: set idp_entity_id")
	}
	md := &idps[0]
	if md.EntityID == "" {
		return nil, errors.New("the identity provider has no entityID")
	}
	sp := saml.ServiceProvider{IDPMetadata: md}
	if loc := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding); loc == "" {
		return nil, errors.New("no SingleSignOnService with the HTTP-Redirect binding")
	} else if u, err := url.Parse(loc); err != nil || u.Host == "" {
		return nil, fmt.Errorf("SingleSignOnService location %q is not an absolute URL", loc)
	}
	certs := 0
	for _, d := range md.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					return nil, errors.New("a signing certificate is not base64")
				}
				if _, err := x509.ParseCertificate(der); err != nil {
					return nil, fmt.Errorf("a signing certificate does not parse: %v", err)
				}
				certs++
			}
		}
	}
	if certs == 0 {
		return nil, errors.New("no signing certificate")
	}
	return md, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
