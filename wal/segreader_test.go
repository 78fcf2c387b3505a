package wal_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/evothesis/collector/wal"
)

// appendBatches appends n records in batches of 100 (fast: one fsync each).
func appendBatches(t testing.TB, l *wal.Log, n int) {
	t.Helper()
	for i := 0; i < n; i += 100 {
		batch := make([][]byte, 0, 100)
		for j := i; j < i+100 && j < n; j++ {
			batch = append(batch, payload(j))
		}
		if _, err := l.Append(context.Background(), batch); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func TestReadAcrossSealedSegmentsInAnyChunking(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	defer l.Close()
	const n = 2000
	appendBatches(t, l, n)
	if segs := l.Segments(); len(segs) < 10 {
		t.Fatalf("want many sealed segments for this test, got %d", len(segs))
	}
	for _, chunk := range []int{1, 7, 64, 1000} {
		from := uint64(1)
		for from <= n {
			recs, err := l.Read(from, chunk, 0)
			if err != nil {
				t.Fatalf("chunk %d: read from %d: %v", chunk, from, err)
			}
			if len(recs) == 0 || len(recs) > chunk {
				t.Fatalf("chunk %d: read from %d gave %d records", chunk, from, len(recs))
			}
			for _, r := range recs {
				if r.Index != from || !bytes.Equal(r.Data, payload(int(from-1))) {
					t.Fatalf("chunk %d: record %d = %q, want index %d %q", chunk, r.Index, r.Data, from, payload(int(from-1)))
				}
				from++
			}
		}
	}
}

func TestReadersAtDifferentPositionsAndBackwardJumps(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 8192})
	defer l.Close()
	appendBatches(t, l, 3000)
	// Six interleaved readers (more than the cursor cache holds), each
	// jumping back now and then the way a retried batch does.
	pos := []uint64{1, 1, 500, 1200, 2999, 40}
	for round := 0; round < 200; round++ {
		for k := range pos {
			if pos[k] > 3000 {
				continue
			}
			if round%17 == k {
				pos[k] -= min(pos[k]-1, 33)
			}
			recs, err := l.Read(pos[k], 13, 0)
			if err != nil {
				t.Fatalf("reader %d at %d: %v", k, pos[k], err)
			}
			for _, r := range recs {
				if r.Index != pos[k] || !bytes.Equal(r.Data, payload(int(pos[k]-1))) {
					t.Fatalf("reader %d: got index %d %q, want %d", k, r.Index, r.Data, pos[k])
				}
				pos[k]++
			}
		}
	}
}

func TestReadKeepsRecordsValidAfterLaterReads(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	defer l.Close()
	appendBatches(t, l, 500)
	first, err := l.Read(1, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	for from := uint64(51); from <= 500; from += 50 {
		if _, err := l.Read(from, 50, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range first {
		if !bytes.Equal(r.Data, payload(int(r.Index-1))) {
			t.Fatalf("record %d changed after later reads: %q", r.Index, r.Data)
		}
	}
}

func TestReadOfSealedSegmentDoesNotLoadTheWholeSegment(t *testing.T) {
	const segBytes = 32 << 20
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: segBytes, MinFreeBytes: 1})
	defer l.Close()
	rec := bytes.Repeat([]byte("x"), 4000)
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = rec
	}
	for l.Segments()[0].Sealed == false {
		if _, err := l.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for from := uint64(1); from < 2000; from += 100 {
		recs, err := l.Read(from, 100, 1<<20)
		if err != nil || len(recs) != 100 {
			t.Fatalf("read %d: %d records, %v", from, len(recs), err)
		}
	}
	runtime.ReadMemStats(&after)
	// 20 reads of ~400 KB each, the read buffer and the copies: a few MiB.
	// Loading the segment, as tidwall/wal's Read does, is 32 MiB or more.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("reading 2000 records of a sealed %d MiB segment allocated %d MiB", segBytes>>20, got>>20)
	}
}

