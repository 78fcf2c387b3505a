package httpapi

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/evothesis/collector/wal"
)

type fakeReporter struct {
	key      string
	details  any
	degraded bool
}

func (f fakeReporter) HealthKey() string   { return f.key }
func (f fakeReporter) Health() (any, bool) { return f.details, f.degraded }
func (f *fakeWAL) Stats() wal.Stats        { f.mu.Lock(); defer f.mu.Unlock(); return f.stats }
func (f *fakeWAL) Err() error              { f.mu.Lock(); defer f.mu.Unlock(); return f.err }
func (f *fakeWAL) set(err error, mutate func(*wal.Stats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
	if mutate != nil {
		mutate(&f.stats)
	}
}

type fakeWAL struct {
	mu    sync.Mutex
	stats wal.Stats
	err   error
}

var healthTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestHealthAndReadyStatus(t *testing.T) {
	w := &fakeWAL{stats: wal.Stats{FirstIndex: 3, LastIndex: 41, Bytes: 4096, Segments: 2, Sync: wal.SyncAlways}}
	db := "not configured"
	var dbMu sync.Mutex
	loader := &switchableReporter{key: "loader"}
	ts := serve(t, Options{NodeID: "node-a", WAL: w, Database: func() string { dbMu.Lock(); defer dbMu.Unlock(); return db }}, nil,
		loader, fakeReporter{key: "shipper", details: map[string]any{"pending": 2}})
	setDB := func(s string) { dbMu.Lock(); db = s; dbMu.Unlock() }

	cases := []struct {
		name     string
		setup    func()
		status   int
		health   string
		ready    int
		database string
		reason   string
	}{
		{"healthy", func() {}, 200, "healthy", 200, "not configured", ""},
		{"database connected", func() { setDB("connected") }, 200, "healthy", 200, "connected", ""},
		{"database down is degraded", func() { setDB("disconnected") }, 200, "degraded", 200, "disconnected", "database disconnected"},
		{"loader degraded", func() { setDB("connected"); loader.set(true) }, 200, "degraded", 200, "connected", "loader degraded"},
		{"WAL full is unhealthy", func() { loader.set(false); w.set(wal.ErrFull, func(s *wal.Stats) { s.Full = true }) }, 503, "unhealthy", 503, "connected", "WAL is full"},
		{"WAL failed is unhealthy", func() {
			w.set(fmt.Errorf("%w: fsync: EIO", wal.ErrFailed), func(s *wal.Stats) { s.Full = false; s.Failed = "fsync: EIO" })
		}, 503, "unhealthy", 503, "connected", "fsync: EIO"},
		{"recovered", func() { w.set(nil, func(s *wal.Stats) { s.Failed = "" }) }, 200, "healthy", 200, "connected", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.setup()
			a := ts.do("GET", "/health", nil, "")
			if a.status != c.status || a.json["status"] != c.health || a.json["database"] != c.database {
				t.Fatalf("health %d %s", a.status, a.body)
			}
			if !healthTimestamp.MatchString(fmt.Sprint(a.json["timestamp"])) || a.json["node_id"] != "node-a" {
				t.Fatalf("health %s", a.body)
			}
			walState, _ := a.json["wal"].(map[string]any)
			for _, k := range []string{"first_index", "last_index", "bytes", "segments", "full", "sync"} {
				if _, ok := walState[k]; !ok {
					t.Fatalf("wal.%s missing: %s", k, a.body)
				}
			}
			if walState["last_index"] != 41.0 {
				t.Fatalf("wal %v", walState)
			}
			if a.json["shipper"].(map[string]any)["pending"] != 2.0 {
				t.Fatalf("reporter details missing: %s", a.body)
			}
			if c.reason != "" && !strings.Contains(fmt.Sprint(a.json["reasons"]), c.reason) {
				t.Fatalf("reasons %v, want %q", a.json["reasons"], c.reason)
			}
			if c.reason == "" && a.json["reasons"] != nil {
				t.Fatalf("healthy with reasons: %s", a.body)
			}
			r := ts.do("GET", "/ready", nil, "")
			if r.status != c.ready {
				t.Fatalf("ready %d: %s", r.status, r.body)
			}
			if c.ready == 503 && (!r.isError(503, "wal") || r.header["Retry-After"] == "") {
				t.Fatalf("not-ready answer %s %v", r.body, r.header)
			}
		})
	}
}

func TestHealthWithoutWALOrDatabase(t *testing.T) {
	ts := serve(t, Options{}, nil)
	a := ts.do("GET", "/health", nil, "")
	if a.status != 200 || a.json["status"] != "healthy" || a.json["database"] != "not configured" || a.json["wal"] != nil {
		t.Fatalf("health %d %s", a.status, a.body)
	}
	if !strings.HasPrefix(a.body, `{"status":"healthy","database":"not configured","timestamp":"`) {
		t.Fatalf("not the seed's key order: %s", a.body)
	}
	if r := ts.do("GET", "/ready", nil, ""); r.status != 200 || r.json["status"] != "ready" {
		t.Fatalf("ready %d %s", r.status, r.body)
	}
}

type switchableReporter struct {
	key      string
	mu       sync.Mutex
	degraded bool
}

func (r *switchableReporter) HealthKey() string { return r.key }
func (r *switchableReporter) Health() (any, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return map[string]bool{"degraded": r.degraded}, r.degraded
}
func (r *switchableReporter) set(d bool) { r.mu.Lock(); r.degraded = d; r.mu.Unlock() }
