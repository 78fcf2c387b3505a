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
// every interval until Report.
func Start(interval time.Duration) *Sampler {
	h := &Sampler{stop: make(chan struct{})}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	h.base = base.HeapInuse
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > h.peak.Load() {
				h.peak.Store(ms.HeapInuse)
			}
			rtmetrics.Read(live)
			if v := live[0].Value.Uint64(); v > h.peakLive.Load() {
				h.peakLive.Store(v)
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
