package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/dburl"
	"github.com/gatehouse-id/gatehouse/migrations"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/providers"
	"github.com/gatehouse-id/gatehouse/tokens"
)

// Doctor check outcomes.
const (
	DoctorOK   = "ok"
	DoctorWarn = "warn"
	DoctorFail = "fail"
)

// DoctorCheck is one line of `gatehouse doctor`: an outcome, what was
// found, and what to do about it (empty when nothing).
type DoctorCheck struct {
	Status string
	What   string
	Todo   string
}

// String renders the check on one line.
func (c DoctorCheck) String() string {
	s := fmt.Sprintf("%-4s  %s", c.Status, c.What)
	if c.Todo != "" {
		s += " -> " + c.Todo
	}
	return s
}

// DoctorOptions tune Doctor; zero values are the defaults.
type DoctorOptions struct {
	// HTTPClient fetches the issuer and the upstreams (10 s timeout).
	HTTPClient *http.Client
	// MaxSkew is the clock difference with an upstream's Date header
	// beyond which Doctor warns (30 s).
	MaxSkew time.Duration
	// Now is the local clock.
	Now func() time.Time
	// DBTimeout bounds the database checks together (connection,
	// migrations, signing keys): a server that stops answering, or a
	// table locked by a running migration, fails the check instead of
	// hanging the command (15 s).
	DBTimeout time.Duration
}

// Doctor checks a configuration against its deployment, running or
// stopped, and writes nothing anywhere: the issuer (reachable, TLS, the
// discovery document's issuer), the database, its migrations, the signing
// keys, each provider's discovery or metadata (and JWKS), the callback
// URLs to register upstream, and the clock against the upstreams' Date
// headers. It changes nothing (a SQLite file that does not exist is not
// created). Secrets never appear in its lines.
func Doctor(ctx context.Context, cfg *config.Config, opts DoctorOptions) []DoctorCheck {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.MaxSkew == 0 {
		opts.MaxSkew = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DBTimeout == 0 {
		opts.DBTimeout = 15 * time.Second
	}
	d := &doctor{cfg: cfg, opts: opts}
	d.issuer(ctx)
	d.database(ctx)
	dev := false
	for i := range cfg.File.Providers {
		d.provider(ctx, &cfg.File.Providers[i])
		dev = dev || cfg.File.Providers[i].Name == DevProviderName
	}
	if cfg.DevLogin && !dev {
		d.add(DoctorWarn, "provider dev (dev, GATEHOUSE_DEV_LOGIN): anyone can sign in as anyone", "set GATEHOUSE_DEV_LOGIN=false outside development")
	}
	d.clock()
	return d.out
}

type doctor struct {
	cfg  *config.Config
	opts DoctorOptions
	out  []DoctorCheck
	// dates are the upstreams' Date headers, by where they came from.
	dates []dated
}

type dated struct {
	from string
	at   time.Time
}

func (d *doctor) add(status, what, todo string) {
	d.out = append(d.out, DoctorCheck{Status: status, What: what, Todo: todo})
}

// get fetches u and decodes JSON into v when v is not nil; it remembers
// the answer's Date for the clock check.
func (d *doctor) get(ctx context.Context, u string, v any, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp, nil, err
	}
	if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		host := req.URL.Host
		d.dates = append(d.dates, dated{from: host, at: t})
	}
	if resp.StatusCode != http.StatusOK {
		return resp, body, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp, body, fmt.Errorf("not JSON: %v", err)
		}
	}
	return resp, body, nil
}

