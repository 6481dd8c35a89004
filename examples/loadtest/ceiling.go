package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ceilingResult is how fast this machine signs with one algorithm.
type ceilingResult struct {
	// perSecond: signatures per second on all cores at once.
	perSecond float64
	// cpuMicros: CPU time of one signature.
	cpuMicros float64
}

// measureCeiling signs a JWT of the size of a refresh's access token (an
// organization with 20 permissions), with go-jose as Gatehouse does,
// from GOMAXPROCS goroutines for d, and returns the rate: the most
// tokens per second this machine can sign with alg, whatever else a
// server does.
func measureCeiling(alg string, d time.Duration) (*ceilingResult, error) {
	key, err := signingKey(alg)
	if err != nil {
		return nil, err
	}
	perms := make([]string, 20)
	for i := range perms {
		perms[i] = fmt.Sprintf("resource%02d:read", i)
	}
	payload, _ := json.Marshal(map[string]any{
		"iss": "http://127.0.0.1:18090", "sub": "0b6c1f5e-8a8e-4e0b-9d0c-6a1c2f3e4d5a", "aud": []string{"load"},
		"exp": time.Now().Add(15 * time.Minute).Unix(), "iat": time.Now().Unix(), "nbf": time.Now().Unix(),
		"jti": randomString(16), "client_id": "load", "sid": "8d2c8e4a-1f0b-4c3a-9e5d-7b6a5c4d3e2f",
		"scope": "openid email profile", "email": "load-0@load.test", "email_verified": true, "name": "Load",
		"idp": "dev", "org_id": "5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c", "roles": []string{"load"}, "permissions": perms,
	})
	workers := runtime.GOMAXPROCS(0)
	var n atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key},
				(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "ceiling"))
			if err != nil {
				failed.Store(err)
				return
			}
			for time.Now().Before(deadline) {
				jws, err := signer.Sign(payload)
				if err == nil {
					_, err = jws.CompactSerialize()
				}
				if err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if err, ok := failed.Load().(error); ok {
		return nil, fmt.Errorf("signing with %s: %w", alg, err)
	}
	res := &ceilingResult{perSecond: float64(n.Load()) / wall.Seconds()}
	if cpu := cpuTime() - cpu0; cpu > 0 && n.Load() > 0 {
		res.cpuMicros = float64(cpu.Microseconds()) / float64(n.Load())
	}
	return res, nil
}

func signingKey(alg string) (any, error) {
	switch alg {
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("no ceiling for signing algorithm %q", alg)
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
