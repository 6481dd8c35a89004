package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// StoredClient is a client managed at runtime (table clients): the admin
// API, the console or Dynamic Client Registration made it. The YAML
// file's clients are not stored.
type StoredClient struct {
	ID string `gorm:"primaryKey"`
	// Settings is the client (config.Client) as a JSON object with the
	// YAML file's field names, without its secret.
	Settings string
	// SecretHash is the hex SHA-256 of the current secret ("" for a
	// public client); PreviousSecretHash, until PreviousSecretExpiresAt,
	// of the secret a rotation replaced.
	SecretHash              string
	PreviousSecretHash      string
	PreviousSecretExpiresAt *time.Time
	// RegistrationTokenHash is the hex SHA-256 of the RFC 7592
	// registration access token ("" unless registered through DCR).
	RegistrationTokenHash string
	// Origin says who made it: ClientOriginAdmin, ClientOriginConsole or
	// ClientOriginRegistration.
	Origin    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Origins of a stored client.
const (
	ClientOriginAdmin        = "admin"
	ClientOriginConsole      = "console"
	ClientOriginRegistration = "registration"
)

// TableName is the clients table.
func (StoredClient) TableName() string { return "clients" }

// clientsVersion is the one row every change of clients increments.
type clientsVersion struct {
	ID      int
	Version int64
}

func (clientsVersion) TableName() string { return "clients_version" }

// ClientsVersion returns the counter every change of stored clients
// increments (in the change's transaction): a replica that saw it move
// reloads the clients.
func (s *Store) ClientsVersion(ctx context.Context) (int64, error) {
	var v clientsVersion
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where("id = 1").Take(&v).Error })
	return v.Version, mapErr(err, "read clients version")
}

// ListStoredClients returns every stored client, by id.
func (s *Store) ListStoredClients(ctx context.Context) ([]StoredClient, error) {
	var out []StoredClient
	err := s.read(ctx, func(db *gorm.DB) error { return db.Order("id").Find(&out).Error })
	return out, mapErr(err, "list clients")
}

// CountStoredClients counts the stored clients of an origin ("": all).
func (s *Store) CountStoredClients(ctx context.Context, origin string) (int64, error) {
	var n int64
	q := s.db.WithContext(ctx).Model(&StoredClient{})
	if origin != "" {
		q = q.Where("origin = ?", origin)
	}
	err := q.Count(&n).Error
	return n, mapErr(err, "count clients")
}

// FindStoredClient returns a stored client (ErrNotFound without one).
func (s *Store) FindStoredClient(ctx context.Context, id string) (*StoredClient, error) {
	var c StoredClient
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&c).Error
	return &c, mapErr(err, "find client")
}

// CreateStoredClient inserts a client and moves the version; an id
// already taken is ErrConflict.
func (s *Store) CreateStoredClient(ctx context.Context, c *StoredClient) error {
	return s.InTx(ctx, func(tx *Store) error {
		// The version first: every change takes the clients' change lock
		// before any client row, so that two never wait for each other.
		if err := tx.bumpClientsVersion(); err != nil {
			return err
		}
		var n int64
		if err := tx.db.Model(&StoredClient{}).Where("id = ?", c.ID).Count(&n).Error; err != nil {
			return mapErr(err, "create client")
		}
		if n > 0 {
			return mapErr(gorm.ErrDuplicatedKey, "create client")
		}
		return mapErr(tx.db.Create(c).Error, "create client")
	})
}

// UpdateStoredClient writes every column of c (found by id) and moves
// the version; ErrNotFound when it is gone.
func (s *Store) UpdateStoredClient(ctx context.Context, c *StoredClient) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.bumpClientsVersion(); err != nil { // the lock first, as in CreateStoredClient
			return err
		}
		res := tx.db.Model(&StoredClient{}).Where("id = ?", c.ID).Updates(map[string]any{
			"settings": c.Settings, "secret_hash": c.SecretHash, "previous_secret_hash": c.PreviousSecretHash,
			"previous_secret_expires_at": c.PreviousSecretExpiresAt, "registration_token_hash": c.RegistrationTokenHash,
			"updated_at": c.UpdatedAt,
		})
		if res.Error == nil && res.RowsAffected == 0 {
			return mapErr(gorm.ErrRecordNotFound, "update client")
		}
		return mapErr(res.Error, "update client")
	})
}

// DeleteStoredClient deletes a client, ends its live sessions (revoking
// their refresh tokens; ending a session queues its back-channel logout)
// and moves the version, in one transaction. It returns how many
// sessions it ended; ErrNotFound when the client is not stored.
func (s *Store) DeleteStoredClient(ctx context.Context, id, reason string, now time.Time) (int64, error) {
	var ended int64
	err := s.InTx(ctx, func(tx *Store) error {
		if err := tx.bumpClientsVersion(); err != nil { // the lock first, as in CreateStoredClient
			return err
		}
		res := tx.db.Where("id = ?", id).Delete(&StoredClient{})
		if res.Error == nil && res.RowsAffected == 0 {
			return mapErr(gorm.ErrRecordNotFound, "delete client")
		}
		if res.Error != nil {
			return mapErr(res.Error, "delete client")
		}
		n, err := tx.revokeSessions(ctx, reason, now, "client_id = ?", id)
		ended = n
		return err
	})
	return ended, err
}

// LockStoredClients makes the changes of stored clients run one at a
// time, from this call to the end of the caller's transaction (it must
// be called in one: InTx): it moves the version row, whose lock every
// other change then waits for (the row lock on PostgreSQL; SQLite
// serializes write transactions anyway). A read-modify-write of a client
// (an update, a secret rotation) or a count before an insert (the
// registration limit) done after it sees every change committed before
// and none in between, so none is lost and no limit is overrun.
func (s *Store) LockStoredClients(ctx context.Context) error {
	if !s.inTx {
		return errors.New("lock stored clients: not in a transaction")
	}
	return s.bumpClientsVersion()
}

func (s *Store) bumpClientsVersion() error {
	err := s.db.Exec("UPDATE clients_version SET version = version + 1 WHERE id = 1").Error
	return mapErr(err, "move clients version")
}
