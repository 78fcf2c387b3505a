package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConnectionsOverTheLimitGetJSON503(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Options{MaxConnections: 2, Registerer: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	get := func(c net.Conn) *http.Response {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /ready HTTP/1.1\r\nHost: collector\r\n\r\n"); err != nil {
			t.Fatalf("write request: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		return resp
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two keep-alive connections hold both slots.
	held := []net.Conn{dial(), dial()}
	for _, c := range held {
		if resp := get(c); resp.StatusCode != 200 {
			t.Fatalf("within the limit: status %d", resp.StatusCode)
		}
	}
	resp := get(dial())
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("over the limit: body is not JSON: %v", err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != ContentTypeJSON ||
		body["status"] != "error" || body["message"] == "" {
		t.Fatalf("over the limit: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	if got := testutil.ToFloat64(s.metrics.rejectedConns); got != 1 {
		t.Fatalf("collector_http_connections_rejected_total = %v, want 1", got)
	}
	// A closed connection gives its slot back.
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if resp := get(dial()); resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot freed by a closed connection was never reused")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
