package shipper

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
)

func TestCutUnitsNeverCrossSegmentsOrTheEventLimit(t *testing.T) {
	segs := []wal.Segment{
		{FirstIndex: 1, LastIndex: 100, Sealed: true},
		{FirstIndex: 101, LastIndex: 250, Sealed: true},
		{FirstIndex: 251, LastIndex: 300},
	}
	cases := []struct {
		name      string
		from, to  uint64
		maxEvents int
		want      [][2]uint64
	}{
		{"sealed segments are units", 1, 250, 0, [][2]uint64{{1, 100}, {101, 250}}},
		{"tail range", 251, 280, 0, [][2]uint64{{251, 280}}},
		{"starts mid-segment", 50, 300, 0, [][2]uint64{{50, 100}, {101, 250}, {251, 300}}},
		{"event limit", 101, 250, 60, [][2]uint64{{101, 160}, {161, 220}, {221, 250}}},
		{"beyond known segments", 290, 320, 0, [][2]uint64{{290, 300}, {301, 320}}},
		{"single record", 7, 7, 0, [][2]uint64{{7, 7}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cutUnits(segs, tc.from, tc.to, tc.maxEvents); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}

type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.set(t); return c }
func (c *fakeClock) now() time.Time       { return *c.t.Load() }
func (c *fakeClock) set(t time.Time)      { c.t.Store(&t) }

func fileObjects(t *testing.T, root string) []string {
	t.Helper()
	var keys []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(root, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	return keys
}

func TestScheduledUnitsBecomeEligibleAtTheTick(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 800, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	clock := newFakeClock(time.Date(2025, 6, 22, 12, 30, 0, 0, time.UTC))
	root := t.TempDir()
	fs, err := NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Now: clock.now}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Prefix: "h", Formats: []export.Format{export.FormatJSON},
		Compression: export.CompressionGzip, Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly",
	}})
	time.Sleep(300 * time.Millisecond)
	if n := len(fileObjects(t, root)); n != 0 || ts.Status().Destinations[0].Position != 0 {
		t.Fatalf("exported %d objects before the first tick", n)
	}
	if next := ts.Status().Destinations[0].NextRun; next == nil || !next.Equal(clock.now().Add(time.Hour)) {
		t.Fatalf("next run %v", next)
	}
	clock.set(clock.now().Add(time.Hour))
	ts.runners()[0].poke()
	last := l.LastIndex()
	waitFor(t, "export at the tick", 30*time.Second, func() bool { return ts.Status().Destinations[0].Position == last })
	got, _ := readAll(t, fs, fileObjects(t, root))
	if len(got) != len(want) {
		t.Fatalf("exported %d of %d", len(got), len(want))
	}
	for id, w := range want {
		checkEvent(t, export.FormatJSON, id, got[id][0], w)
	}
}

// TestATickThatPassesWhileDownIsExportedAtStart: the first start records
// its first tick at once, so a restart after the tick exports what was
// there (a real-time schedule skips that save: it has no ticks).
func TestATickThatPassesWhileDownIsExportedAtStart(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	appendEvents(t, l, 50, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), map[uint64]event.Event{})
	clock := newFakeClock(time.Date(2025, 6, 22, 12, 30, 0, 0, time.UTC))
	fs, _ := NewFileStore(t.TempDir())
	stateDir := t.TempDir()
	dests := []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Prefix: "h", Formats: []export.Format{export.FormatNDJSON},
		Compression: export.CompressionGzip, Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly",
	}}
	ts := startShipper(t, Options{Log: l, StateDir: stateDir, Now: clock.now}, dests)
	firstTick := clock.now().Add(time.Hour)
	waitFor(t, "the first tick planned", 10*time.Second, func() bool {
		next := ts.Status().Destinations[0].NextRun
		return next != nil && next.Equal(firstTick)
	})
	ts.stop()
	// Down across the tick.
	clock.set(clock.now().Add(90 * time.Minute))
	ts = startShipper(t, Options{Log: l, StateDir: stateDir, Now: clock.now}, dests)
	defer ts.stop()
	last := l.LastIndex()
	waitFor(t, "the missed tick's export", 30*time.Second, func() bool { return ts.Status().Destinations[0].Position == last })
}

func TestThresholdCountsOnlyTheDestinationsEvents(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 150, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want) // 75 of a.com
	root := t.TempDir()
	fs, _ := NewFileStore(root)
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir()}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Formats: []export.Format{export.FormatNDJSON},
		Compression: export.CompressionNone, Schedule: everySchedule{d: 24 * time.Hour}, ScheduleName: "daily",
		Threshold: 100, Claims: func(s string) bool { return s == "a.com" },
	}})
	time.Sleep(300 * time.Millisecond)
	if p := ts.Status().Destinations[0].Position; p != 0 {
		t.Fatalf("exported at 75 pending events with threshold 100 (position %d)", p)
	}
	appendEvents(t, l, 60, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 11, 0, 0, 0, time.UTC), want) // 105 of a.com
	last := l.LastIndex()
	waitFor(t, "threshold export", 30*time.Second, func() bool { return ts.Status().Destinations[0].Position == last })
	got, _ := readAll(t, fs, fileObjects(t, root))
	if len(got) != 105 {
		t.Fatalf("exported %d events, want the 105 of a.com", len(got))
	}
}

func TestRestartReexportsThePersistedRange(t *testing.T) {
	walDir, stateDir := t.TempDir(), t.TempDir()
	l := openTestWAL(t, walDir, 1<<20)
	want := map[uint64]event.Event{}
	appendEvents(t, l, 100, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	// A plan persisted by an earlier run that stopped before uploading.
	planned := &destState{Name: "export:acme:client", LastTick: time.Now(), Units: []*unit{
		{ID: unitID("node-1", 1, 60), First: 1, Last: 60, PlannedAt: time.Date(2025, 6, 22, 11, 0, 0, 0, time.UTC), Status: unitPending},
	}}
	if err := saveState(stateDir, planned); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	fs, _ := NewFileStore(root)
	ts := startShipper(t, Options{Log: l, StateDir: stateDir}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Prefix: "r", Formats: []export.Format{export.FormatNDJSON},
		Compression: export.CompressionNone, Schedule: realtimeSchedule{interval: 10 * time.Millisecond},
	}})
	last := l.LastIndex()
	waitFor(t, "caught up", 30*time.Second, func() bool { return ts.Status().Destinations[0].Position == last })
	ts.stop()
	l.Close()
	keys := fileObjects(t, root)
	wantKey := export.ObjectKey("r", "a.com", time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), "node-1", 1, 60, export.FormatNDJSON, export.CompressionNone)
	found := false
	for _, k := range keys {
		found = found || k == wantKey
	}
	if !found {
		t.Fatalf("persisted range 1-60 not exported under its key %s; keys %v", wantKey, keys)
	}
	got, _ := readAll(t, fs, keys)
	checkExportedOnce(t, got, want)
}

func TestATickWithNothingToExportPassesInsteadOfSpinning(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	clock := newFakeClock(time.Date(2025, 6, 22, 12, 0, 0, 0, time.UTC))
	fs, _ := NewFileStore(t.TempDir())
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Now: clock.now}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Formats: []export.Format{export.FormatJSON},
		Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly",
	}})
	time.Sleep(50 * time.Millisecond)
	clock.set(clock.now().Add(90 * time.Minute))
	ts.runners()[0].poke()
	want := clock.now().Add(time.Hour)
	waitFor(t, "next run moves past the tick", 10*time.Second, func() bool {
		n := ts.Status().Destinations[0].NextRun
		return n != nil && n.Equal(want)
	})
}
