package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Device authorization grant (RFC 8628) secrets. The device code is an
// opaque "ghd_" secret like a refresh token (256 random bits, stored as
// its SHA-256). The user code is what a person types: 8 letters from an
// alphabet without vowels (so it spells no words) and without digits (no
// 0/O or 1/I look-alikes), about 34.6 bits, stored as an HMAC under a key derived from the secret key,
// so that a database dump cannot be brute-forced offline.

// DeviceCodePrefix starts every device code.
const DeviceCodePrefix = "ghd_"

// UserCodeAlphabet is the alphabet of user codes (RFC 8628 §6.1's
// example): 20 consonants, no vowels, no digits.
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// UserCodeLength is the number of characters of a user code.
const UserCodeLength = 8

// NewDeviceCode returns a new device code and the hash to store.
func NewDeviceCode() (code, hash string, err error) { return opaqueNew(DeviceCodePrefix) }

// DeviceCodeHash returns the stored hash of code; ok is false for a
// string that is no device code (never looked up).
func DeviceCodeHash(code string) (hash string, ok bool) {
	if !opaqueWellFormed(DeviceCodePrefix, code) {
		return "", false
	}
	return opaqueHash(code), true
}

// NewUserCode returns a new user code, normalized (NormalizeUserCode):
// every letter of the alphabet equally likely.
func NewUserCode() (string, error) {
	out := make([]byte, 0, UserCodeLength)
	buf := make([]byte, 16)
	for len(out) < UserCodeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate user code: %w", err)
		}
		for _, b := range buf {
			// 240 is the largest multiple of 20 below 256: rejecting the
			// rest keeps the letters uniform.
			if b < 240 && len(out) < UserCodeLength {
				out = append(out, UserCodeAlphabet[int(b)%len(UserCodeAlphabet)])
			}
		}
	}
	return string(out), nil
}

// NormalizeUserCode turns what a person typed into the stored form: case
// does not matter, dashes and spaces are ignored. ok is false when the
// result cannot be a user code (wrong length or a letter outside the
// alphabet).
func NormalizeUserCode(typed string) (code string, ok bool) {
	if len(typed) > 64 {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r < 128 && strings.ContainsRune(UserCodeAlphabet, r):
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	if b.Len() != UserCodeLength {
		return "", false
	}
	return b.String(), true
}

// FormatUserCode shows a normalized user code as a person reads it:
// XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != UserCodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// UserCodeHash is the stored form of a normalized user code under key
// (DeriveKey(secret, "device-user-code")).
func UserCodeHash(key []byte, code string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}
