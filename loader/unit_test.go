package loader

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

func TestAppendSanitizedJSON(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"clean stays identical", `{"a":"b","n":1.5e3,"x":[true,null]}`, `{"a":"b","n":1.5e3,"x":[true,null]}`},
		{"unicode stays", `{"a":"café 日本 😀"}`, `{"a":"café 日本 😀"}`},
		{"NUL escape dropped", `{"a":"x\u0000y"}`, `{"a":"xy"}`},
		{"escaped backslash before u0000 is text", `{"a":"\\u0000"}`, `{"a":"\\u0000"}`},
		{"three backslashes", `{"a":"\\\u0000"}`, `{"a":"\\"}`},
		{"lone high surrogate", `{"a":"\ud800x"}`, `{"a":"\ufffdx"}`},
		{"lone low surrogate", `{"a":"\udc00"}`, `{"a":"\ufffd"}`},
		{"high then non-low", `{"a":"\ud800\u0041"}`, `{"a":"\ufffd\u0041"}`},
		{"valid pair kept", `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`},
		{"invalid UTF-8 replaced", "{\"a\":\"x\xffy\"}", "{\"a\":\"x\uFFFDy\"}"},
		{"NUL byte dropped", "{\"a\":\"x\x00y\"}", `{"a":"xy"}`},
		{"other escapes kept", `{"a":"\n\t\"\/\u00e9"}`, `{"a":"\n\t\"\/\u00e9"}`},
		{"NUL in key", `{"k\u0000":1}`, `{"k":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(appendSanitizedJSON(nil, []byte(c.in)))
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

// FuzzAppendSanitizedJSON: valid JSON stays valid JSON that jsonb accepts
// (valid UTF-8, no \u0000, no unpaired surrogate escapes), and JSON that
// needs nothing is passed through byte for byte.
func FuzzAppendSanitizedJSON(f *testing.F) {
	for _, s := range []string{`{"a":"\u0000"}`, `{"a":"\\u0000"}`, `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, "{\"a\":\"\xff\"}", `{}`, `{"a":[1,2,{"b":"c"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := appendSanitizedJSON(nil, in)
		if !needsJSONSanitizing(in) && !bytes.Equal(out, in) {
			t.Fatalf("clean input changed: %q -> %q", in, out)
		}
		if !json.Valid(in) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("valid JSON became invalid: %q -> %q", in, out)
		}
		if !utf8.Valid(out) || needsJSONSanitizing(out) {
			t.Fatalf("output still needs sanitizing: %q -> %q", in, out)
		}
	})
}

func TestParseUUID(t *testing.T) {
	var id [16]byte
	if !parseUUID("0190C1C2-7a9b-7cde-8f00-0123456789ab", &id) || id[0] != 0x01 || id[1] != 0x90 || id[15] != 0xab {
		t.Fatalf("parse: %x", id)
	}
	for _, bad := range []string{"", "0190c1c2-7a9b-7cde-8f00-0123456789a", "0190c1c2x7a9b-7cde-8f00-0123456789ab", "0190c1c2-7a9b-7cde-8f00-0123456789ag"} {
		if parseUUID(bad, &id) {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestPgMicros(t *testing.T) {
	if m, ok := pgMicros(time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC)); !ok || m != 1 {
		t.Fatalf("epoch+1µs = %d, %v", m, ok)
	}
	if _, ok := pgMicros(time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Fatal("year 300000 accepted")
	}
	if _, ok := pgMicros(time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Fatal("5001 BC accepted")
	}
}

// TestAppendRowLayout decodes the tuple back field by field.
func TestAppendRowLayout(t *testing.T) {
	e := testEvent("node-a", 1)
	e.Referrer = ""
	row, err := appendRow(nil, 42, "node-a", &e)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint16(row); int(n) != len(copyColumns) {
		t.Fatalf("field count %d", n)
	}
	fields := map[string][]byte{}
	p := row[2:]
	for _, col := range copyColumns {
		n := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if n < 0 {
			fields[col] = nil
			continue
		}
		fields[col], p = p[:n], p[n:]
	}
	if len(p) != 0 {
		t.Fatalf("%d trailing bytes", len(p))
	}
	if binary.BigEndian.Uint64(fields["id"]) != 42 || string(fields["node_id"]) != "node-a" || string(fields["site_id"]) != e.SiteID {
		t.Fatalf("fields %q", fields)
	}
	if fields["referrer"] != nil {
		t.Fatal("empty referrer is not NULL")
	}
	if fields["raw_event_data"][0] != 1 || string(fields["raw_event_data"][1:]) != string(e.Raw) {
		t.Fatalf("jsonb field %q", fields["raw_event_data"])
	}
	recv := int64(binary.BigEndian.Uint64(fields["received_at"]))
	if got := time.UnixMicro(recv + pgEpochMicros).UTC(); !got.Equal(e.ReceivedAt) {
		t.Fatalf("received_at %s, want %s", got, e.ReceivedAt)
	}
	e.EventID = "nope"
	if out, err := appendRow(row, 1, "n", &e); !errors.Is(err, errUnencodable) || len(out) != len(row) {
		t.Fatalf("bad uuid: %v, %d bytes appended", err, len(out)-len(row))
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		kind errorKind
		conn bool
	}{
		{&pgconn.PgError{Code: "22003"}, kindData, false},
		{&pgconn.PgError{Code: "22P02"}, kindData, false},
		{&pgconn.PgError{Code: "23514", Message: `new row for relation "events" violates check constraint "x"`}, kindData, false},
		{&pgconn.PgError{Code: "23514", Message: `no partition of relation "events" found for row`}, kindNoPartition, false},
		{&pgconn.PgError{Code: "23505"}, kindDuplicate, false},
		{&pgconn.PgError{Code: "54000"}, kindData, false},
		{&pgconn.PgError{Code: "57P01"}, kindTransient, true},
		{&pgconn.PgError{Code: "08006"}, kindTransient, true},
		{&pgconn.PgError{Code: "53300"}, kindTransient, true},
		{&pgconn.PgError{Code: "42P01"}, kindTransient, false}, // missing table: not the rows' fault
		{&pgconn.PgError{Code: "40P01"}, kindTransient, false},
		{fmt.Errorf("copy: %w", &pgconn.PgError{Code: "22021"}), kindData, false},
		{errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"), kindTransient, true},
		{context.DeadlineExceeded, kindTransient, true},
	}
	for _, c := range cases {
		if k := classify(c.err); k != c.kind {
			t.Errorf("classify(%v) = %d, want %d", c.err, k, c.kind)
		}
		if got := isConnectionError(c.err); got != c.conn {
			t.Errorf("isConnectionError(%v) = %v, want %v", c.err, got, c.conn)
		}
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
	prevCeil := time.Duration(0)
	seen := map[time.Duration]bool{}
	for i := range 40 {
		d := b.next()
		ceil := b.min << min(i, 30)
		if ceil <= 0 || ceil > b.max {
			ceil = b.max
		}
		if d < ceil/2 || d > ceil {
			t.Fatalf("attempt %d: %s outside [%s, %s]", i, d, ceil/2, ceil)
		}
		if ceil < prevCeil {
			t.Fatalf("ceiling shrank")
		}
		prevCeil = ceil
		seen[d] = true
	}
	if len(seen) < 20 {
		t.Fatalf("only %d distinct delays in 40: no jitter", len(seen))
	}
	b.reset()
	if d := b.next(); d > b.min {
		t.Fatalf("after reset: %s", d)
	}
}

// fakeSource is an in-memory Source for unit tests of the batch reader.
type fakeSource struct {
	mu      sync.Mutex
	recs    [][]byte
	changed chan struct{}
	noted   []uint64 // CommitConsumer positions
	noteErr error    // CommitConsumer's answer
}

func newFakeSource() *fakeSource { return &fakeSource{changed: make(chan struct{})} }

func (f *fakeSource) append(recs ...[]byte) {
	f.mu.Lock()
	f.recs = append(f.recs, recs...)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeSource) Read(from uint64, max, maxBytes int) ([]wal.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wal.Record
	size := 0
	for i := from; i <= uint64(len(f.recs)) && len(out) < max && (maxBytes <= 0 || size < maxBytes); i++ {
		out = append(out, wal.Record{Index: i, Data: f.recs[i-1]})
		size += len(f.recs[i-1])
	}
	return out, nil
}

func (f *fakeSource) Wait(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		ok, ch := uint64(len(f.recs)) >= index, f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (f *fakeSource) FirstIndex() uint64 { return 1 }
func (f *fakeSource) LastIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.recs))
}
func (f *fakeSource) RegisterConsumer(name string) (wal.ConsumerState, error) {
	return wal.ConsumerState{Name: name}, nil
}
func (f *fakeSource) CommitConsumer(_ string, pos uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noted = append(f.noted, pos)
	return f.noteErr
}

func (f *fakeSource) ReportConsumerError(string, error) {}

// appendN appends testEvent records from..from+n-1.
func (f *fakeSource) appendN(from, n int) {
	var recs [][]byte
	for i := from; i < from+n; i++ {
		e := testEvent("n", i)
		recs = append(recs, event.AppendRecord(nil, &e))
	}
	f.append(recs...)
}

// startReader runs readBatches of src from index 1 into a handoff; the test
// plays the writer.
func startReader(t *testing.T, src *fakeSource, opts Options) (*Loader, *handoff) {
	t.Helper()
	l := &Loader{src: src, opts: opts, free: make(chan *batch, 1)}
	l.opts.defaults()
	h := newHandoff(l.opts.MaxBatchesPerCommit - 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.readBatches(ctx, 1, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("reader ended with %v", err)
		}
	})
	return l, h
}

// takeOne waits (at most 5 s) for the reader to publish and takes the oldest
// batch alone.
func takeOne(t *testing.T, h *handoff) *batch {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if got := h.take(nil, 1, 1); len(got) > 0 {
			return got[0]
		}
		select {
		case <-h.wake:
		case <-deadline:
			t.Fatal("no batch published within 5s")
		}
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
	}
}

func readyCount(h *handoff) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ready)
}

func TestReaderPublishesPartialBatchOnceCaughtUpWithoutWaitingForInterval(t *testing.T) {
	src := newFakeSource()
	// An interval no test waits out: only "caught up" can publish the rest.
	_, h := startReader(t, src, Options{NodeID: "n", BatchEvents: 100, FlushInterval: time.Hour})
	src.appendN(0, 250) // a backlog: two full batches, then 50 the WAL has no successor for
	for i, want := range []struct{ first, last uint64 }{{1, 100}, {101, 200}, {201, 250}} {
		b := takeOne(t, h)
		if b.first != want.first || b.last != want.last || len(b.rows) != int(want.last-want.first+1) {
			t.Fatalf("batch %d = %d-%d (%d rows), want %d-%d", i, b.first, b.last, len(b.rows), want.first, want.last)
		}
	}
	// Undecodable records are part of the batch, as rejections.
	src.append([]byte("junk"))
	if b := takeOne(t, h); b.first != 251 || b.last != 251 || len(b.rejects) != 1 || b.rejects[0].stage != stageDecode {
		t.Fatalf("junk batch %+v", b)
	}
}

func TestReaderGathersRecordsIntoOneBatchWhileWriterIsBusy(t *testing.T) {
	src := newFakeSource()
	_, h := startReader(t, src, Options{NodeID: "n", BatchEvents: 100, FlushInterval: time.Hour})
	// Nobody takes: the writer is busy. A trickle joins the batch the
	// reader published and took back, rather than making five.
	for i := range 5 {
		src.appendN(i, 1)
		eventually(t, fmt.Sprintf("record %d published", i+1), func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return len(h.ready) > 0 && h.ready[len(h.ready)-1].last == uint64(i+1)
		})
	}
	got := h.take(nil, 1000, 1<<30)
	if len(got) != 1 || got[0].first != 1 || got[0].last != 5 || len(got[0].rows) != 5 {
		t.Fatalf("took %d batches, first %+v; want one batch 1-5", len(got), got[0])
	}
}

func TestReaderStartsNewBatchAfterFlushInterval(t *testing.T) {
	src := newFakeSource()
	_, h := startReader(t, src, Options{NodeID: "n", BatchEvents: 100, FlushInterval: 20 * time.Millisecond})
	src.appendN(0, 1)
	eventually(t, "first record published", func() bool { return readyCount(h) == 1 })
	time.Sleep(40 * time.Millisecond)
	src.appendN(1, 1)
	eventually(t, "second batch published", func() bool { return readyCount(h) == 2 })
	got := h.take(nil, 1000, 1<<30)
	if len(got) != 2 || got[0].last != 1 || got[1].first != 2 {
		t.Fatalf("took %d batches; want 1-1 and 2-2", len(got))
	}
}

func TestReaderStopsAtMaxReadyFullBatchesUntilWriterTakes(t *testing.T) {
	src := newFakeSource()
	// Room for two full batches waiting (MaxBatchesPerCommit-1).
	_, h := startReader(t, src, Options{NodeID: "n", BatchEvents: 10, MaxBatchesPerCommit: 3, FlushInterval: time.Hour})
	src.appendN(0, 100)
	eventually(t, "two full batches published", func() bool { return readyCount(h) == 2 })
	time.Sleep(20 * time.Millisecond)
	if n := readyCount(h); n != 2 {
		t.Fatalf("%d batches waiting, want the reader held at 2", n)
	}
	got := h.take(nil, 20, 1<<30) // two full batches fit in one take
	if len(got) != 2 || got[0].first != 1 || got[1].last != 20 {
		t.Fatalf("took %d batches; want 1-10 and 11-20", len(got))
	}
	eventually(t, "reader resumed after the take", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.ready) == 2 && h.ready[0].first == 21 && h.ready[1].last == 40
	})
}

func TestBatchTuplesFrameSubranges(t *testing.T) {
	src := newFakeSource()
	src.appendN(0, 5)
	recs, _ := src.Read(1, 5, 0)
	b := &batch{}
	var dec event.Decoder
	for _, r := range recs {
		b.add(&dec, r, "n")
	}
	var all bytes.Buffer
	_, _ = all.ReadFrom(b.tuples(0, 5))
	var parts bytes.Buffer
	for i := range 5 {
		var one bytes.Buffer
		_, _ = one.ReadFrom(b.tuples(i, i+1))
		body := one.Bytes()[len(copyHeader) : one.Len()-len(copyTrailer)]
		parts.Write(body)
	}
	if !bytes.Equal(all.Bytes()[len(copyHeader):all.Len()-len(copyTrailer)], parts.Bytes()) {
		t.Fatal("sub-range tuples do not add up to the batch")
	}
	if !strings.HasPrefix(all.String(), "PGCOPY\n\xff\r\n\x00") {
		t.Fatal("no COPY signature")
	}
}

func TestReaderHoldsAtMaxReadyWhenIntervalClosesPartialBatches(t *testing.T) {
	src := newFakeSource()
	// The writer is stuck (a database outage with traffic going on): every
	// FlushInterval closes a partial batch, and none may pile up past the
	// limit; the records wait in the WAL.
	_, h := startReader(t, src, Options{NodeID: "n", BatchEvents: 100, MaxBatchesPerCommit: 3, FlushInterval: 5 * time.Millisecond})
	for i := range 20 {
		src.appendN(i, 1)
		time.Sleep(10 * time.Millisecond)
	}
	if n := readyCount(h); n != 2 {
		t.Fatalf("%d batches waiting after 20 intervals with a stuck writer, want the limit of 2", n)
	}
}

func TestTakeAndMergeCoalesceReadyBatches(t *testing.T) {
	src := newFakeSource()
	src.appendN(0, 10)
	src.append([]byte("junk"))
	src.appendN(11, 9)
	l := &Loader{src: src, opts: Options{NodeID: "n", BatchEvents: 5, MaxBatchesPerCommit: 3}}
	l.opts.defaults()
	l.free = make(chan *batch, 5)
	var dec event.Decoder
	mk := func(from, to uint64) *batch {
		b := &batch{}
		recs, _ := src.Read(from, int(to-from+1), 0)
		for _, r := range recs {
			b.add(&dec, r, "n")
		}
		return b
	}
	h := newHandoff(10)
	for _, r := range [][2]uint64{{1, 5}, {6, 10}, {11, 15}, {16, 20}} {
		h.publish(mk(r[0], r[1]))
	}
	got := l.merge(h.take(nil, 15, 1<<30))
	if got.first != 1 || got.last != 15 || len(got.rows) != 14 || len(got.rejects) != 1 || got.rejects[0].index != 11 {
		t.Fatalf("merged %d-%d, %d rows, %d rejects; want 1-15 (3 batches), 14 rows, index 11 rejected",
			got.first, got.last, len(got.rows), len(got.rejects))
	}
	if n := readyCount(h); n != 1 {
		t.Fatalf("%d batches left waiting, want 1", n)
	}
	whole := mk(1, 15)
	var a, b bytes.Buffer
	_, _ = a.ReadFrom(got.tuples(0, len(got.rows)))
	_, _ = b.ReadFrom(whole.tuples(0, len(whole.rows)))
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("merged batch does not encode like one batch of the same records")
	}
	for i, r := range got.rows {
		if r.end != whole.rows[i].end || r.index != whole.rows[i].index {
			t.Fatalf("row %d: end %d index %d, want %d %d", i, r.end, r.index, whole.rows[i].end, whole.rows[i].index)
		}
	}
	if !got.firstReceivedAt.Equal(whole.firstReceivedAt) || !got.lastReceivedAt.Equal(whole.lastReceivedAt) || len(got.days) != len(whole.days) {
		t.Fatal("merged batch times or days differ")
	}
	// A batch larger than the limit still goes, alone.
	h.publish(mk(1, 5))
	if lone := h.take(nil, 1, 1); len(lone) != 1 {
		t.Fatalf("took %d batches with limits below one batch, want 1", len(lone))
	}
}

func TestNoteWALAtMostOncePerIntervalThenFinal(t *testing.T) {
	src := newFakeSource()
	l := &Loader{src: src, opts: Options{NodeID: "n"}}
	l.opts.defaults()
	l.log = l.opts.Logger
	for pos := uint64(1); pos <= 50; pos++ { // fifty commits in quick succession
		l.setPosition(pos)
		l.noteWAL(false)
	}
	l.noteWAL(true) // the loader stopping
	l.noteWAL(true) // nothing new: no rewrite
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.noted) != 2 || src.noted[0] != 1 || src.noted[1] != 50 {
		t.Fatalf("registry told %v; want [1 50]: the first commit, then the final position once", src.noted)
	}
}

func TestNoteWALFailureIsRetriedAfterTheIntervalNotAtOnce(t *testing.T) {
	src := newFakeSource()
	src.noteErr = errors.New("disk full")
	l := &Loader{src: src, opts: Options{NodeID: "n"}}
	l.opts.defaults()
	l.log = l.opts.Logger
	l.setPosition(7)
	for range 10 { // the idle writer asking again and again
		l.noteWAL(false)
	}
	src.mu.Lock()
	tries := len(src.noted)
	src.mu.Unlock()
	if tries != 1 {
		t.Fatalf("%d notes tried within the interval after a failure, want 1", tries)
	}
	if l.walNoted == 7 {
		t.Fatal("a failed note counted as sent")
	}
}
