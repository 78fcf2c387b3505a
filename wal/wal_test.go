package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/evothesis/collector/wal"
)

func openT(t *testing.T, opts wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func payload(i int) []byte { return []byte(fmt.Sprintf(`{"n":%d,"pad":"%0*d"}`, i, i%50, 0)) }

func appendN(t *testing.T, l *wal.Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := l.Append(context.Background(), [][]byte{payload(i)}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func readAll(t *testing.T, l *wal.Log, from uint64) []wal.Record {
	t.Helper()
	var out []wal.Record
	for {
		recs, err := l.Read(from, 1000, 0)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		from = recs[len(recs)-1].Index + 1
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	for _, mode := range []wal.SyncMode{wal.SyncAlways, wal.SyncInterval, wal.SyncNever} {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, wal.Options{Dir: dir, Sync: mode, SyncInterval: time.Millisecond, SegmentBytes: 4096})
			first, err := l.Append(context.Background(), [][]byte{payload(0), payload(1), payload(2)})
			if err != nil || first != 1 {
				t.Fatalf("first append = %d, %v", first, err)
			}
			appendN(t, l, 3, 200)
			if err := l.Wait(context.Background(), 203); err != nil {
				t.Fatal(err)
			}
			recs := readAll(t, l, 1)
			if len(recs) != 203 {
				t.Fatalf("read %d records, want 203", len(recs))
			}
			for i, r := range recs {
				if r.Index != uint64(i+1) || !bytes.Equal(r.Data, payload(i)) {
					t.Fatalf("record %d = %d %q", i, r.Index, r.Data)
				}
			}
			if len(l.Segments()) < 2 {
				t.Fatalf("expected several segments with 4 KiB segments, got %d", len(l.Segments()))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, wal.Options{Dir: dir, Sync: mode, SegmentBytes: 4096})
			defer l.Close()
			if l.LastIndex() != 203 {
				t.Fatalf("after reopen last index = %d, want 203", l.LastIndex())
			}
			next, err := l.Append(context.Background(), [][]byte{payload(203)})
			if err != nil || next != 204 {
				t.Fatalf("append after reopen = %d, %v; want 204", next, err)
			}
		})
	}
}

func TestConcurrentAppendsGetUniqueConsecutiveIndexes(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 64 << 10})
	defer l.Close()
	const writers, each = 32, 50
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf("w%d-%d", w, i)
				idx, err := l.Append(context.Background(), [][]byte{[]byte(p), []byte(p + "b")})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[idx], seen[idx+1] = p, p+"b"
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != writers*each*2 {
		t.Fatalf("%d distinct indexes, want %d", len(seen), writers*each*2)
	}
	for _, r := range readAll(t, l, 1) {
		if seen[r.Index] != string(r.Data) {
			t.Fatalf("index %d holds %q, acknowledged as %q", r.Index, r.Data, seen[r.Index])
		}
	}
}

func TestSegmentBoundariesMatchFiles(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir, SegmentBytes: 1500})
	for i := 0; i < 300; i += 7 {
		batch := make([][]byte, i%13+1)
		for j := range batch {
			batch[j] = payload(i + j)
		}
		if _, err := l.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	l.Close()
	info, err := wal.Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Segments) != len(segs) {
		t.Fatalf("log reports %d segments, directory has %d", len(segs), len(info.Segments))
	}
	for i := range segs {
		a, b := segs[i], info.Segments[i]
		if a.FirstIndex != b.FirstIndex || a.LastIndex != b.LastIndex || a.Bytes != b.Bytes || a.Sealed != b.Sealed {
			t.Fatalf("segment %d: log says %+v, directory says %+v", i, a, b)
		}
	}
}

func TestNoAcknowledgementBeforeFsync(t *testing.T) {
	release := make(chan struct{})
	var syncedMu sync.Mutex
	synced := false
	opts := wal.WithSyncFunc(wal.Options{Dir: t.TempDir()}, func(f *os.File) error {
		<-release
		err := f.Sync()
		syncedMu.Lock()
		synced = true
		syncedMu.Unlock()
		return err
	})
	l := openT(t, opts)
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), [][]byte{[]byte("x")})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Append returned (%v) while its fsync was still blocked", err)
	case <-time.After(100 * time.Millisecond):
	}
	if l.LastIndex() != 0 {
		t.Fatalf("record visible to readers before its fsync: last index %d", l.LastIndex())
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	syncedMu.Lock()
	defer syncedMu.Unlock()
	if !synced {
		t.Fatal("Append acknowledged before the fsync completed")
	}
}

