package deploycheck

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// builtBinary is the collector built once per test run, the Dockerfile's
// way, shared by the tests that run it. TestMain removes its directory.
var builtBinary struct {
	once              sync.Once
	dir               string
	path, skip, fatal string
	log               string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBinary.dir != "" {
		os.RemoveAll(builtBinary.dir)
	}
	os.Exit(code)
}

// collectorBinary builds ./cmd/collector with the Dockerfile's own go build
// line (environment, flags, package). It skips (fails under CI) when the
// package does not build at all yet, and fails when only the Dockerfile's
// way of building it does not.
func collectorBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	b := &builtBinary
	b.once.Do(func() {
		gb := dockerGoBuild(t, parseRepoDockerfile(t))
		dir, err := os.MkdirTemp("", "deploycheck-bin-")
		if err != nil {
			b.fatal = err.Error()
			return
		}
		b.dir = dir
		bin := filepath.Join(dir, "collector")
		args := append(append([]string{"build"}, gb.Flags...), "-o", bin, gb.Package)
		cmd := exec.Command("go", args...)
		cmd.Dir = root(t)
		cmd.Env = os.Environ()
		for k, v := range gb.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err == nil {
			b.path = bin
			b.log = fmt.Sprintf("built as the Dockerfile does: %s go %s", envString(gb.Env), strings.Join(args, " "))
			return
		}
		plain := exec.Command("go", "build", "-o", filepath.Join(dir, "plain"), gb.Package)
		plain.Dir = root(t)
		if plainOut, plainErr := plain.CombinedOutput(); plainErr != nil {
			b.skip = fmt.Sprintf("%s does not build yet (a package it needs is unfinished): %v\n%s", gb.Package, plainErr, plainOut)
			return
		}
		b.fatal = fmt.Sprintf("the Dockerfile's go build fails where a plain go build works: %v\n%s", err, out)
	})
	switch {
	case b.fatal != "":
		t.Fatal(b.fatal)
	case b.skip != "" && inCI():
		t.Fatalf("CI is set: %s", b.skip)
	case b.skip != "":
		t.Skip(b.skip + "\nCI runs this test.")
	}
	t.Log(b.log)
	return b.path
}

func envString(env map[string]string) string {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, " ")
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runningCollector is `collector serve` started by a test.
type runningCollector struct {
	Base, WALDir string
	Env          []string // the child's whole environment
	Logs         *lockedBuffer
	cmd          *exec.Cmd
	exited       chan error
	done         bool
}

