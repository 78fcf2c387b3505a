package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarizeReadsPercentilesFromTheHistogram(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 1000; i++ {
		_ = h.RecordValue(i * 1000) // 1..1000 ms, in µs
	}
	l := Summarize(h)
	check := func(name string, got, want float64) {
		if got < want*0.995 || got > want*1.005 {
			t.Errorf("%s = %.3f ms, want %.0f", name, got, want)
		}
	}
	check("p50", l.P50, 500)
	check("p90", l.P90, 900)
	check("p99", l.P99, 990)
	check("p99.9", l.P999, 999)
	check("max", l.Max, 1000)
	if l.Count != 1000 {
		t.Fatalf("count %d", l.Count)
	}
	if (Summarize(newHist()) != Latency{}) {
		t.Fatal("empty histogram should summarize to zero")
	}
}

func TestCollectorSeriesPartitionsTheTotals(t *testing.T) {
	start := time.Unix(1000, 0)
	c := newCollector(2, start, time.Second)
	for sec := 1; sec <= 3; sec++ {
		for _, sh := range c.shards {
			for i := 0; i < sec*10; i++ {
				_ = sh.hist.RecordValue(int64(sec) * 1000)
				sh.requests++
				sh.accepted += 2
				sh.status[200]++
			}
		}
		c.drain(start.Add(time.Duration(sec) * time.Second))
	}
	// A sliver after the last full interval counts in the totals, not in the series.
	c.shards[0].requests++
	c.drain(start.Add(3100 * time.Millisecond))
	if len(c.series) != 3 || c.sums.Requests != 121 || c.sums.Accepted != 240 || c.status[200] != 120 || c.total.TotalCount() != 120 {
		t.Fatalf("series %d sums %+v", len(c.series), c.sums)
	}
	for i, s := range c.series {
		sec := float64(i + 1)
		if s.T != sec || s.RPS != 20*sec || s.EPS != 40*sec || s.P99 < sec*0.99 || s.P99 > sec*1.01 {
			t.Fatalf("interval %d: %+v", i, s)
		}
	}
}

