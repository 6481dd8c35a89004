package oauth

// trustedEmailProviders names the providers whose verified emails count
// now (a reload may change trusted_email).
func (s *Service) trustedEmailProviders() []string {
	if s.provisioner == nil {
		return nil
	}
	return s.provisioner.TrustedEmailProviders()
}
