package elastic

import (
	"math"
	"runtime/metrics"
	"time"
)

// schedLatencies is the runtime's histogram of the time goroutines spent
// runnable before they ran (cumulative since the process started).
const schedLatencies = "/sched/latencies:seconds"

// SchedLatency reads the Go scheduler's latency histogram and reports, per
// window, a quantile of the latencies recorded since the previous window.
// It is not safe for concurrent use: one controller owns it.
type SchedLatency struct {
	sample []metrics.Sample
	prev   []uint64
	delta  []uint64
}

// NewSchedLatency starts a window now.
func NewSchedLatency() *SchedLatency {
	s := &SchedLatency{sample: []metrics.Sample{{Name: schedLatencies}}}
	s.read()
	return s
}

func (s *SchedLatency) read() *metrics.Float64Histogram {
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s.sample[0].Value.Float64Histogram()
}

// Window returns quantile q (0 < q < 1) of the scheduling latencies
// recorded since the previous call, and how many latencies there were
// (the runtime records a sample of goroutine transitions, not each one).
// With none it returns 0, 0.
func (s *SchedLatency) Window(q float64) (time.Duration, uint64) {
	h := s.read()
	if h == nil {
		return 0, 0
	}
	if len(s.prev) != len(h.Counts) {
		s.prev = make([]uint64, len(h.Counts))
		s.delta = make([]uint64, len(h.Counts))
	}
	for i, c := range h.Counts {
		s.delta[i] = c - s.prev[i]
		s.prev[i] = c
	}
	return quantile(h.Buckets, s.delta, q)
}

// quantile is the upper bound of the bucket that holds quantile q of
// counts (its lower bound for the last, unbounded bucket), and the total.
func quantile(buckets []float64, counts []uint64, q float64) (time.Duration, uint64) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen < rank {
			continue
		}
		v := buckets[i+1]
		if math.IsInf(v, 1) {
			v = buckets[i]
		}
		return time.Duration(v * float64(time.Second)), total
	}
	return time.Duration(buckets[len(buckets)-2] * float64(time.Second)), total
}