func TestLoadReportHumanAndJSON(t *testing.T) {
	r := &LoadResult{Mode: "open", Target: "http://127.0.0.1:8000", TargetRate: 1000, Connections: 8, RunID: "r1", Mix: "json=1",
		Requests: 1000, EventsAccepted: 990, EventsRefused: 10, RequestsPerSec: 1000, AcceptedEventsPerSec: 990,
		Status: map[string]int64{"200": 990, "503": 10}, Errors: map[string]int64{"timeout": 1},
		Latency: Latency{P50: 1, P90: 2, P99: 3, P999: 4, Max: 5}, Service: &Latency{P99: 0.5}, LateSends: 7}
	var b bytes.Buffer
	WriteLoadReport(&b, r)
	for _, want := range []string{"open loop at 1000 req/s", "200: 990, 503: 10", "timeout: 1", "from intended send", "service time", "3.000", "7 sends left"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	js, _ := json.Marshal(r)
	for _, want := range []string{`"p99_ms":3`, `"p99_9_ms":4`, `"accepted_events_per_s":990`, `"service_time"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
}

func sampleSuite() *SuiteResult {
	ok := true
	return &SuiteResult{Version: 1, Level: LevelSmoke, Command: "collector bench suite --smoke", Started: time.Unix(0, 0).UTC(), Finished: time.Unix(60, 0).UTC(),
		Machine: Machine{CPU: "Test CPU", Cores: 2, Kernel: "Linux 6", Disk: "ext4 on /dev/vda"},
		Scenarios: []*ScenarioResult{{ID: 1, Name: "ingest-ceiling", Title: "Ingest ceiling", Status: "ok",
			Figures: []Figure{{Name: "single-event POST, WAL_SYNC=always", Value: 50000, Unit: "req/s", Baseline: 80000, BaselineName: "no-op", Ratio: 0.625, Target: ">= 55% of no-op", Met: &ok, Command: "collector bench --mix json=1"}},
			Runs:    []*LoadResult{{Name: "run", Mode: "open", Series: []SecondStat{{T: 1, EPS: 10, P50: 1, P90: 2, P99: 3, Max: 4}}}},
			Series:  []Series{{Chart: "lag", Name: "loader lag", Unit: "events", T: []float64{1, 2}, V: []float64{5, 0}}},
			Verify:  []*VerifyReport{{Source: "postgresql", Acknowledged: 10, Matched: 10, OK: true}}}}}
}

func TestBenchmarksMDKeepsWhatIsOutsideTheMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	hand := "# Benchmarks\n\nhand-written wal figures\n\n" + mdBegin + "\nold generated\n" + mdEnd + "\n\n## More hand-written\nloader figures\n"
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateBenchmarksMD(path, sampleSuite()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	s := string(got)
	for _, want := range []string{"hand-written wal figures", "## More hand-written\nloader figures", "Test CPU, 2 cores", "| single-event POST, WAL_SYNC=always | 50000 req/s | 80000 no-op | 0.62 | >= 55% of no-op | met |", "collector bench --mix json=1", "| postgresql | 10 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "old generated") || strings.Count(s, mdBegin) != 1 {
		t.Fatalf("generated section not replaced:\n%s", s)
	}
	// Regenerating is idempotent.
	_ = UpdateBenchmarksMD(path, sampleSuite())
	again, _ := os.ReadFile(path)
	if !bytes.Equal(got, again) {
		t.Fatal("second regeneration changed the file")
	}
	// A new file gets the skeleton with a hand-written section.
	fresh := filepath.Join(t.TempDir(), "B.md")
	if err := UpdateBenchmarksMD(fresh, sampleSuite()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(fresh)
	if !strings.Contains(string(b), "Go benchmarks (hand-written)") || !strings.Contains(string(b), mdEnd) {
		t.Fatalf("fresh file:\n%s", b)
	}
}

func TestOutputsRoundTripThroughResultJSON(t *testing.T) {
	dir := t.TempDir()
	if err := WriteOutputs(sampleSuite(), dir, ""); err != nil {
		t.Fatal(err)
	}
	r, err := ReadSuiteResult(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Scenarios) != 1 || r.Scenarios[0].Figures[0].Ratio != 0.625 {
		t.Fatalf("%+v", r)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	for _, want := range []string{"echarts", "Ingest ceiling", "loader lag", "p99"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

func TestParseMetricsAndSums(t *testing.T) {
	in := `# HELP collector_loader_lag_events x
# TYPE collector_loader_lag_events gauge
collector_loader_lag_events 42
collector_export_lag_events{destination="export:acme:client"} 10
collector_export_lag_events{destination="export:acme:backup"} 5
collector_export_lag_events_total 99
weird{a="}"} 3 1700000000
`
	m, err := ParseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Sum("collector_loader_lag_events"); !ok || v != 42 {
		t.Fatalf("loader lag %v %v", v, ok)
	}
	if v, _ := m.Sum("collector_export_lag_events"); v != 15 {
		t.Fatalf("export lag sum %v", v)
	}
	by := m.ByLabel("collector_export_lag_events", "destination")
	if by["export:acme:client"] != 10 || by["export:acme:backup"] != 5 {
		t.Fatalf("by label %v", by)
	}
	if _, ok := m.Sum("absent"); ok {
		t.Fatal("absent metric found")
	}
}

func TestParseStatCPUHandlesSpacesInTheCommand(t *testing.T) {
	stat := []byte("1234 (my (odd) cmd) S 1 1 1 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 8 0 100 1000 50")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 4.0 {
		t.Fatalf("cpu %v err %v, want 4s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
	st, err := ReadProcStats(os.Getpid())
	if err != nil || st.PeakRSSKB <= 0 || st.RSSKB <= 0 {
		t.Fatalf("own process: %+v %v", st, err)
	}
}
