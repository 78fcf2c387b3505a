// Package heapsample measures a benchmark's peak heap: the Go heap in use and
// the live heap (what the last garbage collection kept), sampled every few
// milliseconds while the code under test runs. Benchmarks report it beside
// their speed, so that memory is measured the way speed is.
package heapsample

import (
	"runtime"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sampler samples the heap from Start until Report.
type Sampler struct {
	base           uint64
	peak, peakLive atomic.Uint64
	stop           chan struct{}
	wg             sync.WaitGroup
}

// Start collects garbage, notes the heap in use as the base, and samples
// every interval until Report. It reads runtime/metrics, which, unlike
// runtime.ReadMemStats, does not stop the world: sampling every few
// milliseconds must not slow the code whose speed the benchmark reports.
func Start(interval time.Duration) *Sampler {
	h := &Sampler{stop: make(chan struct{})}
	runtime.GC()
	samples := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, // with the next, MemStats.HeapInuse
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	read := func() (inuse, live uint64) {
		rtmetrics.Read(samples)
		return samples[0].Value.Uint64() + samples[1].Value.Uint64(), samples[2].Value.Uint64()
	}
	h.base, _ = read()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			inuse, live := read()
			if inuse > h.peak.Load() {
				h.peak.Store(inuse)
			}
			if live > h.peakLive.Load() {
				h.peakLive.Store(live)
			}
		}
	}()
	return h
}

// Stop ends sampling and returns the peak heap in use above the base, the
// base, and the peak live heap, in bytes.
func (h *Sampler) Stop() (peakAboveBase, base, peakLive uint64) {
	close(h.stop)
	h.wg.Wait()
	peak := h.peak.Load()
	return peak - min(peak, h.base), h.base, h.peakLive.Load()
}

// Report stops sampling and reports the three figures of Stop in MiB.
func (h *Sampler) Report(b *testing.B) {
	above, base, live := h.Stop()
	b.ReportMetric(float64(above)/(1<<20), "peak_heap_MiB_above_base")
	b.ReportMetric(float64(base)/(1<<20), "base_heap_MiB")
	b.ReportMetric(float64(live)/(1<<20), "peak_live_heap_MiB")
}