// startCollector runs `collector serve` with the image's environment (from
// the Dockerfile), its paths moved into a temp dir (a fresh volume: the WAL
// directory does not exist yet), a free loopback port, no database, and
// extra on top. It returns once /health answers.
func startCollector(t *testing.T, bin string, extra map[string]string) *runningCollector {
	t.Helper()
	tmp := t.TempDir()
	imageEnv, err := parseRepoDockerfile(t).Final().Env()
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	env := map[string]string{}
	for k, v := range imageEnv {
		env[k] = v
	}
	rc := &runningCollector{Base: "http://" + addr, WALDir: filepath.Join(tmp, "data", "wal"), Logs: &lockedBuffer{}, exited: make(chan error, 1)}
	for k, v := range map[string]string{
		"COLLECTOR_ADDR": addr, "WAL_DIR": rc.WALDir, "EXPORT_DIR": filepath.Join(tmp, "data", "exports"),
		"NODE_ID": "deploycheck", "LOG_FORMAT": "json", "SHUTDOWN_TIMEOUT": "5s", "DATABASE_URL": "",
	} {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	rc.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp}
	for k, v := range env {
		rc.Env = append(rc.Env, k+"="+v)
	}
	rc.cmd = exec.Command(bin, "serve")
	rc.cmd.Env, rc.cmd.Stdout, rc.cmd.Stderr, rc.cmd.Dir = rc.Env, rc.Logs, rc.Logs, tmp
	if err := rc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { rc.exited <- rc.cmd.Wait() }()
	t.Cleanup(func() {
		if !rc.done {
			rc.cmd.Process.Kill()
			<-rc.exited
		}
		if t.Failed() {
			t.Logf("collector serve output:\n%s", rc.Logs.String())
		}
	})
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-rc.exited:
			rc.done = true
			t.Fatalf("collector serve exited before answering /health: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(rc.Base + "/health")
		if err == nil {
			resp.Body.Close()
			return rc
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on %s/health within 30s: %v", rc.Base, err)
		}
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (rc *runningCollector) Stop(t *testing.T) {
	t.Helper()
	if err := rc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-rc.exited:
		rc.done = true
		if err != nil {
			t.Errorf("collector serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("collector serve still running 30s after SIGTERM (SHUTDOWN_TIMEOUT=5s)")
	}
}

func TestBinaryBuiltLikeTheDockerfileIsStaticAndServesHealth(t *testing.T) {
	bin := collectorBinary(t)

	// Static: no program interpreter, no shared libraries.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked and will not run on distroless/static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	f.Close()

	rc := startCollector(t, bin, nil)
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(rc.Base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %s %s", resp.Status, body)
	}
	var h struct{ Status, Database, Timestamp string }
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/health body %q: %v", body, err)
	}
	if (h.Status != "healthy" && h.Status != "degraded") || h.Database != "not configured" || h.Timestamp == "" {
		t.Errorf("/health = %s; want the seed's shape with status healthy or degraded and database \"not configured\" (no DATABASE_URL)", body)
	}
	t.Logf("/health: %s", body)
	if _, err := os.Stat(rc.WALDir); err != nil {
		t.Errorf("the WAL directory was not created on a fresh volume: %v", err)
	}

	// What the load balancer and Kubernetes probe.
	if resp, err := client.Get(rc.Base + "/ready"); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/ready = %s with a working ingest and no database: the readiness probe would never pass while the database is down", resp.Status)
		}
	}

	// One event end to end, then the series the dashboard charts for ingest
	// and the WAL (the loader's need a database).
	resp, err = client.Post(rc.Base+"/collect", "application/json", strings.NewReader(`{"eventType":"pageview","siteId":"deploycheck","sessionId":"s1","visitorId":"v1"}`))
	if err != nil {
		t.Fatal(err)
	}
	accepted, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(accepted, []byte(`"success"`)) {
		t.Errorf("POST /collect: %s %s", resp.Status, accepted)
	}
	if resp, err := client.Get(rc.Base + "/metrics"); err != nil {
		t.Error(err)
	} else {
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{
			"collector_http_requests_total", "collector_events_accepted_total", "collector_accept_duration_seconds_bucket",
			"collector_wal_fsync_duration_seconds_bucket", "collector_wal_bytes", "collector_wal_max_bytes", "collector_wal_segments",
			"collector_wal_last_index", "collector_wal_full", "collector_wal_failed",
		} {
			if !regexp.MustCompile(`(?m)^` + name + `[{ ]`).Match(metrics) {
				t.Errorf("/metrics has no %s, which the dashboard charts", name)
			}
		}
	}

	// `collector health`, as Docker's HEALTHCHECK runs it.
	var hout bytes.Buffer
	hc := exec.Command(bin, "health")
	hc.Env, hc.Stdout, hc.Stderr = rc.Env, &hout, &hout
	if err := hc.Run(); err != nil {
		t.Errorf("collector health against a healthy server: %v\n%s", err, hout.String())
	} else if !strings.Contains(hout.String(), `"status"`) {
		t.Errorf("collector health did not print the body: %q", hout.String())
	}
	down := exec.Command(bin, "health", "--url", "http://"+freeLoopbackAddr(t)+"/health", "--timeout", "1s")
	down.Env = rc.Env
	if out, err := down.CombinedOutput(); err == nil {
		t.Errorf("collector health succeeded against a port nobody listens on:\n%s", out)
	}

	// Every command the runbook tells operators to run exists.
	usage, _ := exec.Command(bin, "help").CombinedOutput()
	var missing []string
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile("`collector ([a-z]+)").FindAllStringSubmatch(readRepoFile(t, "docs/operations.md"), -1) {
		if !seen[m[1]] && !regexp.MustCompile(`(?m)^\s+`+m[1]+`\s`).Match(usage) {
			missing = append(missing, m[1])
		}
		seen[m[1]] = true
	}
	if len(missing) > 0 {
		t.Errorf("docs/operations.md tells operators to run `collector %s`, which `collector help` does not list (register them in cmd/collector's commands()):\n%s",
			strings.Join(missing, "`, `collector "), usage)
	}

	// SIGTERM: a clean stop, well within the grace periods the deploy files give.
	rc.Stop(t)
}

