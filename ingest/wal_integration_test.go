package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// openWAL opens a real WAL in a temporary directory.
func openWAL(t *testing.T, opts wal.Options) *wal.Log {
	t.Helper()
	opts.Dir = t.TempDir()
	l, err := wal.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// newRealWALHarness serves ingest and httpapi on the real WAL l.
func newRealWALHarness(t *testing.T, l *wal.Log) *harness {
	t.Helper()
	return newHarnessWith(t, l, l)
}

// Every acknowledged event_id is in the WAL exactly once, and nothing else is.
func TestAcknowledgedEventsAreInTheWAL(t *testing.T) {
	l := openWAL(t, wal.Options{Sync: wal.SyncAlways})
	h := newRealWALHarness(t, l)
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				var r response
				switch i % 3 {
				case 0:
					r = h.do(request{uri: "/collect", contentType: "text/plain", body: fmt.Sprintf(`{"eventType":"e","siteId":"s","sessionId":"w%d-%d"}`, w, i)})
				case 1:
					r = h.do(request{uri: "/collect", contentType: "application/json", body: fmt.Sprintf(`[{"eventType":"a","siteId":"s","sessionId":"w%d-%d"},{"bad":1},{"eventType":"b","siteId":"s"}]`, w, i)})
				default:
					r = h.do(request{method: "GET", uri: fmt.Sprintf("/pixel.gif?eventType=p&siteId=s&sessionId=w%d-%d", w, i)})
				}
				mu.Lock()
				switch {
				case r.decoded == nil: // the pixel: no id in the answer
				case r.decoded["event_id"] != nil:
					acked[r.decoded["event_id"].(string)] = true
				default:
					for _, res := range r.decoded["results"].([]any) {
						if id, ok := res.(map[string]any)["event_id"].(string); ok {
							acked[id] = true
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	var d event.Decoder
	var pixels int
	err := wal.Scan(context.Background(), l.Dir(), 1, func(rec wal.Record) error {
		var e event.Event
		if err := d.DecodeRecord(rec.Data, &e); err != nil {
			return fmt.Errorf("record %d: %w", rec.Index, err)
		}
		checkLoadable(t, &e)
		seen[e.EventID]++
		if e.EventType == "p" {
			pixels++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged %s is in the WAL %d times", id, seen[id])
		}
	}
	if want := len(acked) + pixels; len(seen) != want || pixels != 8*3 {
		t.Errorf("WAL has %d events, want %d acknowledged + %d pixels", len(seen), len(acked), pixels)
	}
}

// With a WAL over WAL_MAX_BYTES ingest answers 503 + Retry-After, the pixel
// still answers its GIF, and /health and /ready say why.
func TestFullWALIsAnsweredHonestly(t *testing.T) {
	l := openWAL(t, wal.Options{Sync: wal.SyncNever, SegmentBytes: 64 << 10, MaxBytes: 128 << 10})
	h := newRealWALHarness(t, l)
	body := `{"eventType":"fill","siteId":"s","padding":"` + strings.Repeat("x", 8000) + `"}`
	full := false
	for i := 0; i < 100 && !full; i++ {
		r := h.do(request{uri: "/collect", contentType: "application/json", body: body})
		switch r.status {
		case 200:
		case 503:
			full = true
			if r.header["Retry-After"] == "" || r.decoded["status"] != "error" || !strings.Contains(fmt.Sprint(r.decoded["message"]), "full") {
				t.Fatalf("503 answer %v %s", r.header, r.body)
			}
		default:
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	if !full {
		t.Fatal("WAL never filled up")
	}
	// Top it up with small events until even those are refused.
	for i := 0; ; i++ {
		if r := h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest}); r.status == 503 {
			break
		}
		if i > 2000 {
			t.Fatal("small events never refused")
		}
	}
	checkGIF(t, h.do(request{method: "GET", uri: "/pixel.gif?eventType=p&siteId=s"}))
	if got := h.metric("collector_pixel_failures_total", map[string]string{"reason": "wal_full"}); got != 1 {
		t.Fatalf("pixel failures{wal_full} = %v", got)
	}
	if r := h.do(request{method: "GET", uri: "/health"}); r.status != 503 || r.decoded["status"] != "unhealthy" {
		t.Fatalf("health %d %s", r.status, r.body)
	}
	if r := h.do(request{method: "GET", uri: "/ready"}); r.status != 503 {
		t.Fatalf("ready %d %s", r.status, r.body)
	}
}

// After Close, ingest answers 503 (a request racing shutdown is never
// acknowledged without being stored).
func TestClosedWALIsAnswered503(t *testing.T) {
	l := openWAL(t, wal.Options{})
	h := newRealWALHarness(t, l)
	checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest}))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest})
	if r.status != 503 || r.header["Retry-After"] == "" || !strings.Contains(string(r.body), "shutting down") {
		t.Fatalf("after close: %d %s", r.status, r.body)
	}
}
