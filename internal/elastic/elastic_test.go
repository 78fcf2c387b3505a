package elastic

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var inf = math.Inf(1)

func TestNextDecision(t *testing.T) {
	const target = time.Millisecond
	const floor = 100.0
	cases := []struct {
		name          string
		limit         float64
		w             window
		want          float64
		wantCongested bool
	}{
		{"unlimited, calm", inf, window{p99: 200 * time.Microsecond, samples: 300, foreground: true, achieved: 20000}, inf, false},
		{"unlimited, congested: cut from the achieved rate, by (target/p99)²", inf,
			window{p99: 2 * time.Millisecond, samples: 300, foreground: true, achieved: 20000}, 5000, true},
		{"cut at most to a twentieth", inf, window{p99: 50 * time.Millisecond, samples: 300, foreground: true, achieved: 20000}, 1000, true},
		{"cut at least by half", inf, window{p99: 1100 * time.Microsecond, samples: 300, foreground: true, achieved: 20000}, 10000, true},
		{"limited, achieved below the limit: cut from the achieved rate", 8000,
			window{p99: 1200 * time.Microsecond, samples: 300, foreground: true, achieved: 3000}, 1500, true},
		{"limited, waiters piled up above the limit: cut from the limit", 8000,
			window{p99: 1200 * time.Microsecond, samples: 300, foreground: true, achieved: 9000}, 4000, true},
		{"never below the floor", 150, window{p99: 9 * time.Millisecond, samples: 300, foreground: true, achieved: 150}, floor, true},
		{"background idle while congested: the floor", inf, window{p99: 9 * time.Millisecond, samples: 300, foreground: true, achieved: 0}, floor, true},
		{"no foreground work: latency is the background's own, not cut", 5000,
			window{p99: 20 * time.Millisecond, samples: 300, foreground: false, achieved: 5000}, 7500, false},
		{"no samples: no signal, raised", 5000, window{foreground: true, achieved: 5000}, 7500, false},
		{"exactly at the target is calm", 5000, window{p99: target, samples: 300, foreground: true, achieved: 5000}, 7500, false},
		{"calm at the floor: leaves it by at least the floor", floor, window{p99: 10 * time.Microsecond, samples: 300, foreground: true, achieved: floor}, 2 * floor, false},
		{"calm near the top: unlimited", 700 * floor, window{p99: 10 * time.Microsecond, samples: 300, foreground: true}, inf, false},
		{"urgent: unlimited at once, congested or not", floor, window{p99: 9 * time.Millisecond, samples: 300, foreground: true, achieved: floor, urgent: true}, inf, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, congested := next(tc.limit, tc.w, target, floor)
			if math.Abs(got-tc.want) > 1e-9 && got != tc.want || congested != tc.wantCongested {
				t.Fatalf("next(%v, %+v) = %v, %v; want %v, %v", tc.limit, tc.w, got, congested, tc.want, tc.wantCongested)
			}
		})
	}
}

// fakeSignal is an injected clock, latency source and foreground counter.
type fakeSignal struct {
	now     time.Time
	p99     time.Duration
	samples uint64
	fg      uint64
}

func (f *fakeSignal) latency() (time.Duration, uint64) { return f.p99, f.samples }
func (f *fakeSignal) clock() time.Time                 { return f.now }
func (f *fakeSignal) foreground() uint64               { return f.fg }

