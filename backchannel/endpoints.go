package backchannel

import (
	"maps"
	"slices"
)

// endpoints is one generation of the clients told of logouts, never
// modified once stored.
type endpoints struct {
	uris    map[string]string // client id → backchannel_logout_uri
	clients []string          // ids of the clients with a URI, sorted
}

// SetEndpoints replaces Options.Endpoints (a configuration reload): the
// next poll claims rows for the clients it names, and the rows of a
// client it leaves out are dropped at the next housekeeping, as at start.
// A delivery in flight finishes on the URI it read.
func (d *Dispatcher) SetEndpoints(uris map[string]string) {
	e := &endpoints{uris: maps.Clone(uris)}
	if e.uris == nil {
		e.uris = map[string]string{}
	}
	for id, uri := range e.uris {
		if uri != "" {
			e.clients = append(e.clients, id)
		}
	}
	slices.Sort(e.clients)
	d.endpoints.Store(e)
}
