package httpapi

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

type testServer struct {
	t   *testing.T
	srv *Server
	ln  *fasthttputil.InmemoryListener
}

// serve starts s on an in-memory listener until the test ends.
func serve(t *testing.T, opts Options, routes []Route, health ...HealthReporter) *testServer {
	t.Helper()
	s, err := New(opts, routes, health...)
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &testServer{t: t, srv: s, ln: ln}
}

type answer struct {
	status int
	header map[string]string
	body   string
	json   map[string]any
}

func (ts *testServer) do(method, uri string, headers map[string]string, body string) answer {
	ts.t.Helper()
	client := &fasthttp.HostClient{Addr: "api.test", Dial: func(string) (net.Conn, error) { return ts.ln.Dial() }}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://api.test" + uri)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		ts.t.Fatalf("%s %s: %v", method, uri, err)
	}
	return decodeAnswer(ts.t, resp)
}

func decodeAnswer(t *testing.T, resp *fasthttp.Response) answer {
	t.Helper()
	a := answer{status: resp.StatusCode(), header: map[string]string{}, body: string(resp.Body())}
	for k, v := range resp.Header.All() {
		a.header[string(k)] = string(v)
	}
	if strings.HasPrefix(string(resp.Header.ContentType()), ContentTypeJSON) {
		if err := json.Unmarshal(resp.Body(), &a.json); err != nil {
			t.Fatalf("answer is not JSON: %v\n%s", err, resp.Body())
		}
	}
	return a
}

// isError checks the standard error shape.
func (a answer) isError(status int, field string) bool {
	_, hasMessage := a.json["message"].(string)
	return a.status == status && a.json["status"] == "error" && hasMessage && a.json["field"] == field
}

func okHandler(ctx *fasthttp.RequestCtx) { WriteJSON(ctx, 200, map[string]string{"status": "ok"}) }
