package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func healthCLI(env map[string]string) (cli, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}, &out, &errOut
}

func TestHealthURLIsDerivedFromListenAddress(t *testing.T) {
	cases := []struct{ addr, want string }{
		{":8000", "http://127.0.0.1:8000/health"},
		{"0.0.0.0:8000", "http://127.0.0.1:8000/health"},
		{"[::]:9000", "http://[::1]:9000/health"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/health"},
		{"[::1]:8000", "http://[::1]:8000/health"},
		{"collector.internal:8000", "http://collector.internal:8000/health"},
	}
	for _, tc := range cases {
		got, err := healthURLFromAddr(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("healthURLFromAddr(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	for _, bad := range []string{"8000", "", "localhost:"} {
		if got, err := healthURLFromAddr(bad); err == nil {
			t.Errorf("healthURLFromAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHealthSucceedsOn200AndPrintsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.Method != http.MethodGet {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{"status":"degraded","database":"disconnected"}`))
	}))
	defer srv.Close()
	c, out, _ := healthCLI(nil)
	if err := runHealth(context.Background(), c, []string{"--url", srv.URL + "/health"}); err != nil {
		t.Fatalf("runHealth on 200: %v", err)
	}
	if !strings.Contains(out.String(), `"status":"degraded"`) {
		t.Fatalf("body not printed: %q", out.String())
	}
}

func TestHealthFailsOnNon200AndStillPrintsBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"unhealthy","wal":{"full":true}}`))
	}))
	defer srv.Close()
	c, out, _ := healthCLI(nil)
	err := runHealth(context.Background(), c, []string{"--url", srv.URL + "/health"})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("runHealth on 503 = %v, want an error naming 503", err)
	}
	if errors.As(err, new(usageError)) {
		t.Fatalf("a failed check is not a usage error: %v", err)
	}
	if !strings.Contains(out.String(), `"unhealthy"`) {
		t.Fatalf("body not printed: %q", out.String())
	}
}

func TestHealthUsesCollectorAddrWhenNoURLGiven(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"healthy"}`))
	}))
	defer srv.Close()
	c, out, _ := healthCLI(map[string]string{"COLLECTOR_ADDR": srv.Listener.Addr().String()})
	if err := runHealth(context.Background(), c, nil); err != nil {
		t.Fatalf("runHealth with COLLECTOR_ADDR=%s: %v", srv.Listener.Addr(), err)
	}
	if !strings.Contains(out.String(), "healthy") {
		t.Fatalf("body not printed: %q", out.String())
	}
}

func TestHealthFailsWhenNothingListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _, _ := healthCLI(map[string]string{"COLLECTOR_ADDR": addr})
	if err := runHealth(context.Background(), c, nil); err == nil {
		t.Fatal("runHealth against a closed port succeeded")
	}
}

func TestHealthGivesUpAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _, _ := healthCLI(nil)
	err := runHealth(context.Background(), c, []string{"--url", srv.URL + "/health", "--timeout", "200ms"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("runHealth against a hung server = %v, want a deadline error", err)
	}
}

func TestHealthRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{{"--timeout", "0s"}, {"extra"}, {"--url", "::not a url"}, {"--nope"}} {
		c, _, _ := healthCLI(nil)
		err := runHealth(context.Background(), c, args)
		if !errors.As(err, new(usageError)) {
			t.Errorf("runHealth(%q) = %v, want a usage error", args, err)
		}
	}
}
