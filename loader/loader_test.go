package loader

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

func TestMigrationsAreIdempotent(t *testing.T) {
	db := newTestDB(t, true)
	ctx := context.Background()
	first, err := Migrate(ctx, db.pool, nil)
	if err != nil || len(first) == 0 {
		t.Fatalf("first migrate: applied %v, %v", first, err)
	}
	again, err := Migrate(ctx, db.pool, nil)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate: applied %v, %v; want nothing", again, err)
	}
	st, err := MigrationStatus(ctx, db.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if !m.Applied {
			t.Errorf("migration %d %s not applied", m.Version, m.Name)
		}
	}
	for _, table := range []string{"events", "events_rejected", "loader_offsets"} {
		if db.count(t, "SELECT count(*) FROM pg_class WHERE relname = $1", table) != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

func TestConcurrentMigratorsApplyOnce(t *testing.T) {
	db := newTestDB(t, true)
	const nodes = 3
	var wg sync.WaitGroup
	results := make([][]Migration, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	for i := range nodes {
		pool := db.newPool(t, db.url) // one pool per "node"
		wg.Go(func() {
			<-start
			results[i], errs[i] = Migrate(context.Background(), pool, nil)
		})
	}
	close(start)
	wg.Wait()
	applied := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		if len(results[i]) > 0 {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("%d migrators applied migrations, want exactly 1", applied)
	}
	if n := db.count(t, "SELECT count(*) FROM "+MigrationTable+" WHERE version_id > 0"); n != int64(len(migrationsEmbedded(t))) {
		t.Fatalf("%d applied versions recorded, want %d", n, len(migrationsEmbedded(t)))
	}
}

func migrationsEmbedded(t *testing.T) []string {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLoaderLoadsEveryRecordOnceWithItsColumns(t *testing.T) {
	db := newTestDB(t, true) // the loader migrates
	log := openWAL(t, t.TempDir())
	reg := prometheus.NewRegistry()
	opts := fastOptions("node-a")
	opts.Registerer = reg
	opts.SkipMigrations = false
	last := appendEvents(t, log, "node-a", 0, 2500, nil)
	l := startLoader(t, db.pool, log, opts)
	last = appendEvents(t, log, "node-a", 2500, 2500, nil)
	waitFor(t, 20*time.Second, "loader to catch up", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)

	// Every column as the record had it; empty optional strings are NULL.
	want := testEvent("node-a", 7)
	var got RecentEvent
	var raw string
	err := db.pool.QueryRow(context.Background(), `SELECT id, event_type, session_id, visitor_id, site_id, "timestamp", url, path,
		ip_address, user_agent, raw_event_data::text, received_at, referrer, node_id FROM events WHERE node_id = 'node-a' AND id = 8`).
		Scan(&got.ID, &got.EventType, &got.SessionID, &got.VisitorID, &got.SiteID, &got.Timestamp, &got.URL, &got.Path,
			&got.IPAddress, &got.UserAgent, &raw, &got.ReceivedAt, &got.Referrer, &got.NodeID)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventType != want.EventType || *got.SessionID != want.SessionID || *got.VisitorID != want.VisitorID ||
		*got.SiteID != want.SiteID || !got.Timestamp.Equal(want.Timestamp) || *got.URL != want.URL || *got.Path != want.Path ||
		*got.IPAddress != want.IPAddress || *got.UserAgent != want.UserAgent || !got.ReceivedAt.Equal(want.ReceivedAt) ||
		*got.Referrer != want.Referrer || got.NodeID != "node-a" {
		t.Fatalf("row 8 = %+v, want %+v", got, want)
	}
	var rawGot, rawWant any
	_ = json.Unmarshal([]byte(raw), &rawGot)
	_ = json.Unmarshal(want.Raw, &rawWant)
	if !jsonEqual(rawGot, rawWant) {
		t.Fatalf("raw_event_data = %s, want %s", raw, want.Raw)
	}
	if testutil.ToFloat64(l.m.rows) != float64(last) {
		t.Errorf("rows metric = %v, want %d", testutil.ToFloat64(l.m.rows), last)
	}
	if n, err := testutil.GatherAndCount(reg, "collector_loader_lag_events", "collector_loader_lag_seconds",
		"collector_loader_batches_total", "collector_loader_copy_duration_seconds"); err != nil || n != 4 {
		t.Errorf("metrics gathered: %d, %v", n, err)
	}
	// The WAL registry follows PostgreSQL.
	waitFor(t, 5*time.Second, "WAL consumer position", func() bool {
		for _, c := range log.Consumers() {
			if c.Name == ConsumerName {
				return c.Position == last
			}
		}
		return false
	})
	if s := l.State(); s.Database != "connected" || s.LagEvents != 0 || s.LagSeconds != 0 || s.Failing {
		t.Errorf("state after catching up: %+v", s)
	}
}

func TestNullsForEmptyOptionalFields(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	e := event.Event{EventID: "0190c1c2-7a9b-7cde-8f00-0123456789ab", ReceivedAt: baseTime, Timestamp: baseTime, EventType: "x"}
	last := appendEvents(t, log, "", 0, 1, func(string, int) []byte { return event.AppendRecord(nil, &e) })
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	waitFor(t, 10*time.Second, "load", func() bool { return l.loadedTo(last) })
	if n := db.count(t, `SELECT count(*) FROM events WHERE node_id = 'node-a' AND session_id IS NULL AND site_id IS NULL
		AND referrer IS NULL AND url IS NULL AND raw_event_data = '{}'::jsonb`); n != 1 {
		t.Fatalf("record without node id or optional fields: %d matching rows", n)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestLoaderResumesFromCommittedOffset stops the loader at random instants
// (mid-read, mid-COPY, mid-commit) while events keep arriving, restarts it,
// and checks that every record ends up loaded exactly once.
func TestLoaderResumesFromCommittedOffset(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	var appended atomic.Uint64
	stopAppend := make(chan struct{})
	appendDone := make(chan struct{})
	go func() {
		defer close(appendDone)
		for i := 0; ; i += 200 {
			select {
			case <-stopAppend:
				return
			default:
			}
			appended.Store(appendEvents(t, log, "node-a", i, 200, nil))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for round := range 12 {
		l := startLoader(t, db.pool, log, fastOptions("node-a"))
		time.Sleep(time.Duration(rand.IntN(150)+round) * time.Millisecond)
		l.stop(t) // cancels whatever it is doing
	}
	close(stopAppend)
	<-appendDone
	last := appended.Load()
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	waitFor(t, 30*time.Second, "loader to catch up", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
}

// TestRetryOfCommittedBatchIsNoOp: a COMMIT whose answer was lost is retried;
// the retry must see that the batch is in and add nothing.
func TestRetryOfCommittedBatchIsNoOp(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	last := appendEvents(t, log, "node-a", 0, 100, nil)
	l, err := New(db.pool, log, fastOptions("node-a"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := initOffset(ctx, db.pool, "node-a"); err != nil {
		t.Fatal(err)
	}
	if err := l.parts.ensureAhead(ctx, time.Now(), 2); err != nil {
		t.Fatal(err)
	}
	recs, err := log.Read(1, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := &batch{}
	var dec event.Decoder
	for _, r := range recs {
		b.add(&dec, r, "node-a")
	}
	for attempt := range 2 {
		if err := l.commit(ctx, b); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	db.checkExactlyOnce(t, "node-a", last, 0)
	if got := testutil.ToFloat64(l.m.batches); got != 1 {
		t.Errorf("batches counted %v, want 1", got)
	}
}

func TestLoaderSpacesCommitsOfPartialBatches(t *testing.T) {
	cases := []struct {
		name        string
		interval    time.Duration
		maxBatches  float64 // at most, over the trickle
		moreThanMax bool    // without spacing the same trickle commits more often
	}{
		{"spaced by MinCommitInterval", 200 * time.Millisecond, 8, false},
		{"unspaced, for contrast", time.Nanosecond, 8, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := newTestDB(t, false)
			log := openWAL(t, t.TempDir())
			opts := fastOptions("node-a")
			opts.MinCommitInterval = c.interval
			l := startLoader(t, db.pool, log, opts)
			waitFor(t, 30*time.Second, "loader ready", func() bool { return l.DatabaseState() == "connected" })
			before := testutil.ToFloat64(l.m.batches)
			// A trickle of 1 s, one event every 5 ms: each would be its own
			// commit if nothing spaced them.
			var last uint64
			for i := range 200 {
				last = appendEvents(t, log, "node-a", i, 1, nil)
				time.Sleep(5 * time.Millisecond)
			}
			waitFor(t, 30*time.Second, "loader to catch up", func() bool { return l.loadedTo(last) })
			n := testutil.ToFloat64(l.m.batches) - before
			if got := n > c.maxBatches; got != c.moreThanMax {
				t.Fatalf("%v batches for a 1 s trickle with MinCommitInterval %v; want more than %v: %v", n, c.interval, c.maxBatches, c.moreThanMax)
			}
			db.checkExactlyOnce(t, "node-a", last, 0)
		})
	}
}

func TestLoaderDoesNotSpaceFullBatches(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	opts := fastOptions("node-a")
	opts.BatchEvents, opts.MaxBatchesPerCommit = 100, 1
	opts.MinCommitInterval = time.Hour // a backlog must not wait for it
	last := appendEvents(t, log, "node-a", 0, 1000, nil)
	l := startLoader(t, db.pool, log, opts)
	waitFor(t, 30*time.Second, "backlog of ten full batches loaded", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
}

// TestLoaderSurvivesKilledConnections kills the loader's connections in a
// loop (mid-COPY, mid-commit) during sustained appends.
func TestLoaderSurvivesKilledConnections(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	ctx, cancel := context.WithCancel(context.Background())
	var killed atomic.Int64
	var killer sync.WaitGroup
	killer.Go(func() {
		for ctx.Err() == nil {
			n, err := db.terminateBackends(ctx)
			if err == nil {
				killed.Add(int64(n))
			}
			sleep(ctx, time.Duration(20+rand.IntN(60))*time.Millisecond)
		}
	})
	var last uint64
	for i := 0; i < 40; i++ {
		last = appendEvents(t, log, "node-a", i*500, 500, nil)
		time.Sleep(25 * time.Millisecond)
	}
	cancel()
	killer.Wait()
	if killed.Load() == 0 {
		t.Fatal("no connection was killed; the test proved nothing")
	}
	// Connections killed while idle in the pool fail their next use; the
	// loader retries that, the checks below would not.
	db.pool.Reset()
	waitFor(t, 30*time.Second, "loader to catch up", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
	if testutil.ToFloat64(l.m.retries) == 0 {
		t.Error("no retries counted although connections were killed")
	}
	t.Logf("killed %d connections; %v retries", killed.Load(), testutil.ToFloat64(l.m.retries))
}

// proxy is a TCP proxy on loopback that can be stopped (every connection
// cut, the port closed) and started again on the same port: a database that
// goes away and comes back.
type proxy struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) start() {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("restart proxy: %v", err)
	}
	p.serve(ln)
}

// TestLoaderRidesOutDatabaseOutage: the database disappears during sustained
// appends and comes back. Appends never fail, DatabaseState says
// disconnected meanwhile, and everything arrives once afterwards.
func TestLoaderRidesOutDatabaseOutage(t *testing.T) {
	db := newTestDB(t, false)
	px := newProxy(t, "127.0.0.1:5432")
	pool := db.newPool(t, dbURL(db.name, px.addr))
	log := openWAL(t, t.TempDir())
	l := startLoader(t, pool, log, fastOptions("node-a"))

	var last uint64
	appendFor := func(d time.Duration, from int) int {
		end := time.Now().Add(d)
		for ; time.Now().Before(end); from += 100 {
			last = appendEvents(t, log, "node-a", from, 100, nil) // t.Fatal on any append error
			time.Sleep(5 * time.Millisecond)
		}
		return from
	}
	n := appendFor(300*time.Millisecond, 0)
	waitFor(t, 10*time.Second, "first load", func() bool { return l.State().Position > 0 })
	px.stop()
	n = appendFor(300*time.Millisecond, n)
	waitFor(t, 10*time.Second, "DatabaseState disconnected", func() bool { return l.DatabaseState() == "disconnected" })
	if _, degraded := l.Health(); !degraded {
		t.Error("health not degraded while the database is away")
	}
	during := l.State().Position
	n = appendFor(500*time.Millisecond, n)
	if p := l.State().Position; p != during {
		t.Errorf("position moved from %d to %d while the database was unreachable", during, p)
	}
	px.start()
	appendFor(300*time.Millisecond, n)
	waitFor(t, 30*time.Second, "catch up after the outage", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
	waitFor(t, 5*time.Second, "DatabaseState connected", func() bool { return l.DatabaseState() == "connected" })
	if _, degraded := l.Health(); degraded {
		t.Errorf("still degraded after recovery: %+v", l.State())
	}
}

// TestRefusedRowsGoToEventsRejected: rows PostgreSQL refuses (a number jsonb
// cannot hold, a CHECK constraint), a record that is not an event and one
// whose event_id is not a UUID each go to events_rejected; their neighbours
// load.
func TestRefusedRowsGoToEventsRejected(t *testing.T) {
	db := newTestDB(t, false)
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (site_id IS DISTINCT FROM 'poison')"); err != nil {
		t.Fatal(err)
	}
	log := openWAL(t, t.TempDir())
	bad := map[int]string{ // position in the WAL (0-based) -> expected stage/sqlstate
		17: "database/22003", 500: "database/23514", 501: "database/22003", 1203: "decode/", 1999: "encode/",
	}
	written := map[int][]byte{}
	mk := func(node string, i int) []byte {
		rec := mkRefused(node, i, bad[i])
		written[i] = rec
		return rec
	}
	last := appendEvents(t, log, "node-a", 0, 2000, mk)
	reg := prometheus.NewRegistry()
	opts := fastOptions("node-a")
	opts.Registerer = reg
	l := startLoader(t, db.pool, log, opts)
	waitFor(t, 20*time.Second, "load", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, int64(len(bad)))
	rows, err := db.pool.Query(ctx, "SELECT wal_index, stage, coalesce(sqlstate, ''), error, raw FROM events_rejected ORDER BY wal_index")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		var stage, state, msg string
		var raw []byte
		if err := rows.Scan(&idx, &stage, &state, &msg, &raw); err != nil {
			t.Fatal(err)
		}
		want, ok := bad[int(idx)-1]
		if !ok || want != stage+"/"+state {
			t.Errorf("index %d rejected as %s/%s (%s), want %q", idx, stage, state, msg, want)
		}
		if string(written[int(idx)-1]) != string(raw) {
			t.Errorf("index %d: raw bytes %q differ from the WAL record %q", idx, raw, written[int(idx)-1])
		}
		if msg == "" {
			t.Errorf("index %d: no error text", idx)
		}
		t.Logf("rejected %d: %s/%s: %s", idx, stage, state, msg)
	}
	rows.Close()
	var raw, ua string
	if err := db.pool.QueryRow(ctx, "SELECT raw_event_data::text, user_agent FROM events WHERE id = 4").Scan(&raw, &ua); err != nil {
		t.Fatalf("sanitized row: %v", err)
	}
	if ua != "Mozilla\uFFFD" || !strings.Contains(raw, `"xy"`) || !strings.Contains(raw, "\uFFFD") || !strings.Contains(raw, `"\\u0000"`) {
		t.Errorf("sanitized row: raw %s, user_agent %q", raw, ua)
	}
	if got := testutil.ToFloat64(l.m.rejected.WithLabelValues(stageDatabase)); got != 3 {
		t.Errorf("rejected{stage=database} = %v, want 3", got)
	}
	if got := db.count(t, "SELECT rows_rejected FROM loader_offsets WHERE node_id = 'node-a'"); got != int64(len(bad)) {
		t.Errorf("loader_offsets.rows_rejected = %d, want %d", got, len(bad))
	}
}

// mkRefused makes record i: an ordinary event, or one refused the way kind
// says (stage/sqlstate).
func mkRefused(node string, i int, kind string) []byte {
	e := testEvent(node, i)
	switch kind {
	case "database/22003":
		e.Raw = []byte(`{"huge":1e999999}`)
	case "database/23514":
		e.SiteID = "poison"
	case "decode/":
		return []byte("not an event record")
	case "encode/":
		e.EventID = "not-a-uuid"
	}
	// Sanitized on the way, not refused: NUL, lone surrogates, bad UTF-8.
	if i == 3 {
		e.Raw = []byte(`{"a":"x\u0000y","b":"\ud800","c":"\\u0000"}`)
		e.UserAgent = "Mozilla\x00\xff"
	}
	return event.AppendRecord(nil, &e)
}

func TestTwoNodesLoadIntoOneDatabase(t *testing.T) {
	db := newTestDB(t, false)
	var wg sync.WaitGroup
	lasts := map[string]uint64{}
	var mu sync.Mutex
	for _, node := range []string{"node-a", "node-b"} {
		log := openWAL(t, t.TempDir())
		l := startLoader(t, db.newPool(t, db.url), log, fastOptions(node))
		wg.Go(func() {
			last := appendEvents(t, log, node, 0, 3000, nil)
			mu.Lock()
			lasts[node] = last
			mu.Unlock()
			waitFor(t, 30*time.Second, node+" to catch up", func() bool { return l.loadedTo(last) })
		})
	}
	wg.Wait()
	for node, last := range lasts {
		db.checkExactlyOnce(t, node, last, 0)
	}
}

// TestSameNodeIDTwiceCannotDuplicate: two loaders misconfigured with one
// NODE_ID over the same WAL race for every batch; the offset's
// compare-and-set lets exactly one win each.
func TestSameNodeIDTwiceCannotDuplicate(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	a := startLoader(t, db.newPool(t, db.url), log, fastOptions("node-a"))
	b := startLoader(t, db.newPool(t, db.url), log, fastOptions("node-a"))
	var last uint64
	for i := range 10 {
		last = appendEvents(t, log, "node-a", i*300, 300, nil)
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "both to catch up", func() bool {
		return db.offset(t, "node-a") == last
	})
	a.stop(t)
	b.stop(t)
	db.checkExactlyOnce(t, "node-a", last, 0)
}

func TestLoaderRefusesWALBehindDatabase(t *testing.T) {
	db := newTestDB(t, false)
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, "INSERT INTO loader_offsets (node_id, last_index) VALUES ('node-a', 1000)"); err != nil {
		t.Fatal(err)
	}
	log := openWAL(t, t.TempDir())
	appendEvents(t, log, "node-a", 0, 10, nil)
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	waitFor(t, 10*time.Second, "the loader to refuse", func() bool { return l.State().Failing })
	if s := l.State(); !strings.Contains(s.LastError, "NODE_ID") {
		t.Errorf("last error %q does not explain", s.LastError)
	}
	if _, degraded := l.Health(); !degraded {
		t.Error("not degraded")
	}
	if n := db.count(t, "SELECT count(*) FROM events"); n != 0 {
		t.Errorf("%d rows loaded under reused ids", n)
	}
}

// TestLoaderSkipsRowsAReplayLoadedFirst: a replay ran ahead of the loader;
// the loader's COPY meets the unique key, loads the batch through ON
// CONFLICT instead, and counts the rest as duplicates.
func TestLoaderSkipsRowsAReplayLoadedFirst(t *testing.T) {
	db := newTestDB(t, false)
	dir := t.TempDir()
	log := openWAL(t, dir)
	last := appendEvents(t, log, "node-a", 0, 1000, nil)
	res, err := Replay(context.Background(), db.pool, ReplayOptions{Dir: dir, From: 100, To: 199, NodeID: "node-a"})
	if err != nil || res.Loaded != 100 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	waitFor(t, 20*time.Second, "load", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
	if n := db.count(t, "SELECT rows_duplicate FROM loader_offsets WHERE node_id = 'node-a'"); n != 100 {
		t.Errorf("rows_duplicate = %d, want 100", n)
	}
}

func TestReplayTwiceLoadsOnce(t *testing.T) {
	db := newTestDB(t, false)
	dir := t.TempDir()
	log := openWAL(t, dir)
	mk := func(node string, i int) []byte {
		if i == 42 {
			return []byte("garbage")
		}
		e := testEvent(node, i)
		return event.AppendRecord(nil, &e)
	}
	last := appendEvents(t, log, "node-a", 0, 3000, mk)
	ctx := context.Background()
	opts := ReplayOptions{Dir: dir, From: 1, NodeID: "node-a", BatchEvents: 700}
	first, err := Replay(ctx, db.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := ReplayResult{First: 1, Last: last, Scanned: 3000, Loaded: 2999, Rejected: 1, NewRejected: 1}
	if first != want {
		t.Fatalf("first replay %+v, want %+v", first, want)
	}
	second, err := Replay(ctx, db.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	want = ReplayResult{First: 1, Last: last, Scanned: 3000, Skipped: 2999, Rejected: 1}
	if second != want {
		t.Fatalf("second replay %+v, want %+v", second, want)
	}
	if n := db.count(t, "SELECT count(*) FROM events"); n != 2999 {
		t.Fatalf("%d rows after two replays, want 2999", n)
	}
	if n := db.count(t, "SELECT count(*) FROM loader_offsets"); n != 0 {
		t.Errorf("replay touched loader_offsets")
	}
	// A sub-range.
	part, err := Replay(ctx, db.pool, ReplayOptions{Dir: dir, From: 10, To: 19, NodeID: "node-a"})
	if err != nil || part.Scanned != 10 || part.Skipped != 10 || part.First != 10 || part.Last != 19 {
		t.Fatalf("sub-range replay %+v, %v", part, err)
	}
}

// TestReplayLoadsCopiedWALUnderItsNodeID: a WAL directory from node-b,
// replayed on node-a, loads under node-b.
func TestReplayLoadsCopiedWALUnderItsNodeID(t *testing.T) {
	db := newTestDB(t, false)
	dir := t.TempDir()
	log := openWAL(t, dir)
	appendEvents(t, log, "node-b", 0, 500, nil)
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Replay(context.Background(), db.pool, ReplayOptions{Dir: dir, From: 1, NodeID: "node-a"})
	if err != nil || res.Loaded != 500 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if n := db.count(t, "SELECT count(*) FROM events WHERE node_id = 'node-b'"); n != 500 {
		t.Fatalf("%d rows under node-b, want 500", n)
	}
}

func TestPartitionsAheadAndRetention(t *testing.T) {
	db := newTestDB(t, false)
	ctx := context.Background()
	p := newPartitions(db.pool)
	now := time.Date(2025, 6, 22, 23, 59, 0, 0, time.UTC)
	var old []time.Time
	for _, d := range []int{-10, -4, -3} {
		old = append(old, dayOf(now).AddDate(0, 0, d))
	}
	if err := p.ensure(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := p.ensureAhead(ctx, now, 3); err != nil {
		t.Fatal(err)
	}
	dropped, err := p.dropExpired(ctx, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dropped, ",") != "events_20250612,events_20250618" {
		t.Errorf("dropped %v", dropped)
	}
	days, err := listPartitions(ctx, db.pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range days {
		names = append(names, partitionName(d))
	}
	if got := strings.Join(names, ","); got != "events_20250619,events_20250621,events_20250622,events_20250623,events_20250624,events_20250625" {
		t.Errorf("partitions after retention: %s", got)
	}
	// Rows land in their day's partition, and the key holds across them.
	if _, err := db.pool.Exec(ctx, `INSERT INTO events (id, event_id, event_type, "timestamp", raw_event_data, received_at, node_id)
		VALUES (1, gen_random_uuid(), 'x', now(), '{}', '2025-06-23T00:00:00Z', 'n')`); err != nil {
		t.Fatal(err)
	}
	var part string
	if err := db.pool.QueryRow(ctx, "SELECT tableoid::regclass::text FROM events WHERE id = 1").Scan(&part); err != nil || part != "events_20250623" {
		t.Errorf("midnight row in %q, %v", part, err)
	}
	// A concurrent create from another node is not an error.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			errs <- newPartitions(db.pool).ensure(ctx, []time.Time{dayOf(now).AddDate(0, 0, 30)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent ensure: %v", err)
		}
	}
}

// TestLoaderRecreatesDroppedPartition: another node's retention dropped the
// partition this loader believed existed; the COPY's "no partition" error
// is not a rejected row but a reason to recreate it.
func TestLoaderRecreatesDroppedPartition(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	last := appendEvents(t, log, "node-a", 0, 10, nil)
	waitFor(t, 10*time.Second, "load", func() bool { return l.loadedTo(last) })
	if _, err := db.pool.Exec(context.Background(), "DROP TABLE "+partitionName(dayOf(baseTime))); err != nil {
		t.Fatal(err)
	}
	last = appendEvents(t, log, "node-a", 10, 10, nil)
	waitFor(t, 10*time.Second, "load after drop", func() bool { return l.loadedTo(last) })
	if n := db.count(t, "SELECT count(*) FROM events"); n != 10 {
		t.Errorf("%d rows, want the 10 after the drop", n)
	}
	if n := db.count(t, "SELECT count(*) FROM events_rejected"); n != 0 {
		t.Errorf("%d rows rejected for a missing partition", n)
	}
}

// TestLoaderSkipsIndexesTheWALRemoved: the database was restored from a
// backup older than the WAL's first index; the loader cannot load what is
// gone, records the gap and goes on.
func TestLoaderSkipsIndexesTheWALRemoved(t *testing.T) {
	db := newTestDB(t, false)
	dir := t.TempDir()
	log, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	l := startLoader(t, db.pool, log, fastOptions("node-a"))
	last := appendEvents(t, log, "node-a", 0, 2000, nil)
	waitFor(t, 20*time.Second, "load and WAL truncation", func() bool { return l.loadedTo(last) && log.FirstIndex() > 1 })
	l.stop(t)
	// "Restore" a backup taken when nothing was loaded.
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, "TRUNCATE events; UPDATE loader_offsets SET last_index = 0"); err != nil {
		t.Fatal(err)
	}
	first := log.FirstIndex()
	l = startLoader(t, db.pool, log, fastOptions("node-a"))
	waitFor(t, 20*time.Second, "reload", func() bool { return l.loadedTo(last) })
	if n := db.count(t, "SELECT events_skipped FROM loader_offsets WHERE node_id = 'node-a'"); uint64(n) != first-1 {
		t.Errorf("events_skipped = %d, want %d", n, first-1)
	}
	if n := db.count(t, "SELECT count(*) FROM events"); uint64(n) != last-first+1 {
		t.Errorf("%d rows, want %d", n, last-first+1)
	}
	if testutil.ToFloat64(l.m.skipped) != float64(first-1) {
		t.Errorf("skipped metric %v", testutil.ToFloat64(l.m.skipped))
	}
}

func TestNewRequiresNodeID(t *testing.T) {
	if _, err := New(nil, nil, Options{}); err == nil {
		t.Fatal("New without pool/source/node id succeeded")
	}
}

// TestLoaderRetriesWhenDatabaseIsStuck: the database accepts connections but
// does not finish the loader's statements (here: another session holds the
// offset row). Each attempt times out, is rolled back and retried; when the
// database moves again the backlog loads once.
func TestLoaderRetriesWhenDatabaseIsStuck(t *testing.T) {
	db := newTestDB(t, false)
	log := openWAL(t, t.TempDir())
	opts := fastOptions("node-a")
	opts.AttemptTimeout = 300 * time.Millisecond
	l := startLoader(t, db.pool, log, opts)
	last := appendEvents(t, log, "node-a", 0, 100, nil)
	waitFor(t, 10*time.Second, "first load", func() bool { return l.loadedTo(last) })

	ctx := context.Background()
	blocker, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, "SELECT 1 FROM loader_offsets WHERE node_id = 'node-a' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	last = appendEvents(t, log, "node-a", 100, 2000, nil)
	waitFor(t, 10*time.Second, "timed-out attempts", func() bool { return testutil.ToFloat64(l.m.retries) >= 2 })
	if s := l.State(); s.Position != 100 || !s.Failing || s.LagEvents != 2000 || s.LagSeconds <= 0 {
		t.Errorf("while stuck: %+v", s)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "catch up", func() bool { return l.loadedTo(last) })
	db.checkExactlyOnce(t, "node-a", last, 0)
}
