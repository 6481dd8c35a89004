package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The mix mode (scripts/cluster.sh soak, docs/operations.md): many kinds
// of request at once through a load balancer, as a deployment sees them,
// with per-operation figures every -progress, samples of each replica's
// /metrics, a flatness check over the last half of the run and, at the
// end, one more refresh of every chain (no session lost).

// mixOptions are the mix mode's flags.
type mixOptions struct {
	backend       string // the example backend (examples/backend), "" for none
	replicas      string // comma-separated replica URLs whose /metrics are sampled
	upstreamAdmin string // the fake upstream's steering address, for upstream ID tokens
	retries       int    // refresh retries with the same token after a transport error or 5xx
	weights       string
}

func mixFlags(m *mixOptions) {
	flag.StringVar(&m.backend, "backend", "", "mix: the example backend's URL (GET /kb with access tokens and API keys)")
	flag.StringVar(&m.replicas, "replicas", "", "mix: comma-separated replica base URLs whose /metrics are sampled")
	flag.StringVar(&m.upstreamAdmin, "upstream-admin", "", "mix: examples/fakeidp's steering URL (upstream ID tokens for token exchange)")
	flag.IntVar(&m.retries, "retries", 4, "mix: refresh retries with the same token after a transport error or a 5xx answer")
	flag.StringVar(&m.weights, "weights", "", "mix: operation=weight,... replacing the defaults (see -mode mix's first line)")
}

// mixOps are the operations and their default weights (shares of the
// requests a worker picks).
var mixOps = []struct {
	name   string
	weight int
}{
	{"refresh", 25}, {"signin", 4}, {"exchange_apikey", 8}, {"exchange_upstream", 4}, {"introspect", 10}, {"me", 12},
	{"admin_read", 4}, {"admin_write", 2}, {"backend_bearer", 15}, {"backend_apikey", 6},
}

// opStats are one operation's figures over an interval or the run.
type opStats struct {
	lat     []time.Duration
	errors  map[string]int
	retried int // refreshes that succeeded only on a retry with the same token
}

func (s *opStats) add(o *opStats) {
	s.lat = append(s.lat, o.lat...)
	if s.errors == nil {
		s.errors = map[string]int{}
	}
	for k, v := range o.errors {
		s.errors[k] += v
	}
	s.retried += o.retried
}

func (s *opStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l[min(len(l)-1, int(float64(len(l))*p))]
}

func (s *opStats) errorCount() int {
	n := 0
	for _, v := range s.errors {
		n += v
	}
	return n
}

// recorder collects per-operation figures from the workers.
type recorder struct {
	mu       sync.Mutex
	interval map[string]*opStats
	total    map[string]*opStats
	// first and last error of the interval: how long a fault's errors lasted
	firstErr, lastErr time.Time
}

func (r *recorder) record(op string, d time.Duration, kind string, retried bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.interval[op]
	if s == nil {
		s = &opStats{errors: map[string]int{}}
		r.interval[op] = s
	}
	if kind == "" {
		s.lat = append(s.lat, d)
		if retried {
			s.retried++
		}
	} else {
		s.errors[kind]++
		now := time.Now()
		if r.firstErr.IsZero() {
			r.firstErr = now
		}
		r.lastErr = now
	}
}

// roll moves the interval's figures into the totals and returns them.
func (r *recorder) roll() (map[string]*opStats, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	errSpan := ""
	if !r.firstErr.IsZero() {
		errSpan = fmt.Sprintf("errors from %s to %s", r.firstErr.UTC().Format("15:04:05.000"), r.lastErr.UTC().Format("15:04:05.000"))
	}
	r.firstErr, r.lastErr = time.Time{}, time.Time{}
	iv := r.interval
	r.interval = map[string]*opStats{}
	for op, s := range iv {
		if r.total[op] == nil {
			r.total[op] = &opStats{errors: map[string]int{}}
		}
		r.total[op].add(s)
	}
	return iv, errSpan
}

func printOps(title string, ops map[string]*opStats, wall time.Duration) {
	fmt.Println(title)
	fmt.Printf("    %-18s %8s %8s %9s %9s %7s %8s\n", "operation", "ok", "ok/s", "p50 ms", "p99 ms", "errors", "retried")
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		s := ops[op]
		fmt.Printf("    %-18s %8d %8.1f %9.2f %9.2f %7d %8d\n", op, len(s.lat), float64(len(s.lat))/wall.Seconds(),
			ms(s.pct(0.5)), ms(s.pct(0.99)), s.errorCount(), s.retried)
		for _, k := range slices.Sorted(maps.Keys(s.errors)) {
			fmt.Printf("        %6d  %s\n", s.errors[k], k)
		}
	}
}

