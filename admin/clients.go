package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
)

// Clients managed at runtime. The YAML file's clients are listed and
// shown but never changed here (409: they are defined in the
// configuration file); stored clients are created, updated, rotated and
// deleted, each change audited and followed by every replica within the
// registry's poll interval (oauth.Service.SyncClients).

// Audit events of client changes.
const (
	AuditClientCreated       = "client.created"
	AuditClientUpdated       = "client.updated"
	AuditClientSecretRotated = "client.secret_rotated"
	AuditClientDeleted       = "client.deleted"
	// AuditClientRegistered: a client registered itself through Dynamic
	// Client Registration.
	AuditClientRegistered = "client.registered"
)

// Secret rotation overlap: the default, and the longest allowed.
const (
	DefaultSecretOverlap = 24 * time.Hour
	MaxSecretOverlap     = 30 * 24 * time.Hour
)

// RevokeReasonClientDeleted is the revoke reason of the sessions a
// client's deletion ends.
const RevokeReasonClientDeleted = "client_deleted"

// ClientOptions connect the service to the client registry.
type ClientOptions struct {
	// Config checks a stored client as the YAML file's are checked
	// (config.Config.ValidateClient) and holds the registration settings.
	Config *config.Config
	// Current returns the configuration in force, whose file a reload
	// may have replaced since Config (its providers are the ones a
	// stored client may name); nil: Config.
	Current func() *config.Config
	// Configured returns the YAML file's clients in force; nil: Config's.
	Configured func() []config.Client
	// MaxTokenTTL bounds a stored client's access_token_ttl and
	// id_token_ttl: signing keys are kept this long after they retire
	// (0: no bound).
	MaxTokenTTL time.Duration
	// Changed is called after every change, so this replica follows at
	// once rather than at its next poll (nil: nothing).
	Changed func(ctx context.Context)
}

// SetClients enables the client operations.
func (s *Service) SetClients(o ClientOptions) {
	if o.Configured == nil && o.Config != nil {
		cfg := o.Config
		o.Configured = func() []config.Client { return cfg.File.Clients }
	}
	s.clients = o
}

// ClientView is a client as the admin API shows it: its settings with
// the YAML file's field names (never a secret), client_id, source
// ("config" or "database"), and for a stored one created_at, updated_at,
// origin and, during a rotation's overlap, previous_secret_expires_at.
type ClientView map[string]any

// ClientSecret answers a creation or a rotation: the client and its new
// secret, shown this once (empty for a public client).
type ClientSecret struct {
	Client ClientView
	Secret string
	// PreviousSecretExpiresAt is when the replaced secret stops working
	// (rotation only).
	PreviousSecretExpiresAt *time.Time
}

// MarshalJSON writes the client's fields with client_secret beside them.
func (c ClientSecret) MarshalJSON() ([]byte, error) {
	m := maps.Clone(map[string]any(c.Client))
	if c.Secret != "" {
		m["client_secret"] = c.Secret
	}
	if c.PreviousSecretExpiresAt != nil {
		m["previous_secret_expires_at"] = c.PreviousSecretExpiresAt
	}
	return json.Marshal(m)
}

// clientIDSyntax: ids appear in URLs, tokens and logs.
var clientIDSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func (s *Service) clientsReady() error {
	if s.clients.Config == nil {
		return errors.New("admin: client operations are not configured")
	}
	return nil
}

func (s *Service) configuredClient(id string) (config.Client, bool) {
	for _, c := range s.clients.Configured() {
		if c.ID == id {
			return c, true
		}
	}
	return config.Client{}, false
}

// ListClients lists every client, the file's and the stored ones, by id
// (one page: clients are few).
func (s *Service) ListClients(ctx context.Context, a Actor) (List[ClientView], error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return List[ClientView]{}, err
	}
	return s.ConsoleListClients(ctx)
}

// ConsoleListClients is ListClients for the console.
func (s *Service) ConsoleListClients(ctx context.Context) (List[ClientView], error) {
	if err := s.clientsReady(); err != nil {
		return List[ClientView]{}, err
	}
	out := List[ClientView]{Items: []ClientView{}}
	seen := map[string]bool{}
	for _, c := range s.clients.Configured() {
		seen[c.ID] = true
		out.Items = append(out.Items, configView(c))
	}
	rows, err := s.store.ListStoredClients(ctx)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		if !seen[r.ID] {
			out.Items = append(out.Items, s.storedView(r))
		}
	}
	sort.Slice(out.Items, func(i, j int) bool {
		return fmt.Sprint(out.Items[i]["client_id"]) < fmt.Sprint(out.Items[j]["client_id"])
	})
	return out, nil
}

