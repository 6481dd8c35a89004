package backchannel_test

import (
	"testing"

	"github.com/gatehouse-id/gatehouse/models"
	"github.com/gatehouse-id/gatehouse/models/dbtest"
)

// TestSetEndpointsReplacesClients: after SetEndpoints (a configuration
// reload) logouts go to the clients and URIs it names, and a client it
// leaves out is told nothing more.
func TestSetEndpointsReplacesClients(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *models.DB) {
		f := newFixture(t, db)
		a, b := f.receiver("app-a", nil), f.receiver("app-b", nil)
		d := f.dispatcher(map[string]string{"app-a": a.URL + "/logout"}, nil, nil)
		f.endSession("app-a")
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		d.SetEndpoints(map[string]string{"app-b": b.URL + "/logout"})
		sid := f.endSession("app-b")
		f.endSession("app-a")
		if err := d.DeliverDue(f.ctx); err != nil {
			t.Fatal(err)
		}
		if got := b.received(); len(got) != 1 || got[0].SessionID != sid {
			t.Fatalf("app-b received %+v", got)
		}
		if got := a.received(); len(got) != 1 {
			t.Fatalf("app-a, removed, received %d logouts in all", len(got))
		}
	})
}
