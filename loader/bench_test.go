package loader

import (
	"context"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/internal/heapsample"
	"github.com/evothesis/collector/wal"
)

// BenchmarkEncodeRow is the loader's per-event COPY encoding: one decoded
// event into binary COPY tuple bytes.
func BenchmarkEncodeRow(b *testing.B) {
	e := testEvent("node-a", 1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = appendRow(buf[:0], 12345, "node-a", &e)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeAndEncodeRecord is all the CPU the loader spends on one WAL
// record before COPY: decode the record, encode the tuple, track its day.
func BenchmarkDecodeAndEncodeRecord(b *testing.B) {
	e := testEvent("node-a", 1)
	rec := event.AppendRecord(nil, &e)
	bt := &batch{}
	var dec event.Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	i := uint64(0)
	for b.Loop() {
		if bt.count() == 5000 {
			bt.reset()
		}
		i++
		bt.add(&dec, wal.Record{Index: i, Data: rec}, "node-a")
	}
}

// BenchmarkLoaderVsRawCopyFrom loads the same N events (LOADER_BENCH_EVENTS,
// default 50000) into the same schema (partitioned, four secondary indexes,
// JSONB) three ways, in the same run: one raw pgx CopyFrom of pre-decoded
// rows (the ceiling), raw CopyFrom in autocommitted batches of
// LOADER_BATCH_EVENTS, and the loader draining a WAL backlog of those events
// (read, decode, encode, COPY, offset update, commit). It reports rows/s of
// each (best round) and the loader's ratio to the single raw COPY.
func BenchmarkLoaderVsRawCopyFrom(b *testing.B) {
	n := 50000
	if v, err := strconv.Atoi(os.Getenv("LOADER_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	const batchEvents = 5000
	ctx := context.Background()
	db := newTestDB(b, false)
	log := openWAL(b, b.TempDir())
	// A consumer that never advances keeps every segment for the next round.
	if _, err := log.RegisterConsumer("bench-hold"); err != nil {
		b.Fatal(err)
	}
	last := appendEvents(b, log, "node-a", 0, n, nil)
	if err := newPartitions(db.pool).ensureAhead(ctx, time.Now(), 3); err != nil {
		b.Fatal(err)
	}
	reset := func() {
		if _, err := db.pool.Exec(ctx, "TRUNCATE events; DELETE FROM loader_offsets; CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
	}
	cols := []string{"id", "node_id", "event_id", "event_type", "session_id", "visitor_id", "site_id",
		"timestamp", "url", "path", "ip_address", "user_agent", "raw_event_data", "received_at", "referrer"}
	rawCopy := func(per int) (time.Duration, time.Duration) {
		// The rows are built outside the timing and live only during this
		// run, so that their pointers do not slow the garbage collector
		// while the loader runs.
		rows := rawRows(b, log, last)
		reset()
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		runtime.GC()
		c0, start := processCPU(), time.Now()
		for i := 0; i < len(rows); i += per {
			if _, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"events"}, cols, pgx.CopyFromRows(rows[i:min(i+per, len(rows))])); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start), processCPU() - c0
	}
	var peakLive uint64 // the loader's rounds' largest live heap (the WAL's tail included)
	runLoader := func() (time.Duration, time.Duration) {
		reset()
		if _, err := log.RegisterConsumer(ConsumerName); err != nil {
			b.Fatal(err)
		}
		if err := log.CommitConsumer(ConsumerName, 0); err != nil { // the registry's lower bound from the last round
			b.Fatal(err)
		}
		opts := fastOptions("node-a")
		opts.BatchEvents = batchEvents
		opts.FlushInterval = 200 * time.Millisecond
		l, err := New(db.pool, log, opts)
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		heap := heapsample.Start(2 * time.Millisecond) // collects garbage first
		c0, start := processCPU(), time.Now()
		go func() { done <- l.Run(runCtx) }()
		var firstCommit time.Time
		for !l.loadedTo(last) {
			if firstCommit.IsZero() && l.positionKnown.Load() && l.position.Load() > 0 {
				firstCommit = time.Now()
			}
			time.Sleep(200 * time.Microsecond)
		}
		d, c := time.Since(start), processCPU()-c0
		_, _, live := heap.Stop()
		peakLive = max(peakLive, live)
		b.Logf("loader: %v commits, first commit after %s", testutil.ToFloat64(l.m.batches), firstCommit.Sub(start))
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return d, c
	}
	// The machine is shared: each round runs the three in a rotating order,
	// and the report is of each one's best round (and the mean ratio).
	methods := []struct {
		name string
		run  func() (wall, cpu time.Duration)
	}{
		{"raw", func() (time.Duration, time.Duration) { return rawCopy(n) }},
		{"raw_batched", func() (time.Duration, time.Duration) { return rawCopy(batchEvents) }},
		{"loader", runLoader},
	}
	best := map[string]time.Duration{}
	total := map[string]time.Duration{}
	cpu := map[string]time.Duration{} // this process's CPU, user+system
	b.ResetTimer()
	for round := 0; b.Loop(); round++ {
		for k := range methods {
			m := methods[(round+k)%len(methods)]
			d, c := m.run()
			cpu[m.name] += c
			total[m.name] += d
			if best[m.name] == 0 || d < best[m.name] {
				best[m.name] = d
			}
		}
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(rate(best["raw"]), "raw_rows/s")
	b.ReportMetric(rate(best["raw_batched"]), "raw_batched_rows/s")
	b.ReportMetric(rate(best["loader"]), "loader_rows/s")
	b.ReportMetric(100*rate(best["loader"])/rate(best["raw"]), "loader_%_of_raw")
	b.ReportMetric(100*rate(best["loader"])/rate(best["raw_batched"]), "loader_%_of_raw_batched")
	b.ReportMetric(100*total["raw"].Seconds()/total["loader"].Seconds(), "mean_loader_%_of_raw")
	perRow := func(name string) float64 { return float64(cpu[name].Microseconds()) / float64(n*b.N) }
	b.ReportMetric(perRow("raw"), "raw_client_cpu_µs/row")
	b.ReportMetric(perRow("loader"), "loader_client_cpu_µs/row")
	b.ReportMetric(float64(peakLive)/(1<<20), "loader_peak_live_heap_MiB")
	if got := db.count(b, "SELECT count(*) FROM events"); got != int64(n) {
		b.Fatalf("%d rows loaded, want %d", got, n)
	}
}

// rawRows decodes the WAL into the []any rows a plain pgx CopyFrom takes.
func rawRows(b *testing.B, log *wal.Log, last uint64) [][]any {
	b.Helper()
	var dec event.Decoder
	var out [][]any
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	for from := uint64(1); from <= last; {
		recs, err := log.Read(from, 5000, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			var e event.Event
			if err := dec.DecodeRecord(r.Data, &e); err != nil {
				b.Fatal(err)
			}
			var id [16]byte
			parseUUID(e.EventID, &id)
			out = append(out, []any{int64(r.Index), e.NodeID, id, e.EventType, nullable(e.SessionID), nullable(e.VisitorID),
				nullable(e.SiteID), e.Timestamp, nullable(e.URL), nullable(e.Path), nullable(e.IPAddress), nullable(e.UserAgent),
				string(e.Raw), e.ReceivedAt, nullable(e.Referrer)})
		}
		from = recs[len(recs)-1].Index + 1
	}
	return out
}

// BenchmarkAcceptToQueryableLatency appends events at a steady rate
// (LOADER_BENCH_RATE, default 10000/s, in groups every 10ms as ingest's group
// commit would) for 3 seconds per round, and measures for each event the time
// from its append returning to the commit that made it queryable, with the
// default LOADER_BATCH_EVENTS, LOADER_FLUSH_INTERVAL and MinCommitInterval.
// Reports p50, p99 and max in milliseconds, commits a second, and the
// process's CPU per event (appending included).
func BenchmarkAcceptToQueryableLatency(b *testing.B) {
	rate := 10000
	if v, err := strconv.Atoi(os.Getenv("LOADER_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	db := newTestDB(b, false)
	log := openWAL(b, b.TempDir())
	opts := fastOptions("node-a")
	opts.BatchEvents, opts.FlushInterval = 5000, 200*time.Millisecond // the defaults
	l := startLoader(b, db.pool, log, opts)
	var lat []time.Duration
	batches0, cpu0, start := testutil.ToFloat64(l.m.batches), processCPU(), time.Now()
	for b.Loop() {
		const tick = 10 * time.Millisecond
		perTick := rate / 100
		type group struct {
			last     uint64
			appended time.Time
		}
		groups := make(chan group, 1024)
		watched := make(chan []time.Duration)
		// Watch the committed position; a group is queryable when it passes.
		go func() {
			var out []time.Duration
			for g := range groups {
				for l.position.Load() < g.last {
					time.Sleep(200 * time.Microsecond)
				}
				d := time.Since(g.appended)
				for range perTick {
					out = append(out, d)
				}
			}
			watched <- out
		}()
		stop := time.Now().Add(3 * time.Second)
		next := time.Now()
		for i := 0; time.Now().Before(stop); i += perTick {
			last := appendEvents(b, log, "node-a", i, perTick, nil)
			groups <- group{last, time.Now()}
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
		close(groups)
		lat = append(lat, <-watched...)
	}
	b.StopTimer()
	elapsed := time.Since(start).Seconds()
	b.ReportMetric((testutil.ToFloat64(l.m.batches)-batches0)/elapsed, "commits/s")
	// The appender's encoding is in it too; compare it between runs.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(len(lat)), "process_cpu_µs/event")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50_ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99_ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max_ms")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
