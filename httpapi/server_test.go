package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// serveLoopback runs s on a real 127.0.0.1 listener.
func serveLoopback(t *testing.T, s *Server) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stopped := false
	var stopErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = errors.New("server did not stop")
			}
		}
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

// rawExchange writes raw bytes to the server and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, map[string]any) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var decoded map[string]any
	if err := json.Unmarshal(body, &decoded); err != nil {
		t.Fatalf("status %d, body not JSON: %q", resp.StatusCode, body)
	}
	return resp, decoded
}

func TestProtocolErrorsAnswerJSON(t *testing.T) {
	s, err := New(Options{MaxBodyBytes: 1024, MaxHeaderBytes: 4096, ReadTimeout: 300 * time.Millisecond,
		CORSAllowedOrigins: []string{"https://shop.example"}},
		[]Route{{Method: "POST", Path: "/collect", Handler: okHandler}})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveLoopback(t, s)
	big := strings.Repeat("x", 5000)
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big)
	cases := []struct {
		name   string
		raw    string
		status int
		field  string
		cors   bool
	}{
		{"Content-Length over MAX_BODY_BYTES", "POST /collect HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n" + big, 413, "body", true},
		{"chunked body over MAX_BODY_BYTES", "POST /collect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked, 413, "body", false},
		{"headers over MAX_HEADER_BYTES", "POST /collect HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("y", 6000) + "\r\n\r\n", 431, "headers", false},
		{"garbage request", "NOT HTTP AT ALL\r\n\r\n", 400, "", false},
		{"slow client", "POST /collect HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 408, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, c.raw)
			if resp.StatusCode != c.status || body["status"] != "error" || body["field"] != c.field {
				t.Fatalf("status %d body %v, want %d with field %q", resp.StatusCode, body, c.status, c.field)
			}
			if c.cors && resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
				t.Fatalf("no CORS on the protocol error: %v", resp.Header)
			}
		})
	}
}

func TestShutdownFinishesInFlightRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, err := New(Options{ShutdownTimeout: 10 * time.Second}, []Route{{Method: "GET", Path: "/slow", Handler: func(ctx *fasthttp.RequestCtx) {
		close(entered)
		<-release
		ctx.SetBodyString("finished")
	}}})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serveLoopback(t, s)
	result := make(chan string, 1)
	go func() {
		status, body, err := fasthttp.GetTimeout(nil, "http://"+addr+"/slow", 10*time.Second)
		result <- fmt.Sprint(status, " ", string(body), " ", err)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// New connections are refused once shutdown has begun...
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	default:
	}
	// ...and the request in flight still gets its answer.
	close(release)
	if got := <-result; got != "200 finished <nil>" {
		t.Fatalf("in-flight request: %s", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestShutdownGivesUpAfterShutdownTimeout(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	s, err := New(Options{ShutdownTimeout: 300 * time.Millisecond}, []Route{{Method: "GET", Path: "/stuck", Handler: func(ctx *fasthttp.RequestCtx) {
		close(entered)
		<-release
	}}})
	if err != nil {
		t.Fatal(err)
	}
	addr, stop := serveLoopback(t, s)
	go func() { _, _, _ = fasthttp.GetTimeout(nil, "http://"+addr+"/stuck", 20*time.Second) }()
	<-entered
	if err := stop(); err == nil || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("Serve returned %v, want a shutdown timeout error", err)
	}
}

func TestReadyIsFalseWhileDraining(t *testing.T) {
	s, err := New(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.draining.Store(true)
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/ready")
	s.Handler()(&ctx)
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "shutting down") {
		t.Fatalf("ready while draining: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func TestMetricsEndpointCountsRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := serve(t, Options{Registerer: reg, Gatherer: reg}, []Route{{Method: "GET", Path: "/export/*", Handler: okHandler}})
	ts.do("GET", "/health", nil, "")
	ts.do("GET", "/export/a", nil, "")
	ts.do("GET", "/export/b", nil, "")
	ts.do("GET", "/no/such/path/1", nil, "")
	a := ts.do("GET", "/metrics", nil, "")
	for _, want := range []string{
		`collector_http_requests_total{route="/health",status="200"} 1`,
		`collector_http_requests_total{route="/export/*",status="200"} 2`,
		`collector_http_requests_total{route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, a.body)
		}
	}
	if noMetrics := serve(t, Options{}, nil); noMetrics.do("GET", "/metrics", nil, "").status != 404 {
		t.Error("/metrics served without a Gatherer")
	}
}

func TestWriteHelpers(t *testing.T) {
	var ctx fasthttp.RequestCtx
	WriteError(&ctx, 400, "bad \"thing\"\n", "siteId")
	if got := string(ctx.Response.Body()); got != `{"status":"error","message":"bad \"thing\"\n","field":"siteId"}` ||
		string(ctx.Response.Header.ContentType()) != ContentTypeJSON || ctx.Response.StatusCode() != 400 {
		t.Fatalf("WriteError: %d %s", ctx.Response.StatusCode(), got)
	}
	ctx.Response.Reset()
	WriteJSON(&ctx, 201, map[string]int{"n": 1})
	if string(ctx.Response.Body()) != `{"n":1}` || ctx.Response.StatusCode() != 201 {
		t.Fatalf("WriteJSON: %s", ctx.Response.Body())
	}
	ctx.Response.Reset()
	WriteJSON(&ctx, 200, func() {})
	if ctx.Response.StatusCode() != 500 {
		t.Fatalf("unencodable value: %d", ctx.Response.StatusCode())
	}
}

func TestAppendTimestampMatchesLayout(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("x", -5*3600), time.FixedZone("y", 5*3600+1800)}
	for i, ts := range []time.Time{
		time.Date(2025, 6, 22, 12, 0, 0, 123456789, time.UTC), time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0),
	} {
		for _, z := range zones {
			in := ts.In(z)
			if got, want := string(AppendTimestamp(nil, in)), in.UTC().Format(TimestampLayout); got != want {
				t.Errorf("%d: %s, want %s", i, got, want)
			}
		}
	}
}

func TestProfilesNeedTheAdminToken(t *testing.T) {
	ts := serve(t, Options{AdminToken: "secret"}, nil)
	auth := map[string]string{"Authorization": "Bearer secret"}
	if a := ts.do("GET", "/debug/pprof/heap", nil, ""); !a.isError(401, "Authorization") {
		t.Errorf("heap profile without the token: %d %s", a.status, a.body)
	}
	heap := ts.do("GET", "/debug/pprof/heap", auth, "")
	if heap.status != 200 || !strings.HasPrefix(heap.body, "\x1f\x8b") {
		t.Errorf("heap profile: %d, %d bytes, want 200 and a gzipped profile", heap.status, len(heap.body))
	}
	if index := ts.do("GET", "/debug/pprof/", auth, ""); index.status != 200 || !strings.Contains(index.body, "goroutine") {
		t.Errorf("profile index: %d %.200s", index.status, index.body)
	}
	if goroutines := ts.do("GET", "/debug/pprof/goroutine?debug=1", auth, ""); goroutines.status != 200 || !strings.Contains(goroutines.body, "goroutine profile:") {
		t.Errorf("goroutine dump: %d %.200s", goroutines.status, goroutines.body)
	}
	if a := serve(t, Options{}, nil).do("GET", "/debug/pprof/heap", nil, ""); !a.isError(403, "Authorization") {
		t.Errorf("heap profile with admin endpoints disabled: %d %s", a.status, a.body)
	}
}
