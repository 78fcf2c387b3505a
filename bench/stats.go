package bench

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with three
// significant digits (0.1% resolution at every scale).
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histLowest, histHighest, histDigits) }

// Latency is a latency distribution summary in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize reads the percentiles of an HDR histogram of microseconds.
func Summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	ms := func(us int64) float64 { return math.Round(float64(us)) / 1000 }
	return Latency{
		Count: h.TotalCount(),
		Mean:  math.Round(h.Mean()) / 1000,
		P50:   ms(q[50]), P90: ms(q[90]), P99: ms(q[99]), P999: ms(q[99.9]),
		Max: ms(h.Max()),
	}
}

// SecondStat is one interval of the time series.
type SecondStat struct {
	T        float64 `json:"t"` // seconds since the run started, at the end of the interval
	Requests int64   `json:"requests"`
	Accepted int64   `json:"accepted_events"`
	Refused  int64   `json:"refused_events"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"requests_per_s"`
	EPS      float64 `json:"accepted_events_per_s"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// shard is one worker's counters; the ticker drains it once per interval.
type shard struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram // latency (from intended send time in the open loop)
	service  *hdrhistogram.Histogram // from the actual send (open loop only)
	status   map[int]int64
	errs     map[string]int64
	kinds    [numKinds]int64
	requests int64
	accepted int64
	refused  int64
	pixels   int64
	errors   int64
	late     int64
	_        [64]byte // keep shards on separate cache lines
}

func newShard() *shard {
	return &shard{hist: newHist(), service: newHist(), status: map[int]int64{}, errs: map[string]int64{}}
}

// collector aggregates shards into totals and a per-interval series.
type collector struct {
	shards   []*shard
	total    *hdrhistogram.Histogram
	service  *hdrhistogram.Histogram
	status   map[int]int64
	errs     map[string]int64
	kinds    [numKinds]int64
	sums     SecondStat // running totals (T unused)
	pixels   int64
	late     int64
	series   []SecondStat
	start    time.Time
	last     time.Time
	interval time.Duration
	scratch  *hdrhistogram.Histogram
}

func newCollector(n int, start time.Time, interval time.Duration) *collector {
	c := &collector{total: newHist(), service: newHist(), status: map[int]int64{}, errs: map[string]int64{},
		start: start, last: start, interval: interval, scratch: newHist()}
	for i := 0; i < n; i++ {
		c.shards = append(c.shards, newShard())
	}
	return c
}

// drain moves every shard's counts into the totals and appends one interval.
func (c *collector) drain(now time.Time) {
	iv := c.scratch
	iv.Reset()
	var s SecondStat
	for _, sh := range c.shards {
		sh.mu.Lock()
		iv.Merge(sh.hist)
		c.service.Merge(sh.service)
		sh.hist.Reset()
		sh.service.Reset()
		for k, v := range sh.status {
			c.status[k] += v
			delete(sh.status, k)
		}
		for k, v := range sh.errs {
			c.errs[k] += v
			delete(sh.errs, k)
		}
		for k := range sh.kinds {
			c.kinds[k] += sh.kinds[k]
			sh.kinds[k] = 0
		}
		s.Requests += sh.requests
		s.Accepted += sh.accepted
		s.Refused += sh.refused
		s.Errors += sh.errors
		c.pixels += sh.pixels
		c.late += sh.late
		sh.requests, sh.accepted, sh.refused, sh.errors, sh.pixels, sh.late = 0, 0, 0, 0, 0, 0
		sh.mu.Unlock()
	}
	c.total.Merge(iv)
	c.sums.Requests += s.Requests
	c.sums.Accepted += s.Accepted
	c.sums.Refused += s.Refused
	c.sums.Errors += s.Errors
	dt := now.Sub(c.last).Seconds()
	c.last = now
	// A final sliver of an interval (the run ended just after a tick) is in
	// the totals but not plotted: its rate would be noise.
	if dt < c.interval.Seconds()/2 {
		return
	}
	s.T = math.Round(now.Sub(c.start).Seconds()*1000) / 1000
	if dt > 0 {
		s.RPS = math.Round(float64(s.Requests) / dt)
		s.EPS = math.Round(float64(s.Accepted) / dt)
	}
	l := Summarize(iv)
	s.P50, s.P90, s.P99, s.Max = l.P50, l.P90, l.P99, l.Max
	c.series = append(c.series, s)
}

func statusMap(m map[int]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

// sortedKeys returns a map's keys in order (for stable human output).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
