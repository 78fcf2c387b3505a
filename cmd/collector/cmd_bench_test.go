package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/bench"
	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
)

func runBenchCLI(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	c := cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	err := runBench(context.Background(), c, args)
	return out.String(), errOut.String(), err
}

// writeExport writes the recorded events as one NDJSON+zstd unit with the
// shipper's encoder, the way the collector would have exported them.
func writeExport(t *testing.T, root string, rec *bench.Record, extraCopies int) {
	t.Helper()
	hour := time.Now().UTC().Truncate(time.Hour)
	n := uint64(len(rec.Events) + extraCopies)
	key := export.ObjectKey("analytics", "acme-com", hour, "node-1", 1, n, export.FormatNDJSON, export.CompressionZstd)
	var buf bytes.Buffer
	w, err := export.NewWriter(&buf, export.FormatNDJSON, export.CompressionZstd, export.Metadata{ExportID: "x", EventCount: int(n), NodeID: "node-1", FirstIndex: 1, LastIndex: n})
	if err != nil {
		t.Fatal(err)
	}
	evs := append(append([]bench.RecordedEvent{}, rec.Events...), rec.Events[:extraCopies]...)
	for i, ev := range evs {
		raw, _ := json.Marshal(map[string]string{"eventType": "pageview", "bench_run": strings.SplitN(ev.BenchID, "-", 2)[0], "bench_id": ev.BenchID})
		id := ev.EventID
		if id == "" {
			id = fmt.Sprintf("00000000-0000-7000-9000-%012d", i)
		}
		if err := w.Write(export.Row{ID: uint64(i + 1), Event: &event.Event{EventID: id, ReceivedAt: hour, Timestamp: hour, Raw: raw}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, filepath.FromSlash(key))
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBenchLoadRecordAndVerifyExitCodes(t *testing.T) {
	srv, err := bench.StartServer("127.0.0.1:0", bench.NoopHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	recPath := filepath.Join(dir, "record.tsv")
	out, _, err := runBenchCLI("--target", srv.URL(), "--requests", "200", "--duration", "0", "--connections", "4", "--record", recPath, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res bench.LoadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Requests != 200 || res.EventsAccepted == 0 {
		t.Fatalf("load result %+v (%v): %s", res, err, out)
	}
	rec, err := bench.ReadRecordFile(recPath)
	if err != nil || int64(len(rec.Events)) != res.EventsAccepted {
		t.Fatalf("record: %d events, %v", len(rec.Events), err)
	}

	// Nothing exported: every acknowledged event is missing.
	empty := filepath.Join(dir, "empty")
	out, _, err = runBenchCLI("verify", "--record", recPath, "--export-dir", empty)
	var ec exitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 3 || !strings.Contains(out, "FAILED") {
		t.Fatalf("want exit 3 for missing events, got %v\n%s", err, out)
	}

	// Everything exported once: success.
	good := filepath.Join(dir, "good")
	writeExport(t, good, rec, 0)
	out, _, err = runBenchCLI("verify", "--record", recPath, "--export-dir", good, "--strict-pixels")
	if err != nil {
		t.Fatalf("verify of a complete export: %v\n%s", err, out)
	}

	// Two events exported twice: failure, listed.
	dup := filepath.Join(dir, "dup")
	writeExport(t, dup, rec, 2)
	out, _, err = runBenchCLI("verify", "--record", recPath, "--export-dir", dup, "--json")
	if !errors.As(err, &ec) || ec.ExitCode() != 3 {
		t.Fatalf("want exit 3 for duplicates, got %v", err)
	}
	var reps []bench.VerifyReport
	if err := json.Unmarshal([]byte(out), &reps); err != nil || len(reps) != 1 || reps[0].Duplicated != 2 {
		t.Fatalf("reports %+v (%v)", reps, err)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--mix", "video=1"},
		{"--duration", "0"},
		{"--rate", "10", "--event-rate", "10"},
		{"verify"},
		{"verify", "--record", "x"},
		{"suite", "--quick", "--smoke"},
		{"report"},
	} {
		_, _, err := runBenchCLI(args...)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
	if _, _, err := runBenchCLI("--target", "http://192.0.2.1:80", "--requests", "1"); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("remote target: %v", err)
	}
}
