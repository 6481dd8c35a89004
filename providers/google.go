package providers

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// The google kind signs in with Google accounts. Google Workspace
// domains are allowed by the hd (hosted domain) claim of the verified ID
// token — the hd request parameter is only a hint to Google's account
// chooser and proves nothing. A verified email is required. The group is
// "google:domain:<hd>".

// googleIssuer is Google's OpenID Connect issuer.
const googleIssuer = "https://accounts.google.com"

type googleSettings struct {
	oidcSettings `yaml:",inline"`
	// HostedDomains allow-lists Workspace domains; empty allows every
	// Google account, personal ones included.
	HostedDomains []string `yaml:"hosted_domains"`
	// InsecureIssuer replaces Google's issuer (tests against a fake).
	InsecureIssuer string `yaml:"insecure_issuer"`
}

func init() { Register("google", newGoogle) }

func newGoogle(name string, settings Settings, env Env) (Provider, error) {
	return buildOIDC(name, settings, env, func(s *googleSettings, e *SettingsError) (oidcConfig, oidcKind) {
		issuer := googleIssuer
		if s.InsecureIssuer != "" {
			issuer = s.InsecureIssuer
			if env.Production {
				e.add("insecure_issuer", "not allowed with GATEHOUSE_ENV=production")
			}
		}
		cfg := s.check(e, env, "insecure_issuer", issuer, "Google")
		if len(s.Claims.Groups) > 0 {
			e.add("claims.groups", "Google ID tokens carry no groups; the group is google:domain:<hd>")
		}
		domains := make([]string, len(s.HostedDomains))
		for i, d := range s.HostedDomains {
			domains[i] = strings.ToLower(strings.TrimSpace(d))
			if domains[i] == "" || strings.ContainsAny(domains[i], "/:@ *") {
				e.add("hosted_domains", "%q is not a domain such as example.com", d)
			}
		}
		return cfg, googleKind(domains, cfg.recheck.Required)
	})
}

// googleKind applies the hosted-domain allow-list (empty: any account)
// and requires a verified email. With offline (recheck_interval set) it
// asks Google for a refresh token (access_type=offline; Google knows no
// offline_access scope), which Google issues at the person's first
// consent to it.
func googleKind(domains []string, offline bool) oidcKind {
	return oidcKind{
		typ: "google",
		authParams: func(BeginRequest, *oidcSaved) url.Values {
			v := url.Values{}
			if len(domains) == 1 {
				v.Set("hd", domains[0]) // a hint for the account chooser only
			}
			if offline {
				v.Set("access_type", "offline")
			}
			return v
		},
		accept: func(c claimSet, id *Identity, _ string) error {
			if !id.EmailVerified {
				return Deny("Google has not verified the email address of this account.", "email_verified is not true")
			}
			hd := strings.ToLower(c.str("hd"))
			if len(domains) > 0 && !slices.Contains(domains, hd) {
				return Deny("This Google account does not belong to an organization allowed to sign in here.",
					fmt.Sprintf("hosted domain %q is not allowed", truncate(hd, 100)))
			}
			id.Groups = appendGroups(id.Groups, "google:domain:", []string{hd})
			return nil
		},
	}
}
