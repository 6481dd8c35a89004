package tokens_test

import (
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/tokens"
)

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c, err := tokens.NewUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != tokens.UserCodeLength || strings.Trim(c, tokens.UserCodeAlphabet) != "" {
			t.Fatalf("user code %q outside the alphabet", c)
		}
		if n, ok := tokens.NormalizeUserCode(tokens.FormatUserCode(c)); !ok || n != c {
			t.Fatalf("formatted %q normalizes to %q %v", tokens.FormatUserCode(c), n, ok)
		}
		seen[c] = true
	}
	if len(seen) < 190 {
		t.Fatalf("only %d distinct codes in 200", len(seen))
	}
	cases := []struct {
		typed, want string
		ok          bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdf-ghjk", "BCDFGHJK", true},
		{" bcdf ghjk ", "BCDFGHJK", true},
		{"BCDFGHJK", "BCDFGHJK", true},
		{"BCDF-GHJ", "", false},       // too short
		{"BCDF-GHJKL", "", false},     // too long
		{"ABCD-EFGH", "", false},      // vowels are not in the alphabet
		{"BCD0-GHJK", "", false},      // nor digits
		{"BCDF\u00a0GHJK", "", false}, // nor other spaces
		{"ＢCDF-GHJK", "", false},      // nor full-width letters
		{strings.Repeat("-", 100), "", false},
	}
	for _, c := range cases {
		got, ok := tokens.NormalizeUserCode(c.typed)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeUserCode(%q) = %q %v, want %q %v", c.typed, got, ok, c.want, c.ok)
		}
	}
	k1, k2 := tokens.DeriveKey("secret-one-0123456789abcdef", "device-user-code"), tokens.DeriveKey("secret-two-0123456789abcdef", "device-user-code")
	if tokens.UserCodeHash(k1, "BCDFGHJK") == tokens.UserCodeHash(k2, "BCDFGHJK") || tokens.UserCodeHash(k1, "BCDFGHJK") == "BCDFGHJK" {
		t.Fatal("user code hash does not depend on the key")
	}
}

func TestDeviceCodes(t *testing.T) {
	code, hash, err := tokens.NewDeviceCode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(code, tokens.DeviceCodePrefix) || strings.Contains(hash, code) {
		t.Fatalf("device code %q, hash %q", code, hash)
	}
	if h, ok := tokens.DeviceCodeHash(code); !ok || h != hash {
		t.Fatalf("DeviceCodeHash = %q %v", h, ok)
	}
	for _, bad := range []string{"", "ghd_", code + "A", "ghr_" + strings.TrimPrefix(code, "ghd_"), strings.TrimPrefix(code, "ghd_")} {
		if _, ok := tokens.DeviceCodeHash(bad); ok {
			t.Errorf("DeviceCodeHash(%q) accepted", bad)
		}
	}
}
