package loader

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/internal/pgtest"
	"github.com/evothesis/collector/wal"
)

// adminURL is the test PostgreSQL (DEVELOPERS.md: 127.0.0.1:5432, trust,
// user postgres). Each test creates its own database and drops it.
const adminURL = pgtest.AdminURL

type testDB struct {
	name string
	url  string // with application_name=collector-test, for pg_terminate_backend
	pool *pgxpool.Pool
}

// newTestDB creates a throwaway database, migrated unless bare. Without a
// reachable PostgreSQL it skips, or fails when CI is set.
func newTestDB(t testing.TB, bare bool) *testDB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(pgtest.New(t, "collector_test"))
	if err != nil {
		t.Fatalf("parse test database URL: %v", err)
	}
	name := cfg.Database
	db := &testDB{name: name, url: dbURL(name, "127.0.0.1:5432")}
	db.pool = db.newPool(t, db.url)
	if !bare {
		if _, err := Migrate(ctx, db.pool, nil); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return db
}

func dbURL(name, hostport string) string {
	q := url.Values{"sslmode": {"disable"}, "application_name": {"collector-test"}, "connect_timeout": {"2"}}
	return fmt.Sprintf("postgres://postgres@%s/%s?%s", hostport, name, q.Encode())
}

func (db *testDB) newPool(t testing.TB, u string) *pgxpool.Pool {
	t.Helper()
	p, err := NewPool(context.Background(), u, 4, 4)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func (db *testDB) count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// terminateBackends kills every other connection to the test database
// (the loader's), as a crashing or restarting server would.
func (db *testDB) terminateBackends(ctx context.Context) (int, error) {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, db.name).Scan(&n)
	return n, err
}

// checkExactlyOnce asserts that node's rows are exactly the indexes 1..last
// minus rejected, each once, and that the offset is last.
func (db *testDB) checkExactlyOnce(t testing.TB, node string, last uint64, rejected int64) {
	t.Helper()
	rows := db.count(t, "SELECT count(*) FROM events WHERE node_id = $1", node)
	distinct := db.count(t, "SELECT count(DISTINCT id) FROM events WHERE node_id = $1", node)
	rej := db.count(t, "SELECT count(*) FROM events_rejected WHERE node_id = $1", node)
	both := db.count(t, "SELECT count(*) FROM events e JOIN events_rejected r ON r.node_id = e.node_id AND r.wal_index = e.id WHERE e.node_id = $1", node)
	maxID := db.count(t, "SELECT coalesce(max(id), 0) FROM events WHERE node_id = $1", node)
	offset := db.count(t, "SELECT last_index FROM loader_offsets WHERE node_id = $1", node)
	if rows != distinct {
		t.Errorf("node %s: %d rows but %d distinct ids: duplicates", node, rows, distinct)
	}
	if rows+rej != int64(last) || rej != rejected || both != 0 {
		t.Errorf("node %s: %d rows + %d rejected (want %d rejected, %d in both) != %d records", node, rows, rej, rejected, both, last)
	}
	if uint64(offset) != last {
		t.Errorf("node %s: offset %d, want %d", node, offset, last)
	}
	if rejected == 0 && uint64(maxID) != last {
		t.Errorf("node %s: max id %d, want %d", node, maxID, last)
	}
}

func openWAL(t testing.TB, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open WAL: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

var baseTime = time.Now().UTC().Truncate(time.Microsecond)

func testEvent(node string, i int) event.Event {
	recv := baseTime.Add(time.Duration(i) * time.Millisecond)
	return event.Event{
		EventID: uuid.Must(uuid.NewV7()).String(), ReceivedAt: recv, NodeID: node,
		EventType: "pageview", SessionID: fmt.Sprintf("sess_%d", i%97), VisitorID: fmt.Sprintf("vis_%d", i%31),
		SiteID: []string{"example-com", "acme-org"}[i%2], Timestamp: recv.Add(-time.Second),
		URL: fmt.Sprintf("https://example.com/page/%d?utm_source=google", i), Path: fmt.Sprintf("/page/%d", i),
		Referrer: "https://google.com/", IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
		Raw: fmt.Appendf(nil, `{"eventType":"pageview","n":%d,"attribution":{"utmParams":{"utm_source":"google","utm_medium":"cpc"}}}`, i),
	}
}

// appendEvents appends n events made by mk (testEvent by default) and
// returns the last index.
func appendEvents(t testing.TB, l *wal.Log, node string, from, n int, mk func(node string, i int) []byte) uint64 {
	t.Helper()
	if mk == nil {
		mk = func(node string, i int) []byte { e := testEvent(node, i); return event.AppendRecord(nil, &e) }
	}
	var last uint64
	for done := 0; done < n; {
		k := min(500, n-done)
		recs := make([][]byte, k)
		for j := range recs {
			recs[j] = mk(node, from+done+j)
		}
		first, err := l.Append(context.Background(), recs)
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last = first + uint64(k) - 1
		done += k
	}
	return last
}

type runningLoader struct {
	*Loader
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (r *runningLoader) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("loader did not stop")
		}
	})
}

func fastOptions(node string) Options {
	return Options{NodeID: node, BatchEvents: 1000, FlushInterval: 20 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PingInterval: 100 * time.Millisecond,
		AttemptTimeout: 10 * time.Second}
}

func startLoader(t testing.TB, pool *pgxpool.Pool, src Source, opts Options) *runningLoader {
	t.Helper()
	l, err := New(pool, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningLoader{Loader: l, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- l.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (db *testDB) offset(t testing.TB, node string) uint64 {
	t.Helper()
	var n int64
	err := db.pool.QueryRow(context.Background(), "SELECT last_index FROM loader_offsets WHERE node_id = $1", node).Scan(&n)
	if err != nil && err != pgx.ErrNoRows {
		t.Logf("read offset: %v", err)
	}
	return uint64(n)
}

// loadedTo reports whether PostgreSQL (not the WAL registry's lower bound)
// has everything up to last.
func (l *Loader) loadedTo(last uint64) bool {
	return l.positionKnown.Load() && l.position.Load() == last
}
