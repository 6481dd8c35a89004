package oauth

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-id/gatehouse/models"
)

// failureLog collects what authFailures writes, on a clock the test moves.
type failureLog struct {
	mu   sync.Mutex
	now  time.Time
	rows []struct {
		event   models.AuditEvent
		details map[string]any
	}
}

func (l *failureLog) clock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

func (l *failureLog) advance(d time.Duration) {
	l.mu.Lock()
	l.now = l.now.Add(d)
	l.mu.Unlock()
}

func (l *failureLog) record(_ context.Context, e models.AuditEvent, details map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rows = append(l.rows, struct {
		event   models.AuditEvent
		details map[string]any
	}{e, details})
}

// of returns the rows of clientID and the failures they account for.
func (l *failureLog) of(clientID string) (rows, failures int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.rows {
		if r.event.ClientID == clientID {
			rows++
			failures += r.details["failures"].(int)
		}
	}
	return rows, failures
}

func newFailureLog(clients ...string) (*authFailures, *failureLog) {
	l := &failureLog{now: time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)}
	return newAuthFailures(clients, l.clock, l.record), l
}

// TestClientAuthFailuresAreAggregated: per client and minute, the first
// failure is written at once and the rest as one summary when the minute
// is over (at the next failure or the flush), so a flood writes a
// handful of rows and every failure is accounted for.
func TestClientAuthFailuresAreAggregated(t *testing.T) {
	ctx := context.Background()
	meta := RequestMeta{IP: "203.0.113.5", RequestID: "req-1"}
	type step struct {
		fail    int           // failures of "app" now
		advance time.Duration // then move the clock
		flush   string        // then flush: "ended" or "all"
	}
	cases := []struct {
		name                 string
		steps                []step
		wantRows, wantFailed int
	}{
		{"one failure", []step{{fail: 1}}, 1, 1},
		{"a flood within a minute, not yet over", []step{{fail: 10000}, {flush: "ended"}}, 1, 1},
		{"a flood, summarised by the flush once the minute is over", []step{{fail: 10000, advance: time.Minute}, {flush: "ended"}}, 2, 10000},
		{"a flood, summarised at shutdown", []step{{fail: 10000}, {flush: "all"}}, 2, 10000},
		{"the next minute's failure writes the summary", []step{{fail: 6, advance: time.Minute}, {fail: 1}}, 3, 7},
		{"three minutes of flood", []step{{fail: 500, advance: time.Minute}, {fail: 500, advance: time.Minute}, {fail: 500, advance: time.Minute}, {flush: "ended"}}, 6, 1500},
		{"a quiet minute in between", []step{{fail: 3, advance: 5 * time.Minute}, {fail: 3}, {flush: "all"}}, 4, 6},
		{"flushing twice writes once", []step{{fail: 3, advance: time.Minute}, {flush: "ended"}, {flush: "ended"}, {flush: "all"}}, 2, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, l := newFailureLog("app", "other")
			for _, st := range tc.steps {
				for range st.fail {
					f.failed(ctx, "app", authFailWrongSecret, meta)
				}
				l.advance(st.advance)
				if st.flush != "" {
					f.flush(ctx, st.flush == "all")
				}
			}
			rows, failed := l.of("app")
			if rows != tc.wantRows || failed != tc.wantFailed {
				t.Fatalf("rows %d accounting for %d failures, want %d rows and %d", rows, failed, tc.wantRows, tc.wantFailed)
			}
			if other, _ := l.of("other"); other != 0 {
				t.Fatalf("another client got %d rows", other)
			}
			first := l.rows[0]
			if first.event.Type != AuditClientAuthFailed || first.event.Outcome != models.OutcomeFailure ||
				first.event.IP != meta.IP || first.event.RequestID != meta.RequestID || first.details["reason"] != authFailWrongSecret {
				t.Fatalf("first row = %+v %v", first.event, first.details)
			}
		})
	}
}

// TestClientAuthFailuresMemoryIsBounded: invented client ids share one
// counter (client_id ""), so a flood of them adds no state and writes as
// few rows as a flood against one client.
func TestClientAuthFailuresMemoryIsBounded(t *testing.T) {
	ctx := context.Background()
	f, l := newFailureLog("app")
	for i := range 20000 {
		f.failed(ctx, "", authFailUnknownClient, RequestMeta{IP: "198.51.100." + strconv.Itoa(i%250)})
	}
	if len(f.clients) != 1 {
		t.Fatalf("%d counters after a flood of invented ids, want the 1 configured", len(f.clients))
	}
	l.advance(time.Minute)
	f.flush(ctx, false)
	rows, failed := l.of("")
	if rows != 2 || failed != 20000 {
		t.Fatalf("unknown clients: %d rows for %d failures, want 2 for 20000", rows, failed)
	}
	if rows, _ := l.of("app"); rows != 0 {
		t.Fatal("invented ids were counted against a configured client")
	}
}

// TestClientAuthFailuresConcurrent: failures from many goroutines at
// once are each counted once (run with -race).
func TestClientAuthFailuresConcurrent(t *testing.T) {
	ctx := context.Background()
	f, l := newFailureLog("app", "other")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				id := "app"
				if (g+i)%2 == 0 {
					id = "other"
				}
				f.failed(ctx, id, authFailWrongSecret, RequestMeta{})
				if i == 250 && g == 0 {
					l.advance(time.Minute)
				}
				if i%100 == 0 {
					f.flush(ctx, false)
				}
			}
		})
	}
	wg.Wait()
	f.flush(ctx, true)
	_, a := l.of("app")
	_, o := l.of("other")
	if a+o != 4000 {
		t.Fatalf("rows account for %d + %d failures, want 4000", a, o)
	}
}

// BenchmarkClientAuthFailure: what counting one failure costs once the
// minute's first row is written (the flood path: no database write).
func BenchmarkClientAuthFailure(b *testing.B) {
	ctx := context.Background()
	f, _ := newFailureLog("app", "other")
	meta := RequestMeta{IP: "203.0.113.5"}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f.failed(ctx, "app", authFailWrongSecret, meta)
		}
	})
}