// mixWorker is one simulated application user: a refresh chain and what
// it last received.
type mixWorker struct {
	email        string
	refresh      string
	access       string
	upstreamID   string
	upstreamTime time.Time
}

func runMix(ctx context.Context, g *gatehouse, o options) error {
	weights, err := parseWeights(o.mix.weights)
	if err != nil {
		return err
	}
	replicas := splitURLs(o.mix.replicas)
	for _, u := range append(slices.Clone(replicas), o.mix.backend, o.mix.upstreamAdmin) {
		if p, err := url.Parse(u); u != "" && (err != nil || !loopback(p.Hostname())) {
			return fmt.Errorf("%s: only loopback addresses", u)
		}
	}
	fmt.Printf("== mix through %s for %s, %d workers, %s, %s\n", o.base, o.duration, o.concurrency,
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAverage())
	fmt.Printf("   weights: %s\n", describeWeights(weights))

	// Setup: the organization with kb permissions, an API key, an
	// administrator's token, the users and their chains.
	o.permissions = max(o.permissions, 2)
	orgID, perms, adminToken, err := adminSetup(ctx, g, o)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var key struct {
		Key string `json:"key"`
	}
	if _, err := g.api(ctx, http.MethodPost, "/orgs/"+orgID+"/api-keys", adminToken,
		map[string]any{"name": "soak " + o.userPrefix, "permissions": perms}, &key); err != nil {
		return fmt.Errorf("setup: API key: %w", err)
	}
	admin := &adminSession{g: g, o: o, token: adminToken, at: time.Now()}
	workers := make([]*mixWorker, o.concurrency)
	for i := range workers {
		email := fmt.Sprintf("%s-%d@load.test", o.userPrefix, i)
		a, err := g.signIn(ctx, o.client, o.secret, o.redirectURI, email, o.groups, orgID)
		if err != nil {
			return fmt.Errorf("setup: sign-in of %s: %w", email, err)
		}
		if a.RefreshToken == "" {
			return fmt.Errorf("setup: client %s got no refresh token", o.client)
		}
		workers[i] = &mixWorker{email: email, refresh: a.RefreshToken, access: a.AccessToken}
	}
	fmt.Printf("   %d users in organization %s with %d permissions, an API key, through provider %s\n",
		len(workers), orgID, len(perms), o.provider)

	m := &mix{g: g, o: o, orgID: orgID, apiKey: key.Key, admin: admin, workers: workers, weights: weights}
	rec := &recorder{interval: map[string]*opStats{}, total: map[string]*opStats{}}
	samp := &sampler{replicas: replicas, series: map[string][]sample{}}

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	samp.sample(runCtx, 0)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(o.progressEvery)
		defer tick.Stop()
		last := start
		for {
			select {
			case <-runCtx.Done():
				return
			case now := <-tick.C:
				iv, errSpan := rec.roll()
				printOps(fmt.Sprintf("-- %s  %.0fs  %s  %s", now.UTC().Format("15:04:05"), now.Sub(start).Seconds(), loadAverage(), errSpan), iv, now.Sub(last))
				samp.sample(runCtx, now.Sub(start))
				last = now
			}
		}
	})
	var sent atomic.Int64
	for i := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			for runCtx.Err() == nil && sent.Add(1) <= int64(o.maxRequests) {
				op := pick(rng, weights)
				t0 := time.Now()
				kind, retried := m.do(runCtx, i, op)
				if runCtx.Err() != nil && kind != "" {
					break // cut short by the end of the run
				}
				rec.record(op, time.Since(t0), kind, retried)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if _, errSpan := rec.roll(); errSpan != "" {
		fmt.Printf("-- last %.0fs: %s\n", wall.Seconds()-float64(int(wall/o.progressEvery))*o.progressEvery.Seconds(), errSpan)
	}
	samp.sample(ctx, wall)

	printOps(fmt.Sprintf("== totals over %s (%s)", wall.Round(time.Second), loadAverage()), rec.total, wall)
	ok, errs, retried := 0, 0, 0
	for _, s := range rec.total {
		ok, errs, retried = ok+len(s.lat), errs+s.errorCount(), retried+s.retried
	}
	flat := samp.report(wall)

	// No session lost: every chain's last refresh token still refreshes.
	lost := 0
	for i, w := range workers {
		if kind, _ := m.refresh(ctx, i); kind != "" {
			lost++
			fmt.Printf("   chain %d (%s): final refresh: %s\n", i, w.email, kind)
		}
	}
	fmt.Printf("== sessions: %d chains, %d lost (final refresh of each chain)\n", len(workers), lost)
	fmt.Printf("RESULT mode=mix workers=%d seconds=%.0f ok=%d rate=%.0f errors=%d retried=%d lost_chains=%d flat=%t %s\n",
		o.concurrency, wall.Seconds(), ok, float64(ok)/wall.Seconds(), errs, retried, lost, flat, strings.ReplaceAll(loadAverage(), " ", "_"))
	if lost > 0 {
		return fmt.Errorf("%d refresh chains lost", lost)
	}
	return nil
}

