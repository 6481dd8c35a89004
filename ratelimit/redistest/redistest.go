// Package redistest gives tests the Redis named by GATEHOUSE_TEST_REDIS_URL
// and a key prefix of their own, so test packages running in parallel on
// one Redis never see each other's keys.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-id/gatehouse/ratelimit"
)

// Env names the variable holding the test Redis URL.
const Env = "GATEHOUSE_TEST_REDIS_URL"

// URL returns the test Redis URL; it skips the test, saying so, when none
// is configured or it does not answer.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(Env)
	if raw == "" {
		t.Skipf("Redis tests skipped: set %s (such as redis://127.0.0.1:6379/15) to run them (.ci/run does when redis-cli ping answers)", Env)
	}
	client, err := ratelimit.Connect(context.Background(), raw)
	if err != nil {
		t.Skipf("Redis tests skipped: %s: %v", Env, err)
	}
	_ = client.Close()
	return raw
}

// Client returns a client on the test Redis, closed at cleanup.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	client, err := ratelimit.Connect(context.Background(), URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// Prefix returns a random key prefix whose keys are deleted at cleanup.
func Prefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "gatehouse-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		client, err := ratelimit.Connect(context.Background(), os.Getenv(Env))
		if err != nil {
			return
		}
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return prefix
}
