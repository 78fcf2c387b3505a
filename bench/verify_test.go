package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadInto runs a count-bounded closed loop into the fake and returns the record.
func loadInto(t *testing.T, f *fakeCollector, requests int64) *Record {
	t.Helper()
	srv := startFake(t, f)
	path := filepath.Join(t.TempDir(), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(path, run, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), LoadOptions{Target: srv.URL(), Connections: 4, MaxRequests: requests, Record: rec,
		Traffic: TrafficOptions{RunID: run, BatchSize: 4, Mix: Mix{KindJSON: 5, KindBeacon: 2, KindBatch: 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRecordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestVerifyFindsEventsLostBehindASuccessAnswer(t *testing.T) {
	f := &fakeCollector{loseEvery: 10}
	rec := loadInto(t, f, 100)
	rep, err := Verify(context.Background(), rec, f.source(), VerifyOptions{ListLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := len(rec.Events) / 10
	if rep.OK || rep.Missing != want || rep.Duplicated != 0 || len(rep.MissingList) != 3 {
		t.Fatalf("want %d missing listed 3, got %+v", want, rep)
	}
	if rep.Matched != len(rec.Events)-want {
		t.Fatalf("matched %d of %d", rep.Matched, len(rec.Events))
	}
}

func TestVerifyFindsDuplicates(t *testing.T) {
	f := &fakeCollector{dupEvery: 7}
	rec := loadInto(t, f, 100)
	rep, err := Verify(context.Background(), rec, f.source(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(rec.Events) / 7; rep.OK || rep.Duplicated != want || rep.Missing != 0 || len(rep.DupList) == 0 {
		t.Fatalf("want %d duplicated, got %+v", want, rep)
	}
}

// A duplicate of one client send under a fresh event_id (a replayed request)
// is a duplicate too; an event stored under an id other than the one
// acknowledged is a mismatch; an unacknowledged stored event is extra.
func TestVerifyClassifiesByBenchIDAndEventID(t *testing.T) {
	rec := &Record{Runs: []string{"r"}, Events: []RecordedEvent{
		{BenchID: "r-1", EventID: "e1", Kind: KindJSON},
		{BenchID: "r-2", EventID: "e2", Kind: KindJSON},
		{BenchID: "r-3", EventID: "e3", Kind: KindBatch},
		{BenchID: "r-4", Kind: KindPixel},
		{BenchID: "r-5", Kind: KindPixel},
		{BenchID: "r-6", EventID: "e6", Kind: KindJSON},
	}}
	stored := []StoredEvent{
		{EventID: "e1", BenchID: "r-1"},
		{EventID: "e2", BenchID: "r-2"}, {EventID: "e2b", BenchID: "r-2"}, // same send, stored twice
		{EventID: "eX", BenchID: "r-3"},  // wrong id
		{EventID: "p4", BenchID: "r-4"},  // pixel arrived
		{EventID: "e9", BenchID: "r-9"},  // never acknowledged
		{EventID: "e6"}, {EventID: "e6"}, // same row twice, raw without bench id
	}
	rep, err := Verify(context.Background(), rec, sliceSource(stored), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 3 || rep.Duplicated != 2 || rep.Mismatched != 1 || rep.Extra != 1 || rep.Missing != 0 || rep.MissingPixels != 1 || rep.OK {
		t.Fatalf("%+v", rep)
	}
	if !strings.Contains(strings.Join(rep.ExtraList, ","), "r-9") {
		t.Fatalf("extra list %v", rep.ExtraList)
	}
	strict, _ := Verify(context.Background(), rec, sliceSource(stored[:1]), VerifyOptions{StrictPixels: true})
	if strict.MissingPixels != 2 || strict.OK {
		t.Fatalf("strict pixels: %+v", strict)
	}
	var out bytes.Buffer
	WriteVerifyReport(&out, rep)
	for _, want := range []string{"FAILED", "duplicated 2", "mismatched 1", "r-2 stored 2 times"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

type sliceSource []StoredEvent

func (s sliceSource) Name() string { return "slice" }
func (s sliceSource) Events(_ context.Context, _ []string, fn func(StoredEvent) error) error {
	for _, e := range s {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// growingSource stores more on every read: what a loader catching up looks like.
type growingSource struct {
	all   []StoredEvent
	reads int
}

func (g *growingSource) Name() string { return "growing" }
func (g *growingSource) Events(_ context.Context, _ []string, fn func(StoredEvent) error) error {
	g.reads++
	n := min(len(g.all), g.reads)
	for _, e := range g.all[:n] {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifyWaitsWhileEventsArriveAndStopsWhenComplete(t *testing.T) {
	rec := &Record{Runs: []string{"r"}, Events: []RecordedEvent{{BenchID: "r-1", EventID: "a"}, {BenchID: "r-2", EventID: "b"}, {BenchID: "r-3", EventID: "c"}}}
	src := &growingSource{all: []StoredEvent{{EventID: "a", BenchID: "r-1"}, {EventID: "b", BenchID: "r-2"}, {EventID: "c", BenchID: "r-3"}}}
	rep, err := Verify(context.Background(), rec, src, VerifyOptions{Wait: 10e9, Poll: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Checks != 3 {
		t.Fatalf("%+v", rep)
	}
}

func TestRecordRoundTripAcrossTwoRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	for _, run := range []string{"ra", "rb"} {
		r, err := CreateRecord(path, run, "http://127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		b := r.Buffer()
		b.Add(KindBatch, 10, [][]byte{[]byte("id-10"), nil, []byte("id-12")}, 2)
		b.Add(KindPixel, 20, [][]byte{nil}, 1)
		b.Add(KindPixel, 21, [][]byte{nil}, 0) // refused pixel: not recorded
		b.Flush()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := ReadRecordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []RecordedEvent{{"ra-10", "id-10", KindBatch}, {"ra-12", "id-12", KindBatch}, {"ra-20", "", KindPixel},
		{"rb-10", "id-10", KindBatch}, {"rb-12", "id-12", KindBatch}, {"rb-20", "", KindPixel}}
	if len(rec.Runs) != 2 || len(rec.Events) != len(want) {
		t.Fatalf("runs %v events %v", rec.Runs, rec.Events)
	}
	for i := range want {
		if rec.Events[i] != want[i] {
			t.Fatalf("event %d: %+v want %+v", i, rec.Events[i], want[i])
		}
	}
}

func TestReadRecordRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "1\tx\tjson\n", "# something else\n", recordMagic + " run=r\n1\tx\n", recordMagic + " run=r\nx\ty\tjson\n", recordMagic + " run=r\n1\t-\tjson\n", recordMagic + " run=r\n1\tid\tvideo\n"} {
		if _, err := ReadRecord(strings.NewReader(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestVerifyStopsWaitingWhenNothingArrives(t *testing.T) {
	rec := &Record{Runs: []string{"r"}, Events: []RecordedEvent{{BenchID: "r-1", EventID: "a"}, {BenchID: "r-2", EventID: "b"}}}
	src := sliceSource{{EventID: "a", BenchID: "r-1"}}
	rep, err := Verify(context.Background(), rec, src, VerifyOptions{Wait: time.Minute, Poll: 20 * time.Millisecond, Stall: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A one-minute wait at 20 ms polls would be ~3000 checks; the stall ends it after ~5.
	if rep.OK || rep.Missing != 1 || rep.Checks > 50 {
		t.Fatalf("%+v", rep)
	}
}
