package shipper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
)

// scanCounter counts the reads of a unit (ScanRange calls).
type scanCounter struct {
	recordReader
	scans atomic.Int32
}

func (c *scanCounter) ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error {
	c.scans.Add(1)
	return c.recordReader.ScanRange(ctx, from, to, fn)
}

// manySitesWAL holds one unit with a big site (more than smallGroupBytes of
// records in each hour) and 20 small ones, over two receive hours.
func manySitesWAL(t *testing.T) (*wal.Log, map[uint64]event.Event) {
	l := openTestWAL(t, t.TempDir(), 64<<20)
	t.Cleanup(func() { l.Close() })
	want := map[uint64]event.Event{}
	base := time.Date(2025, 6, 22, 10, 58, 0, 0, time.UTC)
	appendEventsStep(t, l, 6000, []string{"big.example.com"}, base, 40*time.Millisecond, want)
	var small []string
	for i := 0; i < 20; i++ {
		small = append(small, fmt.Sprintf("site-%02d.example.org", i))
	}
	appendEventsStep(t, l, 600, small, base, 400*time.Millisecond, want)
	return l, want
}

func testUnitJob(st Store, u *unit, formats []export.Format, c export.Compression) *unitJob {
	d := &Destination{Client: "acme", Kind: KindClient, Store: st, Prefix: "p", Formats: formats, Compression: c,
		Claims: func(string) bool { return true }}
	return &unitJob{dest: d, u: u, prefix: "p", node: "node-1", filter: func(string, time.Time) bool { return true },
		exportID: "exp_" + u.ID, formats: formats, comp: c, sem: newUploadSlots(2), metrics: newMetrics(nil)}
}

// TestSmallWavesWriteTheStreamedBytes exports one unit of many sites with
// small waves and with every object streamed: the objects and the manifest
// are the same bytes, and the small groups cost one read of the unit
// instead of one per wave.
func TestSmallWavesWriteTheStreamedBytes(t *testing.T) {
	l, want := manySitesWAL(t)
	u := &unit{ID: unitID("node-1", l.FirstIndex(), l.LastIndex()), First: l.FirstIndex(), Last: l.LastIndex(),
		PlannedAt: time.Date(2025, 6, 22, 12, 0, 0, 0, time.UTC)}
	defer func(v int64) { smallGroupBytes = v }(smallGroupBytes)
	for _, tc := range []struct {
		formats []export.Format
		c       export.Compression
	}{
		{[]export.Format{export.FormatNDJSON}, export.CompressionZstd},
		{[]export.Format{export.FormatNDJSON}, export.CompressionGzip},
		{[]export.Format{export.FormatJSON}, export.CompressionZstd},
		{[]export.Format{export.FormatCSV}, export.CompressionNone},
		{[]export.Format{export.FormatParquet}, export.CompressionZstd},
		{[]export.Format{export.FormatParquet}, export.CompressionSnappy},
		{[]export.Format{export.FormatJSON, export.FormatParquet}, export.CompressionGzip},
	} {
		name := fmt.Sprint(tc.formats, "+", tc.c)
		t.Run(name, func(t *testing.T) {
			run := func(small int64) (string, int32) {
				smallGroupBytes = small
				root := t.TempDir()
				st, err := NewFileStore(root)
				if err != nil {
					t.Fatal(err)
				}
				log := &scanCounter{recordReader: l}
				res, err := testUnitJob(st, u, tc.formats, tc.c).run(context.Background(), log)
				if err != nil {
					t.Fatal(err)
				}
				if res.events != len(want) {
					t.Fatalf("%d events exported, want %d", res.events, len(want))
				}
				return root, log.scans.Load()
			}
			smallRoot, smallScans := run(1 << 20)
			streamRoot, streamScans := run(-1)
			keys := fileObjects(t, smallRoot)
			if got := fileObjects(t, streamRoot); strings.Join(got, "\n") != strings.Join(keys, "\n") {
				t.Fatalf("small waves wrote %d keys, streaming %d", len(keys), len(got))
			}
			for _, k := range keys {
				a, _ := os.ReadFile(filepath.Join(smallRoot, k))
				b, _ := os.ReadFile(filepath.Join(streamRoot, k))
				if !bytes.Equal(a, b) {
					t.Errorf("%s: %d bytes from a small wave, %d streamed", k, len(a), len(b))
				}
			}
			// 2 hours × 21 sites, one object per format each.
			if objects := len(keys) - 1; objects != 42*len(tc.formats) {
				t.Fatalf("%d objects", objects)
			}
			// Pass 1, one small wave, and the big site's two groups (one
			// per hour) two formats a wave. Streamed: one read per wave.
			if want := int32(1 + 1 + (2*len(tc.formats)+1)/2); smallScans != want {
				t.Errorf("small waves read the unit %d times, want %d", smallScans, want)
			}
			if want := int32(1 + (42*len(tc.formats)+1)/2); streamScans != want {
				t.Errorf("streaming read the unit %d times, want %d", streamScans, want)
			}
		})
	}
}

