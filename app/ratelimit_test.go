package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/app"
	"github.com/gatehouse-id/gatehouse/app/apptest"
	"github.com/gatehouse-id/gatehouse/ratelimit/redistest"
)

// redisEnv is the setting for servers sharing the test Redis under one
// prefix of their own.
func redisEnv(redisURL, prefix string, more ...string) map[string]string {
	env := map[string]string{"GATEHOUSE_REDIS_URL": redisURL, "GATEHOUSE_REDIS_KEY_PREFIX": prefix,
		"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1"}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return env
}

// fromIP makes a request as if from ip, through the trusted proxy.
func fromIP(t *testing.T, method, target, ip string) *http.Response {
	t.Helper()
	resp, _ := send(t, method, target, "", "X-Forwarded-For", ip)
	return resp
}

// TestReplicasShareRateLimitsInRedis: two Gatehouse servers on one Redis
// count together, per client IP and per client id: the request over the
// limit is refused by whichever server gets it.
func TestReplicasShareRateLimitsInRedis(t *testing.T) {
	prefix := redistest.Prefix(t)
	env := redisEnv(redistest.URL(t), prefix, "GATEHOUSE_RATE_LIMIT", "2")
	a := apptest.Start(t, apptest.Options{YAML: flowYAML, Env: env})
	b := apptest.Start(t, apptest.Options{YAML: flowYAML, Env: env})

	// Per IP on /auth/login: two through A, the third through B.
	for i, s := range []*apptest.Server{a, a} {
		if resp := fromIP(t, http.MethodGet, s.URL+"/auth/login", "203.0.113.10"); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("login %d refused within the limit", i+1)
		}
	}
	resp := fromIP(t, http.MethodGet, b.URL+"/auth/login", "203.0.113.10")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" {
		t.Fatalf("third login, through the other server = %d Retry-After %q; want 429 and 30 (2/min)",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := fromIP(t, http.MethodGet, b.URL+"/auth/login", "203.0.113.11"); resp.StatusCode == http.StatusTooManyRequests {
		t.Fatal("another client IP was refused")
	}

	// Per client id on /auth/token, each request from another IP: A, B, then A.
	var codes []int
	for i, s := range []*apptest.Server{a, b, a} {
		codes = append(codes, backendTokenFrom(t, s, "198.51.100."+strconv.Itoa(i+1)))
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("client_credentials through A, B, A = %v; want 200 200 429", codes)
	}

	if resp, body := get(t, a.URL+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"redis":"ok"`) || !strings.Contains(body, `"status":"ready"`) {
		t.Fatalf("readyz = %d %s", resp.StatusCode, body)
	}

	// A made-up client id never reaches the per-client bucket: only
	// authenticated confidential clients spend one.
	resp, _ = send(t, http.MethodPost, a.URL+"/auth/token", "grant_type=client_credentials&client_id="+strings.Repeat("x", 10000),
		"Content-Type", "application/x-www-form-urlencoded", "X-Forwarded-For", "198.51.100.9")
	if resp.StatusCode == http.StatusTooManyRequests {
		t.Fatal("an unknown client id was refused")
	}
	keys, err := redistest.Client(t).Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rl:login:ip:203.0.113.10", "rl:login:ip:203.0.113.11", "rl:token:client:backend", "rl:token:ip:198.51.100.9"}
	var long int
	for _, k := range keys {
		k = strings.TrimPrefix(k, prefix)
		if len(k) > 100 {
			t.Errorf("key of %d bytes: %.60s…", len(k), k)
		}
		if strings.HasPrefix(k, "rl:token:client:sha256-") {
			long++
		}
		want = slices.DeleteFunc(want, func(w string) bool { return w == k })
	}
	if len(want) > 0 || long != 0 {
		t.Fatalf("keys %v lack %v, or an unauthenticated client id got a bucket", keys, want)
	}
}

// backendTokenFrom asks for a client_credentials token as the backend
// client, from ip through the trusted proxy, and returns the status.
func backendTokenFrom(t *testing.T, s *apptest.Server, ip string) int {
	t.Helper()
	return tokenRequestFrom(t, s, ip, "grant_type=client_credentials", "backend", "backend-secret-0123456789")
}

// tokenRequestFrom posts body to the token endpoint from client IP ip
// (through a trusted proxy), with Basic credentials when user is set.
func tokenRequestFrom(t *testing.T, s *apptest.Server, ip, body, user, pass string) int {
	t.Helper()
	form, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := formPostFrom(t, s.URL+"/auth/token", ip, form, user, pass)
	return status
}

// TestRedisGoingAwayFailsOpen: while Redis is unreachable requests pass
// unlimited, counted by a metric, with one warning (no client IP) and
// /readyz degraded but 200; when it is back the limits hold again.
func TestRedisGoingAwayFailsOpen(t *testing.T) {
	target := redistest.URL(t)
	u, _ := url.Parse(target)
	proxy := startTCPProxy(t, "127.0.0.1:0", u.Host)
	u.Host = proxy.addr
	logs := &syncBuffer{}
	s := apptest.Start(t, apptest.Options{Log: logs,
		Env: redisEnv(u.String(), redistest.Prefix(t), "GATEHOUSE_RATE_LIMIT", "1")})
	const ip = "203.0.113.99"
	login := s.URL + "/auth/login"
	if resp := fromIP(t, http.MethodGet, login, ip); resp.StatusCode == http.StatusTooManyRequests {
		t.Fatal("first login refused")
	}
	if resp := fromIP(t, http.MethodGet, login, ip); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second login at 1/min = %d, want 429 (Redis decides)", resp.StatusCode)
	}

	proxy.Close()
	for i := range 5 {
		st := time.Now()
		if resp := fromIP(t, http.MethodGet, login, ip); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("login %d refused while Redis is away: must fail open", i+1)
		}
		// Bounded by the decision timeout (250ms), not go-redis' 5s dial timeout.
		if d := time.Since(st); d > time.Second {
			t.Fatalf("login %d took %s while Redis is away", i+1, d)
		}
	}
	if _, metrics := get(t, s.URL+"/metrics"); !strings.Contains(metrics, "\ngatehouse_rate_limit_fail_open_total 5\n") {
		t.Fatalf("fail-open counter not 5:\n%s", grepLines(metrics, "gatehouse_rate_limit"))
	}
	warnings := grepLines(logs.String(), "rate limit store unavailable")
	if warnings == "" || strings.Contains(warnings, "\n") || strings.Contains(warnings, ip) || !strings.Contains(warnings, `"level":"WARN"`) {
		t.Fatalf("want one warning without the client IP, got:\n%s", warnings)
	}
	if resp, body := get(t, s.URL+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"redis":"failing"`) || !strings.Contains(body, `"status":"degraded"`) {
		t.Fatalf("readyz with Redis away = %d %s", resp.StatusCode, body)
	}

	// Redis is back at the same address: its bucket (still full from the
	// first login) refuses again.
	startTCPProxy(t, proxy.addr, proxy.target)
	deadline := time.Now().Add(5 * time.Second)
	for fromIP(t, http.MethodGet, login, ip).StatusCode != http.StatusTooManyRequests {
		if time.Now().After(deadline) {
			t.Fatal("limits not enforced again after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, body := get(t, s.URL+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"redis":"ok"`) {
		t.Fatalf("readyz with Redis back = %d %s", resp.StatusCode, body)
	}
}

// TestUnreachableRedisStopsStartUp: one line naming the setting, like an
// unreachable database. It needs no Redis.
func TestUnreachableRedisStopsStartUp(t *testing.T) {
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	err := apptest.StartErr(t, apptest.Options{Env: map[string]string{
		"GATEHOUSE_RATE_LIMIT": "10", "GATEHOUSE_REDIS_URL": "redis://:s3cret@" + addr + "/3"}})
	if err == nil {
		t.Fatal("started without its Redis")
	}
	msg := app.OneLine(err)
	if !strings.HasPrefix(msg, "GATEHOUSE_REDIS_URL: cannot reach redis at "+addr+"/3: ") || strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") {
		t.Fatalf("start-up error = %q", msg)
	}
	// With rate limits off Redis is not needed.
	apptest.Start(t, apptest.Options{Env: map[string]string{"GATEHOUSE_RATE_LIMIT": "0", "GATEHOUSE_REDIS_URL": "redis://" + addr}})
}

// tcpProxy forwards connections to target until closed, so a test can
// take Redis away from one server without stopping it for others.
type tcpProxy struct {
	addr, target string
	ln           net.Listener
	mu           sync.Mutex
	conns        []net.Conn
	closed       bool
}

func startTCPProxy(t *testing.T, addr, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), target: target, ln: ln}
	t.Cleanup(p.Close)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if !p.track(in, out) {
				return
			}
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// Close stops listening and cuts every forwarded connection.
func (p *tcpProxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}
