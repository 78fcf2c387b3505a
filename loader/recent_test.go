package loader

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func getRecent(t *testing.T, h fasthttp.RequestHandler, query string) (int, map[string]any) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/events/recent" + query)
	ctx.Request.Header.SetMethod("GET")
	h(&ctx)
	var body map[string]any
	if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
		t.Fatalf("%s: body %q: %v", query, ctx.Response.Body(), err)
	}
	if ct := string(ctx.Response.Header.ContentType()); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	return ctx.Response.StatusCode(), body
}

func TestRecentEventsNewestFirst(t *testing.T) {
	db := newTestDB(t, false)
	for _, node := range []string{"node-a", "node-b"} {
		log := openWAL(t, t.TempDir())
		last := appendEvents(t, log, node, 0, 300, nil)
		l := startLoader(t, db.pool, log, fastOptions(node))
		waitFor(t, 10*time.Second, "load", func() bool { return l.loadedTo(last) })
	}
	h := RecentHandler(db.pool, 0)

	code, body := getRecent(t, h, "")
	events := body["events"].([]any)
	if code != 200 || body["status"] != "success" || len(events) != RecentDefaultLimit || body["count"].(float64) != RecentDefaultLimit {
		t.Fatalf("default: %d %v (%d events)", code, body["status"], len(events))
	}
	nodes := map[string]int{}
	var prev time.Time
	for i, e := range events {
		m := e.(map[string]any)
		for _, col := range []string{"id", "event_id", "event_type", "session_id", "visitor_id", "site_id", "timestamp", "url",
			"path", "ip_address", "user_agent", "raw_event_data", "created_at", "received_at", "referrer", "node_id"} {
			if _, ok := m[col]; !ok {
				t.Fatalf("event without %q: %v", col, m)
			}
		}
		if _, ok := m["raw_event_data"].(map[string]any); !ok {
			t.Fatalf("raw_event_data is not an object: %v", m["raw_event_data"])
		}
		recv, _ := time.Parse(time.RFC3339Nano, m["received_at"].(string))
		if i > 0 && recv.After(prev) {
			t.Fatalf("event %d received after event %d: not newest first", i, i-1)
		}
		prev = recv
		nodes[m["node_id"].(string)]++
	}
	if nodes["node-a"] == 0 || nodes["node-b"] == 0 {
		t.Errorf("newest across nodes came from %v only", nodes)
	}

	code, body = getRecent(t, h, "?site_id=acme-org&limit=1000")
	events = body["events"].([]any)
	if code != 200 || len(events) != 300 { // 150 of 300 per node are acme-org
		t.Fatalf("site: %d, %d events", code, len(events))
	}
	prev = time.Time{}
	for i, e := range events {
		m := e.(map[string]any)
		if m["site_id"] != "acme-org" {
			t.Fatalf("site filter leaked %v", m["site_id"])
		}
		ts, _ := time.Parse(time.RFC3339Nano, m["timestamp"].(string))
		if i > 0 && ts.After(prev) {
			t.Fatalf("site events not newest first at %d", i)
		}
		prev = ts
	}
	if code, body := getRecent(t, h, "?site_id=nobody"); code != 200 || len(body["events"].([]any)) != 0 {
		t.Fatalf("unknown site: %d %v", code, body)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=abc", "?limit=-5", "?limit="} {
		code, body := getRecent(t, h, q)
		if code != 400 || body["status"] != "error" || body["field"] != "limit" || body["message"] == "" {
			t.Errorf("%s: %d %v", q, code, body)
		}
	}
}

func TestRecentEventsWithoutDatabaseIs503(t *testing.T) {
	db := newTestDB(t, false)
	pool := db.newPool(t, dbURL(db.name, "127.0.0.1:1")) // nothing listens there
	code, body := getRecent(t, RecentHandler(pool, time.Second), "")
	if code != 503 || body["status"] != "error" {
		t.Fatalf("%d %v", code, body)
	}
}
