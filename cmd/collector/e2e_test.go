package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// collectorBinary is built once per test run, the way `make build` builds it.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func collectorBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "collector-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "collector")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one running collector process.
type node struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

func startNode(t *testing.T, env map[string]string) *node {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(collectorBin(t), "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "COLLECTOR_ADDR=" + addr, "LOG_LEVEL=info", "NODE_ID=e2e-node"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	n := &node{t: t, cmd: cmd, addr: addr, logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n.mu.Lock()
			n.logs.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close(); close(n.done) }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("collector logs:\n%s", n.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("collector exited during start:\n%s", n.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector not ready after 30s:\n%s", n.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop() error {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		return fmt.Errorf("no exit 60s after SIGTERM")
	}
	if !n.cmd.ProcessState.Success() {
		return fmt.Errorf("exit after SIGTERM: %v", n.cmd.ProcessState)
	}
	return nil
}

type seedResponse struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	EventID   string `json:"event_id"`
	Timestamp string `json:"timestamp"`
}

// postEvents sends events from several connections until stop is closed and
// returns every event_id the collector acknowledged with the seed's success.
func postEvents(t *testing.T, addr string, workers int, stop <-chan struct{}) (acked []string, failures int64) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"eventType":"pageview","sessionId":"s%d","visitorId":"v%d","siteId":"example-com","url":"https://example.com/p/%d","path":"/p/%d"}`, w, w, i, i)
				resp, err := client.Post("http://"+addr+"/collect", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				var r seedResponse
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || r.Status != "success" {
					failed.Add(1)
					continue
				}
				mu.Lock()
				acked = append(acked, r.EventID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return acked, failed.Load()
}

func walEventIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	var d event.Decoder
	var e event.Event
	var prev uint64
	err := wal.Scan(context.Background(), dir, 1, func(r wal.Record) error {
		if r.Index != prev+1 {
			return fmt.Errorf("index %d follows %d", r.Index, prev)
		}
		prev = r.Index
		if err := d.DecodeRecord(r.Data, &e); err != nil {
			return fmt.Errorf("index %d: %w", r.Index, err)
		}
		ids[e.EventID]++
		return nil
	})
	if err != nil {
		t.Fatalf("scan WAL: %v", err)
	}
	return ids
}

// TestAcknowledgedEventsSurviveSIGKILL posts events concurrently to the real
// binary, SIGKILLs it mid-load, restarts it on the same WAL and checks that
// every acknowledged event_id is in the WAL exactly once.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	walDir := t.TempDir()
	// Retention keeps consumed segments so the whole history can be checked.
	env := map[string]string{"WAL_DIR": walDir, "WAL_SEGMENT_BYTES": "64KiB", "WAL_RETENTION": "1h", "EXPORT_DIR": t.TempDir(), "EXPORT_SCHEDULE": "realtime:1"}
	var allAcked []string
	for round := 0; round < 2; round++ {
		n := startNode(t, env)
		stop := make(chan struct{})
		type result struct {
			acked []string
			fails int64
		}
		res := make(chan result, 1)
		go func() { a, f := postEvents(t, n.addr, 16, stop); res <- result{a, f} }()
		time.Sleep(1500 * time.Millisecond)
		n.kill() // mid-load: requests are in flight
		close(stop)
		r := <-res
		if len(r.acked) == 0 {
			t.Fatalf("round %d: nothing acknowledged before the kill", round)
		}
		allAcked = append(allAcked, r.acked...)
		t.Logf("round %d: %d acknowledged, %d failed (in flight at the kill)", round, len(r.acked), r.fails)
	}
	// A clean restart repairs any torn tail and continues the indexes.
	n := startNode(t, env)
	acked, fails := postEvents(t, n.addr, 2, closedAfter(300*time.Millisecond))
	if fails != 0 {
		t.Fatalf("%d failures after restart", fails)
	}
	allAcked = append(allAcked, acked...)
	if err := n.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, n.log())
	}
	ids := walEventIDs(t, walDir)
	for _, id := range allAcked {
		switch ids[id] {
		case 1:
		case 0:
			t.Errorf("acknowledged event %s is not in the WAL", id)
		default:
			t.Errorf("acknowledged event %s is in the WAL %d times", id, ids[id])
		}
	}
	if rep, err := wal.Verify(walDir); err != nil || !rep.OK() {
		t.Fatalf("wal verify after clean stop: %+v %v", rep, err)
	}
	t.Logf("%d acknowledged events, %d records in the WAL", len(allAcked), len(ids))
}

func closedAfter(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
