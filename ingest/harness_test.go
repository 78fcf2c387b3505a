package ingest

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/wal"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// fakeAppender is an in-process Appender for unit tests. It copies what it
// is given (the handler reuses that memory) and can be told to fail.
type fakeAppender struct {
	mu      sync.Mutex
	calls   int
	records [][]byte
	err     error
	next    uint64
}

func (f *fakeAppender) Append(ctx context.Context, records [][]byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	first := f.next + 1
	for _, r := range records {
		f.records = append(f.records, append([]byte(nil), r...))
	}
	f.next += uint64(len(records))
	return first, nil
}

func (f *fakeAppender) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Stats and Err make the fake a httpapi.WALState too, so /health follows it.
func (f *fakeAppender) Stats() wal.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return wal.Stats{FirstIndex: 1, LastIndex: f.next, Segments: 1, Full: f.err == wal.ErrFull, Sync: wal.SyncAlways}
}

func (f *fakeAppender) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeAppender) events(t *testing.T) []event.Event {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var d event.Decoder
	out := make([]event.Event, len(f.records))
	for i, r := range f.records {
		if !json.Valid(r) {
			t.Fatalf("record %d is not valid JSON: %s", i, r)
		}
		if err := d.DecodeRecord(r, &out[i]); err != nil {
			t.Fatalf("record %d does not decode: %v\n%s", i, err, r)
		}
	}
	return out
}

func (f *fakeAppender) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type harness struct {
	t   *testing.T
	app *fakeAppender
	reg *prometheus.Registry
	ln  *fasthttputil.InmemoryListener
	h   *Handler
}

// newHarness serves ingest behind the real httpapi server (router, CORS,
// limits) on an in-memory listener.
func newHarness(t *testing.T, mutate ...func(*Options, *httpapi.Options)) *harness {
	t.Helper()
	app := &fakeAppender{}
	h := newHarnessWith(t, app, app, mutate...)
	h.app = app
	return h
}

// newHarnessWith serves ingest writing to app, with walState behind /health.
func newHarnessWith(t *testing.T, app Appender, walState httpapi.WALState, mutate ...func(*Options, *httpapi.Options)) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{NodeID: "node-test", MaxBodyBytes: 64 << 10, MaxBatchEvents: 10, Registerer: reg}
	hopts := httpapi.Options{
		MaxBodyBytes: 64 << 10, CORSAllowedOrigins: []string{"https://example.com"}, NodeID: "node-test",
		Registerer: reg, Gatherer: reg, WAL: walState,
	}
	for _, m := range mutate {
		m(&opts, &hopts)
	}
	h, err := New(app, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpapi.New(hopts, h.Routes())
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &harness{t: t, reg: reg, ln: ln, h: h}
}

type request struct {
	method, uri, contentType string
	body                     string
	headers                  map[string]string
	peer                     string // client address as the server sees it, "ip:port"
}

type response struct {
	status  int
	header  map[string]string
	body    []byte
	decoded map[string]any
}

func (h *harness) do(r request) response {
	h.t.Helper()
	dial := func(string) (net.Conn, error) { return h.ln.Dial() }
	if r.peer != "" {
		addr, err := net.ResolveTCPAddr("tcp", r.peer)
		if err != nil {
			h.t.Fatal(err)
		}
		dial = func(string) (net.Conn, error) { return h.ln.DialWithLocalAddr(addr) }
	}
	client := &fasthttp.HostClient{Addr: "collector.test", Dial: dial}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if r.method == "" {
		r.method = fasthttp.MethodPost
	}
	req.Header.SetMethod(r.method)
	req.SetRequestURI("http://collector.test" + r.uri)
	if r.contentType != "" {
		req.Header.SetContentType(r.contentType)
	} else {
		req.Header.Del(fasthttp.HeaderContentType)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	if r.body != "" {
		req.SetBodyString(r.body)
	}
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.uri, err)
	}
	out := response{status: resp.StatusCode(), header: map[string]string{}, body: append([]byte(nil), resp.Body()...)}
	for k, v := range resp.Header.All() {
		out.header[string(k)] = string(v)
	}
	if strings.HasPrefix(string(resp.Header.ContentType()), "application/json") {
		if err := json.Unmarshal(out.body, &out.decoded); err != nil {
			h.t.Fatalf("answer is not JSON: %v\n%s", err, out.body)
		}
	}
	return out
}

// counter reads a counter or histogram sample count from the registry.
func (h *harness) metric(name string, labels map[string]string) float64 {
	h.t.Helper()
	families, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
