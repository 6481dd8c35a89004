package oauth

import (
	"crypto/sha256"
	"testing"
	"time"
)

// TestClientSecretOverlap: a rotated client accepts its current secret
// always, the replaced one only until its overlap ends, and nothing else
// (an empty secret neither).
func TestClientSecretOverlap(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &Client{}
	c.SecretHash = sha256.Sum256([]byte("new-secret"))
	c.previousSecretHash = sha256.Sum256([]byte("old-secret"))
	c.previousSecretUntil = now.Add(time.Hour)
	cases := []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"new-secret", now, true},
		{"old-secret", now, true},
		{"old-secret", now.Add(59 * time.Minute), true},
		{"old-secret", now.Add(time.Hour), false},
		{"new-secret", now.Add(48 * time.Hour), true},
		{"other", now, false},
		{"", now, false},
	}
	for _, tc := range cases {
		if got := c.checkSecret(tc.secret, tc.at); got != tc.want {
			t.Errorf("checkSecret(%q, %s) = %v, want %v", tc.secret, tc.at, got, tc.want)
		}
	}
	// A client never rotated has no previous secret to match.
	plain := &Client{}
	plain.SecretHash = sha256.Sum256([]byte("s"))
	if plain.checkSecret("", now) || !plain.checkSecret("s", now) {
		t.Error("a client without rotation")
	}
}