func TestFailStopAfterFailedFsync(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	fail := true
	opts := wal.WithSyncFunc(wal.Options{Dir: dir}, func(f *os.File) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("injected EIO")
		}
		return f.Sync()
	})
	l := openT(t, opts)
	if _, err := l.Append(context.Background(), [][]byte{[]byte("a")}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append with failing fsync: %v, want ErrFailed", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if _, err := l.Append(context.Background(), [][]byte{[]byte("b")}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append after a failed fsync: %v, want ErrFailed until reopened", err)
	}
	if st := l.Stats(); st.Failed == "" {
		t.Fatal("stats do not report the failure")
	}
	if !errors.Is(l.Err(), wal.ErrFailed) {
		t.Fatalf("Err() = %v", l.Err())
	}
	l.Close()
	l = openT(t, wal.Options{Dir: dir})
	defer l.Close()
	if _, err := l.Append(context.Background(), [][]byte{[]byte("c")}); err != nil {
		t.Fatalf("append after reopen: %v", err)
	}
}

func TestTornTailIsCutAndQuarantined(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		{"partial last record", func(t *testing.T, path string, size int64) { os.Truncate(path, size-3) }},
		{"garbage appended", func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0x05, 'g', 'a', 'r', 'b', 'a'})
			f.Close()
		}},
		{"flipped byte in last record", func(t *testing.T, path string, size int64) {
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			f.WriteAt([]byte{'#'}, size-2)
			f.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, wal.Options{Dir: dir})
			appendN(t, l, 0, 10)
			l.Close()
			seg := filepath.Join(dir, "segments", "00000000000000000001")
			st, _ := os.Stat(seg)
			tc.damage(t, seg, st.Size())

			rep, err := wal.Verify(dir)
			if err != nil || rep.OK() || !rep.TornTail {
				t.Fatalf("verify before repair: %+v, %v", rep, err)
			}
			l = openT(t, wal.Options{Dir: dir})
			defer l.Close()
			recs := readAll(t, l, 1)
			want := 10
			if tc.name != "garbage appended" {
				want = 9
			}
			if len(recs) != want {
				t.Fatalf("after repair %d records, want %d", len(recs), want)
			}
			for i, r := range recs {
				if !bytes.Equal(r.Data, payload(i)) {
					t.Fatalf("record %d damaged by repair", i)
				}
			}
			q, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
			if len(q) != 1 {
				t.Fatalf("quarantine holds %d files, want 1", len(q))
			}
			idx, err := l.Append(context.Background(), [][]byte{[]byte("after")})
			if err != nil || idx != uint64(want+1) {
				t.Fatalf("append after repair = %d, %v; want %d", idx, err, want+1)
			}
		})
	}
}

func TestCorruptionInSealedSegmentRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir, SegmentBytes: 1024})
	appendN(t, l, 0, 100)
	l.Close()
	first := filepath.Join(dir, "segments", "00000000000000000001")
	f, _ := os.OpenFile(first, os.O_RDWR, 0)
	f.WriteAt([]byte{'#'}, 300)
	f.Close()

	_, err := wal.Open(context.Background(), wal.Options{Dir: dir, SegmentBytes: 1024})
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("open: %v, want *CorruptionError", err)
	}
	if ce.Segment != first || ce.Offset <= 0 || ce.Offset > 300 {
		t.Fatalf("corruption reported at %s:%d, want %s near offset 300", ce.Segment, ce.Offset, first)
	}
	rep, err := wal.Verify(dir)
	if err != nil || rep.OK() || rep.TornTail || rep.Problems[0].Segment != first {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

func TestMissingSegmentRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir, SegmentBytes: 512})
	appendN(t, l, 0, 100)
	segs := l.Segments()
	l.Close()
	os.Remove(segs[1].Path)
	if _, err := wal.Open(context.Background(), wal.Options{Dir: dir, SegmentBytes: 512}); !errors.As(err, new(*wal.CorruptionError)) {
		t.Fatalf("open with a missing middle segment: %v", err)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir})
	defer l.Close()
	if _, err := wal.Open(context.Background(), wal.Options{Dir: dir}); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTruncationNeverPassesAConsumer(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 512})
	defer l.Close()
	if _, err := l.RegisterConsumer("loader"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RegisterConsumer("export:acme:client"); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 300)
	if err := l.CommitConsumer("loader", 250); err != nil {
		t.Fatal(err)
	}
	if err := l.CommitConsumer("export:acme:client", 40); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "segments before index 40 to be removed", func() bool { return l.FirstIndex() > 1 })
	if l.FirstIndex() > 41 {
		t.Fatalf("first index %d passed the slowest consumer's position 40", l.FirstIndex())
	}
	if recs := readAll(t, l, 41); len(recs) != 260 {
		t.Fatalf("records after the slowest consumer: %d, want 260", len(recs))
	}
	if _, err := l.Read(1, 10, 0); !errors.Is(err, wal.ErrCompacted) {
		t.Fatalf("read of a removed index: %v, want ErrCompacted", err)
	}
	if err := l.CommitConsumer("export:acme:client", 300); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every segment before the loader's position removed", func() bool {
		segs := l.Segments()
		return len(segs) == 1 || segs[0].LastIndex > 250
	})
	if l.FirstIndex() > 251 {
		t.Fatalf("first index %d passed the loader's position 250", l.FirstIndex())
	}
}