// GetClient shows one client.
func (s *Service) GetClient(ctx context.Context, a Actor, id string) (ClientView, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return nil, err
	}
	return s.ConsoleGetClient(ctx, id)
}

// ConsoleGetClient is GetClient for the console.
func (s *Service) ConsoleGetClient(ctx context.Context, id string) (ClientView, error) {
	if err := s.clientsReady(); err != nil {
		return nil, err
	}
	if c, ok := s.configuredClient(id); ok {
		return configView(c), nil
	}
	r, err := s.store.FindStoredClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.storedView(*r), nil
}

// CreateClient stores a new client from its fields (the YAML file's
// names; client_id optional, generated when absent). A confidential
// client gets a generated secret, returned this once.
func (s *Service) CreateClient(ctx context.Context, a Actor, fields map[string]any) (*ClientSecret, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return nil, err
	}
	return s.createClient(ctx, a, fields, models.ClientOriginAdmin, "", 0)
}

// ConsoleCreateClient is CreateClient for the console.
func (s *Service) ConsoleCreateClient(ctx context.Context, fields map[string]any) (*ClientSecret, error) {
	return s.createClient(ctx, Actor{}, fields, models.ClientOriginConsole, "", 0)
}

// errClientLimit: the clients of an origin reached their limit.
var errClientLimit = errors.New("admin: the limit of clients of this origin is reached")

// createClient stores a client; registrationTokenHash is set for one
// registered through DCR (origin registration). limit > 0 bounds the
// stored clients of origin (errClientLimit), counted under the clients'
// change lock so that concurrent creations cannot overrun it.
func (s *Service) createClient(ctx context.Context, a Actor, fields map[string]any, origin, registrationTokenHash string, limit int64) (*ClientSecret, error) {
	if err := s.clientsReady(); err != nil {
		return nil, err
	}
	fields = maps.Clone(fields)
	id, err := takeClientID(fields)
	if err != nil {
		return nil, err
	}
	if id == "" {
		id = "client-" + randomSecret(12)
	}
	if _, ok := s.configuredClient(id); ok {
		return nil, conflict("client %q is defined in the configuration file; a stored client cannot take its id", id)
	}
	cc, settings, err := s.checkClient(id, fields)
	if err != nil {
		return nil, err
	}
	now := s.now()
	row := &models.StoredClient{ID: id, Settings: settings, Origin: origin, RegistrationTokenHash: registrationTokenHash,
		CreatedAt: now, UpdatedAt: now}
	var secret string
	if usesSecret(cc) {
		secret = randomSecret(32)
		row.SecretHash = hashSecret(secret)
	}
	err = s.store.InTx(ctx, func(tx Store) error {
		if err := tx.LockStoredClients(ctx); err != nil {
			return err
		}
		if limit > 0 {
			n, err := tx.CountStoredClients(ctx, origin)
			if err != nil {
				return err
			}
			if n >= limit {
				return errClientLimit
			}
		}
		if err := tx.CreateStoredClient(ctx, row); err != nil {
			return err
		}
		typ := AuditClientCreated
		if origin == models.ClientOriginRegistration {
			typ = AuditClientRegistered
		}
		return s.auditClient(ctx, tx, a, typ, id, map[string]any{"public": cc.Public, "grant_types": cc.GrantTypes,
			"redirect_uris": cc.RedirectURIs, "origin": origin})
	})
	if err != nil {
		if errors.Is(err, models.ErrConflict) {
			return nil, conflict("a client with id %q exists", id)
		}
		return nil, err
	}
	s.changed(ctx)
	return &ClientSecret{Client: s.storedView(*row), Secret: secret}, nil
}

// UpdateClient changes the given fields of a stored client (a field set
// to null returns to its default); the others keep their values. A
// client made confidential gets a generated secret, returned this once;
// one made public loses its secrets.
func (s *Service) UpdateClient(ctx context.Context, a Actor, id string, fields map[string]any) (*ClientSecret, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return nil, err
	}
	return s.updateClient(ctx, a, id, fields)
}

