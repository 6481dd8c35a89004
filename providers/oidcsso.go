package providers

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// This file holds what single sign-on needs of an OpenID Connect
// upstream: the client's max_age and acr_values passed on (OIDC Core
// §3.1.2.1), the max_age answer checked (§3.1.3.7 item 13), and the
// upstream's auth_time, acr and amr read from the verified ID token.

// Bounds of what an upstream's acr, amr and acr_values may hold; values
// beyond them are dropped, never cut (a cut value would be another one).
const (
	maxACRLen       = 256
	maxAMRValues    = 8
	maxAMRLen       = 32
	maxACRValuesLen = 1024
)

// authParamsSSO adds max_age and acr_values to the authorization request
// and records max_age in saved, so Complete can check the answer. A
// negative max_age (which the caller should have refused) counts as 0,
// the strictest. acr_values that are not printable ASCII of bounded
// length are not sent (they are a voluntary request: the upstream may
// ignore them anyway).
func authParamsSSO(req BeginRequest, params url.Values, saved *oidcSaved) {
	if req.MaxAge != nil {
		age := max(*req.MaxAge, 0)
		saved.MaxAge = &age
		params.Set("max_age", strconv.Itoa(age))
	}
	if v := req.ACRValues; v != "" && len(v) <= maxACRValuesLen && printableASCII(v, true) {
		params.Set("acr_values", v)
	}
}

// checkMaxAge enforces a max_age the sign-in sent: the ID token must say
// when the person authenticated (auth_time), and that must be at most
// maxAge seconds (plus the clock skew) ago. Without the check, an
// upstream that ignores max_age would let an old session pass for a
// fresh sign-in.
func (p *oidcProvider) checkMaxAge(c claimSet, maxAge int) error {
	at, ok := c.number("auth_time")
	if !ok {
		return reject("the ID token carries no auth_time although max_age was requested")
	}
	if p.now().Sub(time.Unix(at, 0)) > maxAgeWithSkew(maxAge, p.cfg.skew) {
		return reject("the upstream sign-in is older than the max_age requested")
	}
	return nil
}

// maxAgeWithSkew is how old a sign-in may be under a max_age of seconds
// when clocks may disagree by skew. It saturates: a max_age longer than
// a time.Duration holds (the authorization request accepts ten digits)
// is never exceeded, instead of overflowing into a negative limit that
// every sign-in exceeds. A negative max_age counts as 0.
func maxAgeWithSkew(seconds int, skew time.Duration) time.Duration {
	seconds = max(seconds, 0)
	if int64(seconds) > (math.MaxInt64-int64(skew))/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(seconds)*time.Second + skew
}

// ssoClaims fills the identity's auth_time, acr and amr from verified
// claims. A malformed acr or amr value is dropped (never cut), and the
// drop logged without the value: dropping only ever understates how the
// person authenticated.
func (p *oidcProvider) ssoClaims(c claimSet, id *Identity) {
	if at, ok := c.number("auth_time"); ok && at > 0 {
		id.AuthTime = time.Unix(at, 0).UTC()
	}
	if v, ok := c["acr"]; ok {
		s, _ := v.(string)
		if s != "" && len(s) <= maxACRLen && printableASCII(s, false) {
			id.ACR = s
		} else {
			p.log.Warn("the upstream's acr claim was dropped: not a printable string of at most " + strconv.Itoa(maxACRLen) + " bytes")
		}
	}
	if v, ok := c["amr"]; ok {
		var dropped int
		id.AMR, dropped = readAMR(v)
		if dropped > 0 {
			p.log.Warn(fmt.Sprintf("%d value(s) of the upstream's amr claim were dropped: amr must be an array of at most %d printable strings without spaces of at most %d bytes",
				dropped, maxAMRValues, maxAMRLen))
		}
	}
}

// readAMR keeps the well-formed values of an amr claim: an array of
// strings, each non-empty printable ASCII without white space (they are
// stored space-separated) of at most maxAMRLen bytes, duplicates removed,
// at most maxAMRValues of them. It returns how many values it dropped
// (1 for a claim that is not an array at all).
func readAMR(v any) (amr []string, dropped int) {
	list, ok := v.([]any)
	if !ok {
		return nil, 1
	}
	for _, x := range list {
		s, ok := x.(string)
		switch {
		case !ok || s == "" || len(s) > maxAMRLen || !printableASCII(s, false) || len(amr) == maxAMRValues:
			dropped++
		case !slices.Contains(amr, s):
			amr = append(amr, s)
		}
	}
	return amr, dropped
}

// printableASCII reports whether s holds only visible ASCII characters
// (and spaces, when spaces is set).
func printableASCII(s string, spaces bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x21 || c > 0x7e) && !(spaces && c == ' ') {
			return false
		}
	}
	return true
}

// idTokenOnly are claims read from the ID token alone: UserInfo, which
// completes profile claims, never supplies them (a UserInfo auth_time
// must not satisfy max_age, nor its acr raise the sign-in's).
var idTokenOnly = []string{"auth_time", "acr", "amr", "nonce", "at_hash", "c_hash", "azp", "exp", "iat", "nbf", "sid"}
