package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fasthttp"
)

var fuzzContentTypes = []string{"application/json", "text/plain;charset=UTF-8", "", "application/x-www-form-urlencoded", "multipart/form-data"}

// FuzzParseBody drives POST /collect with arbitrary bodies, content types and
// query strings. It must never panic, always answer JSON with a known status,
// store nothing unless it answered 200/207, and everything it stored must be
// a record that event.Decoder decodes into a loadable event.
func FuzzParseBody(f *testing.F) {
	seeds := []string{seedPageview, seedCurlTest,
		`[{"eventType":"a","siteId":"s"},{"eventType":"b"},3]`,
		`{"events":[{"eventType":"a","siteId":"s","timestamp":1750593600123}]}`,
		`{"eventType":"a\u0000","siteId":"s","url":"\ud800","x":[[[{"y":null}]]]}`,
		"eventType=a&siteId=s&utm_source=x%00y", `{"eventType":"p","siteId":"s","timestamp":{"a":1}}`, ``, `[`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i), "")
	}
	f.Add([]byte(""), uint8(2), "eventType=pageview&siteId=site&timestamp=2025-06-22T12:00:00Z")
	app := &fakeAppender{}
	h, err := New(app, Options{NodeID: "fuzz", MaxBatchEvents: 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8, query string) {
		app.mu.Lock()
		app.records = app.records[:0]
		app.mu.Unlock()
		var req fasthttp.Request
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/collect?" + query)
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			req.Header.SetContentType(c)
		}
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		h.ServeCollect(&ctx)

		status := ctx.Response.StatusCode()
		answer := ctx.Response.Body()
		var decoded map[string]any
		if err := json.Unmarshal(answer, &decoded); err != nil {
			t.Fatalf("answer is not JSON (%v): %q", err, answer)
		}
		switch status {
		case 200, 207, 400, 413, 415:
		default:
			t.Fatalf("unexpected status %d: %s", status, answer)
		}
		stored := app.events(t) // decodes every record, failing on any error
		if status >= 300 && len(stored) > 0 {
			t.Fatalf("status %d but %d events stored", status, len(stored))
		}
		if status < 300 {
			want := 1
			if n, ok := decoded["accepted"].(float64); ok {
				want = int(n)
			}
			if len(stored) != want {
				t.Fatalf("answered %d accepted, stored %d: %s", want, len(stored), answer)
			}
		}
		for _, e := range stored {
			checkLoadable(t, &e)
			// The record must survive a decode/encode round trip unchanged.
			again := event.AppendRecord(nil, &e)
			var d event.Decoder
			var e2 event.Event
			if err := d.DecodeRecord(again, &e2); err != nil || e2.EventID != e.EventID || !e2.Timestamp.Equal(e.Timestamp) || e2.URL != e.URL {
				t.Fatalf("round trip changed the event: %v", err)
			}
		}
	})
}

// checkLoadable asserts what the loader and the exporters rely on.
func checkLoadable(t *testing.T, e *event.Event) {
	t.Helper()
	if e.EventType == "" || !validSiteID(e.SiteID) || e.EventID == "" || e.ReceivedAt.IsZero() || e.Timestamp.IsZero() {
		t.Fatalf("incomplete event %+v", e)
	}
	for name, s := range map[string]string{"event_type": e.EventType, "session_id": e.SessionID, "visitor_id": e.VisitorID,
		"url": e.URL, "path": e.Path, "referrer": e.Referrer, "timestamp_raw": e.TimestampRaw, "user_agent": e.UserAgent} {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("%s %q would not load into PostgreSQL text", name, s)
		}
	}
	if len(e.URL) > maxURLBytes || len(e.Path) > maxPathBytes || len(e.SessionID) > maxIDBytes || len(e.TimestampRaw) > maxTimestampRawBytes {
		t.Fatalf("field over its cap: %+v", e)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil || !utf8.Valid(e.Raw) || bytes.Contains(e.Raw, []byte(`\u0000`)) {
		t.Fatalf("raw %q is not a jsonb-loadable object (%v)", e.Raw, err)
	}
}