// ConsoleUpdateClient is UpdateClient for the console.
func (s *Service) ConsoleUpdateClient(ctx context.Context, id string, fields map[string]any) (*ClientSecret, error) {
	return s.updateClient(ctx, Actor{}, id, fields)
}

func (s *Service) updateClient(ctx context.Context, a Actor, id string, fields map[string]any) (*ClientSecret, error) {
	if _, err := s.storedForChange(ctx, id); err != nil {
		return nil, err
	}
	return s.updateStored(ctx, a, id, fields, nil)
}

// changeStored runs change on stored client id as it is now, under the
// clients' change lock, and writes what change left in the row: two
// changes of one client (an update and a rotation, say) never work from
// the same old row, so neither undoes the other (a rotation's new secret
// is never overwritten by the old one). same, when set, must accept the
// row read under the lock (it is the client the caller checked).
func (s *Service) changeStored(ctx context.Context, id string, same func(*models.StoredClient) error,
	change func(row *models.StoredClient) error, audit func(tx Store) error) (*models.StoredClient, error) {
	var out *models.StoredClient
	err := s.store.InTx(ctx, func(tx Store) error {
		if err := tx.LockStoredClients(ctx); err != nil {
			return err
		}
		row, err := tx.FindStoredClient(ctx, id)
		if err != nil {
			return err
		}
		if same != nil {
			if err := same(row); err != nil {
				return err
			}
		}
		if err := change(row); err != nil {
			return err
		}
		out = row
		if err := tx.UpdateStoredClient(ctx, row); err != nil {
			return err
		}
		return audit(tx)
	})
	return out, err
}

