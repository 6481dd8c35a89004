package providers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/fault"
)

// Upstream re-checks: Gatehouse asks the upstream again, when a
// downstream refresh finds the last check older than recheck_interval,
// whether the person is still who they were at sign-in (an OIDC kind
// redeems the upstream refresh token it kept; GitHub reads /user, the
// organizations and teams with the access token it kept). What the kind
// keeps is Identity.Recheck, opaque to the caller, which seals it.

// RecheckPolicy is one provider's re-check configuration, validated.
type RecheckPolicy struct {
	// Enabled: the kind re-checks (Rechecker) and recheck_interval is not
	// "off".
	Enabled bool
	// Interval is the least time between two checks; 0 re-checks at every
	// refresh.
	Interval time.Duration
	// Required: recheck_interval was configured explicitly, so an identity
	// the upstream gave nothing to re-check with (no refresh token) counts
	// as an unreachable upstream, instead of not being re-checked.
	Required bool
	// DenyUnavailable refuses a refresh whose due re-check could not reach
	// the upstream (on_recheck_unavailable: deny); else it is kept until
	// MaxStaleness.
	DenyUnavailable bool
	// MaxStaleness: a refresh is refused once the last successful check is
	// older than this and the re-check cannot reach the upstream.
	MaxStaleness time.Duration
	// MaxSessionAge, when set (kinds that cannot re-check: SAML), refuses
	// a refresh once the upstream's last word on the person (the last
	// sign-in through it) is older than this.
	MaxSessionAge time.Duration
}

// RecheckPolicyHolder is implemented by providers with a re-check policy.
type RecheckPolicyHolder interface {
	RecheckPolicy() RecheckPolicy
}

// Rechecker is implemented by providers that can ask the upstream again
// about a person who signed in earlier.
type Rechecker interface {
	RecheckPolicyHolder
	// Recheck asks the upstream about the person saved describes (an
	// Identity.Recheck of theirs). It returns what the upstream says now,
	// with Recheck set to what the next re-check needs (a rotated upstream
	// refresh token), or an error: one matching ErrGone when the upstream
	// says the person is gone (the grant was revoked, the account refused,
	// no longer in an allowed organization, team or domain), any other
	// (matching ErrUnavailable, usually) when it could not tell. When an
	// upstream refresh token was rotated before the failure, newSaved is
	// still returned with the error: the old token is spent.
	Recheck(ctx context.Context, saved string) (id *Identity, newSaved string, err error)
}

// ErrGone: the upstream says the person who signed in is no longer
// allowed (re-checks).
var ErrGone = fault.New(fault.InvalidGrant, errors.New("the identity provider no longer vouches for this person"))

// gone wraps a reason as ErrGone.
func gone(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrGone, fmt.Sprintf(format, args...))
}

// recheckSettings are the YAML fields of every kind that re-checks.
type recheckSettings struct {
	// RecheckInterval: a duration ("1h", "0" = every refresh) or "off".
	RecheckInterval recheckInterval `yaml:"recheck_interval"`
	// OnRecheckUnavailable is keep (default) or deny.
	OnRecheckUnavailable string `yaml:"on_recheck_unavailable"`
	// RecheckMaxStaleness bounds how long keep keeps; default 24h.
	RecheckMaxStaleness time.Duration `yaml:"recheck_max_staleness"`
}

// recheckInterval is recheck_interval as written: unset, "off", or a
// duration.
type recheckInterval struct {
	set, off bool
	d        time.Duration
}

// UnmarshalYAML accepts "off" or a Go duration ("0" included).
func (r *recheckInterval) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return errors.New("must be a duration such as 1h, 0 (every refresh) or off")
	}
	s = strings.TrimSpace(s)
	r.set = true
	if strings.EqualFold(s, "off") {
		r.off = true
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%q must be a duration such as 1h, 0 (every refresh) or off", s)
	}
	r.d = d
	return nil
}

// Re-check defaults and bounds.
const (
	DefaultRecheckInterval     = time.Hour
	DefaultRecheckMaxStaleness = 24 * time.Hour
	maxRecheckDuration         = 10 * 365 * 24 * time.Hour
)

// check validates the settings of a kind that can re-check and returns
// the policy.
func (s *recheckSettings) check(e *SettingsError) RecheckPolicy {
	p := RecheckPolicy{Enabled: !s.RecheckInterval.off, Interval: DefaultRecheckInterval,
		Required: s.RecheckInterval.set && !s.RecheckInterval.off, MaxStaleness: s.RecheckMaxStaleness}
	if s.RecheckInterval.set && !s.RecheckInterval.off {
		p.Interval = s.RecheckInterval.d
		if p.Interval > maxRecheckDuration {
			e.add("recheck_interval", "must be at most 10 years")
		}
	}
	switch strings.ToLower(s.OnRecheckUnavailable) {
	case "", "keep":
	case "deny":
		p.DenyUnavailable = true
	default:
		e.add("on_recheck_unavailable", "must be keep or deny, not %q", truncate(s.OnRecheckUnavailable, 32))
	}
	switch {
	case p.MaxStaleness == 0:
		p.MaxStaleness = DefaultRecheckMaxStaleness
	case p.MaxStaleness < 0 || p.MaxStaleness > maxRecheckDuration:
		e.add("recheck_max_staleness", "must be a positive duration such as 24h")
	case p.Enabled && p.MaxStaleness < p.Interval:
		e.add("recheck_max_staleness", "must not be shorter than recheck_interval (%s)", p.Interval)
	}
	if !p.Enabled && (s.OnRecheckUnavailable != "" || s.RecheckMaxStaleness != 0) {
		e.add("recheck_interval", "is off, so on_recheck_unavailable and recheck_max_staleness have no effect; remove them")
	}
	return p
}

// checkMaxSessionAge validates max_session_age (kinds that cannot
// re-check); zero is no limit.
func checkMaxSessionAge(d time.Duration, e *SettingsError) RecheckPolicy {
	if d < 0 || d > maxRecheckDuration {
		e.add("max_session_age", "must be a positive duration such as 12h")
	} else if d > 0 && d < time.Minute {
		e.add("max_session_age", "must be at least 1m")
	}
	return RecheckPolicy{MaxSessionAge: d}
}