func TestNoConsumersMeansNothingIsRemoved(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 512})
	defer l.Close()
	appendN(t, l, 0, 100)
	time.Sleep(1200 * time.Millisecond) // one maintenance tick
	if l.FirstIndex() != 1 {
		t.Fatalf("segments removed with no consumer registered: first index %d", l.FirstIndex())
	}
}

func TestRetentionKeepsConsumedSegments(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 512, Retention: time.Hour})
	defer l.Close()
	l.RegisterConsumer("loader")
	appendN(t, l, 0, 100)
	if err := l.CommitConsumer("loader", 100); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if l.FirstIndex() != 1 {
		t.Fatalf("retention ignored: first index %d", l.FirstIndex())
	}
}

func TestDiskGuardRefusesThenRecovers(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 1024, MaxBytes: 4096})
	defer l.Close()
	l.RegisterConsumer("loader")
	var n int
	var err error
	for n = 0; n < 1000; n++ {
		if _, err = l.Append(context.Background(), [][]byte{payload(n)}); err != nil {
			break
		}
	}
	if !errors.Is(err, wal.ErrFull) {
		t.Fatalf("append %d: %v, want ErrFull", n, err)
	}
	if st := l.Stats(); !st.Full || st.Bytes > 4096 {
		t.Fatalf("stats after full: %+v", st)
	}
	if err := l.CommitConsumer("loader", l.LastIndex()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "space to be freed", func() bool { return l.Err() == nil })
	if _, err := l.Append(context.Background(), [][]byte{payload(1)}); err != nil {
		t.Fatalf("append after space was freed: %v", err)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir()})
	defer l.Close()
	woke := make(chan error, 1)
	go func() { woke <- l.Wait(context.Background(), 1) }()
	time.Sleep(20 * time.Millisecond)
	appendN(t, l, 0, 1)
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the end: %v", err)
	}
}

func TestConsumerRegistrySurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir})
	l.RegisterConsumer("loader")
	appendN(t, l, 0, 5)
	if err := l.CommitConsumer("loader", 4); err != nil {
		t.Fatal(err)
	}
	l.ReportConsumerError("loader", errors.New("database down"))
	if err := l.CommitConsumer("nobody", 1); err == nil {
		t.Fatal("commit of an unregistered consumer succeeded")
	}
	if err := l.CommitConsumer("loader", 99); err == nil {
		t.Fatal("commit past the last index succeeded")
	}
	l.Close()
	cs, err := wal.ReadConsumers(dir)
	if err != nil || len(cs) != 1 || cs[0].Name != "loader" || cs[0].Position != 4 || cs[0].LastError != "database down" {
		t.Fatalf("offline registry: %+v, %v", cs, err)
	}
	l = openT(t, wal.Options{Dir: dir})
	defer l.Close()
	c, err := l.RegisterConsumer("loader")
	if err != nil || c.Position != 4 {
		t.Fatalf("re-register: %+v, %v", c, err)
	}
}