// updateStored changes the given fields of stored client id (same: as
// for changeStored).
func (s *Service) updateStored(ctx context.Context, a Actor, id string, fields map[string]any,
	same func(*models.StoredClient) error) (*ClientSecret, error) {
	fields = maps.Clone(fields)
	if newID, err := takeClientID(fields); err != nil {
		return nil, err
	} else if newID != "" && newID != id {
		return nil, invalid("client_id", "cannot change; create a new client instead")
	}
	var secret string
	changed := make([]string, 0, len(fields))
	for k := range fields {
		changed = append(changed, k)
	}
	sort.Strings(changed)
	row, err := s.changeStored(ctx, id, same, func(row *models.StoredClient) error {
		var err error
		secret, err = s.mergeStored(row, fields)
		return err
	}, func(tx Store) error {
		return s.auditClient(ctx, tx, a, AuditClientUpdated, id, map[string]any{"fields": changed, "secret_generated": secret != ""})
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return &ClientSecret{Client: s.storedView(*row), Secret: secret}, nil
}

// mergeStored applies fields to row (a field set to null returns to its
// default) and returns the secret generated when the client became one
// that authenticates with a secret ("" otherwise).
func (s *Service) mergeStored(row *models.StoredClient, fields map[string]any) (string, error) {
	id := row.ID
	var merged map[string]any
	if err := json.Unmarshal([]byte(row.Settings), &merged); err != nil {
		return "", fmt.Errorf("stored client %s: %w", id, err)
	}
	wasPublic, _ := merged["public"].(bool)
	for k, v := range fields {
		if v == nil {
			delete(merged, k)
			continue
		}
		merged[k] = v
	}
	cc, settings, err := s.checkClient(id, merged)
	if err != nil {
		return "", err
	}
	row.Settings, row.UpdatedAt = settings, s.now()
	var secret string
	switch {
	case !usesSecret(cc):
		row.SecretHash, row.PreviousSecretHash, row.PreviousSecretExpiresAt = "", "", nil
	case wasPublic || row.SecretHash == "":
		secret = randomSecret(32)
		row.SecretHash = hashSecret(secret)
	}
	return secret, nil
}

// RotateClientSecret gives a stored confidential client a new generated
// secret, returned this once; the old one keeps working for overlap
// (from 0 to MaxSecretOverlap), then stops. A secret an earlier rotation
// kept is replaced by the one rotated now.
func (s *Service) RotateClientSecret(ctx context.Context, a Actor, id string, overlap time.Duration) (*ClientSecret, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return nil, err
	}
	return s.rotateClientSecret(ctx, a, id, overlap)
}

// ConsoleRotateClientSecret is RotateClientSecret for the console.
func (s *Service) ConsoleRotateClientSecret(ctx context.Context, id string, overlap time.Duration) (*ClientSecret, error) {
	return s.rotateClientSecret(ctx, Actor{}, id, overlap)
}

// ParseSecretOverlap reads a rotation's overlap ("" is the default).
func ParseSecretOverlap(v string) (time.Duration, error) {
	if v == "" {
		return DefaultSecretOverlap, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxSecretOverlap {
		return 0, invalid("overlap", "must be a duration from 0s to %s, such as 24h", MaxSecretOverlap)
	}
	return d, nil
}

func (s *Service) rotateClientSecret(ctx context.Context, a Actor, id string, overlap time.Duration) (*ClientSecret, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return nil, invalid("overlap", "must be a duration from 0s to %s, such as 24h", MaxSecretOverlap)
	}
	if _, err := s.storedForChange(ctx, id); err != nil {
		return nil, err
	}
	now := s.now()
	until := now.Add(overlap)
	secret := randomSecret(32)
	row, err := s.changeStored(ctx, id, nil, func(row *models.StoredClient) error {
		if row.SecretHash == "" {
			return conflict("client %q has no secret: it is public or authenticates with private_key_jwt", id)
		}
		row.PreviousSecretHash, row.PreviousSecretExpiresAt = row.SecretHash, &until
		if overlap == 0 {
			row.PreviousSecretHash, row.PreviousSecretExpiresAt = "", nil
		}
		row.SecretHash, row.UpdatedAt = hashSecret(secret), now
		return nil
	}, func(tx Store) error {
		details := map[string]any{"overlap": overlap.String()}
		if overlap > 0 {
			details["previous_secret_expires_at"] = until
		}
		return s.auditClient(ctx, tx, a, AuditClientSecretRotated, id, details)
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return &ClientSecret{Client: s.storedView(*row), Secret: secret, PreviousSecretExpiresAt: row.PreviousSecretExpiresAt}, nil
}

// DeletedClient answers a deletion.
type DeletedClient struct {
	ClientID string `json:"client_id"`
	// SessionsEnded counts the client's sessions the deletion ended.
	SessionsEnded int64 `json:"sessions_ended"`
}

// DeleteClient deletes a stored client and ends its sessions: their
// refresh tokens stop working and each client with a
// backchannel_logout_uri is told as for any ended session. Its access
// tokens stay valid until they expire (backends verify them locally),
// but introspection and UserInfo stop answering for them.
func (s *Service) DeleteClient(ctx context.Context, a Actor, id string) (*DeletedClient, error) {
	if _, err := s.asAdministrator(ctx, s.store, a); err != nil {
		return nil, err
	}
	return s.deleteClient(ctx, a, id)
}

// ConsoleDeleteClient is DeleteClient for the console.
func (s *Service) ConsoleDeleteClient(ctx context.Context, id string) (*DeletedClient, error) {
	return s.deleteClient(ctx, Actor{}, id)
}

func (s *Service) deleteClient(ctx context.Context, a Actor, id string) (*DeletedClient, error) {
	if _, err := s.storedForChange(ctx, id); err != nil {
		return nil, err
	}
	var n int64
	err := s.store.InTx(ctx, func(tx Store) error {
		var err error
		if n, err = tx.DeleteStoredClient(ctx, id, RevokeReasonClientDeleted, s.now()); err != nil {
			return err
		}
		return s.auditClient(ctx, tx, a, AuditClientDeleted, id, map[string]any{"sessions_ended": n})
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return &DeletedClient{ClientID: id, SessionsEnded: n}, nil
}

// storedForChange returns the stored client id names, refusing the
// file's clients.
func (s *Service) storedForChange(ctx context.Context, id string) (*models.StoredClient, error) {
	if err := s.clientsReady(); err != nil {
		return nil, err
	}
	if _, ok := s.configuredClient(id); ok {
		return nil, conflict("client %q is defined in the configuration file; change it there (it is read-only at runtime)", id)
	}
	return s.store.FindStoredClient(ctx, id)
}

// takeClientID removes client_id from fields and returns it.
func takeClientID(fields map[string]any) (string, error) {
	if _, ok := fields["id"]; ok {
		return "", invalid("id", "is named client_id here")
	}
	v, ok := fields["client_id"]
	delete(fields, "client_id")
	if !ok || v == nil {
		return "", nil
	}
	id, isString := v.(string)
	if !isString || !clientIDSyntax.MatchString(id) {
		return "", invalid("client_id", "must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	return id, nil
}

// checkClient parses and validates a stored client's fields with the
// YAML clients' rules, plus those of stored clients, and returns the
// settings to store.
func (s *Service) checkClient(id string, fields map[string]any) (config.Client, string, error) {
	for _, k := range []string{"source", "origin", "created_at", "updated_at", "previous_secret_expires_at", "client_secret"} {
		if _, ok := fields[k]; ok {
			return config.Client{}, "", invalid(k, "is set by Gatehouse")
		}
	}
	cc, err := config.ParseClientFields(fields)
	if err != nil {
		return config.Client{}, "", invalid("body", "%v", err)
	}
	cc.ID = id
	cfg := s.clients.Config
	if s.clients.Current != nil {
		cfg = s.clients.Current()
	}
	if err := cfg.ValidateClient(&cc); err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) && len(ve.Problems) > 0 {
			p := ve.Problems[0]
			reason := p.Message
			for _, q := range ve.Problems[1:] {
				reason += "; " + q.Field + ": " + q.Message
			}
			return config.Client{}, "", invalid(p.Field, "%s", reason)
		}
		return config.Client{}, "", err
	}
	if m := s.clients.MaxTokenTTL; m > 0 {
		if time.Duration(cc.AccessTokenTTL) > m {
			return config.Client{}, "", invalid("access_token_ttl", "must not exceed %s (the longest token lifetime of the configuration)", m)
		}
		if time.Duration(cc.IDTokenTTL) > m {
			return config.Client{}, "", invalid("id_token_ttl", "must not exceed %s (the longest token lifetime of the configuration)", m)
		}
	}
	data, err := config.ClientJSON(cc)
	if err != nil {
		return config.Client{}, "", err
	}
	return cc, string(data), nil
}

// auditClient records a change of a stored client in st, the change's
// own transaction: the change and its audit event commit together.
func (s *Service) auditClient(ctx context.Context, st Store, a Actor, typ, id string, details map[string]any) error {
	details["client_id"] = id
	if a.UserID == "" {
		details["by"] = "console"
		if a.Via != "" {
			details["by"] = a.Via
		}
	}
	e := models.AuditEvent{Type: typ, ClientID: a.ClientID, IP: a.IP, RequestID: a.RequestID}
	if a.UserID != "" {
		e.ActorUserID = &a.UserID
	}
	return st.RecordAudit(ctx, &e, details)
}

func (s *Service) changed(ctx context.Context) {
	if s.clients.Changed != nil {
		s.clients.Changed(ctx)
	}
}

func configView(c config.Client) ClientView {
	m, err := config.ClientFields(c)
	if err != nil {
		m = map[string]any{}
	}
	delete(m, "id")
	m["client_id"], m["source"] = c.ID, "config"
	return m
}

func (s *Service) storedView(r models.StoredClient) ClientView {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(r.Settings), &m)
	delete(m, "id")
	m["client_id"], m["source"], m["origin"] = r.ID, "database", r.Origin
	m["created_at"], m["updated_at"] = r.CreatedAt, r.UpdatedAt
	if r.PreviousSecretExpiresAt != nil && r.PreviousSecretExpiresAt.After(s.now()) {
		m["previous_secret_expires_at"] = *r.PreviousSecretExpiresAt
	}
	if _, ok := m["public"]; !ok {
		m["public"] = false
	}
	return m
}

// randomSecret returns n random bytes, base64url-encoded.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "=")
}

// hashSecret is how a stored client's secret is kept: the hex SHA-256
// (the secret is 256 random bits, so a fast hash is enough).
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// usesSecret reports whether a client authenticates with a secret
// Gatehouse generates: confidential clients, except those that prove
// themselves with keys (private_key_jwt) and so must have none.
func usesSecret(cc config.Client) bool {
	return !cc.Public && cc.TokenEndpointAuthMethod != config.AuthPrivateKeyJWT
}