func (d *doctor) issuer(ctx context.Context) {
	iss := d.cfg.Issuer
	u, _ := url.Parse(iss)
	if u.Scheme != "https" {
		if config.IsLoopbackHost(u.Hostname()) {
			d.add(DoctorWarn, "issuer "+iss+" is plain HTTP (loopback only)", "use an https issuer for anything but a local trial")
		} else {
			d.add(DoctorFail, "issuer "+iss+" is plain HTTP", "serve Gatehouse behind TLS and set GATEHOUSE_ISSUER=https://...")
		}
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	resp, _, err := d.get(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &doc, 1<<20)
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		d.add(DoctorFail, "issuer "+iss+": TLS certificate not valid: "+certErr.Err.Error(),
			"install a certificate for "+u.Hostname()+" from a CA clients trust")
		return
	case resp == nil:
		d.add(DoctorWarn, "issuer "+iss+" not reachable: "+err.Error(),
			"start Gatehouse, or check DNS, the load balancer and the ingress (fine for a deployment not started yet)")
		return
	case err != nil:
		d.add(DoctorFail, "issuer "+iss+": discovery answers "+err.Error(), "check that the address reaches Gatehouse, not another service")
		return
	case doc.Issuer != iss:
		d.add(DoctorFail, fmt.Sprintf("issuer %s: the discovery document says issuer %q", iss, doc.Issuer),
			"set GATEHOUSE_ISSUER to the public URL exactly as clients use it (scheme, host, path, no trailing slash difference)")
		return
	}
	what := "issuer " + iss + " reachable; discovery names it"
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		left := resp.TLS.PeerCertificates[0].NotAfter.Sub(d.opts.Now())
		if left < 14*24*time.Hour {
			d.add(DoctorWarn, fmt.Sprintf("%s; TLS certificate expires in %s", what, left.Round(time.Hour)), "renew the certificate")
			return
		}
		what += fmt.Sprintf("; TLS certificate valid for %d more days", int(left.Hours()/24))
	}
	d.add(DoctorOK, what, "")
}

func (d *doctor) database(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DBTimeout)
	defer cancel()
	name := DatabaseSummary(d.cfg.DatabaseURL)
	// Opening a SQLite file that is not there would create it.
	if t, err := dburl.Parse(d.cfg.DatabaseURL); err == nil && t.Dialect == dburl.SQLite {
		if _, err := os.Stat(t.Display); errors.Is(err, os.ErrNotExist) {
			d.add(DoctorWarn, "database "+name+" does not exist yet", "Gatehouse creates it at first start; check GATEHOUSE_DATABASE_URL if it should exist")
			return
		}
	}
	db, m, err := OpenDatabase(ctx, d.cfg)
	if err != nil {
		d.add(DoctorFail, "database "+name+": "+OneLine(err), "check GATEHOUSE_DATABASE_URL and that the database server runs and accepts this host")
		return
	}
	defer db.Close()
	d.add(DoctorOK, "database "+name+" reachable", "")
	d.migrations(ctx, m)
	d.keys(ctx, db)
}

func (d *doctor) migrations(ctx context.Context, m *migrations.Migrator) {
	cur, err := m.Current(ctx)
	if err != nil {
		d.add(DoctorFail, "migrations: "+err.Error(), "check the database user may read goose_db_version")
		return
	}
	err = m.CheckCurrent(ctx)
	ahead, _ := m.Ahead(ctx)
	switch {
	case errors.Is(err, migrations.ErrSchemaTooNew):
		d.add(DoctorFail, "migrations: "+err.Error(), "deploy the Gatehouse release that migrated the database")
	case errors.Is(err, migrations.ErrPending) && d.cfg.AutoMigrate:
		d.add(DoctorWarn, fmt.Sprintf("migrations: database at %d, this binary's latest is %d", cur, m.Latest()),
			"Gatehouse applies them at start (GATEHOUSE_AUTO_MIGRATE); or run `gatehouse migrate up` first")
	case errors.Is(err, migrations.ErrPending):
		d.add(DoctorFail, fmt.Sprintf("migrations: database at %d, this binary's latest is %d", cur, m.Latest()),
			"run `gatehouse migrate up` (GATEHOUSE_AUTO_MIGRATE is off: Gatehouse refuses to start)")
	case err != nil:
		d.add(DoctorFail, "migrations: "+err.Error(), "check the database")
	case len(ahead) > 0:
		d.add(DoctorWarn, fmt.Sprintf("migrations: the database has %v from a newer release, marked compatible", ahead),
			"finish the rolling upgrade: this binary is older than the schema")
	default:
		d.add(DoctorOK, fmt.Sprintf("migrations current (version %d)", cur), "")
	}
}

