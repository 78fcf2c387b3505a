package shipper

import (
	"context"
	"sync"
)

// uploadSlots bounds concurrent uploads across every destination
// (EXPORT_CONCURRENCY slots). A slot is one object, or up to
// smallPerSlot small ones: an object's memory is its encoder plus what it
// buffers for the store (up to 3 parts when large), so small objects, which
// with many sites are most of them and cost a store round trip each, go
// several to a slot without raising the memory bound.
//
// A wave takes at least its first object and as many more as fit in what
// is free, and never waits while holding tokens, so waves cannot deadlock
// each other. Waiters are served in arrival order: small objects cannot
// starve a large one waiting for a whole slot.
type uploadSlots struct {
	mu        sync.Mutex
	free      int // tokens: smallPerSlot per slot
	freed     chan struct{}
	next      uint64 // ticket of the next arrival
	serving   uint64 // ticket allowed to take tokens
	abandoned map[uint64]bool
}

const (
	// smallPerSlot is how many small objects share one upload slot.
	smallPerSlot = 4
	// smallObjectBytes is the most record bytes (pass 1's count) of a group
	// whose objects count as small: a few hundred KiB encoded at most,
	// buffered whole before one PutObject.
	smallObjectBytes = 256 << 10
)

func newUploadSlots(n int) *uploadSlots {
	if n <= 0 {
		n = 1
	}
	return &uploadSlots{free: n * smallPerSlot, freed: make(chan struct{}), abandoned: map[uint64]bool{}}
}

// small reports whether the objects of g are small ones.
func (g *group) small() bool { return g.bytes <= smallObjectBytes }

// objectTokens is what one object of group g holds.
func objectTokens(g *group) int {
	if g.small() {
		return 1
	}
	return smallPerSlot
}

// acquire waits until the first of the objects of tokens fits, takes it
// and as many of the following as also fit now, and returns how many it
// took and the tokens they hold (0, 0 when ctx ends first).
func (s *uploadSlots) acquire(ctx context.Context, tokens []int) (objects, held int) {
	if len(tokens) == 0 {
		return 0, 0
	}
	s.mu.Lock()
	ticket := s.next
	s.next++
	for s.serving != ticket || s.free < tokens[0] {
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			s.mu.Lock()
			s.abandoned[ticket] = true
			s.advanceLocked()
			s.mu.Unlock()
			return 0, 0
		}
		s.mu.Lock()
	}
	for objects < len(tokens) && s.free >= tokens[objects] {
		s.free -= tokens[objects]
		held += tokens[objects]
		objects++
	}
	s.serving++
	s.advanceLocked()
	s.mu.Unlock()
	return objects, held
}

// acquireSlot waits for one whole slot: one object whose size is unknown.
func (s *uploadSlots) acquireSlot(ctx context.Context) bool {
	n, _ := s.acquire(ctx, []int{smallPerSlot})
	return n == 1
}

func (s *uploadSlots) releaseSlot() { s.release(smallPerSlot) }

// release gives back tokens acquire handed out.
func (s *uploadSlots) release(tokens int) {
	s.mu.Lock()
	s.free += tokens
	s.wakeLocked()
	s.mu.Unlock()
}

// advanceLocked skips the tickets of waiters that gave up, and wakes the
// waiters: the next one may now be served.
func (s *uploadSlots) advanceLocked() {
	for s.abandoned[s.serving] {
		delete(s.abandoned, s.serving)
		s.serving++
	}
	s.wakeLocked()
}

func (s *uploadSlots) wakeLocked() {
	close(s.freed)
	s.freed = make(chan struct{})
}
