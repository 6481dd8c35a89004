package main

import (
	"errors"
	"testing"
	"time"
)

// TestTrendFlatAndGrowing: the least-squares growth over the samples'
// span tells a growing series from a noisy flat one.
func TestTrendFlatAndGrowing(t *testing.T) {
	series := func(vals ...float64) []sample {
		out := make([]sample, len(vals))
		for i, v := range vals {
			out[i] = sample{at: time.Duration(i) * 10 * time.Second, goroutines: v}
		}
		return out
	}
	get := func(x sample) float64 { return x.goroutines }
	for _, tc := range []struct {
		name     string
		xs       []sample
		min, max float64
	}{
		{"flat with noise", series(30, 34, 29, 33, 30, 34, 29, 33), -3, 3},
		{"steady growth", series(10, 20, 30, 40, 50, 60), 49.9, 50.1},
		{"one sample", series(5), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if g, _ := trend(tc.xs, get); g < tc.min || g > tc.max {
				t.Fatalf("growth %.2f, want within [%v, %v]", g, tc.min, tc.max)
			}
		})
	}
}

func TestParseWeights(t *testing.T) {
	w, err := parseWeights("refresh=3,me=1")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, v := range w {
		total += v
		if mixOps[i].name == "refresh" && v != 3 {
			t.Fatalf("refresh weight %d", v)
		}
	}
	if total != 4 {
		t.Fatalf("weights %v: other operations kept their defaults", w)
	}
	for _, bad := range []string{"refresh", "nothing=2", "me=-1", "me=x"} {
		if _, err := parseWeights(bad); err == nil {
			t.Errorf("-weights %q accepted", bad)
		}
	}
}

// TestKinds: error kinds leave ids and URLs out, so they group.
func TestKinds(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{apiKind(errors.New("DELETE /orgs/2aef2331-3d0c/roles/f0623cea-ee80 = 503: {}")), "admin DELETE /orgs/…/roles/… = 503"},
		{apiKind(errors.New("GET /orgs/2aef2331/roles?limit=50 = 503: {}")), "admin GET /orgs/…/roles = 503"},
		{apiKind(nil), ""},
		{transportKind(errors.New("connection reset by peer")), "transport: connection reset"},
	} {
		if tc.in != tc.want {
			t.Errorf("kind %q, want %q", tc.in, tc.want)
		}
	}
	if !retryable("http 503 temporarily_unavailable") || !retryable("transport: EOF") || retryable("http 400 invalid_grant") {
		t.Fatal("retryable: a 5xx and a transport error are retried, invalid_grant is not")
	}
}
