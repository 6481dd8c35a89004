package rbac

// Permission grammar and wildcard matching: plain Go, so Gatehouse and
// every backend agree on what a grant covers.
//
// A permission is "resource:action", each part made of lowercase letters,
// digits, hyphens and underscores, starting and ending with a letter or
// digit ("kb:read", "api-key:rotate", "api_key:rotate"). A grant, what a role
// holds, may use wildcards: "*" (everything), "kb:*" (every action on kb),
// "*:read" (read on every resource) and a trailing "*" after a prefix
// ("kb:r*" covers kb:read and kb:run). A wildcard may only end a part.

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen bounds a permission or grant; real ones are short.
const MaxLen = 128

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("invalid")

// Error says what is wrong with a permission, grant or role name.
type Error struct {
	// Kind is what was checked: "permission", "grant" or "role name".
	Kind  string
	Value string
	// Reason says what is wrong in words a person can act on.
	Reason string
}

// Error reads like `permission "KB:read": resource "KB" has ...`.
func (e *Error) Error() string { return fmt.Sprintf("%s %q: %s", e.Kind, e.Value, e.Reason) }

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *Error) Unwrap() error { return ErrInvalid }

// Grant is a parsed grant; its parts may end with a wildcard.
type Grant struct {
	resource, action string
}

// ParseGrant validates a grant such as "kb:read", "kb:*", "*:read",
// "kb:r*" or "*".
func ParseGrant(s string) (Grant, error) {
	if s == "*" {
		return Grant{resource: "*", action: "*"}, nil
	}
	res, act, err := parse("grant", s, true)
	return Grant{resource: res, action: act}, err
}

// ValidateGrant reports what is wrong with a grant, or nil.
func ValidateGrant(s string) error {
	_, err := ParseGrant(s)
	return err
}

// ValidatePermission reports what is wrong with a required permission
// (what an endpoint asks for), or nil: it names one resource and one
// action, so wildcards are refused.
func ValidatePermission(s string) error {
	_, _, err := parse("permission", s, false)
	return err
}

// Allows reports whether the grant covers resource:action.
func (g Grant) Allows(resource, action string) bool {
	return g.resource != "" && matchPart(g.resource, resource) && matchPart(g.action, action)
}

// String is the grant as written ("*" for everything).
func (g Grant) String() string {
	if g.resource == "*" && g.action == "*" {
		return "*"
	}
	return g.resource + ":" + g.action
}

// Match reports whether grant covers permission. A malformed grant or
// permission matches nothing, so a typo can never widen access.
func Match(grant, permission string) bool {
	if ValidatePermission(permission) != nil {
		return false
	}
	g, err := ParseGrant(grant)
	if err != nil {
		return false
	}
	res, act, _ := strings.Cut(permission, ":")
	return g.Allows(res, act)
}

// Allowed reports whether any of grants covers permission.
func Allowed(grants []string, permission string) bool {
	for _, g := range grants {
		if Match(g, permission) {
			return true
		}
	}
	return false
}

// ValidateRoleName reports what is wrong with a role name, or nil. Role
// names follow the rule of permission parts without the underscore:
// lowercase letters, digits and hyphens, starting and ending with a
// letter or digit.
func ValidateRoleName(s string) error {
	reason := checkPart(s, false, false)
	switch {
	case s == "":
		reason = "is empty"
	case len(s) > 63:
		reason = "is longer than 63 characters"
	}
	if reason != "" {
		return &Error{Kind: "role name", Value: s, Reason: reason}
	}
	return nil
}

const example = "write resource:action, such as kb:read"

// parse checks the overall shape and both parts, returning the parts.
func parse(kind, s string, wildcards bool) (string, string, error) {
	fail := func(reason string) (string, string, error) {
		return "", "", &Error{Kind: kind, Value: s, Reason: reason}
	}
	switch {
	case s == "":
		return fail("is empty; " + example)
	case len(s) > MaxLen:
		return fail(fmt.Sprintf("is longer than %d characters", MaxLen))
	}
	res, act, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return fail("has no colon; " + example)
	case strings.Contains(act, ":"):
		return fail("has more than one colon; " + example)
	case res == "":
		return fail("has an empty resource before the colon")
	case act == "":
		return fail("has an empty action after the colon")
	}
	for _, p := range [2]struct{ what, v string }{{"resource", res}, {"action", act}} {
		if reason := checkPart(p.v, wildcards, true); reason != "" {
			return fail(fmt.Sprintf("%s %q %s", p.what, p.v, reason))
		}
	}
	return res, act, nil
}

// checkPart returns why one part (or a role name) is malformed, or "".
// With wildcards, a part may be "*" or end with "*" after a valid prefix.
// With underscores, "_" is allowed like "-": inside a name, never first,
// and never last unless a wildcard follows ("team_*").
func checkPart(v string, wildcards, underscores bool) string {
	name := v
	switch n := strings.Count(v, "*"); {
	case n > 1:
		return "has more than one wildcard; a wildcard may only end a part, as in kb:r*"
	case n == 1 && !strings.HasSuffix(v, "*"):
		return "has a wildcard in the middle; a wildcard may only end a part, as in kb:r*"
	case n == 1 && !wildcards:
		return "is a wildcard; a required permission names one resource and one action"
	case n == 1:
		name = strings.TrimSuffix(v, "*")
		if name == "" {
			return ""
		}
	}
	allowed := "only lowercase letters, digits and hyphens are allowed"
	if underscores {
		allowed = "only lowercase letters, digits, hyphens and underscores are allowed"
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_' && underscores:
		case 'A' <= c && c <= 'Z':
			return fmt.Sprintf("has the uppercase letter %q; use lowercase", string(c))
		case c == ' ' || c == '\t':
			return "contains a space"
		default:
			return fmt.Sprintf("contains %q; %s", printable(name[i:]), allowed)
		}
	}
	if name == "" {
		return ""
	}
	switch first, last := name[0], name[len(name)-1]; {
	case first == '-':
		return "starts with a hyphen; start with a letter or digit"
	case first == '_':
		return "starts with an underscore; start with a letter or digit"
	case name == v && last == '-':
		return "ends with a hyphen"
	case name == v && last == '_':
		return "ends with an underscore"
	}
	return ""
}

// printable is the first character of s as a string (whole UTF-8 runes).
func printable(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}

// matchPart matches one part of a grant against a concrete value.
func matchPart(pattern, v string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(v, prefix)
	}
	return pattern == v
}

// Covers reports whether grant a allows everything grant b allows, so
// that whoever holds a may hand b on (an API key's permissions, a role's
// grants): "kb:*" covers "kb:r*" and "kb:read"; "kb:r*" does not cover
// "kb:*". Malformed grants cover and are covered by nothing.
func Covers(a, b string) bool {
	ga, err := ParseGrant(a)
	if err != nil {
		return false
	}
	gb, err := ParseGrant(b)
	if err != nil {
		return false
	}
	return coversPart(ga.resource, gb.resource) && coversPart(ga.action, gb.action)
}

// CoveredBy reports whether some grant of held covers grant.
func CoveredBy(held []string, grant string) bool {
	for _, h := range held {
		if Covers(h, grant) {
			return true
		}
	}
	return false
}

// coversPart: a literal covers only itself; "p*" covers whatever starts
// with p, literal or pattern.
func coversPart(a, b string) bool {
	prefix, wild := strings.CutSuffix(a, "*")
	if !wild {
		return a == b
	}
	return strings.HasPrefix(strings.TrimSuffix(b, "*"), prefix)
}