func TestReadReportsDamageInASealedSegment(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	defer l.Close()
	appendBatches(t, l, 300)
	seg := l.Segments()[1]
	data, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	off := len(data) / 2
	data[off] ^= 0xff
	if err := os.WriteFile(seg.Path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	var corrupt *wal.CorruptionError
	from := seg.FirstIndex
	for from <= seg.LastIndex {
		recs, err := l.Read(from, 10, 0)
		if err != nil {
			if !errors.As(err, &corrupt) {
				t.Fatalf("read from %d: %v, want a *CorruptionError", from, err)
			}
			break
		}
		from += uint64(len(recs))
	}
	if corrupt == nil {
		t.Fatal("a flipped byte in a sealed segment was read without error")
	}
	if corrupt.Segment != seg.Path || corrupt.Offset <= 0 || corrupt.Offset > int64(off) || corrupt.Index < seg.FirstIndex {
		t.Fatalf("corruption reported as %+v; flipped byte at offset %d of %s", corrupt, off, seg.Path)
	}
}

func TestReadOfRemovedSegmentIsCompacted(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	defer l.Close()
	appendBatches(t, l, 400)
	// A cursor is left open inside the first segment.
	if _, err := l.Read(1, 3, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RegisterConsumer("c"); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	if err := l.CommitConsumer("c", segs[len(segs)-2].LastIndex); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "segments removed", func() bool { return l.FirstIndex() > 4 })
	if _, err := l.Read(4, 3, 0); !errors.Is(err, wal.ErrCompacted) {
		t.Fatalf("read of a removed segment: %v, want ErrCompacted", err)
	}
}

func TestScanStopsAtDamageInASealedSegmentButNotAtATornTail(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir, SegmentBytes: 4096})
	appendBatches(t, l, 300)
	segs := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	scan := func() (int, error) {
		n := 0
		err := wal.Scan(context.Background(), dir, 1, func(wal.Record) error { n++; return nil })
		return n, err
	}
	// A torn last entry of the last segment is where a live writer is.
	tail := segs[len(segs)-1].Path
	if err := appendBytes(tail, []byte{0x40, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if n, err := scan(); err != nil || n != 300 {
		t.Fatalf("scan with a torn tail: %d records, %v; want 300, nil", n, err)
	}
	data, err := os.ReadFile(segs[1].Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(segs[1].Path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	var corrupt *wal.CorruptionError
	if _, err := scan(); !errors.As(err, &corrupt) || corrupt.Segment != segs[1].Path {
		t.Fatalf("scan over a damaged sealed segment: %v, want a *CorruptionError naming %s", err, segs[1].Path)
	}
}

func appendBytes(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func TestScanRangeVisitsEveryRecordOnceAcrossSegmentsAndTail(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	defer l.Close()
	appendBatches(t, l, 1500)
	for _, r := range []struct{ from, to uint64 }{{1, 1500}, {1, 1}, {37, 900}, {1400, 1500}, {1500, 1500}} {
		next := r.from
		err := l.ScanRange(context.Background(), r.from, r.to, func(rec wal.Record) error {
			if rec.Index != next || !bytes.Equal(rec.Data, payload(int(rec.Index-1))) {
				t.Fatalf("scan %d-%d: got %d %q, want index %d", r.from, r.to, rec.Index, rec.Data, next)
			}
			next++
			return nil
		})
		if err != nil || next != r.to+1 {
			t.Fatalf("scan %d-%d: stopped before %d: %v", r.from, r.to, next, err)
		}
	}
	if err := l.ScanRange(context.Background(), 1, 1501, func(wal.Record) error { return nil }); err == nil {
		t.Fatal("a scan past the last durable index did not fail")
	}
	stop := errors.New("stop")
	n := 0
	if err := l.ScanRange(context.Background(), 1, 1500, func(wal.Record) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 10 {
		t.Fatalf("fn's error: got %v after %d records", err, n)
	}
	// The cursor left behind by the stopped scan serves the next read.
	recs, err := l.Read(11, 5, 0)
	if err != nil || len(recs) != 5 || recs[0].Index != 11 || !bytes.Equal(recs[0].Data, payload(10)) {
		t.Fatalf("read after a stopped scan: %v %v", recs, err)
	}
}