// mix holds what the operations share.
type mix struct {
	g       *gatehouse
	o       options
	orgID   string
	apiKey  string
	admin   *adminSession
	workers []*mixWorker
	weights []int
	writes  atomic.Int64
}

// adminSession keeps an administrator's access token, signing in again
// before it expires.
type adminSession struct {
	g     *gatehouse
	o     options
	mu    sync.Mutex
	token string
	at    time.Time
}

func (a *adminSession) get(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.at) > 5*time.Minute {
		t, err := a.g.signIn(ctx, a.o.adminClient, "", a.o.adminRedirectURI, a.o.adminEmail, "", "org-admin")
		if err != nil {
			return "", err
		}
		a.token, a.at = t.AccessToken, time.Now()
	}
	return a.token, nil
}

// do runs operation op as worker i: the error kind ("" for success) and
// whether it succeeded only on a retry.
func (m *mix) do(ctx context.Context, i int, op string) (string, bool) {
	w := m.workers[i]
	g := m.g
	switch op {
	case "refresh":
		return m.refresh(ctx, i)
	case "signin":
		email := fmt.Sprintf("%s-signin-%d@load.test", m.o.userPrefix, i)
		_, err := g.signIn(ctx, m.o.client, m.o.secret, m.o.redirectURI, email, m.o.groups, m.orgID)
		return kindOf(err), false
	case "exchange_apikey":
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {m.apiKey},
			"subject_token_type": {"urn:gatehouse:params:oauth:token-type:api-key"}}.Encode()
		a, kind := g.tokenRequest(ctx, form, true)
		if kind == "" && a.AccessToken == "" {
			return "answer without access token", false
		}
		return kind, false
	case "exchange_upstream":
		if m.o.mix.upstreamAdmin == "" {
			return "", false
		}
		if w.upstreamID == "" || time.Since(w.upstreamTime) > 30*time.Minute {
			tok, err := upstreamIDToken(ctx, g, m.o.mix.upstreamAdmin, w.email)
			if err != nil {
				return "upstream id-token: " + err.Error(), false
			}
			w.upstreamID, w.upstreamTime = tok, time.Now()
		}
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {w.upstreamID},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "provider": {m.o.provider}}.Encode()
		a, kind := g.tokenRequest(ctx, form, true)
		if kind == "" && a.AccessToken == "" {
			return "answer without access token", false
		}
		return kind, false
	case "introspect":
		form := url.Values{"token": {w.access}}.Encode()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+"/auth/introspect", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(g.client), url.QueryEscape(g.secret))
		body, kind := g.send(req)
		if kind == "" && !strings.Contains(string(body), `"active":true`) {
			return "introspection: not active", false
		}
		return kind, false
	case "me":
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/auth/me", nil)
		req.Header.Set("Authorization", "Bearer "+w.access)
		_, kind := g.send(req)
		return kind, false
	case "admin_read", "admin_write":
		token, err := m.admin.get(ctx)
		if err != nil {
			return "admin sign-in: " + kindOf(err), false
		}
		if op == "admin_read" {
			_, err = g.api(ctx, http.MethodGet, "/orgs/"+m.orgID+"/roles?limit=50", token, nil, nil)
			return apiKind(err), false
		}
		// A role made and deleted: two writes, the second one counted.
		var made struct {
			ID string `json:"id"`
		}
		name := fmt.Sprintf("%s-%d-%d", m.o.userPrefix, i, m.writes.Add(1))
		if _, err = g.api(ctx, http.MethodPost, "/orgs/"+m.orgID+"/roles", token,
			map[string]any{"name": name, "level": 10, "permissions": []string{"kb:read"}}, &made); err != nil {
			return apiKind(err), false
		}
		_, err = g.api(ctx, http.MethodDelete, "/orgs/"+m.orgID+"/roles/"+made.ID, token, nil, nil)
		return apiKind(err), false
	case "backend_bearer", "backend_apikey":
		if m.o.mix.backend == "" {
			return "", false
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.o.mix.backend+"/kb", nil)
		if op == "backend_bearer" {
			req.Header.Set("Authorization", "Bearer "+w.access)
		} else {
			req.Header.Set("X-API-Key", m.apiKey)
		}
		body, kind := g.send(req)
		if kind != "" {
			// The backend's refusal says why: an unknown kid is what a key
			// rotation must never cause.
			var e struct {
				Description string `json:"error_description"`
			}
			if json.Unmarshal(body, &e) == nil && e.Description != "" {
				kind = "backend " + kind + ": " + e.Description
			} else {
				kind = "backend " + kind
			}
		}
		return kind, false
	}
	return "unknown operation " + op, false
}

