package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/evothesis/collector/config"
)

// CollectorProc is a `collector serve` child process.
type CollectorProc struct {
	URL     string // http://127.0.0.1:PORT
	Addr    string
	LogPath string
	cmd     *exec.Cmd
	done    chan error
	exited  error
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// collectorEnv is the child's environment: ours without any collector
// setting (so a developer's exported WAL_DIR or DATABASE_URL cannot leak into
// a benchmark), plus the scenario's settings.
func collectorEnv(settings map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if config.Known(name) {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

// StartCollector runs `bin serve` with settings (COLLECTOR_ADDR is chosen
// here unless given) and waits until it answers /ready or /health.
func StartCollector(ctx context.Context, bin string, settings map[string]string, logPath string) (*CollectorProc, error) {
	return startProcess(ctx, bin, []string{"serve"}, settings, logPath)
}

func startProcess(ctx context.Context, bin string, args []string, settings map[string]string, logPath string) (*CollectorProc, error) {
	s := map[string]string{}
	for k, v := range settings {
		s[k] = v
	}
	if s["COLLECTOR_ADDR"] == "" {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s["COLLECTOR_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open collector log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = collectorEnv(s)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", bin, strings.Join(args, " "), err)
	}
	p := &CollectorProc{Addr: s["COLLECTOR_ADDR"], URL: "http://" + s["COLLECTOR_ADDR"], LogPath: logPath, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return p, nil
}

// Pid is the process id.
func (p *CollectorProc) Pid() int { return p.cmd.Process.Pid }

func (p *CollectorProc) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.exited = err
			p.done <- err
			return fmt.Errorf("collector exited before it was ready (%v); log: %s\n%s", err, p.LogPath, tailFile(p.LogPath, 2000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		for _, path := range []string{"/ready", "/health"} {
			resp, err := client.Get(p.URL + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("collector not ready after %v; log: %s\n%s", limit, p.LogPath, tailFile(p.LogPath, 2000))
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *CollectorProc) Kill() error {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
	return nil
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *CollectorProc) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		if ee != nil && ee.ExitCode() != 0 {
			return fmt.Errorf("collector exited with status %d after SIGTERM; log: %s", ee.ExitCode(), p.LogPath)
		}
		return nil
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("collector did not stop within %v of SIGTERM; killed", timeout)
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
