// Command loadtest puts a bounded load on a Gatehouse running on this
// machine and prints throughput, latency percentiles and errors by kind.
// scripts/load.sh starts a Gatehouse and runs it; see docs/performance.md.
//
// It signs its users in the way an application does (the authorization
// code flow with PKCE through the dev provider's form, the code exchanged
// with client_secret_basic), then sends one kind of request for a fixed
// time from a fixed number of workers:
//
//	refresh             refresh chains, one user per worker
//	client_credentials  client_credentials tokens
//	token_exchange      an API key exchanged for an access token (RFC 8693)
//	introspect          introspection of a user's access token
//	me                  GET /auth/me with a user's access token
//	signin              whole sign-ins: authorize, the dev form, code exchange
//	jwks                GET /.well-known/jwks.json
//
// For refresh it first measures how many signatures per second this
// machine makes on all cores with the server's signing algorithm, and
// reports the refresh throughput as a share of that ceiling (a refresh
// signs an access token and, for openid, an ID token). With -permissions
// above zero the users belong to an organization whose role carries that
// many permissions, made through the admin API as -admin-email (which
// `gatehouse admin grant` must have made an administrator); the access
// tokens carry them.
//
//	loadtest -url http://127.0.0.1:18090 -client load -secret ... -mode refresh -duration 12s -concurrency 16
//
// It talks only to loopback addresses, and stops after -duration or
// -max-requests, whichever comes first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// options are the command line.
type options struct {
	base, mode           string
	client, secret       string
	redirectURI          string
	adminClient          string
	adminRedirectURI     string
	adminEmail           string
	org                  string
	permissions          int
	duration             time.Duration
	concurrency          int
	maxRequests          int
	ceiling              bool
	ceilingTime          time.Duration
	userPrefix           string
	groups               string
	progressEvery        time.Duration
	requestTimeout       time.Duration
	signaturesPerRefresh int
	serverPID            int
	postgresCPU          bool
	provider             string
	mix                  mixOptions
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "http://127.0.0.1:8090", "Gatehouse base URL (loopback only)")
	flag.StringVar(&o.mode, "mode", "refresh", "what to send: refresh, client_credentials, token_exchange, introspect, me, signin or jwks")
	flag.StringVar(&o.client, "client", "load", "confidential client (client_secret_basic); it needs the grants the mode uses")
	flag.StringVar(&o.secret, "secret", "", "the client's secret")
	flag.StringVar(&o.redirectURI, "redirect-uri", "http://127.0.0.1:9/load/callback", "a redirect URI registered for -client (never contacted)")
	flag.StringVar(&o.adminClient, "admin-client", "load-admin", "public client whose audience is the admin API's")
	flag.StringVar(&o.adminRedirectURI, "admin-redirect-uri", "http://127.0.0.1:9/admin/callback", "a redirect URI registered for -admin-client")
	flag.StringVar(&o.adminEmail, "admin-email", "root@load.test", "an administrator (gatehouse admin grant), to make the organization, its role and API keys")
	flag.StringVar(&o.org, "org", "load", "slug of the organization the users join (an org-sync rule must place group -groups in it with role \"load\")")
	flag.IntVar(&o.permissions, "permissions", 20, "permissions of the users' role in -org; 0: users without organization")
	flag.StringVar(&o.groups, "groups", "load", "dev-provider groups the users sign in with")
	flag.DurationVar(&o.duration, "duration", 12*time.Second, "how long to send")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent workers (each with its own user)")
	flag.IntVar(&o.maxRequests, "max-requests", 1_000_000, "stop after this many requests")
	flag.BoolVar(&o.ceiling, "ceiling", true, "refresh: measure the signing ceiling first")
	flag.DurationVar(&o.ceilingTime, "ceiling-time", 3*time.Second, "how long to measure signatures")
	flag.IntVar(&o.signaturesPerRefresh, "signatures", 0, "signatures per refresh for the ceiling; 0: 2 when refresh answers carry an ID token, else 1")
	flag.StringVar(&o.userPrefix, "user-prefix", fmt.Sprintf("load-%d", time.Now().Unix()), "users are PREFIX-N@load.test")
	flag.DurationVar(&o.progressEvery, "progress", 2*time.Second, "print a progress line this often")
	flag.DurationVar(&o.requestTimeout, "timeout", 10*time.Second, "timeout of one request")
	flag.IntVar(&o.serverPID, "server-pid", 0, "Gatehouse's process id: count its CPU time (Linux)")
	flag.BoolVar(&o.postgresCPU, "postgres-cpu", false, "count the CPU time of every process named postgres on this machine, less what they used in the 2 s before the run (Linux)")
	flag.StringVar(&o.provider, "provider", "dev", "provider users sign in through: dev (its form) or an upstream that signs login_hint in at once (examples/fakeidp)")
	mixFlags(&o.mix)
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	u, err := url.Parse(o.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !loopback(u.Hostname()) {
		return errors.New("-url must be an http(s) URL of a loopback address on this machine")
	}
	o.base = strings.TrimSuffix(o.base, "/")
	if o.concurrency < 1 || o.concurrency > 1024 {
		return errors.New("-concurrency must be between 1 and 1024")
	}
	if o.duration <= 0 || o.duration > time.Hour {
		return errors.New("-duration must be positive and at most an hour")
	}
	g := newGatehouse(o)
	ctx := context.Background()
	if o.mode == "mix" {
		return runMix(ctx, g, o)
	}
	alg, err := g.signingAlg(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("== %s: %d cores (%s), Go %s, signing %s, %s\n", o.base, runtime.NumCPU(), cpuModel(), runtime.Version(),
		alg, time.Now().Format("2006-01-02 15:04 MST"))

	var ceil *ceilingResult
	if o.mode == "refresh" && o.ceiling {
		fmt.Printf("measuring %s signatures on %d cores for %s…\n", alg, runtime.GOMAXPROCS(0), o.ceilingTime)
		if ceil, err = measureCeiling(alg, o.ceilingTime); err != nil {
			return err
		}
		fmt.Printf("signing ceiling: %.0f %s signatures/s on all cores (one signature %.0f µs of CPU)\n",
			ceil.perSecond, alg, ceil.cpuMicros)
	}

	w, err := prepare(ctx, g, o)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Printf("%s: %s\n", o.mode, w.describe)
	// PostgreSQL serves other work too: what it used while this run sent
	// nothing, per second, is taken off what it used during the run.
	var pgBackground float64 // CPU seconds per second
	if o.postgresCPU {
		b0, t0 := sampleCPU(0, true), time.Now()
		time.Sleep(2 * time.Second)
		pgBackground = (sampleCPU(0, true).postgres - b0.postgres).Seconds() / time.Since(t0).Seconds()
	}
	before := sampleCPU(o.serverPID, o.postgresCPU)
	res := drive(o, w.do)
	used := sampleCPU(o.serverPID, o.postgresCPU).sub(before)
	pgRaw := used.postgres
	if o.postgresCPU {
		used.postgres = max(0, used.postgres-time.Duration(pgBackground*float64(res.wall)))
	}
	res.print(o, alg, w.describe)
	result := fmt.Sprintf("RESULT mode=%s alg=%s workers=%d ok=%d errors=%d rate=%.0f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f",
		o.mode, alg, o.concurrency, res.ok, res.errorCount(), res.rate(), ms(res.pct(0.50)), ms(res.pct(0.95)), ms(res.pct(0.99)))
	perOK := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.ok, 1)) }
	if res.ok > 0 {
		parts := []string{}
		if o.serverPID > 0 {
			parts = append(parts, fmt.Sprintf("gatehouse %.0f µs", perOK(used.server)))
			result += fmt.Sprintf(" cpu_gatehouse_us=%.0f", perOK(used.server))
		}
		if o.postgresCPU {
			parts = append(parts, fmt.Sprintf("postgres %.0f µs (every postgres process: %.0f µs, less the %.0f ms/s they used before the run)",
				perOK(used.postgres), perOK(pgRaw), 1000*pgBackground))
			result += fmt.Sprintf(" cpu_postgres_us=%.0f cpu_postgres_raw_us=%.0f", perOK(used.postgres), perOK(pgRaw))
		}
		parts = append(parts, fmt.Sprintf("load tool %.0f µs", perOK(used.tool)))
		result += fmt.Sprintf(" cpu_tool_us=%.0f cpu_total_us=%.0f", perOK(used.tool), perOK(used.total()))
		fmt.Printf("   CPU per request: %s; %.0f µs in all\n", strings.Join(parts, ", "), perOK(used.total()))
	}
	if ceil != nil && res.ok > 0 {
		sigs := o.signaturesPerRefresh
		if sigs == 0 {
			sigs = 1
			if w.idTokens {
				sigs = 2
			}
		}
		limit := ceil.perSecond / float64(sigs)
		ratio := res.rate() / limit
		fmt.Printf("ceiling: %.0f refreshes/s at %d signatures per refresh; measured %.0f/s = %.0f%% of it\n",
			limit, sigs, res.rate(), 100*ratio)
		result += fmt.Sprintf(" ceiling_sigs=%.0f ceiling_refresh=%.0f ratio=%.2f", ceil.perSecond, limit, ratio)
		if o.serverPID > 0 {
			// On a machine doing nothing else, refreshes per second are the
			// cores over the CPU of one refresh, and the ceiling the cores
			// over the CPU of its signatures: this share is that ratio,
			// whatever else ran meanwhile.
			signing := float64(sigs) * ceil.cpuMicros
			share := signing / perOK(used.total())
			fmt.Printf("by CPU time: the %d signatures (%.0f µs) are %.0f%% of the %.0f µs a refresh costs in all: the share of the ceiling a machine doing nothing else would reach\n",
				sigs, signing, 100*share, perOK(used.total()))
			result += fmt.Sprintf(" sig_us=%.0f cpu_ratio=%.2f", ceil.cpuMicros, share)
		}
	}
	fmt.Println(result)
	if res.errorCount() > 0 {
		return fmt.Errorf("%d requests failed", res.errorCount())
	}
	return nil
}

