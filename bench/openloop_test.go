package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// virtualClock makes the open loop deterministic: sleeping and serving a
// request advance time instead of taking it.
type virtualClock struct{ ns atomic.Int64 }

func (c *virtualClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *virtualClock) sleep(d time.Duration)   { c.ns.Add(int64(d)) }
func (c *virtualClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// stallingTransport answers every request in 100µs, except request stallAt
// which takes stall.
func stallingTransport(c *virtualClock, stallAt int, stall time.Duration) func(*fasthttp.Request, *fasthttp.Response) error {
	var n atomic.Int64
	return func(req *fasthttp.Request, resp *fasthttp.Response) error {
		if n.Add(1) == int64(stallAt) {
			c.advance(stall)
		} else {
			c.advance(100 * time.Microsecond)
		}
		resp.SetStatusCode(200)
		resp.Header.SetContentType("application/json")
		resp.SetBodyString(`{"status":"success","message":"Event received and stored","event_id":"00000000-0000-7000-8000-000000000001","timestamp":"x"}`)
		return nil
	}
}

func runVirtual(t *testing.T, rate float64) *LoadResult {
	t.Helper()
	c := &virtualClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	res, err := Run(context.Background(), LoadOptions{
		Target: "http://127.0.0.1:1", Connections: 1, Rate: rate, MaxRequests: 300,
		Traffic: TrafficOptions{RunID: "rv", Mix: Mix{KindJSON: 1}},
		now:     c.now, sleep: c.sleep, send: stallingTransport(c, 50, 100*time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A 100 ms stall at 1000 req/s delays the ~100 requests that should have been
// sent during it; the open loop charges each of them its wait, the service
// time (what a closed-loop tool reports) hides it.
func TestOpenLoopMeasuresFromIntendedSendTime(t *testing.T) {
	res := runVirtual(t, 1000)
	if res.Mode != "open" || res.Requests != 300 || res.Service == nil {
		t.Fatalf("mode %s requests %d", res.Mode, res.Requests)
	}
	if res.Latency.Max < 99 || res.Latency.Max > 101 {
		t.Fatalf("max latency %.3f ms, want the 100 ms stall", res.Latency.Max)
	}
	// Requests 51..~150 waited behind the stall: about a third of 300.
	if res.Latency.P50 > 1 || res.Latency.P90 < 40 {
		t.Fatalf("intended-time latency p50 %.3f p90 %.3f: the stall's victims are not counted", res.Latency.P50, res.Latency.P90)
	}
	if res.Service.P90 > 0.2 || res.Service.Max < 99 {
		t.Fatalf("service time p90 %.3f max %.3f", res.Service.P90, res.Service.Max)
	}
	if res.LateSends < 90 || res.LateSends > 110 {
		t.Fatalf("late sends %d, want about 100", res.LateSends)
	}
	// 300 requests at 1000/s take 0.3 s of (virtual) time, stall included.
	if res.Elapsed < 0.29 || res.Elapsed > 0.31 {
		t.Fatalf("elapsed %.3fs, want the schedule's 0.3s", res.Elapsed)
	}
}

func TestClosedLoopHidesTheStallThatOpenLoopShows(t *testing.T) {
	c := &virtualClock{}
	res, err := Run(context.Background(), LoadOptions{
		Target: "http://127.0.0.1:1", Connections: 1, MaxRequests: 300,
		Traffic: TrafficOptions{RunID: "rv", Mix: Mix{KindJSON: 1}},
		now:     c.now, sleep: c.sleep, send: stallingTransport(c, 50, 100*time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "closed" || res.Latency.P99 > 1 || res.Latency.Max < 99 {
		t.Fatalf("closed loop: p99 %.3f max %.3f", res.Latency.P99, res.Latency.Max)
	}
}

func TestOpenLoopDurationBoundsTheSchedule(t *testing.T) {
	c := &virtualClock{}
	res, err := Run(context.Background(), LoadOptions{
		Target: "http://127.0.0.1:1", Connections: 2, Rate: 500, Duration: time.Second,
		Traffic: TrafficOptions{RunID: "rv", Mix: Mix{KindJSON: 1}},
		now:     c.now, sleep: c.sleep, send: stallingTransport(c, -1, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 {
		t.Fatalf("%d requests in 1 s at 500/s", res.Requests)
	}
}
