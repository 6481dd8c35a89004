package rbac_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/gatehouse-id/gatehouse/rbac"
)

// sharedCases is rbac/testdata/permission-cases.json: the permission
// matching every Gatehouse backend library must agree on.
type sharedCases struct {
	Match []struct {
		Grant      string `json:"grant"`
		Permission string `json:"permission"`
		Allowed    bool   `json:"allowed"`
	} `json:"match"`
}

// TestSharedPermissionCases runs the cases the other backend libraries
// run too, so that a grant means the same in every backend.
func TestSharedPermissionCases(t *testing.T) {
	raw, err := os.ReadFile("testdata/permission-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases sharedCases
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Match) < 10 {
		t.Fatalf("only %d cases", len(cases.Match))
	}
	for _, tc := range cases.Match {
		if got := rbac.Match(tc.Grant, tc.Permission); got != tc.Allowed {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.Grant, tc.Permission, got, tc.Allowed)
		}
		if got := rbac.Allowed([]string{tc.Grant}, tc.Permission); got != tc.Allowed {
			t.Errorf("Allowed([%q], %q) = %v, want %v", tc.Grant, tc.Permission, got, tc.Allowed)
		}
	}
}