// workload is what the workers send: do sends worker i's next request
// and classifies the answer ("" for success).
type workload struct {
	describe string
	do       func(ctx context.Context, worker int) (kind string)
	// idTokens: refresh answers carry an ID token (two signatures each).
	idTokens bool
}

func prepare(ctx context.Context, g *gatehouse, o options) (*workload, error) {
	switch o.mode {
	case "refresh":
		return prepareRefresh(ctx, g, o)
	case "client_credentials":
		form := url.Values{"grant_type": {"client_credentials"}}.Encode()
		return &workload{describe: "client_credentials tokens, client_secret_basic",
			do: func(ctx context.Context, _ int) string {
				_, kind := g.tokenRequest(ctx, form, true)
				return kind
			}}, nil
	case "token_exchange":
		return prepareExchange(ctx, g, o)
	case "introspect", "me":
		return prepareBearer(ctx, g, o)
	case "signin":
		return &workload{describe: "whole sign-ins through the dev form (one returning user per worker), code exchanged with client_secret_basic",
			do: func(ctx context.Context, worker int) string {
				email := fmt.Sprintf("%s-signin-%d@load.test", o.userPrefix, worker)
				_, err := g.signIn(ctx, o.client, o.secret, o.redirectURI, email, o.groups, "")
				return kindOf(err)
			}}, nil
	case "mix":
		return nil, errors.New("mix runs on its own")
	case "jwks":
		return &workload{describe: "GET /.well-known/jwks.json",
			do: func(ctx context.Context, _ int) string {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/.well-known/jwks.json", nil)
				_, kind := g.send(req)
				return kind
			}}, nil
	}
	return nil, fmt.Errorf("unknown -mode %q", o.mode)
}

func loopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