func TestScanReadsFromIndex(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, wal.Options{Dir: dir, SegmentBytes: 700})
	appendN(t, l, 0, 120)
	var got []uint64
	// Scan works while the log is open.
	err := wal.Scan(context.Background(), dir, 37, func(r wal.Record) error {
		if !bytes.Equal(r.Data, payload(int(r.Index-1))) {
			return fmt.Errorf("index %d holds %q", r.Index, r.Data)
		}
		got = append(got, r.Index)
		return nil
	})
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 84 || got[0] != 37 || got[83] != 120 || !sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }) {
		t.Fatalf("scan from 37 returned %d records (%v...)", len(got), got[:3])
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir()})
	l.Close()
	if _, err := l.Append(context.Background(), [][]byte{[]byte("x")}); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestConcurrentReadersOfDifferentSegments(t *testing.T) {
	l := openT(t, wal.Options{Dir: t.TempDir(), SegmentBytes: 2048, SegmentCacheSize: 1})
	defer l.Close()
	appendN(t, l, 0, 600)
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass < 3; pass++ {
				for from := uint64(1 + r*37); from <= 600; from += 150 {
					recs, err := l.Read(from, 20, 0)
					if err != nil {
						t.Error(err)
						return
					}
					for _, rec := range recs {
						if !bytes.Equal(rec.Data, payload(int(rec.Index-1))) {
							t.Errorf("index %d: wrong payload", rec.Index)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestNextGroupIsWrittenWhileAnFsyncRuns(t *testing.T) {
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	opts := wal.WithSyncFunc(wal.Options{Dir: t.TempDir()}, func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return f.Sync()
	})
	l := openT(t, opts)
	defer l.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before Close, which waits for the blocked fsync
	appendAsync := func(rec string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := l.Append(context.Background(), [][]byte{[]byte(rec)})
			done <- err
		}()
		return done
	}
	first := appendAsync("first")
	<-entered // the fsync of the first group is running (and blocked)
	tail := l.Segments()[0].Path
	before, err := os.Stat(tail)
	if err != nil {
		t.Fatal(err)
	}
	second := appendAsync("second")
	waitFor(t, "the second group written while the first fsync is blocked", func() bool {
		st, err := os.Stat(tail)
		return err == nil && st.Size() > before.Size()
	})
	select {
	case err := <-second:
		t.Fatalf("second Append returned (%v) before any fsync covering it", err)
	case err := <-first:
		t.Fatalf("first Append returned (%v) while its fsync was blocked", err)
	default:
	}
	unblock()
	for name, done := range map[string]chan error{"first": first, "second": second} {
		if err := <-done; err != nil {
			t.Fatalf("%s append: %v", name, err)
		}
	}
	if got := len(entered); got < 1 {
		t.Fatalf("the second group was acknowledged without an fsync of its own (%d more fsyncs)", got)
	}
}

// TestWritingASegmentAllocatesItsBytesOnce: the tail segment's in-memory
// buffer (kept by tidwall/wal) gets its capacity when the segment is created,
// so filling a segment allocates about its size once. Upstream tidwall grows
// it by append, about five times the segment's bytes (see
// third_party/tidwall-wal/PATCHED.md).
func TestWritingASegmentAllocatesItsBytesOnce(t *testing.T) {
	const segment = 4 << 20
	l := openT(t, wal.Options{Dir: t.TempDir(), Sync: wal.SyncNever, SegmentBytes: segment})
	defer l.Close()
	rec := bytes.Repeat([]byte("x"), 4000)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = rec
	}
	// Fill one segment first, so that the one measured starts at a rotation.
	write := func(n int) {
		for written := 0; written < n; written += len(batch) * len(rec) {
			if _, err := l.Append(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(segment + segment/4)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	write(3 * segment)
	runtime.ReadMemStats(&after)
	// Each record is copied by the framing and by tidwall's batch, both
	// reused buffers; what remains is the tail buffers of the three segments.
	allocated := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(3*segment) * 2; allocated > limit {
		t.Fatalf("writing 3 segments of %d bytes allocated %d bytes (limit %d): is the tail buffer regrown as it fills?", segment, allocated, limit)
	}
	t.Logf("writing 3 segments of %d bytes allocated %d bytes (%.2f per byte)", segment, allocated, float64(allocated)/(3*segment))
}
