package provisioning

import "slices"

// Policy is the part of Options the YAML configuration file sets: which
// providers link by email and are trusted for email, and the org-sync
// rules. A configuration reload replaces it with SetPolicy.
type Policy struct {
	LinkByEmail  map[string]bool
	TrustedEmail map[string]bool
	Sync         SyncPolicy
}

// policy is one Policy as the Service reads it, never modified once
// stored.
type policy struct {
	linkByEmail  map[string]bool
	trustedEmail map[string]bool
	trusted      []string // the trustedEmail providers, sorted
	sync         SyncPolicy
}

// SetPolicy replaces the policy for every sign-in, re-check and admin
// call that starts after it; one in progress finishes on the policy it
// read (each reads it once per decision, so it never sees half of two).
func (s *Service) SetPolicy(p Policy) {
	n := &policy{linkByEmail: map[string]bool{}, trustedEmail: map[string]bool{}, sync: p.Sync}
	if n.sync.OnLeave == "" {
		n.sync.OnLeave = LeaveRemove
	}
	for name, ok := range p.LinkByEmail {
		n.linkByEmail[name] = ok
	}
	for name, ok := range p.TrustedEmail {
		n.trustedEmail[name] = ok
		if ok {
			n.trusted = append(n.trusted, name)
		}
	}
	slices.Sort(n.trusted)
	s.policy.Store(n)
}
