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
	"github.com/evothesis/collector/wal"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gatedStore holds the uploads of data objects of the unit starting at
// index 1, once their bodies are read (a slow answer), until open is
// closed.
type gatedStore struct {
	Store
	open chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, in PutInput) (PutResult, error) {
	if in.Metadata["first-index"] == "1" && in.Metadata["events"] != "-1" {
		data, err := io.ReadAll(in.Body)
		if err != nil {
			return PutResult{}, err
		}
		select {
		case <-g.open:
		case <-ctx.Done():
			return PutResult{}, ctx.Err()
		}
		in.Body = bytes.NewReader(data)
	}
	return g.Store.Put(ctx, in)
}

// readWatch reports the second read of a unit other than the first: its
// pass 2 (pass 1 is the first).
type readWatch struct {
	*wal.Log
	mu     sync.Mutex
	reads  map[uint64]int
	second chan uint64
}

func (w *readWatch) ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error {
	w.mu.Lock()
	w.reads[from]++
	if from != 1 && w.reads[from] == 2 {
		select {
		case w.second <- from:
		default:
		}
	}
	w.mu.Unlock()
	return w.Log.ScanRange(ctx, from, to, fn)
}

// TestNextUnitIsReadWhileTheLastOneUploads: a destination reads and encodes
// its next unit while the uploads of the one before are still running, and
// its position still passes units in order only.
func TestNextUnitIsReadWhileTheLastOneUploads(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 600, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	fs, _ := NewFileStore(t.TempDir())
	store := &gatedStore{Store: fs, open: make(chan struct{})}
	log := &readWatch{Log: l, reads: map[uint64]int{}, second: make(chan uint64, 1)}
	// Slots to spare: the held uploads keep theirs.
	ts := startShipper(t, Options{Log: log, StateDir: t.TempDir(), Concurrency: 4}, []Destination{{
		Client: "acme", Kind: KindClient, Store: store, Prefix: "p", Formats: []export.Format{export.FormatNDJSON},
		Compression: export.CompressionZstd, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
	}})
	var next uint64
	select {
	case next = <-log.second:
	case <-time.After(60 * time.Second):
		t.Fatal("the next unit was not read while the first one's uploads were held")
	}
	if st := ts.Status().Destinations[0]; st.Position != 0 {
		t.Fatalf("position %d while the first unit is not stored", st.Position)
	}
	close(store.open)
	last := l.LastIndex()
	waitFor(t, "position at the last index", 60*time.Second, func() bool {
		return ts.Status().Destinations[0].Position == last
	})
	t.Logf("unit from %d read while unit 1 uploaded", next)
	ts.stop()
	keys := fileObjects(t, fs.root)
	got, _ := readAll(t, fs, keys)
	checkExportedOnce(t, got, want)
}

// TestLagGaugesFollowThePosition: the lag gauges reach 0 when the last unit
// is done, not at the next periodic refresh.
func TestLagGaugesFollowThePosition(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	appendEvents(t, l, 400, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), map[uint64]event.Event{})
	fs, _ := NewFileStore(t.TempDir())
	// Only the periodic refresh at start, then the one at each unit's end.
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), LagInterval: time.Hour}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Formats: []export.Format{export.FormatCSV},
		Compression: export.CompressionGzip, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
	}})
	const dest = "export:acme:client"
	for _, g := range []struct {
		name  string
		gauge func() float64
	}{
		{"lag events", func() float64 { return testutil.ToFloat64(ts.metrics.lagEvents.WithLabelValues(dest)) }},
		{"lag seconds", func() float64 { return testutil.ToFloat64(ts.metrics.lagSeconds.WithLabelValues(dest)) }},
	} {
		waitFor(t, g.name+" at 0", 60*time.Second, func() bool {
			return ts.Status().Destinations[0].Position == l.LastIndex() && g.gauge() == 0
		})
	}
}
