package rbac_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/rbac"
)

func TestValidateGrant(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" = valid; else a fragment of the message
	}{
		{"kb:read", ""},
		{"api-key:rotate", ""},
		{"kb2:read-all", ""},
		{"*", ""},
		{"kb:*", ""},
		{"*:read", ""},
		{"*:*", ""},
		{"kb:r*", ""},
		{"k*:read", ""},
		{"team-*:read", ""},
		{"", "is empty; write resource:action"},
		{"kb", "has no colon"},
		{"kb:read:all", "more than one colon"},
		{":read", "empty resource"},
		{"kb:", "empty action"},
		{"KB:read", `resource "KB" has the uppercase letter "K"; use lowercase`},
		{"kb:Read", `action "Read" has the uppercase letter "R"`},
		{"kb:re ad", `action "re ad" contains a space`},
		// Underscores are accepted like hyphens (real backends name
		// resources api_key), inside a name only.
		{"kb_base:read", ""},
		{"api_key:rotate", ""},
		{"api_key:read_all", ""},
		{"api__key:read", ""},
		{"api_-key:read", ""},
		{"api_*:read", ""},
		{"kb:read_*", ""},
		{"_kb:read", `resource "_kb" starts with an underscore; start with a letter or digit`},
		{"kb_:read", `resource "kb_" ends with an underscore`},
		{"kb:_read", `action "_read" starts with an underscore`},
		{"kb:read_", `action "read_" ends with an underscore`},
		{"kb:_*", "starts with an underscore"},
		{"_:read", "starts with an underscore"},
		{"kb:re.ad", `action "re.ad" contains "."; only lowercase letters, digits, hyphens and underscores are allowed`},
		{"API_KEY:read", "uppercase"},
		{"kb:lés", `contains "é"`},
		{"-kb:read", "starts with a hyphen"},
		{"kb-:read", "ends with a hyphen"},
		{"k*b:read", "wildcard in the middle"},
		{"kb:**", "more than one wildcard"},
		{"**", "has no colon"},
		{"kb:-*", "starts with a hyphen"},
		{strings.Repeat("a", 120) + ":readable", "longer than 128"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			err := rbac.ValidateGrant(tc.in)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("ValidateGrant(%q) = %v, want valid", tc.in, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ValidateGrant(%q) = %v, want message containing %q", tc.in, err, tc.want)
			case err != nil && !errors.Is(err, rbac.ErrInvalid):
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestValidatePermission(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		{"kb:read", ""},
		{"organization:admin", ""},
		{"api_key:rotate", ""},
		{"api_key:_rotate", "starts with an underscore"},
		{"api_key:rotate_", "ends with an underscore"},
		{"api_key:r*", "is a wildcard"},
		{"*", "has no colon"},
		{"kb:*", `action "*" is a wildcard; a required permission names one resource and one action`},
		{"*:read", `resource "*" is a wildcard`},
		{"kb:r*", "is a wildcard"},
		{"Kb:read", "uppercase"},
	}
	for _, tc := range cases {
		err := rbac.ValidatePermission(tc.in)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidatePermission(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	err := rbac.ValidatePermission("KB:read")
	if got := err.Error(); got != `permission "KB:read": resource "KB" has the uppercase letter "K"; use lowercase` {
		t.Errorf("message = %s", got)
	}
}

func TestMatch(t *testing.T) {
	cases := []struct {
		grant, perm string
		want        bool
	}{
		{"*", "kb:read", true},
		{"*:*", "kb:delete", true},
		{"kb:read", "kb:read", true},
		{"kb:read", "kb:write", false},
		{"kb:read", "kbx:read", false},
		{"kb:*", "kb:read", true},
		{"kb:*", "kbx:read", false},
		{"*:read", "kb:read", true},
		{"*:read", "kb:write", false},
		{"kb:r*", "kb:read", true},
		{"kb:r*", "kb:run", true},
		{"kb:w*", "kb:read", false},
		{"k*:read", "kb:read", true},
		{"team-*:read", "team-a:read", true},
		{"team-*:read", "teams:read", false},
		{"api_key:rotate", "api_key:rotate", true},
		{"api_key:*", "api_key:rotate", true},
		{"api_*:read", "api_key:read", true},
		{"api_*:read", "api-key:read", false},
		{"api-key:rotate", "api_key:rotate", false},
		{"api_key:rotate", "api-key:rotate", false},
		{"*:read_all", "api_key:read_all", true},
		{"_api:*", "_api:read", false},
		// Malformed input matches nothing: a typo never widens access.
		{"KB:*", "kb:read", false},
		{"k*b:read", "kb:read", false},
		{"kb", "kb:read", false},
		{"*", "kb:*", false},
		{"*", "not a permission", false},
		{"", "kb:read", false},
	}
	for _, tc := range cases {
		if got := rbac.Match(tc.grant, tc.perm); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.grant, tc.perm, got, tc.want)
		}
	}
	if !rbac.Allowed([]string{"kb:write", "*:read"}, "agent:read") || rbac.Allowed([]string{"kb:write"}, "kb:read") || rbac.Allowed(nil, "kb:read") {
		t.Error("Allowed does not combine grants")
	}
}

func TestParseGrantString(t *testing.T) {
	for _, s := range []string{"*", "kb:*", "*:read", "kb:r*"} {
		g, err := rbac.ParseGrant(s)
		if err != nil || g.String() != s {
			t.Errorf("ParseGrant(%q) = %q, %v", s, g, err)
		}
	}
	var zero rbac.Grant
	if zero.Allows("kb", "read") {
		t.Error("the zero Grant allows something")
	}
}

func TestValidateRoleName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"owner", ""},
		{"kb-editor", ""},
		{"level2", ""},
		{"", "is empty"},
		{"Admin", `role name "Admin": has the uppercase letter "A"; use lowercase`},
		{"kb editor", "contains a space"},
		{"kb*", "is a wildcard"},
		{"-x", "starts with a hyphen"},
		{"x-", "ends with a hyphen"},
		// Role names keep their grammar: no underscore.
		{"kb_editor", `role name "kb_editor": contains "_"; only lowercase letters, digits and hyphens are allowed`},
		{strings.Repeat("r", 64), "longer than 63"},
	}
	for _, tc := range cases {
		err := rbac.ValidateRoleName(tc.in)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("ValidateRoleName(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"*", "kb:read", "kb:r*", "*:read", "k*b:x", "::", "é:ü", "api_key:rotate", "_a:b_", "a_*:b"} {
		f.Add(s, "kb:read")
	}
	f.Fuzz(func(t *testing.T, grant, perm string) {
		g, err := rbac.ParseGrant(grant)
		if err != nil {
			if rbac.Match(grant, perm) {
				t.Fatalf("invalid grant %q matches %q", grant, perm)
			}
			return
		}
		// A valid grant round-trips and re-validates.
		if err := rbac.ValidateGrant(g.String()); err != nil {
			t.Fatalf("String() of %q = %q is invalid: %v", grant, g.String(), err)
		}
		if rbac.ValidatePermission(perm) == nil && !strings.Contains(grant, "*") && rbac.Match(grant, perm) != (grant == perm) {
			t.Fatalf("exact grant %q vs %q", grant, perm)
		}
	})
}

func TestCovers(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"*", "kb:read", true},
		{"*", "*", true},
		{"kb:*", "kb:read", true},
		{"kb:*", "kb:r*", true},
		{"kb:r*", "kb:*", false},
		{"kb:r*", "kb:read", true},
		{"kb:r*", "kb:write", false},
		{"kb:read", "kb:read", true},
		{"kb:read", "kb:r*", false},
		{"*:read", "kb:read", true},
		{"*:read", "kb:*", false},
		{"k*:read", "kb:read", true},
		{"kb:read", "*", false},
		{"KB:read", "KB:read", false},
		{"api_*:*", "api_key:r*", true},
		{"api_key:r*", "api_key:*", false},
		{"api_:read", "api_:read", false},
	}
	for _, tc := range cases {
		if got := rbac.Covers(tc.a, tc.b); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if !rbac.CoveredBy([]string{"docs:read", "kb:*"}, "kb:write") || rbac.CoveredBy([]string{"docs:*"}, "kb:write") {
		t.Fatal("CoveredBy")
	}
}
