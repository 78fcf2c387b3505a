package elastic

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(f float64) float64 { return f / 1000 }
	buckets := []float64{0, ms(0.1), ms(1), ms(10), math.Inf(1)}
	cases := []struct {
		name    string
		counts  []uint64
		q       float64
		want    time.Duration
		samples uint64
	}{
		{"empty", []uint64{0, 0, 0, 0}, 0.99, 0, 0},
		{"all in the first bucket: its upper bound", []uint64{100, 0, 0, 0}, 0.99, 100 * time.Microsecond, 100},
		{"p99 in the third bucket", []uint64{90, 8, 2, 0}, 0.99, 10 * time.Millisecond, 100},
		{"p99 just inside the second bucket", []uint64{90, 9, 1, 0}, 0.99, time.Millisecond, 100},
		{"p50", []uint64{90, 9, 1, 0}, 0.5, 100 * time.Microsecond, 100},
		{"the unbounded bucket gives its lower bound", []uint64{1, 0, 0, 9}, 0.99, 10 * time.Millisecond, 10},
		{"one sample", []uint64{0, 1, 0, 0}, 0.99, time.Millisecond, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, n := quantile(buckets, tc.counts, tc.q)
			if got != tc.want || n != tc.samples {
				t.Fatalf("quantile = %v, %d; want %v, %d", got, n, tc.want, tc.samples)
			}
		})
	}
}

// TestSchedLatencyWindowsAreDeltas checks the real runtime source: a burst
// of goroutine wake-ups shows up in the next window, and a window after it
// does not count them again.
func TestSchedLatencyWindowsAreDeltas(t *testing.T) {
	s := NewSchedLatency()
	var wg sync.WaitGroup
	for i := 0; i < 20000; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
	p99, n := s.Window(0.99)
	if n == 0 {
		t.Fatal("20000 goroutines ran and the window recorded no scheduling latency")
	}
	if p99 <= 0 || p99 > time.Minute {
		t.Fatalf("p99 %v of %d samples is not a latency", p99, n)
	}
	_, n2 := s.Window(0.99)
	if n2 >= n {
		t.Fatalf("an idle window recorded %d samples, the busy one %d: windows are not deltas", n2, n)
	}
}