func TestSmallWaveLenPacksGroupsUpToTheBudget(t *testing.T) {
	g := func(bytes int64) *group { return &group{bytes: bytes} }
	a, b, c, d := g(2<<20), g(2<<20), g(1<<20), g(smallWaveBytes)
	for _, tc := range []struct {
		name  string
		specs []objectSpec
		want  int
	}{
		{"empty", nil, 0},
		{"one group, three formats", []objectSpec{{g: a}, {g: a}, {g: a}}, 3},
		{"groups up to the budget", []objectSpec{{g: a}, {g: b}, {g: c}, {g: d}}, 3},
		{"formats of a group stay together", []objectSpec{{g: a}, {g: a}, {g: b}, {g: b}, {g: c}, {g: c}, {g: d}}, 6},
		{"a group as big as the budget alone", []objectSpec{{g: d}, {g: a}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := smallWaveLen(tc.specs); got != tc.want {
				t.Fatalf("smallWaveLen = %d, want %d", got, tc.want)
			}
		})
	}
}

// failingReader fails the unit's second read (pass 2).
type failingReader struct {
	recordReader
	scans atomic.Int32
}

func (f *failingReader) ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error {
	if f.scans.Add(1) == 2 {
		return fmt.Errorf("disk on fire")
	}
	return f.recordReader.ScanRange(ctx, from, to, fn)
}

// TestSmallWaveErrorsLeaveNothingRunning: a failed read or a store that
// refuses the objects fails the unit, with every upload ended and nothing
// left claimed in the spool.
func TestSmallWaveErrorsLeaveNothingRunning(t *testing.T) {
	l, _ := manySitesWAL(t)
	u := &unit{ID: unitID("node-1", l.FirstIndex(), l.LastIndex()), First: l.FirstIndex(), Last: l.LastIndex(), PlannedAt: time.Now().UTC()}
	for _, tc := range []struct {
		name  string
		log   recordReader
		store func(Store) Store
		want  string
	}{
		{"read fails", &failingReader{recordReader: l}, func(s Store) Store { return s }, "disk on fire"},
		{"uploads fail", l, func(s Store) Store { return &refusingStore{Store: s} }, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := NewFileStore(t.TempDir())
			sp, err := openSpool(t.TempDir(), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			j := testUnitJob(tc.store(fs), u, []export.Format{export.FormatNDJSON}, export.CompressionZstd)
			j.share = &sharing{spool: sp, self: "a", others: func(export.Format, export.Compression, string) []string { return []string{"b"} }}
			_, err = j.run(context.Background(), tc.log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want %q", err, tc.want)
			}
			if n := len(j.sem.ch); n != 0 {
				t.Fatalf("%d upload slots still taken after the failure", n)
			}
			sp.mu.Lock()
			defer sp.mu.Unlock()
			for _, e := range sp.entries {
				select {
				case <-e.done:
				default:
					t.Fatalf("spool entry %s still claimed", e.sig)
				}
			}
		})
	}
}

type refusingStore struct{ Store }

func (r *refusingStore) Put(ctx context.Context, in PutInput) (PutResult, error) {
	return PutResult{}, fmt.Errorf("put %s: refused", in.Key)
}
