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
	time.Sleep(20 * time.Millisecond)
	above, base, live := s.Stop()
	runtime.KeepAlive(held)
	if above < size || live < size {
		t.Fatalf("holding %d MiB: peak above base %d MiB (base %d MiB), peak live %d MiB", size>>20, above>>20, base>>20, live>>20)
	}
}
