package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/evothesis/collector/wal"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	code = run(context.Background(), c, args)
	return out.String(), errOut.String(), code
}

func TestREADMEConfigurationTableIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "<!-- config:begin -->\n"+configMarkdown()+"<!-- config:end -->") {
		t.Fatal("README.md's configuration table is stale: regenerate it with `go run ./cmd/collector config --markdown` between the config markers")
	}
}

func TestWALCommands(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(context.Background(), wal.Options{Dir: dir, SegmentBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := l.Append(context.Background(), [][]byte{[]byte(`{"n":` + string(rune('0'+i%10)) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	out, _, code := runCLI(t, nil, "wal", "inspect", "--wal-dir", dir)
	if code != 0 || !strings.Contains(out, "indexes 1-20") {
		t.Fatalf("inspect (exit %d):\n%s", code, out)
	}
	out, _, code = runCLI(t, map[string]string{"WAL_DIR": dir}, "wal", "dump", "--from", "18", "--limit", "2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("dump (exit %d):\n%s", code, out)
	}
	var rec struct {
		Index  uint64          `json:"index"`
		Record json.RawMessage `json:"record"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Index != 18 || string(rec.Record) != `{"n":7}` {
		t.Fatalf("dump line %q: %+v %v", lines[0], rec, err)
	}
	out, _, code = runCLI(t, nil, "wal", "verify", "--wal-dir", dir)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify of a healthy WAL (exit %d):\n%s", code, out)
	}

	// Damage a sealed segment: verify names it and exits 3.
	info, _ := wal.Inspect(dir)
	f, _ := os.OpenFile(info.Segments[0].Path, os.O_RDWR, 0)
	f.WriteAt([]byte("#"), 8)
	f.Close()
	out, _, code = runCLI(t, nil, "wal", "verify", "--wal-dir", dir)
	if code != 3 || !strings.Contains(out, "DAMAGED "+info.Segments[0].Path) {
		t.Fatalf("verify of a damaged WAL (exit %d):\n%s", code, out)
	}
	if _, _, code := runCLI(t, nil, "wal", "frobnicate"); code != 2 {
		t.Fatalf("unknown wal subcommand exit %d, want 2", code)
	}
}

func TestConfigCommandRedactsSecrets(t *testing.T) {
	out, _, code := runCLI(t, map[string]string{"ADMIN_TOKEN": "hunter2", "DATABASE_URL": "postgres://u:pw@db/x"}, "config")
	if code != 0 || strings.Contains(out, "hunter2") || strings.Contains(out, "pw@db") || !strings.Contains(out, "[REDACTED]") {
		t.Fatalf("config output leaks or misses secrets (exit %d):\n%s", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, errOut, code := runCLI(t, nil, "nope"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
