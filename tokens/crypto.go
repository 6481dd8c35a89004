// Package tokens owns Gatehouse's signing keys, the JWTs it mints, their
// local verification, and the symmetric sealing other parts of Gatehouse use.
package tokens

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrDecrypt reports that sealed data could not be opened: it was tampered
// with, truncated, bound to other additional data, or sealed under another
// key. The cases are deliberately indistinguishable.
var ErrDecrypt = errors.New("sealed data cannot be decrypted")

// SealKeySize is the key length Seal and Open require (AES-256).
const SealKeySize = 32

// DeriveKey returns a 32-byte key for one purpose derived from the server's
// secret with HKDF-SHA256 (no salt, purpose as info). The same secret and
// purpose always give the same key; different purposes give independent
// keys, so a key leaked from one use reveals nothing about another.
func DeriveKey(secret string, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, purpose, SealKeySize)
	if err != nil {
		// HKDF-SHA256 can produce up to 8160 bytes; 32 cannot fail.
		panic("tokens: hkdf: " + err.Error())
	}
	return key
}

// Seal encrypts and authenticates plaintext with AES-256-GCM under a
// 32-byte key, binding additionalData (which is not stored). The result is
// a random 12-byte nonce followed by the ciphertext and tag; random nonces
// make sealing the same plaintext twice give unrelated outputs.
func Seal(key, plaintext, additionalData []byte) ([]byte, error) {
	aead, err := sealAEAD(key)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, plaintext, additionalData), nil
}

// Open reverses Seal. It returns ErrDecrypt unless sealed was produced by
// Seal with the same key and additionalData and is unmodified.
func Open(key, sealed, additionalData []byte) ([]byte, error) {
	aead, err := sealAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, sealed, additionalData)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

func sealAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != SealKeySize {
		return nil, fmt.Errorf("tokens: sealing key must be %d bytes, got %d", SealKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	// The nonce is generated and prefixed by the AEAD itself.
	return cipher.NewGCMWithRandomNonce(block)
}
