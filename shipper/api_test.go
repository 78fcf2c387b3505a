package shipper

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/internal/pgtest"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"
)

func call(h fasthttp.RequestHandler, method, uri, body string) (int, map[string]any) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if body != "" {
		ctx.Request.SetBodyString(body)
	}
	h(&ctx)
	var out map[string]any
	_ = json.Unmarshal(ctx.Response.Body(), &out)
	return ctx.Response.StatusCode(), out
}

func TestAPIRejectsBadInputWithFieldErrors(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	fs, _ := NewFileStore(t.TempDir())
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir()}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Formats: []export.Format{export.FormatJSON},
		Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly",
	}})
	cases := []struct {
		name, uri, body, field string
		status                 int
	}{
		{"bad format", "/export/run?format=xml", "", "format", 400},
		{"bad compression", "/export/run?compression=lz4", "", "compression", 400},
		{"bad since", "/export/run?since=yesterday", "", "since", 400},
		{"inverted range", "/export/run?since=2025-06-22T00:00:00Z&until=2025-06-21T00:00:00Z", "", "until", 400},
		{"bad destination", "/export/run?destination=nowhere", "", "destination", 400},
		{"unknown client", "/export/run?client=nobody", "", "client", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(ts.HandleRun, "POST", tc.uri, tc.body)
			if status != tc.status || body["status"] != "error" || body["field"] != tc.field || body["message"] == "" {
				t.Fatalf("got %d %v", status, body)
			}
		})
	}
	if status, body := call(ts.HandleRetry, "POST", "/export/retry", "{not json"); status != 400 || body["field"] != "ids" {
		t.Fatalf("retry bad body: %d %v", status, body)
	}
	if status, body := call(ts.HandleRetry, "POST", "/export/retry?id=nope", ""); status != 404 {
		t.Fatalf("retry unknown id: %d %v", status, body)
	}
	if status, body := call(ts.HandleRetry, "POST", "/export/retry", ""); status != 200 || body["status"] != "ok" {
		t.Fatalf("retry all: %d %v", status, body)
	}
	if status, body := call(ts.HandleStatus, "GET", "/export/status?run_id=nope", ""); status != 404 {
		t.Fatalf("status unknown run: %d %v", status, body)
	}
	status, body := call(ts.HandleConfig, "GET", "/export/config", "")
	if status != 200 || len(body["destinations"].([]any)) != 1 {
		t.Fatalf("config: %d %v", status, body)
	}
}

// TestManualRunBackfillsFromArchiveAndWAL: the WAL has dropped its first
// segments, which PostgreSQL holds; a manual run over the whole time range
// exports each event once, from wherever it still is, under its run's prefix.
func TestManualRunBackfillsFromArchiveAndWAL(t *testing.T) {
	pool := testDatabase(t)
	l := openTestWAL(t, t.TempDir(), 32<<10)
	defer l.Close()
	want := map[uint64]event.Event{}
	base := time.Date(2025, 6, 22, 8, 0, 0, 0, time.UTC)
	appendEvents(t, l, 1500, []string{"a.com", "b.org"}, base, want)
	if _, err := l.RegisterConsumer("loader"); err != nil {
		t.Fatal(err)
	}
	if err := l.CommitConsumer("loader", 900); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "WAL drops its first segments", 10*time.Second, func() bool {
		appendEvents(t, l, 1, []string{"a.com"}, base.Add(1500*7*time.Second), want)
		return l.FirstIndex() > 1
	})
	walFirst := l.FirstIndex()
	// The loader's table holds what the WAL dropped (and more, as it would).
	copyToArchive(t, pool, want, 900)
	root := t.TempDir()
	fs, _ := NewFileStore(root)
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Archive: &PGArchive{Pool: pool}}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Prefix: "m", Formats: []export.Format{export.FormatJSON},
		Compression: export.CompressionGzip, Schedule: everySchedule{d: 24 * time.Hour}, ScheduleName: "daily",
	}})
	since, until := base.Add(10*time.Minute), base.Add(150*time.Minute)
	status, body := call(ts.HandleRun, "POST", fmt.Sprintf("/export/run?since=%s&until=%s&format=ndjson,csv&client=acme",
		since.Format(time.RFC3339), until.Format(time.RFC3339)), "")
	if status != 202 || body["run_id"] == "" {
		t.Fatalf("run: %d %v", status, body)
	}
	id := body["run_id"].(string)
	var run Run
	waitFor(t, "run finished", 60*time.Second, func() bool {
		r, ok := ts.runs.get(id)
		run = r
		return ok && r.State != RunRunning
	})
	if run.State != RunSucceeded || run.FromArchive == 0 || run.FromWAL == 0 {
		t.Fatalf("run %+v (WAL first index %d)", run, walFirst)
	}
	keys := fileObjects(t, root)
	for _, k := range keys {
		if !strings.HasPrefix(k, "m/"+ManualPrefix+"/"+id+"/") {
			t.Fatalf("manual run wrote outside its prefix: %s", k)
		}
	}
	got, manifests := readAll(t, fs, keys)
	if len(manifests) == 0 {
		t.Fatal("no manifest")
	}
	n := 0
	for idx, w := range want {
		inRange := !w.ReceivedAt.Before(since) && w.ReceivedAt.Before(until)
		if !inRange {
			if len(got[idx]) != 0 {
				t.Fatalf("event %d outside the range exported", idx)
			}
			continue
		}
		n++
		if len(got[idx]) != 2 { // ndjson + csv
			t.Fatalf("event %d exported %d times, want 2 (from %s)", idx, len(got[idx]), map[bool]string{true: "archive", false: "WAL"}[idx < walFirst])
		}
		for _, g := range got[idx] {
			f := export.FormatNDJSON
			if g.ReceivedAt.IsZero() {
				f = export.FormatCSV
			}
			checkEvent(t, f, idx, g, w)
		}
	}
	if run.Events != 2*n && run.Events != n {
		t.Fatalf("run counted %d events, %d in range", run.Events, n)
	}
	if status, body := call(ts.HandleStatus, "GET", "/export/status?run_id="+id, ""); status != 200 || body["run"] == nil {
		t.Fatalf("run status %d %v", status, body)
	}
}

// testDatabase creates a throwaway database with the loader's events table.
func testDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.New(t, "collector_test_shipper"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `CREATE TABLE events (
		id bigint NOT NULL, node_id text NOT NULL, event_id uuid NOT NULL, event_type text, session_id text,
		visitor_id text, site_id text, timestamp timestamptz, url text, path text, ip_address inet,
		user_agent text, raw_event_data jsonb, created_at timestamptz DEFAULT now(), received_at timestamptz NOT NULL,
		referrer text, PRIMARY KEY (node_id, id))`)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func copyToArchive(t *testing.T, pool *pgxpool.Pool, evs map[uint64]event.Event, upTo uint64) {
	t.Helper()
	var rows [][]any
	for id, e := range evs {
		if id > upTo {
			continue
		}
		rows = append(rows, []any{int64(id), e.NodeID, e.EventID, e.EventType, e.SessionID, e.VisitorID, e.SiteID, e.Timestamp,
			e.URL, e.Path, e.IPAddress, e.UserAgent, string(e.Raw), e.ReceivedAt, e.Referrer})
	}
	_, err := pool.CopyFrom(context.Background(), pgx.Identifier{"events"}, []string{"id", "node_id", "event_id", "event_type",
		"session_id", "visitor_id", "site_id", "timestamp", "url", "path", "ip_address", "user_agent", "raw_event_data",
		"received_at", "referrer"}, pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatal(err)
	}
}
