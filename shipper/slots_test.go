package shipper

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
)

func TestUploadSlotsTakeWhatFits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		slots         int
		taken         int // tokens held by others first
		tokens        []int
		objects, held int
	}{
		{"small ones share a slot", 1, 0, []int{1, 1, 1, 1, 1}, 4, 4},
		{"a large one takes the slot", 1, 0, []int{4, 1}, 1, 4},
		{"a large one waits for room after a small one", 1, 0, []int{1, 4, 1}, 1, 1},
		{"two slots", 2, 0, []int{4, 1, 1, 1, 1, 1}, 5, 8},
		{"what is left", 2, 5, []int{1, 1, 1, 1}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newUploadSlots(tc.slots)
			if tc.taken > 0 {
				if n, _ := s.acquire(context.Background(), make1s(tc.taken)); n != tc.taken {
					t.Fatalf("setup took %d", n)
				}
			}
			n, held := s.acquire(context.Background(), tc.tokens)
			if n != tc.objects || held != tc.held {
				t.Fatalf("acquire(%v) = %d objects, %d tokens; want %d, %d", tc.tokens, n, held, tc.objects, tc.held)
			}
		})
	}
}

func make1s(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// A large object waiting for a whole slot is served before small objects
// that arrive after it, though they would fit at once.
func TestUploadSlotsServeWaitersInOrder(t *testing.T) {
	s := newUploadSlots(1)
	s.acquire(context.Background(), []int{1, 1}) // 2 of 4 tokens held
	order := make(chan string, 2)
	go func() {
		s.acquire(context.Background(), []int{smallPerSlot})
		order <- "large"
	}()
	waitFor(t, "the large waiter queued", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.next == 2
	})
	go func() {
		s.acquire(context.Background(), []int{1})
		order <- "small"
	}()
	waitFor(t, "the small waiter queued", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.next == 3
	})
	select {
	case who := <-order:
		t.Fatalf("%s served while the first 2 tokens are held", who)
	case <-time.After(50 * time.Millisecond):
	}
	s.release(2)
	if who := <-order; who != "large" {
		t.Fatalf("%s served first", who)
	}
	s.release(smallPerSlot)
	if who := <-order; who != "small" {
		t.Fatalf("%s served second", who)
	}
}

// A waiter that gives up does not hold up the ones behind it.
func TestUploadSlotsWaiterThatGivesUpLetsOthersThrough(t *testing.T) {
	s := newUploadSlots(1)
	s.acquire(context.Background(), []int{smallPerSlot})
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan int)
	go func() {
		n, _ := s.acquire(ctx, []int{smallPerSlot})
		gaveUp <- n
	}()
	waitFor(t, "the first waiter queued", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.next == 2
	})
	served := make(chan int)
	go func() {
		n, _ := s.acquire(context.Background(), []int{1})
		served <- n
	}()
	cancel()
	if n := <-gaveUp; n != 0 {
		t.Fatalf("cancelled acquire took %d objects", n)
	}
	s.release(smallPerSlot)
	select {
	case n := <-served:
		if n != 1 {
			t.Fatalf("took %d objects", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter behind the one that gave up was never served")
	}
}

// concurrencyStore records how many uploads of data objects run at once;
// each waits a little so that uploads that may overlap do.
type concurrencyStore struct {
	Store
	mu           sync.Mutex
	now, maxSeen int
}

func (c *concurrencyStore) Put(ctx context.Context, in PutInput) (PutResult, error) {
	if in.Metadata["events"] == "-1" { // a manifest
		return c.Store.Put(ctx, in)
	}
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return PutResult{}, err
	}
	c.mu.Lock()
	c.now++
	c.maxSeen = max(c.maxSeen, c.now)
	c.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	c.now--
	c.mu.Unlock()
	in.Body = bytes.NewReader(data)
	return c.Store.Put(ctx, in)
}

// TestSmallObjectsShareAnUploadSlot: with one upload slot, a unit's small
// objects (four sites) upload together, not one round trip after another.
func TestSmallObjectsShareAnUploadSlot(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	want := map[uint64]event.Event{}
	// 40 events, 10 per site, all within one hour: 4 small objects.
	appendEventsStep(t, l, 40, []string{"a.com", "b.org", "c.net", "d.io"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), time.Second, want)
	fs, _ := NewFileStore(t.TempDir())
	store := &concurrencyStore{Store: fs}
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Concurrency: 1}, []Destination{{
		Client: "acme", Kind: KindClient, Store: store, Prefix: "p", Formats: []export.Format{export.FormatNDJSON},
		Compression: export.CompressionGzip, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
	}})
	last := l.LastIndex()
	waitFor(t, "position at the last index", 60*time.Second, func() bool {
		return ts.Status().Destinations[0].Position == last
	})
	ts.stop()
	got, _ := readAll(t, fs, fileObjects(t, fs.root))
	checkExportedOnce(t, got, want)
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.maxSeen != smallPerSlot {
		t.Fatalf("at most %d small uploads at once with one slot, want %d", store.maxSeen, smallPerSlot)
	}
}
