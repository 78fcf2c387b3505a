package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/gif"
	"strings"
	"testing"

	"github.com/evothesis/collector/wal"
)

func checkGIF(t *testing.T, r response) {
	t.Helper()
	if r.status != 200 || r.header["Content-Type"] != "image/gif" || r.header["Cache-Control"] != "no-store" {
		t.Fatalf("status %d, headers %v", r.status, r.header)
	}
	img, err := gif.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("body is not a GIF: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1 || b.Dy() != 1 {
		t.Fatalf("GIF is %v, want 1x1", b)
	}
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Fatalf("GIF pixel is not transparent (alpha %d)", a)
	}
}

func TestPixelAnswersGIFWhateverHappens(t *testing.T) {
	h := newHarness(t)
	valid := "?eventType=pageview&siteId=example-com&utm_campaign=spring"
	cases := []struct {
		name     string
		uri      string
		walErr   error
		stored   bool
		failures map[string]float64 // collector_pixel_failures_total by reason, cumulative
	}{
		{"pixel.gif stored", "/pixel.gif" + valid, nil, true, nil},
		{"GET /collect stored", "/collect" + valid, nil, true, nil},
		{"missing siteId", "/pixel.gif?eventType=pageview", nil, false, map[string]float64{"invalid_event": 1}},
		{"no parameters", "/collect", nil, false, map[string]float64{"invalid_event": 2}},
		{"WAL full", "/pixel.gif" + valid, wal.ErrFull, false, map[string]float64{"wal_full": 1}},
		{"WAL failed", "/collect" + valid, fmt.Errorf("%w: fsync: input/output error", wal.ErrFailed), false, map[string]float64{"wal_failed": 1}},
		{"WAL closed", "/pixel.gif" + valid, wal.ErrClosed, false, map[string]float64{"wal_closed": 1}},
		{"other append error", "/pixel.gif" + valid, errors.New("boom"), false, map[string]float64{"append_error": 1}},
		{"deadline", "/pixel.gif" + valid, context.DeadlineExceeded, false, map[string]float64{"append_error": 2}},
	}
	stored := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.app.setErr(c.walErr)
			checkGIF(t, h.do(request{method: "GET", uri: c.uri}))
			if c.stored {
				stored++
			}
			if got := len(h.app.events(t)); got != stored {
				t.Fatalf("stored %d events, want %d", got, stored)
			}
			for reason, want := range c.failures {
				if got := h.metric("collector_pixel_failures_total", map[string]string{"reason": reason}); got != want {
					t.Fatalf("pixel failures %s = %v, want %v", reason, got, want)
				}
			}
		})
	}
	h.app.setErr(nil)
	evs := h.app.events(t)
	if !strings.Contains(string(evs[0].Raw), `"attribution":{"utmParams":{"utm_campaign":"spring"}}`) {
		t.Fatalf("raw %s", evs[0].Raw)
	}
	if got := h.metric("collector_http_requests_total", map[string]string{"route": "/pixel.gif", "status": "200"}); got != 6 {
		t.Fatalf("requests_total{/pixel.gif,200} = %v, want 6", got)
	}
}

