package shipper

import "context"

// uploadSlots bounds concurrent uploads across every destination
// (EXPORT_CONCURRENCY). A wave takes at least one slot and as many more as
// are free, up to what it needs, and never waits while holding slots, so
// waves cannot deadlock each other.
type uploadSlots struct{ ch chan struct{} }

func newUploadSlots(n int) *uploadSlots {
	if n <= 0 {
		n = 1
	}
	return &uploadSlots{ch: make(chan struct{}, n)}
}

func (s *uploadSlots) acquireUpTo(ctx context.Context, want int) int {
	select {
	case s.ch <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	got := 1
	for got < want {
		select {
		case s.ch <- struct{}{}:
			got++
		default:
			return got
		}
	}
	return got
}

func (s *uploadSlots) release(n int) {
	for i := 0; i < n; i++ {
		<-s.ch
	}
}