// refresh refreshes worker i's chain. A transport error or a 5xx answer
// (a replica killed mid-request, the database away) is retried with the
// same token, as a client holding it does: the reuse grace window serves
// a retry of a rotation whose answer was lost.
func (m *mix) refresh(ctx context.Context, i int) (string, bool) {
	w := m.workers[i]
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w.refresh}}.Encode()
	var kind string
	for attempt := 0; attempt <= m.o.mix.retries; attempt++ {
		var a *tokenAnswer
		a, kind = m.g.tokenRequest(ctx, form, true)
		switch {
		case kind == "" && (a.RefreshToken == "" || a.AccessToken == ""):
			return "answer without access or refresh token", false
		case kind == "":
			w.refresh, w.access = a.RefreshToken, a.AccessToken
			return "", attempt > 0
		case !retryable(kind) || ctx.Err() != nil:
			return kind, false
		}
		// Within the grace window for a lost answer; after Retry-After
		// (one second) for a 503.
		pause := 200 * time.Millisecond
		if strings.HasPrefix(kind, "http 503") {
			pause = time.Second
		}
		select {
		case <-ctx.Done():
			return kind, false
		case <-time.After(pause):
		}
	}
	return kind + " (after retries)", false
}

func retryable(kind string) bool {
	return strings.HasPrefix(kind, "transport:") || strings.HasPrefix(kind, "http 5")
}

func apiKind(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i > 0 {
		msg = msg[:i]
	}
	// "METHOD /path = STATUS": ids in the path become "…".
	f := strings.Fields(msg)
	if len(f) == 4 {
		path, _, _ := strings.Cut(f[1], "?")
		parts := strings.Split(path, "/")
		for i, p := range parts {
			if strings.ContainsAny(p, "0123456789") {
				parts[i] = "…"
			}
		}
		return fmt.Sprintf("admin %s %s = %s", f[0], strings.Join(parts, "/"), f[3])
	}
	return "admin: " + msg
}

// upstreamIDToken asks examples/fakeidp for a fresh ID token of email.
func upstreamIDToken(ctx context.Context, g *gatehouse, admin, email string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/id-token?email="+url.QueryEscape(email), nil)
	body, kind := g.send(req)
	if kind != "" {
		return "", errors.New(kind)
	}
	var a struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.IDToken == "" {
		return "", errors.New("no id_token")
	}
	return a.IDToken, nil
}

func parseWeights(s string) ([]int, error) {
	w := make([]int, len(mixOps))
	for i, op := range mixOps {
		w[i] = op.weight
	}
	if s == "" {
		return w, nil
	}
	clear(w)
	for part := range strings.SplitSeq(s, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		idx := slices.IndexFunc(mixOps, func(o struct {
			name   string
			weight int
		}) bool {
			return o.name == name
		})
		if err != nil || n < 0 || idx < 0 {
			return nil, fmt.Errorf("-weights: %q is not operation=weight (operations: %s)", part, describeWeights(nil))
		}
		w[idx] = n
	}
	return w, nil
}

func describeWeights(w []int) string {
	var parts []string
	for i, op := range mixOps {
		if w == nil {
			parts = append(parts, op.name)
		} else {
			parts = append(parts, fmt.Sprintf("%s=%d", op.name, w[i]))
		}
	}
	return strings.Join(parts, ",")
}

func pick(rng *rand.Rand, weights []int) string {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := rng.IntN(max(total, 1))
	for i, w := range weights {
		if n < w {
			return mixOps[i].name
		}
		n -= w
	}
	return mixOps[0].name
}

