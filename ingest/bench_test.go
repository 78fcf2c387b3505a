package ingest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/wal"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// noopAppender stores nothing: it isolates ingest's own cost.
type noopAppender struct{}

func (noopAppender) Append(context.Context, [][]byte) (uint64, error) { return 1, nil }

func batchBody(n int) string {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seedPageview)
	}
	b.WriteString(`]}`)
	return b.String()
}

func benchParse(b *testing.B, body []byte, events int) {
	h, err := New(noopAppender{}, Options{NodeID: "bench", MaxBatchEvents: 1000})
	if err != nil {
		b.Fatal(err)
	}
	st := h.getState()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		st.reset()
		st.info = requestInfo{received: time.Now().UTC(), ip: "203.0.113.7", userAgent: "Mozilla/5.0", nodeID: "bench"}
		if _, rerr := h.readJSON(st, body); rerr != nil || st.accepted != events {
			b.Fatalf("%v accepted %d", rerr, st.accepted)
		}
		st.buildRecords()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// benchEvent is an event as the load generator (and a tracker calling
// JSON.stringify) sends it: compact, with a few nested objects, numbers and
// some non-ASCII text. The seed's pageview above is indented by hand, which
// makes whitespace look like half the parser's work.
const benchEvent = `{"eventType":"pageview","sessionId":"sess_fcaaf441c55530db","visitorId":"vis_288c056ed2edcd5e",` +
	`"siteId":"acme-com","timestamp":"2026-12-01T16:28:17.136Z","url":"https://www.acme.com/pricing?plan=pro",` +
	`"path":"/pricing","referrer":"https://www.acme.com/support/日本語-guide","title":"Pricing","language":"es-ES",` +
	`"timezone":"America/Los_Angeles","screen":{"width":2560,"height":1440},"viewport":{"width":2538,"height":1325},` +
	`"performance":{"ttfb":191,"domContentLoaded":1778,"loadTime":1850},` +
	`"attribution":{"utmParams":{"utm_source":"google","utm_medium":"cpc","utm_campaign":"spring"}}}`

func compactBatch(n int) string {
	return `{"events":[` + strings.TrimSuffix(strings.Repeat(benchEvent+",", n), ",") + `]}`
}

// Parse + normalize + encode of the seed's pageview.
func BenchmarkParseSingleEvent(b *testing.B) { benchParse(b, []byte(seedPageview), 1) }

// Parse + normalize + encode of a batch of 100 seed pageviews.
func BenchmarkParseBatch100(b *testing.B) { benchParse(b, []byte(batchBody(100)), 100) }

// The same with the load generator's compact events.
func BenchmarkParseSingleCompact(b *testing.B) { benchParse(b, []byte(benchEvent), 1) }
func BenchmarkParseBatch100Compact(b *testing.B) {
	benchParse(b, []byte(compactBatch(100)), 100)
}

// benchServe runs the whole stack (httpapi router, CORS, metrics, ingest)
// on a RequestCtx reused across iterations, which is what fasthttp does per
// connection: the allocations reported are ours.
func benchServe(b *testing.B, method, uri, body string, wantStatus int) {
	h, err := New(noopAppender{}, Options{NodeID: "bench", MaxBatchEvents: 1000})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Options{CORSAllowedOrigins: []string{"https://example.com"}}, h.Routes())
	if err != nil {
		b.Fatal(err)
	}
	handler := srv.Handler()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetContentType("text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://example.com")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
	req.SetBodyString(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 5000}, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ctx.Response.Reset()
		handler(&ctx)
		if ctx.Response.StatusCode() != wantStatus {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func BenchmarkHandlerSingleEvent(b *testing.B) {
	benchServe(b, fasthttp.MethodPost, "/collect", seedPageview, 200)
}

func BenchmarkHandlerBatch100(b *testing.B) {
	benchServe(b, fasthttp.MethodPost, "/collect", batchBody(100), 200)
}

func BenchmarkHandlerSingleCompact(b *testing.B) {
	benchServe(b, fasthttp.MethodPost, "/collect", benchEvent, 200)
}

func BenchmarkHandlerBatch100Compact(b *testing.B) {
	benchServe(b, fasthttp.MethodPost, "/collect", compactBatch(100), 200)
}

func BenchmarkHandlerPixel(b *testing.B) {
	benchServe(b, fasthttp.MethodGet, "/pixel.gif?eventType=pageview&siteId=example-com&sessionId=sess_abc123&url=https%3A%2F%2Fexample.com%2Fpage&utm_source=google", "", 200)
}

// BenchmarkServeInmemory is the whole server over fasthttp's in-memory
// listener, 64 keep-alive clients on the machine's CPUs (client cost
// included): a no-op fasthttp handler (the baseline every ingest figure is
// divided by), the collector storing nothing, and the collector over a real
// WAL in each sync mode, in one run so that their ratios mean something on a
// busy machine. With WAL_SYNC=always throughput depends on the disk.
func BenchmarkServeInmemory(b *testing.B) {
	success := []byte(`{"status":"success","message":"Event received and stored","event_id":"00000000-0000-7000-8000-000000000000","timestamp":"2024-01-15T10:30:00.000Z"}`)
	noop := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(success)
	}
	b.Run("noop", func(b *testing.B) { serveParallel(b, noop) })
	b.Run("collector/no-wal", func(b *testing.B) { serveParallel(b, collectorHandler(b, noopAppender{})) })
	for _, mode := range []wal.SyncMode{wal.SyncNever, wal.SyncInterval, wal.SyncAlways} {
		b.Run("collector/wal="+string(mode), func(b *testing.B) {
			l, err := wal.Open(context.Background(), wal.Options{Dir: b.TempDir(), Sync: mode})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			serveParallel(b, collectorHandler(b, l))
		})
	}
}

// collectorHandler is the collector's whole request handler over app.
func collectorHandler(b *testing.B, app Appender) fasthttp.RequestHandler {
	h, err := New(app, Options{NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Options{}, h.Routes())
	if err != nil {
		b.Fatal(err)
	}
	return srv.Handler()
}

func serveParallel(b *testing.B, handler fasthttp.RequestHandler) {
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: handler}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() { srv.Shutdown(); <-done }()
	client := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 256}
	body := []byte(seedPageview)
	b.ReportAllocs()
	b.SetParallelism(32) // 64 concurrent clients on 2 CPUs
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("http://collector/collect")
			req.Header.SetContentType("application/json")
			req.SetBody(body)
			if err := client.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != 200 {
				b.Errorf("status %d", resp.StatusCode())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
