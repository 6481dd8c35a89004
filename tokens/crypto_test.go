package tokens

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	a := DeriveKey(secret, "signing-keys")
	if len(a) != 32 {
		t.Fatalf("len = %d, want 32", len(a))
	}
	if !bytes.Equal(a, DeriveKey(secret, "signing-keys")) {
		t.Fatal("not deterministic")
	}
	if bytes.Equal(a, DeriveKey(secret, "login-state")) {
		t.Fatal("different purposes gave the same key")
	}
	if bytes.Equal(a, DeriveKey(secret+"x", "signing-keys")) {
		t.Fatal("different secrets gave the same key")
	}
	// RFC 5869 HKDF-SHA256, no salt, computed independently: pinned so a
	// refactor cannot silently change the key every stored key is under.
	const want = "eced7de97c6f9dd8c7c842b5a550832f39290b6fa8c17658b4eea5226819c4c0"
	if got := hex.EncodeToString(DeriveKey("secret", "purpose")); got != want {
		t.Fatalf("DeriveKey(secret, purpose) = %s, want %s", got, want)
	}
}

func TestSealOpen(t *testing.T) {
	key := DeriveKey("0123456789abcdef0123456789abcdef", "test")
	other := DeriveKey("0123456789abcdef0123456789abcdef", "other")
	plain := []byte("private key bytes")
	ad := []byte("kid-1")

	sealed, err := Seal(key, plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Seal(key, plain, ad)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of the same plaintext are equal: nonce not random")
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("plaintext visible in sealed output")
	}
	got, err := Open(key, sealed, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		key    []byte
		sealed []byte
		ad     []byte
	}{
		{"wrong key", other, sealed, ad},
		{"wrong additional data", key, sealed, []byte("kid-2")},
		{"missing additional data", key, sealed, nil},
		{"tampered nonce", key, flip(0), ad},
		{"tampered ciphertext", key, flip(14), ad},
		{"tampered tag", key, flip(len(sealed) - 1), ad},
		{"truncated", key, sealed[:len(sealed)-1], ad},
		{"too short", key, sealed[:10], ad},
		{"empty", key, nil, ad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(tc.key, tc.sealed, tc.ad)
			if !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}

	if _, err := Seal(key[:16], plain, ad); err == nil || errors.Is(err, ErrDecrypt) {
		t.Fatalf("Seal with a 16-byte key: err = %v, want a key size error", err)
	}
	if _, err := Open(key[:16], sealed, ad); err == nil || errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with a 16-byte key: err = %v, want a key size error", err)
	}
}
