package shipper

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/internal/elastic"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/shipper/s3test"
	"github.com/evothesis/collector/wal"
	"github.com/prometheus/client_golang/prometheus"
)

// gathered is the value of an unlabelled counter or gauge in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s not registered", name)
	return 0
}

// recordingPacer records each Wait and how far the scan had got when it
// was asked.
type recordingPacer struct {
	mu    sync.Mutex
	waits []int
	fail  error // returned from the third Wait on
}

func (p *recordingPacer) Wait(ctx context.Context, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waits = append(p.waits, n)
	if p.fail != nil && len(p.waits) >= 3 {
		return p.fail
	}
	return nil
}

func TestPacedReaderPaysForEveryRecordBeforeReadingIt(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 64<<10) // several sealed segments and the tail
	defer l.Close()
	appendEvents(t, l, 1500, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), map[uint64]event.Event{})
	if len(l.Segments()) < 3 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	for _, rg := range [][2]uint64{{1, 1500}, {7, 900}, {300, 300}, {1, 256}, {1, 257}} {
		p := &recordingPacer{}
		r := paced(l, p)
		paid, read := 0, 0
		err := r.ScanRange(context.Background(), rg[0], rg[1], func(rec wal.Record) error {
			p.mu.Lock()
			paid = 0
			for _, n := range p.waits {
				paid += n
			}
			p.mu.Unlock()
			read++
			if read > paid {
				t.Fatalf("range %v: record %d read with only %d paid for", rg, rec.Index, paid)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range p.waits {
			if n <= 0 || n > paceChunk {
				t.Fatalf("range %v: Wait(%d), want 1..%d", rg, n, paceChunk)
			}
			total += n
		}
		if want := int(rg[1] - rg[0] + 1); total != want || read != want {
			t.Fatalf("range %v: paid %d, read %d records, want %d", rg, total, read, want)
		}
	}
	// A Wait that fails (its context ended) ends the scan with its error.
	stop := errors.New("stop")
	p := &recordingPacer{fail: stop}
	read := 0
	err := paced(l, p).ScanRange(context.Background(), 1, 1500, func(wal.Record) error { read++; return nil })
	if !errors.Is(err, stop) || read != 2*paceChunk {
		t.Fatalf("ScanRange = %v after %d records, want %v after %d", err, read, stop, 2*paceChunk)
	}
	if paced(l, nil) != recordReader(l) {
		t.Fatal("without a pacer the log is not read directly")
	}
}

// TestExportsCompleteAndCorrectWhileTheLimiterHoldsThemAtTheFloor runs the
// client and backup destinations (shared pass 1, spool) to versitygw with
// a real elastic.Limiter whose signal says ingest is saturating the CPU
// throughout: the exports go at the floor rate and still deliver every
// event exactly once, unchanged.
func TestExportsCompleteAndCorrectWhileTheLimiterHoldsThemAtTheFloor(t *testing.T) {
	srv := s3test.Start(t, "client", "backup")
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	want := map[uint64]event.Event{}
	const n = 2400
	appendEvents(t, l, n, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 40, 0, 0, time.UTC), want)

	var fg atomic.Uint64
	reg := prometheus.NewRegistry()
	const floor = 5000 // records per second: a few seconds for this WAL
	lim, err := elastic.New(elastic.Options{
		Target: time.Millisecond, Floor: floor, Interval: 10 * time.Millisecond, Registerer: reg,
		Latency:    func() (time.Duration, uint64) { return 20 * time.Millisecond, 500 },
		Foreground: func() uint64 { return fg.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	limDone := make(chan error, 1)
	go func() { limDone <- lim.Run(ctx) }()
	defer func() { cancel(); <-limDone }()
	waitFor(t, "the limiter at its floor", 10*time.Second, func() bool { return lim.Limit() == floor })

	client, backup := s3Dest(t, srv, "client", srv.SecretKey), s3Dest(t, srv, "backup", srv.SecretKey)
	dest := func(kind string, st Store) Destination {
		return Destination{Client: "acme", Kind: kind, Store: st, Prefix: "p", Formats: []export.Format{export.FormatNDJSON, export.FormatCSV},
			Compression: export.CompressionZstd, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime"}
	}
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Pacer: lim},
		[]Destination{dest(KindClient, client), dest(KindBackup, backup)})
	last := l.LastIndex()
	waitFor(t, "both destinations at the last index", 120*time.Second, func() bool {
		st := ts.Status().Destinations
		return st[0].Position == last && st[1].Position == last
	})
	ts.stop()

	for bucket, st := range map[string]Store{"client": client, "backup": backup} {
		keys, err := srv.Objects(bucket)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []export.Format{export.FormatNDJSON, export.FormatCSV} {
			var mine []string
			for _, k := range keys {
				if strings.Contains(k, "_manifests/") || strings.Contains(k, "."+string(f)) {
					mine = append(mine, k)
				}
			}
			got, manifests := readAll(t, st, mine)
			if len(got) != n || len(manifests) == 0 {
				t.Fatalf("%s %s: %d distinct events, %d manifests; want %d events", bucket, f, len(got), len(manifests), n)
			}
			for id, w := range want {
				if len(got[id]) != 1 {
					t.Fatalf("%s %s: event %d exported %d times", bucket, f, id, len(got[id]))
				}
				checkEvent(t, f, id, got[id][0], w)
			}
		}
	}
	// The passes were paced: every record was paid for by pass 1 and by
	// pass 2 at least, and the exports waited for the limiter.
	if got := gathered(t, reg, "collector_elastic_admitted_total"); got < 2*n {
		t.Fatalf("the limiter let through %v records, want at least %d (pass 1 and pass 2 of each)", got, 2*n)
	}
	if got := gathered(t, reg, "collector_elastic_wait_seconds_total"); got <= 0 {
		t.Fatalf("the exports never waited for a limiter held at %d records/s", floor)
	}
	if lim.Limit() != floor {
		t.Fatalf("limit %v, want the floor %d throughout", lim.Limit(), floor)
	}
}
