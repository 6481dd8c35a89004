package providers

// Set is the configured provider instances, by name and in configuration
// order. It is fixed once built: browser sign-in and the token endpoint
// (token exchange) share one Set and see the same providers.
type Set struct {
	byName  map[string]Provider
	ordered []Provider
}

// NewSet returns the Set of list, keeping its order. Names are unique by
// configuration; should one repeat, the last instance answers to it.
func NewSet(list []Provider) *Set {
	s := &Set{byName: make(map[string]Provider, len(list)), ordered: append([]Provider(nil), list...)}
	for _, p := range list {
		s.byName[p.Name()] = p
	}
	return s
}

// Get returns the provider configured under name. A nil Set has none.
func (s *Set) Get(name string) (Provider, bool) {
	if s == nil {
		return nil, false
	}
	p, ok := s.byName[name]
	return p, ok
}

// All lists the providers in configuration order; the caller must not
// modify the slice.
func (s *Set) All() []Provider {
	if s == nil {
		return nil
	}
	return s.ordered
}