func newTestLimiter(t *testing.T, f *fakeSignal, floor float64, reg prometheus.Registerer, log *slog.Logger) *Limiter {
	t.Helper()
	l, err := New(Options{Target: time.Millisecond, Floor: floor, Interval: 100 * time.Millisecond,
		Latency: f.latency, Now: f.clock, Foreground: f.foreground, Registerer: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	l.start()
	return l
}

// window runs one controller window in which background work was let
// through at rate (units per second), foreground work ran or not, and
// the scheduler showed p99.
func (f *fakeSignal) window(l *Limiter, rate float64, foreground bool, p99 time.Duration) {
	l.admitted.Add(int64(rate / 10))
	if foreground {
		f.fg += 1000
	}
	f.p99, f.samples = p99, 500
	f.now = f.now.Add(100 * time.Millisecond)
	l.tick()
}

func TestControllerCutsToTheFloorAndRecoversToUnlimited(t *testing.T) {
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	reg := prometheus.NewRegistry()
	l := newTestLimiter(t, f, 500, reg, nil)
	if !math.IsInf(l.Limit(), 1) {
		t.Fatalf("starts at %v, want unlimited", l.Limit())
	}
	// Ingest saturates the CPU: every window over the target. Background
	// work gets what it is allowed (or what it wants, 30k/s, unlimited).
	for i := 0; i < 20; i++ {
		got := min(30000, l.Limit())
		f.window(l, got, true, 8*time.Millisecond)
		if l.Limit() < 500 {
			t.Fatalf("window %d: limit %v is below the floor", i, l.Limit())
		}
	}
	if l.Limit() != 500 {
		t.Fatalf("after 20 congested windows the limit is %v, want the floor 500", l.Limit())
	}
	if got := testutil.ToFloat64(l.m.allowed); got != 500 {
		t.Fatalf("collector_elastic_allowed_rate = %v, want 500", got)
	}
	if got := testutil.ToFloat64(l.m.p99); got != 0.008 {
		t.Fatalf("collector_elastic_sched_latency_p99_seconds = %v, want 0.008", got)
	}
	if got := testutil.ToFloat64(l.m.cuts); got != 20 {
		t.Fatalf("collector_elastic_congested_windows_total = %v, want 20", got)
	}
	// Ingest stops: the limit climbs back, monotonically, to unlimited
	// within a couple of seconds of windows.
	prev := l.Limit()
	for i := 0; i < 30 && !math.IsInf(l.Limit(), 1); i++ {
		f.window(l, min(30000, l.Limit()), false, 8*time.Millisecond) // the background's own latency: ignored
		if l.Limit() <= prev {
			t.Fatalf("calm window %d: limit %v did not rise from %v", i, l.Limit(), prev)
		}
		prev = l.Limit()
	}
	if !math.IsInf(l.Limit(), 1) {
		t.Fatalf("after 30 calm windows the limit is %v, want unlimited", l.Limit())
	}
	if got := testutil.ToFloat64(l.m.allowed); !math.IsInf(got, 1) {
		t.Fatalf("collector_elastic_allowed_rate = %v, want +Inf", got)
	}
}

func TestControllerFirstCutFollowsTheAchievedRate(t *testing.T) {
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	l := newTestLimiter(t, f, 500, nil, nil)
	f.window(l, 20000, true, 2*time.Millisecond)
	if l.Limit() != 5000 {
		t.Fatalf("limit after a window at 20000/s with p99 twice the target = %v, want 5000", l.Limit())
	}
	// The rate limiter underneath follows, with a burst of one window.
	if got, want := float64(l.lim.Limit()), 5000.0; got != want {
		t.Fatalf("rate.Limiter limit %v, want %v", got, want)
	}
	if got, want := l.lim.Burst(), 500; got != want {
		t.Fatalf("burst %d, want %d (one 100 ms window at 5000/s)", got, want)
	}
}

func TestControllerWithoutForegroundCounterCountsEveryWindow(t *testing.T) {
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	l, err := New(Options{Target: time.Millisecond, Floor: 100, Latency: f.latency, Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	l.start()
	f.window(l, 10000, false, 3*time.Millisecond)
	if math.IsInf(l.Limit(), 1) {
		t.Fatal("a congested window without a foreground counter did not cut")
	}
}

func TestUrgentLiftsTheLimitUntilItClears(t *testing.T) {
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	urgent := false
	l, err := New(Options{Target: time.Millisecond, Floor: 500, Latency: f.latency, Now: f.clock, Foreground: f.foreground,
		Urgent: func() bool { return urgent }})
	if err != nil {
		t.Fatal(err)
	}
	l.start()
	for i := 0; i < 5; i++ {
		f.window(l, 30000, true, 8*time.Millisecond)
	}
	if l.Limit() != 500 {
		t.Fatalf("limit %v, want the floor", l.Limit())
	}
	urgent = true
	f.window(l, 500, true, 8*time.Millisecond)
	if !math.IsInf(l.Limit(), 1) {
		t.Fatalf("urgent: limit %v, want unlimited", l.Limit())
	}
	f.window(l, 30000, true, 8*time.Millisecond)
	if !math.IsInf(l.Limit(), 1) {
		t.Fatalf("still urgent, congested: limit %v, want unlimited", l.Limit())
	}
	urgent = false
	f.window(l, 30000, true, 8*time.Millisecond)
	if math.IsInf(l.Limit(), 1) {
		t.Fatal("no longer urgent and congested: still unlimited")
	}
}

func TestWaitUnlimitedAndNil(t *testing.T) {
	var nilLimiter *Limiter
	if err := nilLimiter.Wait(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(nilLimiter.Limit(), 1) {
		t.Fatal("a nil limiter is not unlimited")
	}
	l, err := New(Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := l.admitted.Load(); got != 1<<20 {
		t.Fatalf("admitted %d, want %d", got, 1<<20)
	}
	if got := testutil.ToFloat64(l.m.admitted); got != 1<<20 {
		t.Fatalf("collector_elastic_admitted_total = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestWaitIsUnblockedByCancel(t *testing.T) {
	l, err := New(Options{Floor: 1, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	l.setLimit(1) // one unit a second, burst 1
	if err := l.Wait(context.Background(), 1); err != nil {
		t.Fatal(err) // the burst
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 1000) }() // about 1000 s at this rate
	select {
	case err := <-done:
		t.Fatalf("Wait for 1000 units at 1/s returned %v before the cancel", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10 s after its context was cancelled")
	}
	if testutil.ToFloat64(l.m.waited) <= 0 {
		t.Fatal("the time spent waiting was not counted")
	}
}

func TestWaitPacesAtTheLimit(t *testing.T) {
	l, err := New(Options{Floor: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.setLimit(2000) // burst 200
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// 2000 units at 2000/s take about 0.9 s after the burst: with a 50 ms
	// deadline the limiter must stop it short, having let through less
	// than all.
	err = l.Wait(ctx, 2000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(2000) at 2000/s under a 50 ms deadline = %v, want the deadline", err)
	}
	if got := l.admitted.Load(); got >= 2000 || got < 200 {
		t.Fatalf("admitted %d, want the burst (200) and at most part of the rest", got)
	}
}

func TestConcurrentWaitersAndController(t *testing.T) {
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	var mu sync.Mutex
	l, err := New(Options{Target: time.Millisecond, Floor: 100000, Interval: time.Millisecond,
		Latency: func() (time.Duration, uint64) { mu.Lock(); defer mu.Unlock(); return f.latency() },
		Now:     func() time.Time { mu.Lock(); defer mu.Unlock(); f.now = f.now.Add(time.Millisecond); return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- l.Run(ctx) }()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if err := l.Wait(context.Background(), 256); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				f.p99, f.samples = time.Duration(j%3)*time.Millisecond, 10
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if got := l.admitted.Load(); got != 4*50*256 {
		t.Fatalf("admitted %d, want %d", got, 4*50*256)
	}
}

func TestLogsStateChangesRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	f := &fakeSignal{now: time.Unix(1e9, 0)}
	l := newTestLimiter(t, f, 500, nil, log)
	// Limited, then unlimited again, then limited again within 10 s: only
	// the first change is logged; later ones wait for the next log.
	f.window(l, 30000, true, 8*time.Millisecond)
	for i := 0; i < 30 && !math.IsInf(l.Limit(), 1); i++ {
		f.window(l, 0, false, 0)
	}
	f.window(l, 30000, true, 8*time.Millisecond)
	if n := strings.Count(buf.String(), "elastic limiter"); n != 1 {
		t.Fatalf("%d log lines within 10 s, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "background work slowed") {
		t.Fatalf("first log is not the slow-down:\n%s", buf.String())
	}
	// Calm for a while: the return to unlimited is logged, with the
	// changes not logged in between.
	f.now = f.now.Add(20 * time.Second)
	for i := 0; i < 30 && !math.IsInf(l.Limit(), 1); i++ {
		f.window(l, 0, false, 0)
	}
	out := buf.String()
	if n := strings.Count(out, "elastic limiter"); n != 2 || !strings.Contains(out, "unlimited again") || !strings.Contains(out, "changes_since_last_log=2") {
		t.Fatalf("want a second line, unlimited again, counting the 2 changes not logged:\n%s", out)
	}
	// Windows that change nothing log nothing.
	f.now = f.now.Add(time.Minute)
	for i := 0; i < 10; i++ {
		f.window(l, 1000, false, 0)
	}
	if strings.Count(buf.String(), "elastic limiter") != 2 {
		t.Fatalf("logged without a state change:\n%s", buf.String())
	}
}

func TestNewRejectsNegativeSettings(t *testing.T) {
	for _, o := range []Options{{Target: -1}, {Floor: -1}, {Interval: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted it", o)
		}
	}
}