func (d *doctor) keys(ctx context.Context, db *models.DB) {
	km, err := newKeyManager(d.cfg, models.NewStore(db))
	if err != nil {
		d.add(DoctorFail, "signing keys: "+err.Error(), "check GATEHOUSE_SIGNING_ALG and GATEHOUSE_SECRET_KEY")
		return
	}
	list, err := km.List(ctx)
	if err != nil {
		d.add(DoctorFail, "signing keys: "+err.Error(), "check the database (are migrations applied?)")
		return
	}
	var active *tokens.KeyInfo
	pending := 0
	for i, k := range list {
		switch k.State {
		case tokens.KeyActive:
			active = &list[i]
		case tokens.KeyPending:
			pending++
		}
	}
	now := d.opts.Now()
	switch {
	case len(list) == 0:
		d.add(DoctorWarn, "signing keys: none yet", "Gatehouse creates the first at start; or run `gatehouse keys rotate`")
	case active == nil:
		d.add(DoctorFail, "signing keys: none active (only pending or retired ones)", "run `gatehouse keys rotate` and `gatehouse keys list`")
	case active.Algorithm != d.cfg.SigningAlg:
		d.add(DoctorWarn, fmt.Sprintf("signing keys: the active key %s is %s, GATEHOUSE_SIGNING_ALG is %s", active.KID, active.Algorithm, d.cfg.SigningAlg),
			"the next rotation switches algorithm; `gatehouse keys rotate` does it now")
	case now.Sub(active.ActivatesAt) > d.cfg.KeyRotationPeriod && pending == 0:
		d.add(DoctorWarn, fmt.Sprintf("signing keys: the active key %s signs since %s, past GATEHOUSE_KEY_ROTATION_PERIOD, and no next key is published",
			active.KID, active.ActivatesAt.UTC().Format(time.RFC3339)), "start Gatehouse (it rotates on schedule) or run `gatehouse keys rotate`")
	case now.Sub(active.ActivatesAt) > d.cfg.KeyRotationPeriod-d.cfg.KeyPublishLead && pending == 0:
		d.add(DoctorWarn, fmt.Sprintf("signing keys: the active key %s is due for rotation and no next key is published yet", active.KID),
			"a running Gatehouse publishes the next key within a minute; check that one runs")
	default:
		d.add(DoctorOK, fmt.Sprintf("signing keys: %s (%s) active since %s, %d next key(s) published", active.KID, active.Algorithm,
			active.ActivatesAt.UTC().Format(time.RFC3339), pending), "")
	}
}

// providerURLs are the fields Doctor needs from a provider's settings.
type providerURLs struct {
	Issuer          string `yaml:"issuer"`
	Domain          string `yaml:"domain"`
	InsecureIssuer  string `yaml:"insecure_issuer"`
	BaseURL         string `yaml:"base_url"`
	APIURL          string `yaml:"api_url"`
	IdPMetadataURL  string `yaml:"idp_metadata_url"`
	IdPMetadataFile string `yaml:"idp_metadata_file"`
	InsecureHTTP    bool   `yaml:"insecure_allow_http"`
}

func (d *doctor) provider(ctx context.Context, pc *config.Provider) {
	var s providerURLs
	_ = pc.Decode(&s) // the configuration was validated: unknown fields were refused then
	base := strings.TrimSuffix(d.cfg.Issuer, "/")
	name := "provider " + pc.Name + " (" + pc.Type + ")"
	switch pc.Type {
	case "oidc", "google", "auth0":
		issuer := s.Issuer
		if pc.Type == "google" {
			issuer = "https://accounts.google.com"
			if s.InsecureIssuer != "" {
				issuer = s.InsecureIssuer
			}
		}
		if pc.Type == "auth0" {
			scheme := "https://"
			if s.InsecureHTTP {
				scheme = "http://"
			}
			issuer = scheme + strings.ToLower(strings.TrimSpace(s.Domain)) + "/"
		}
		d.add(DoctorOK, name+": register the redirect URI "+base+"/auth/callback/"+url.PathEscape(pc.Name)+" upstream", "")
		d.discovery(ctx, name, issuer)
	case "github":
		api := s.APIURL
		switch {
		case api == "" && s.BaseURL != "":
			api = strings.TrimSuffix(s.BaseURL, "/") + "/api/v3"
		case api == "":
			api = "https://api.github.com"
		}
		d.add(DoctorOK, name+": register the authorization callback URL "+base+"/auth/callback/"+url.PathEscape(pc.Name)+" in the OAuth app", "")
		if _, _, err := d.get(ctx, api, nil, 1<<20); err != nil {
			d.add(DoctorFail, name+": API "+api+" not reachable: "+err.Error(), "allow outbound HTTPS from Gatehouse to it")
		} else {
			d.add(DoctorOK, name+": API "+api+" reachable", "")
		}
	case "saml":
		md, acs := providers.SAMLPaths(pc.Name)
		d.add(DoctorOK, name+": register SP entity id and metadata "+base+md+", ACS "+base+acs+" at the IdP", "")
		d.samlMetadata(ctx, name, s)
	case "dev":
		d.add(DoctorWarn, name+": anyone can sign in as anyone", "remove it outside development")
	}
}

