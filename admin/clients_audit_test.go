package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/admin"
	"github.com/gatehouse-id/gatehouse/config"
	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// auditFailingStore is a real store whose audit writes of client events
// fail, inside transactions too.
type auditFailingStore struct{ admin.Store }

func (s auditFailingStore) InTx(ctx context.Context, fn func(tx admin.Store) error) error {
	return s.Store.InTx(ctx, func(tx admin.Store) error { return fn(auditFailingStore{tx}) })
}

func (s auditFailingStore) RecordAudit(ctx context.Context, e *models.AuditEvent, details map[string]any) error {
	if strings.HasPrefix(e.Type, "client.") {
		return errors.New("audit write failed")
	}
	return s.Store.RecordAudit(ctx, e, details)
}

// TestClientChangesCommitWithTheirAudit: a change of a stored client and
// its audit event commit together: when the event cannot be written, the
// change is refused and nothing of it stays (no client created, no
// secret rotated, no field changed, no client deleted).
func TestClientChangesCommitWithTheirAudit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		ctx := context.Background()
		store := models.NewStore(db)
		good := admin.New(admin.NewStore(store), nil, nil)
		bad := admin.New(auditFailingStore{admin.NewStore(store)}, nil, nil)
		cfg := &config.Config{Issuer: "https://id.example.com"}
		for _, s := range []*admin.Service{good, bad} {
			s.SetClients(admin.ClientOptions{Config: cfg})
		}
		fields := map[string]any{"client_id": "reports", "redirect_uris": []any{"https://app.example.com/cb"}}
		if _, err := bad.ConsoleCreateClient(ctx, fields); err == nil {
			t.Fatal("create without its audit event succeeded")
		}
		if _, err := store.FindStoredClient(ctx, "reports"); !errors.Is(err, models.ErrNotFound) {
			t.Fatalf("the client stayed after its audit failed: %v", err)
		}
		created, err := good.ConsoleCreateClient(ctx, fields)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := store.FindStoredClient(ctx, "reports")
		if _, err := bad.ConsoleRotateClientSecret(ctx, "reports", 0); err == nil {
			t.Error("rotation without its audit event succeeded")
		}
		if _, err := bad.ConsoleUpdateClient(ctx, "reports", map[string]any{"name": "Changed"}); err == nil {
			t.Error("update without its audit event succeeded")
		}
		if _, err := bad.ConsoleDeleteClient(ctx, "reports"); err == nil {
			t.Error("deletion without its audit event succeeded")
		}
		after, err := store.FindStoredClient(ctx, "reports")
		if err != nil || after.SecretHash != before.SecretHash || after.Settings != before.Settings || created.Secret == "" {
			t.Fatalf("the client changed without its audit event: %+v, %v", after, err)
		}
	})
}