// A failing Append must never be answered "success", for any request form.
func TestFailingAppendNeverYieldsSuccess(t *testing.T) {
	h := newHarness(t)
	errs := []error{wal.ErrFull, fmt.Errorf("%w: write: no space left on device", wal.ErrFailed), wal.ErrClosed,
		context.DeadlineExceeded, errors.New("unexpected")}
	bodies := []struct{ name, uri, contentType, body string }{
		{"single", "/collect", "application/json", seedPageview},
		{"batch", "/collect", "application/json", `[{"eventType":"a","siteId":"s"},{"eventType":"b","siteId":"s"}]`},
		{"partly bad batch", "/collect", "application/json", `[{"eventType":"a","siteId":"s"},{"eventType":"b"}]`},
		{"envelope", "/collect", "text/plain", `{"events":[{"eventType":"a","siteId":"s"}]}`},
		{"query", "/collect?eventType=a&siteId=s", "", ""},
		{"form", "/collect", "application/x-www-form-urlencoded", "eventType=a&siteId=s"},
	}
	for _, walErr := range errs {
		for _, b := range bodies {
			t.Run(fmt.Sprintf("%v/%s", walErr, b.name), func(t *testing.T) {
				h.app.setErr(walErr)
				r := h.do(request{uri: b.uri, contentType: b.contentType, body: b.body})
				if r.status != 503 || r.header["Retry-After"] == "" {
					t.Fatalf("status %d, Retry-After %q: %s", r.status, r.header["Retry-After"], r.body)
				}
				if r.decoded["status"] != "error" || strings.Contains(string(r.body), "success") || strings.Contains(string(r.body), "stored\"") {
					t.Fatalf("answer claims success: %s", r.body)
				}
				if _, ok := r.decoded["field"]; !ok {
					t.Fatalf("error answer without field: %s", r.body)
				}
			})
		}
	}
	h.app.setErr(nil)
	if n := len(h.app.events(t)); n != 0 {
		t.Fatalf("%d events stored", n)
	}
	if got := h.metric("collector_events_accepted_total", nil); got != 0 {
		t.Fatalf("accepted_total = %v after only failures", got)
	}
	if got := h.metric("collector_events_rejected_total", map[string]string{"reason": "wal_full"}); got != 7 {
		t.Fatalf("rejected{wal_full} = %v, want 7 (1+2+1+1+1+1)", got)
	}
}

func TestHealthFollowsTheWAL(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		walErr      error
		health      int
		status      string
		ready       int
		collectCode int
	}{
		{nil, 200, "healthy", 200, 200},
		{wal.ErrFull, 503, "unhealthy", 503, 503},
		{fmt.Errorf("%w: fsync failed", wal.ErrFailed), 503, "unhealthy", 503, 503},
		{nil, 200, "healthy", 200, 200},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i, c.walErr), func(t *testing.T) {
			h.app.setErr(c.walErr)
			r := h.do(request{method: "GET", uri: "/health"})
			if r.status != c.health || r.decoded["status"] != c.status || r.decoded["database"] != "not configured" {
				t.Fatalf("health %d: %s", r.status, r.body)
			}
			if _, ok := r.decoded["wal"].(map[string]any)["last_index"]; !ok {
				t.Fatalf("health without wal state: %s", r.body)
			}
			if r := h.do(request{method: "GET", uri: "/ready"}); r.status != c.ready {
				t.Fatalf("ready %d: %s", r.status, r.body)
			}
			if r := h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest}); r.status != c.collectCode {
				t.Fatalf("collect %d: %s", r.status, r.body)
			}
		})
	}
}

func TestMetricsCountRequestsAndEvents(t *testing.T) {
	h := newHarness(t)
	h.do(request{uri: "/collect", contentType: "application/json", body: seedPageview})
	h.do(request{uri: "/collect", contentType: "application/json", body: `[{"eventType":"a","siteId":"s"},{"eventType":"b","siteId":"s"},{"x":1}]`})
	h.do(request{uri: "/collect", contentType: "application/json", body: `{`})
	h.do(request{method: "GET", uri: "/pixel.gif?eventType=a&siteId=s"})
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"collector_events_accepted_total", nil, 4},
		{"collector_events_rejected_total", map[string]string{"reason": "invalid_event"}, 1},
		{"collector_events_rejected_total", map[string]string{"reason": "malformed"}, 1},
		{"collector_http_requests_total", map[string]string{"route": "/collect", "status": "200"}, 1},
		{"collector_http_requests_total", map[string]string{"route": "/collect", "status": "207"}, 1},
		{"collector_http_requests_total", map[string]string{"route": "/collect", "status": "400"}, 1},
		{"collector_accept_duration_seconds", nil, 3}, // sample count: the acknowledged requests
		{"collector_batch_events", nil, 3},            // sample count: requests that reached parsing of events
	}
	for _, w := range want {
		if got := h.metric(w.name, w.labels); got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	r := h.do(request{method: "GET", uri: "/metrics"})
	if r.status != 200 || !strings.Contains(string(r.body), "collector_events_accepted_total 4") {
		t.Fatalf("/metrics %d:\n%s", r.status, r.body)
	}
}
