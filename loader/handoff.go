package loader

import (
	"context"
	"sync"
)

// handoff passes decoded batches from the reader to the writer.
//
// The reader publishes a batch when it is full, or as soon as it has decoded
// everything the WAL holds; the writer takes everything published whenever
// it is free. A loader that keeps up therefore commits as soon as the
// previous commit is done, with no interval to wait out, and the records
// that arrive while a COPY runs gather into the next batch: batch size
// follows the rate times the COPY time by itself (adaptive batching), small
// when the database is quick, large when it is busy or behind.
//
// A batch is owned by one side at a time: the reader until publish, the
// handoff until take or reclaim, the writer after take.
type handoff struct {
	mu       sync.Mutex
	ready    []*batch // published, oldest first
	maxReady int      // batches the reader may leave waiting before it blocks

	wake chan struct{} // something was published (the writer waits on it)
	room chan struct{} // something was taken (a blocked reader waits on it)
}

func newHandoff(maxReady int) *handoff {
	return &handoff{maxReady: max(1, maxReady), wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wakeup is already pending; the waiter rechecks the state anyway
	}
}

// publish hands b to the writer (reader side).
func (h *handoff) publish(b *batch) {
	h.mu.Lock()
	h.ready = append(h.ready, b)
	h.mu.Unlock()
	signal(h.wake)
}

// waitRoom blocks while maxReady batches are waiting (reader side): it bounds
// the memory a backlog can take, the writer's pace sets the reader's.
func (h *handoff) waitRoom(ctx context.Context) error {
	for {
		h.mu.Lock()
		n := len(h.ready)
		h.mu.Unlock()
		if n < h.maxReady {
			return nil
		}
		select {
		case <-h.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reclaim takes back the last published batch if the writer has not taken it
// yet and open says it may still grow (reader side), so that records arriving
// while a COPY runs join one batch instead of many small ones. nil when
// there is none.
func (h *handoff) reclaim(open func(*batch) bool) *batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.ready)
	if n == 0 || !open(h.ready[n-1]) {
		return nil
	}
	b := h.ready[n-1]
	h.ready[n-1] = nil
	h.ready = h.ready[:n-1]
	return b
}

// take moves published batches, oldest first, into dst (writer side): at
// least one if any is waiting, then more while they fit in maxEvents and
// maxBytes together, so that a backlog goes in few large transactions.
func (h *handoff) take(dst []*batch, maxEvents, maxBytes int) []*batch {
	h.mu.Lock()
	events, bytes, n := 0, 0, 0
	for _, b := range h.ready {
		if n > 0 && (events+b.count() > maxEvents || bytes+b.recordBytes > maxBytes) {
			break
		}
		dst = append(dst, b)
		events += b.count()
		bytes += b.recordBytes
		n++
	}
	rest := copy(h.ready, h.ready[n:])
	clear(h.ready[rest:])
	h.ready = h.ready[:rest]
	h.mu.Unlock()
	if n > 0 {
		signal(h.room)
	}
	return dst
}

// fullWaiting reports whether the oldest published batch is full (a
// backlog): the writer takes it without spacing its commits.
func (h *handoff) fullWaiting(maxEvents, maxBytes int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ready) > 0 && (h.ready[0].count() >= maxEvents || h.ready[0].recordBytes >= maxBytes)
}
