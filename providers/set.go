package providers

import "sync/atomic"

// Set is the configured provider instances, by name and in configuration
// order. Browser sign-in, the token endpoint (token exchange) and
// provisioning (re-checks) share one Set and see the same providers.
// Replace swaps them all at once (a configuration reload): a caller sees
// either the old providers or the new ones, never a mix.
type Set struct {
	cur atomic.Pointer[setState]
}

// setState is one generation of a Set, never modified once built.
type setState struct {
	byName  map[string]Provider
	ordered []Provider
}

// NewSet returns the Set of list, keeping its order. Names are unique by
// configuration; should one repeat, the last instance answers to it.
func NewSet(list []Provider) *Set {
	s := &Set{}
	s.Replace(list)
	return s
}

// Replace makes list the Set's providers, in its order, for every call
// that starts after it. The providers it replaces are not closed: the
// caller does that once the requests that may hold them are done.
func (s *Set) Replace(list []Provider) {
	st := &setState{byName: make(map[string]Provider, len(list)), ordered: append([]Provider(nil), list...)}
	for _, p := range list {
		st.byName[p.Name()] = p
	}
	s.cur.Store(st)
}

// Get returns the provider configured under name. A nil Set has none.
func (s *Set) Get(name string) (Provider, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.cur.Load().byName[name]
	return p, ok
}

// All lists the providers in configuration order; the caller must not
// modify the slice.
func (s *Set) All() []Provider {
	if s == nil {
		return nil
	}
	return s.cur.Load().ordered
}