func (d *doctor) discovery(ctx context.Context, name, issuer string) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	where := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	if _, _, err := d.get(ctx, where, &doc, 1<<20); err != nil {
		d.add(DoctorFail, name+": discovery "+where+": "+err.Error(), "check the issuer in the configuration and outbound HTTPS to it")
		return
	}
	if doc.Issuer != issuer {
		d.add(DoctorFail, fmt.Sprintf("%s: discovery says issuer %q, configured %q", name, doc.Issuer, issuer),
			"configure the issuer exactly as the upstream states it (trailing slash included)")
		return
	}
	var keys struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if _, _, err := d.get(ctx, doc.JWKSURI, &keys, 1<<20); err != nil || len(keys.Keys) == 0 {
		why := "no keys"
		if err != nil {
			why = err.Error()
		}
		d.add(DoctorFail, name+": JWKS "+doc.JWKSURI+": "+why, "check outbound HTTPS to the upstream")
		return
	}
	d.add(DoctorOK, fmt.Sprintf("%s: discovery and JWKS reachable (%d keys)", name, len(keys.Keys)), "")
}

func (d *doctor) samlMetadata(ctx context.Context, name string, s providerURLs) {
	var data []byte
	var err error
	from := s.IdPMetadataURL
	if s.IdPMetadataFile != "" {
		from = s.IdPMetadataFile
		data, err = os.ReadFile(s.IdPMetadataFile)
	} else {
		_, data, err = d.get(ctx, s.IdPMetadataURL, nil, 4<<20)
	}
	switch {
	case err != nil:
		d.add(DoctorFail, name+": IdP metadata "+from+": "+err.Error(), "check the metadata location and outbound HTTPS to the IdP")
	case !strings.Contains(string(data), "IDPSSODescriptor"):
		d.add(DoctorFail, name+": IdP metadata "+from+" describes no identity provider", "use the IdP's metadata URL, not the SP's or a login page")
	default:
		d.add(DoctorOK, name+": IdP metadata "+from+" loaded", "")
	}
}

// clock compares this machine's clock with the upstreams' Date headers.
func (d *doctor) clock() {
	if len(d.dates) == 0 {
		d.add(DoctorWarn, "clock: no upstream answered with a Date header to compare with", "keep the clock synchronised (NTP)")
		return
	}
	now := d.opts.Now()
	worst, from := time.Duration(0), ""
	for _, x := range d.dates {
		skew := now.Sub(x.at)
		if skew < 0 {
			skew = -skew
		}
		if skew > worst {
			worst, from = skew, x.from
		}
	}
	// Date has a one-second resolution and the request took some time.
	if worst > d.opts.MaxSkew {
		d.add(DoctorWarn, fmt.Sprintf("clock: %s off from %s's Date header", worst.Round(time.Second), from),
			"synchronise this machine's clock (NTP): tokens are refused or accepted at the wrong times")
		return
	}
	d.add(DoctorOK, fmt.Sprintf("clock within %s of %d upstream answer(s)", d.opts.MaxSkew, len(d.dates)), "")
}