// TestNginxInFrontOfTheCollector runs deploy/nginx.conf for real, on
// loopback, in front of the binary: the client IP that reaches the WAL, the
// body limit, the pixel, and what clients get when the collector is down.
func TestNginxInFrontOfTheCollector(t *testing.T) {
	nginx := requireTool(t, "nginx", "the nginx configuration is exercised against the real binary")
	bin := collectorBinary(t)
	rc := startCollector(t, bin, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"})

	dir := t.TempDir()
	conf := testableNginxConf(t, dir, false)
	src, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	collectorAddr := strings.TrimPrefix(rc.Base, "http://")
	nginxAddr := freeLoopbackAddr(t)
	edited := regexp.MustCompile(`127\.0\.0\.1:\d+ max_fails`).ReplaceAllString(string(src), collectorAddr+" max_fails")
	edited = strings.Replace(edited, "listen 80 default_server;", "listen "+nginxAddr+" default_server;", 1)
	// The test's stand-in for a load balancer connects from 127.0.0.2: an
	// operator lists their balancer the same way. Temp files under the
	// prefix, so that this runs without root.
	edited = strings.Replace(edited, "http {", `http {
    set_real_ip_from 127.0.0.2;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;`, 1)
	if !strings.Contains(edited, "server "+collectorAddr) || !strings.Contains(edited, "listen "+nginxAddr) {
		t.Fatalf("could not point the config at the test's ports:\n%s", edited)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	var nginxLogs lockedBuffer
	ng := exec.Command(nginx, "-p", dir+"/", "-c", conf, "-e", "stderr", "-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	ng.Stdout, ng.Stderr = &nginxLogs, &nginxLogs
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	ngExited := make(chan error, 1)
	go func() { ngExited <- ng.Wait() }()
	t.Cleanup(func() {
		ng.Process.Signal(syscall.SIGQUIT)
		select {
		case <-ngExited:
		case <-time.After(10 * time.Second):
			ng.Process.Kill()
			<-ngExited
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", nginxLogs.String())
		}
	})

	direct := &http.Client{Timeout: 5 * time.Second}
	viaLB := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	front := "http://" + nginxAddr
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := direct.Get(front + "/nginx-health")
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	post := func(c *http.Client, body, xff string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, front+"/collect", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	// A client that claims another address is not believed; a listed load
	// balancer is.
	if resp, b := post(direct, `{"eventType":"pageview","siteId":"spoofer"}`, "203.0.113.7"); resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"success"`)) {
		t.Fatalf("POST /collect through nginx: %s %s", resp.Status, b)
	}
	if resp, b := post(viaLB, `{"eventType":"pageview","siteId":"behind-lb"}`, "198.51.100.9"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /collect through nginx from the balancer: %s %s", resp.Status, b)
	}

	// Above MAX_BODY_BYTES nginx answers 413 in the collector's error shape.
	resp, b := post(direct, `{"eventType":"x","siteId":"big","pad":"`+strings.Repeat("a", 2<<20)+`"}`, "")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !bytes.Contains(b, []byte(`"status":"error"`)) {
		t.Errorf("a 2 MiB body: %s %q %s; want 413 with a JSON error", resp.Status, resp.Header.Get("Content-Type"), b)
	}

	getGIF := func(what string) {
		t.Helper()
		resp, err := direct.Get(front + "/pixel.gif?eventType=pageview&siteId=pixel")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/gif" || !bytes.HasPrefix(body, []byte("GIF8")) {
			t.Errorf("GET /pixel.gif %s: %s %q, %d bytes; want a GIF", what, resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
		if !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Errorf("GET /pixel.gif %s: Cache-Control %q; a cached pixel counts nothing", what, resp.Header.Get("Cache-Control"))
		}
	}
	getGIF("with the collector up")
	if resp, err := direct.Get(front + "/metrics"); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /metrics through nginx: %s; it must not be public", resp.Status)
		}
	}

	// The collector goes away: the pixel still answers a GIF, /collect an
	// honest 503 with Retry-After.
	rc.Stop(t)
	getGIF("with the collector down")
	resp, b = post(direct, `{"eventType":"pageview","siteId":"lost"}`, "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !bytes.Contains(b, []byte(`"status":"error"`)) {
		t.Errorf("POST /collect with the collector down: %s, Retry-After %q, %s; want 503 + Retry-After + JSON error", resp.Status, resp.Header.Get("Retry-After"), b)
	}

	// What the WAL recorded as each client's address.
	dump := exec.Command(bin, "wal", "dump", "--wal-dir", rc.WALDir, "--from", "1", "--limit", "0")
	dump.Env = rc.Env
	out, err := dump.Output()
	if err != nil {
		t.Fatalf("collector wal dump: %v", err)
	}
	ips := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var rec struct {
			Record struct {
				SiteID    string `json:"site_id"`
				IPAddress string `json:"ip_address"`
			} `json:"record"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("wal dump line %q: %v", line, err)
		}
		ips[rec.Record.SiteID] = rec.Record.IPAddress
	}
	if ips["spoofer"] != "127.0.0.1" {
		t.Errorf("a direct client claiming X-Forwarded-For 203.0.113.7 was recorded as %q; want its real address 127.0.0.1", ips["spoofer"])
	}
	if ips["behind-lb"] != "198.51.100.9" {
		t.Errorf("a client behind the listed load balancer was recorded as %q; want 198.51.100.9 from X-Forwarded-For", ips["behind-lb"])
	}
	if _, stored := ips["lost"]; stored {
		t.Error("an event answered 503 is in the WAL")
	}
}
