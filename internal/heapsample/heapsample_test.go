package heapsample

import (
	"runtime"
	"testing"
	"time"
)

func TestSamplerSeesAHeldAllocation(t *testing.T) {
	const size = 32 << 20
	s := Start(time.Millisecond)
	held := make([]byte, size)
	for i := range held {
		held[i] = byte(i)
	}
	runtime.GC() // the live heap is what a collection kept
	// Sampling runs on a ticker: give a loaded machine time for a sample.
	for deadline := time.Now().Add(5 * time.Second); s.peakLive.Load() < size && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	above, base, live := s.Stop()
	runtime.KeepAlive(held)
	// The base is whatever the process held at Start, some of which the
	// collection may free: "above base" can fall short of size by that much.
	if above < size*3/4 || live < size {
		t.Fatalf("holding %d MiB: peak above base %d MiB (base %d MiB), peak live %d MiB", size>>20, above>>20, base>>20, live>>20)
	}
}