func splitURLs(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSuffix(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load " + strings.Join(f[:3], " ")
}

// The sampler reads each replica's /metrics.

// sample is one reading of one replica.
type sample struct {
	at                            time.Duration
	started                       float64 // process_start_time_seconds: a restart begins a new series
	heap, goroutines, dbOpen, fds float64
}

type sampler struct {
	replicas []string
	mu       sync.Mutex
	series   map[string][]sample
}

var sampled = []string{"go_memstats_heap_alloc_bytes", "go_goroutines", `go_sql_open_connections{db_name="gatehouse"}`,
	"process_open_fds", "process_start_time_seconds"}

func (s *sampler) sample(ctx context.Context, at time.Duration) {
	if len(s.replicas) == 0 {
		return
	}
	var line []string
	for _, r := range s.replicas {
		v, err := scrape(ctx, r+"/metrics")
		if err != nil {
			line = append(line, fmt.Sprintf("%s down", strings.TrimPrefix(r, "http://")))
			continue
		}
		x := sample{at: at, heap: v[sampled[0]], goroutines: v[sampled[1]], dbOpen: v[sampled[2]], fds: v[sampled[3]], started: v[sampled[4]]}
		s.mu.Lock()
		s.series[r] = append(s.series[r], x)
		s.mu.Unlock()
		line = append(line, fmt.Sprintf("%s heap %.1f MB, %.0f goroutines, %.0f db conns, %.0f fds",
			strings.TrimPrefix(r, "http://"), x.heap/1e6, x.goroutines, x.dbOpen, x.fds))
	}
	fmt.Printf("   replicas: %s\n", strings.Join(line, "; "))
}

func scrape(ctx context.Context, u string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s = %d", u, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !slices.Contains(sampled, name) {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// report prints, per replica and figure, the trend over the last half of
// the run (least squares, of the samples of the process running at the
// end) and says whether every one is flat: growth over the half below
// 10% of its mean plus a small allowance (heap: 2 MB; goroutines, db
// connections and fds: 5).
func (s *sampler) report(wall time.Duration) bool {
	if len(s.replicas) == 0 {
		return true
	}
	fmt.Println("== replicas over the last half (first → last sample, least-squares growth over the half)")
	flat := true
	for _, r := range s.replicas {
		all := s.series[r]
		if len(all) == 0 {
			fmt.Printf("    %s: no samples\n", r)
			flat = false
			continue
		}
		cur := all[len(all)-1].started
		var half []sample
		for _, x := range all {
			if x.started == cur && x.at >= wall/2 {
				half = append(half, x)
			}
		}
		if len(half) < 6 {
			fmt.Printf("    %s: %d samples in the last half of this process: too few for a trend\n", r, len(half))
			continue
		}
		var parts []string
		for _, f := range []struct {
			name      string
			get       func(sample) float64
			allowance float64
			unit      float64
			format    string
		}{
			{"heap MB", func(x sample) float64 { return x.heap }, 2e6, 1e6, "%.1f"},
			{"goroutines", func(x sample) float64 { return x.goroutines }, 5, 1, "%.0f"},
			{"db conns", func(x sample) float64 { return x.dbOpen }, 5, 1, "%.0f"},
			{"fds", func(x sample) float64 { return x.fds }, 5, 1, "%.0f"},
		} {
			growth, mean := trend(half, f.get)
			ok := growth <= 0.10*mean+f.allowance
			flat = flat && ok
			mark := "flat"
			if !ok {
				mark = "GROWING"
			}
			parts = append(parts, fmt.Sprintf("%s "+f.format+"→"+f.format+" (%+.1f, %s)", f.name,
				f.get(half[0])/f.unit, f.get(half[len(half)-1])/f.unit, growth/f.unit, mark))
		}
		fmt.Printf("    %s: %s\n", strings.TrimPrefix(r, "http://"), strings.Join(parts, "; "))
	}
	return flat
}

// trend is the least-squares growth of get over the samples' span, and
// its mean.
func trend(xs []sample, get func(sample) float64) (growth, mean float64) {
	n := float64(len(xs))
	var st, sv, stt, stv float64
	for _, x := range xs {
		t, v := x.at.Seconds(), get(x)
		st, sv, stt, stv = st+t, sv+v, stt+t*t, stv+t*v
	}
	mean = sv / n
	den := n*stt - st*st
	if den == 0 {
		return 0, mean
	}
	slope := (n*stv - st*sv) / den
	span := xs[len(xs)-1].at.Seconds() - xs[0].at.Seconds()
	return slope * span, math.Abs(mean)
}
