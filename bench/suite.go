package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"

	"github.com/evothesis/collector/internal/pgtest"
	"github.com/evothesis/collector/shipper/s3test"
)

// Level is how long the suite runs.
type Level string

const (
	LevelFull  Level = "full"  // `make bench`: a few minutes
	LevelQuick Level = "quick" // `make bench-quick`: about a minute
	LevelSmoke Level = "smoke" // CI: everything runs and verifies, figures are indicative only
)

// SuiteOptions configure RunSuite.
type SuiteOptions struct {
	Level      Level
	Collector  string // the collector binary (runs `serve` and `bench noop`)
	AdminPGURL string // PostgreSQL URL allowed to CREATE/DROP DATABASE
	Out        string // where scratch data and logs go (a work/ directory is made inside)
	Only       string // comma-separated scenario ids; empty: all
	Command    string // recorded in the result
	Log        io.Writer
	Decode     ExportDecoder // nil: DecodeExport
}

// params are the sizes of one level.
type params struct {
	ceilDur     time.Duration
	syncModes   []string
	ceilExtra   bool // also batch-100 and mixed traffic ceilings for every mode (else only always)
	halfDur     time.Duration
	e2eRate     float64 // events/s
	e2eDur      time.Duration
	drainN      int64 // backlog of scenario 4: its drain must outlast a ceilDur ingest measurement
	shipN       int64
	shipFormats [][2]string
	crashRate   float64
	crashDur    time.Duration
	waitLoaded  time.Duration
	waitExport  time.Duration // how long verification waits for exports to appear
}

func levelParams(l Level) params {
	switch l {
	case LevelSmoke:
		return params{ceilDur: 2 * time.Second, syncModes: []string{"always"}, halfDur: 2 * time.Second,
			e2eRate: 1000, e2eDur: 4 * time.Second, drainN: 100000, shipN: 10000,
			shipFormats: [][2]string{{"ndjson", "zstd"}}, crashRate: 1000, crashDur: 4 * time.Second, waitLoaded: 60 * time.Second, waitExport: 60 * time.Second}
	case LevelQuick:
		return params{ceilDur: 1500 * time.Millisecond, syncModes: []string{"always", "never"}, halfDur: 2 * time.Second,
			e2eRate: 5000, e2eDur: 3 * time.Second, drainN: 150000, shipN: 20000,
			shipFormats: [][2]string{{"ndjson", "zstd"}}, crashRate: 3000, crashDur: 4 * time.Second, waitLoaded: 90 * time.Second, waitExport: 2 * time.Minute}
	default:
		return params{ceilDur: 8 * time.Second, syncModes: []string{"always", "interval", "never"}, ceilExtra: true, halfDur: 15 * time.Second,
			e2eRate: 10000, e2eDur: 40 * time.Second, drainN: 1000000, shipN: 200000,
			shipFormats: [][2]string{{"json", "gzip"}, {"ndjson", "gzip"}, {"ndjson", "zstd"}, {"csv", "gzip"}, {"parquet", "none"}},
			crashRate:   5000, crashDur: 20 * time.Second, waitLoaded: 180 * time.Second,
			waitExport: 10 * time.Minute}
	}
}

type suite struct {
	o      SuiteOptions
	p      params
	work   string
	res    *SuiteResult
	cur    *ScenarioResult
	start  time.Time
	http   *http.Client
	s3     *s3test.Server
	s3err  error
	s3tb   *suiteTB
	s3once sync.Once

	live      *CollectorProc // the collector a scenario is verifying, if still running
	ceiling   float64        // single-event POST req/s with WAL_SYNC=always (scenario 1)
	e2eProc   *procUse
	ceilPeaks []procUse
}

// procUse is a process's resource use over a load.
type procUse struct {
	label      string
	eventsPerS float64
	cpuCores   float64 // CPU seconds per wall second
	peakRSSKB  int64
}

// RunSuite runs the scenarios. The returned result is meant to be written
// even when err is not nil (it holds what ran).
func RunSuite(ctx context.Context, o SuiteOptions) (*SuiteResult, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Level == "" {
		o.Level = LevelFull
	}
	if _, err := os.Stat(o.Collector); err != nil {
		return nil, fmt.Errorf("collector binary: %w (run `make build`)", err)
	}
	work := filepath.Join(o.Out, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", work, err)
	}
	s := &suite{o: o, p: levelParams(o.Level), work: work, http: &http.Client{Timeout: 5 * time.Second}}
	s.res = &SuiteResult{Version: 1, Level: o.Level, Command: o.Command, Started: time.Now().UTC(),
		Machine: DescribeMachine(ctx, work), Collector: o.Collector}
	defer func() {
		if s.s3tb != nil {
			s.s3tb.cleanup()
		}
		s.res.Finished = time.Now().UTC()
		s.res.Machine.LoadEnd = LoadAverage()
		// Keep logs and records always, and everything when something
		// failed (the WAL and exports are the evidence); otherwise drop the
		// bulky data.
		if len(s.res.Failures()) == 0 {
			entries, _ := os.ReadDir(work)
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), "-logs") && !strings.HasSuffix(e.Name(), "-record") {
					os.RemoveAll(filepath.Join(work, e.Name()))
				}
			}
		}
	}()
	scenarios := []struct {
		id          int
		name, title string
		run         func(context.Context) error
	}{
		{1, "ingest-ceiling", "Ingest ceiling per WAL_SYNC mode vs a no-op fasthttp handler", s.scenarioCeiling},
		{2, "half-ceiling-latency", "Fixed rate at half the ceiling: accept latency", s.scenarioHalfRate},
		{3, "end-to-end", "End to end at a sustained rate: accept → queryable, loader lag", s.scenarioEndToEnd},
		{4, "backlog-drain", "Backlog drain: database away, then back", s.scenarioDrain},
		{5, "shipper-throughput", "Shipper throughput per format and compression", s.scenarioShipper},
		{6, "resources", "Peak RSS and CPU per 10k events/s", s.scenarioResources},
		{7, "crash-verify", "SIGKILL during sustained load, restart, verify: zero lost, zero duplicated", s.scenarioCrash},
	}
	want := map[int]bool{}
	for _, f := range strings.Split(o.Only, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			want[n] = true
		}
	}
	for _, sc := range scenarios {
		if len(want) > 0 && !want[sc.id] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		s.cur = &ScenarioResult{ID: sc.id, Name: sc.name, Title: sc.title, Status: "ok"}
		s.start = time.Now()
		s.logf("scenario %d: %s", sc.id, sc.title)
		err := sc.run(ctx)
		var skip skipError
		switch {
		case errors.As(err, &skip):
			s.cur.Status, s.cur.Reason = "skipped", skip.reason
		case err != nil:
			s.cur.Status, s.cur.Reason = "error", err.Error()
		}
		s.cur.Seconds = time.Since(s.start).Round(100 * time.Millisecond).Seconds()
		s.logf("scenario %d: %s %s (%.0fs)", sc.id, s.cur.Status, s.cur.Reason, s.cur.Seconds)
		s.res.Scenarios = append(s.res.Scenarios, s.cur)
	}
	s.cur = nil
	return s.res, ctx.Err()
}

type skipError struct{ reason string }

func (e skipError) Error() string { return "skipped: " + e.reason }

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.o.Log, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (s *suite) note(format string, args ...any) {
	s.cur.Notes = append(s.cur.Notes, fmt.Sprintf(format, args...))
}

func (s *suite) since() float64 { return time.Since(s.start).Seconds() }

func (s *suite) figure(f Figure) {
	if f.Baseline != 0 {
		f.Ratio = roundTo(f.Value/f.Baseline, 3)
	}
	s.cur.Figures = append(s.cur.Figures, f)
}

func roundTo(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

func met(ok bool) *bool { return &ok }

func (s *suite) dir(name string) string {
	d := filepath.Join(s.work, fmt.Sprintf("s%d-%s", s.cur.ID, name))
	_ = os.MkdirAll(d, 0o755)
	return d
}

// serve starts the collector with the suite's defaults under settings.
func (s *suite) serve(ctx context.Context, name string, settings map[string]string) (*CollectorProc, error) {
	env := map[string]string{
		"NODE_ID": "bench", "LOG_LEVEL": "warn", "LOG_FORMAT": "text", "ENVIRONMENT": "development",
		"ADMIN_TOKEN": "bench-admin-token",
		// Exports stay idle unless a scenario asks for them: a schedule
		// that fires once a year.
		"EXPORT_SCHEDULE": "0 0 1 1 *",
	}
	for k, v := range settings {
		env[k] = v
	}
	if env["WAL_DIR"] == "" {
		env["WAL_DIR"] = s.dir(name + "-wal")
	}
	if env["EXPORT_DIR"] == "" {
		env["EXPORT_DIR"] = s.dir(name + "-exports")
	}
	p, err := StartCollector(ctx, s.o.Collector, env, filepath.Join(s.dir("logs"), name+".log"))
	if err != nil {
		return nil, fmt.Errorf("start collector (%s): %w", name, err)
	}
	return p, nil
}

// noop starts the baseline handler as its own process, as the collector is.
func (s *suite) noop(ctx context.Context) (*CollectorProc, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProcess(ctx, s.o.Collector, []string{"bench", "noop", "--addr", addr}, map[string]string{"COLLECTOR_ADDR": addr},
		filepath.Join(s.dir("logs"), "noop.log"))
	if err != nil {
		return nil, fmt.Errorf("start no-op baseline: %w", err)
	}
	return p, nil
}

func (s *suite) load(ctx context.Context, name string, o LoadOptions) (*LoadResult, error) {
	if o.Traffic.RunID == "" {
		o.Traffic.RunID = NewRunID()
	}
	o.Traffic.Seed = uint64(len(s.cur.Runs) + 1)
	res, err := Run(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	res.Name = name
	s.cur.Runs = append(s.cur.Runs, res)
	s.logf("  %s: %.0f req/s, %.0f events/s accepted, p99 %.2f ms, status %v", name, res.RequestsPerSec, res.AcceptedEventsPerSec, res.Latency.P99, res.Status)
	return res, nil
}

func cmdFor(o LoadOptions) string {
	var b strings.Builder
	b.WriteString("collector bench --target URL")
	fmt.Fprintf(&b, " --connections %d", o.Connections)
	if o.Rate > 0 {
		fmt.Fprintf(&b, " --rate %.0f", o.Rate)
	}
	switch {
	case o.MaxEvents > 0:
		fmt.Fprintf(&b, " --events %d --duration 0", o.MaxEvents)
	case o.Duration > 0:
		fmt.Fprintf(&b, " --duration %s", o.Duration)
	}
	if o.Traffic.Mix != (Mix{}) {
		fmt.Fprintf(&b, " --mix %s", o.Traffic.Mix)
	}
	if o.Traffic.BatchSize > 0 {
		fmt.Fprintf(&b, " --batch-size %d", o.Traffic.BatchSize)
	}
	return b.String()
}

func usage(p *CollectorProc, from ProcStats, elapsed float64, eps float64, label string) procUse {
	st, err := ReadProcStats(p.Pid())
	if err != nil {
		return procUse{label: label}
	}
	u := procUse{label: label, eventsPerS: eps, peakRSSKB: st.PeakRSSKB}
	if elapsed > 0 {
		u.cpuCores = (st.CPUSeconds - from.CPUSeconds) / elapsed
	}
	return u
}

// ---- scenario 1 ----

func (s *suite) scenarioCeiling(ctx context.Context) error {
	type shape struct {
		name   string
		mix    Mix
		batch  int
		conns  int
		unit   string
		events bool // the figure is events/s (else requests/s)
	}
	shapes := []shape{
		{"single-event POST", Mix{KindJSON: 1}, 1, 64, "req/s", false},
		{"batch of 100", Mix{KindBatch: 1}, 100, 16, "events/s", true},
		{"realistic mix", DefaultMix, 20, 64, "events/s", true},
	}
	// The no-op runs as its own process for the whole scenario, and each
	// collector figure's baseline is measured just before it, so that other
	// work on the machine moves both alike.
	noop, err := s.noop(ctx)
	if err != nil {
		return err
	}
	defer noop.Kill()
	for _, mode := range s.p.syncModes {
		var peakRSSKB int64
		for i, sh := range shapes {
			if i > 0 && !s.p.ceilExtra && mode != "always" {
				continue
			}
			o := LoadOptions{Target: noop.URL, Connections: sh.conns, Duration: s.p.ceilDur,
				Traffic: TrafficOptions{Mix: sh.mix, BatchSize: sh.batch}}
			b, err := s.load(ctx, "no-op / "+sh.name+" (before WAL_SYNC="+mode+")", o)
			if err != nil {
				return err
			}
			baseline := pick(b, sh.events)
			// Each shape gets a fresh collector and an empty WAL: one run's
			// records must not count against the next one's WAL_MAX_BYTES
			// (nothing consumes them here), nor leave it a bigger page cache.
			name := fmt.Sprintf("ceiling-%s-%d", mode, i+1)
			p, err := s.serve(ctx, name, map[string]string{"WAL_SYNC": mode})
			if err != nil {
				return err
			}
			before, _ := ReadProcStats(p.Pid())
			o.Target = p.URL
			r, err := s.load(ctx, "WAL_SYNC="+mode+" / "+sh.name, o)
			if err != nil {
				p.Kill()
				return err
			}
			u := usage(p, before, r.Elapsed, r.AcceptedEventsPerSec, "ceiling "+mode+" "+sh.name)
			s.ceilPeaks = append(s.ceilPeaks, u)
			peakRSSKB = max(peakRSSKB, u.peakRSSKB)
			if err := p.Stop(30 * time.Second); err != nil {
				s.note("stop after WAL_SYNC=%s / %s: %v", mode, sh.name, err)
			}
			os.RemoveAll(s.dir(name + "-wal"))
			f := Figure{Name: fmt.Sprintf("%s, WAL_SYNC=%s", sh.name, mode), Value: pick(r, sh.events), Unit: sh.unit,
				Baseline: baseline, BaselineName: "no-op", Command: fmt.Sprintf("WAL_SYNC=%s collector serve & %s", mode, cmdFor(o))}
			switch {
			case i == 0 && mode == "always":
				s.ceiling = r.RequestsPerSec
				f.Target = ">= 55% of no-op"
				f.Met = met(baseline > 0 && f.Value >= 0.55*baseline)
			case i == 1 && mode == "always":
				f.Target = ">= 250000 events/s"
				f.Met = met(f.Value >= 250000)
			}
			s.figure(f)
			if refused := r.EventsRefused; refused > 0 {
				s.note("%s WAL_SYNC=%s: %d events refused (status %v, errors %v)", sh.name, mode, refused, r.Status, r.Errors)
			}
		}
		s.figure(Figure{Name: "peak RSS, WAL_SYNC=" + mode, Value: roundTo(float64(peakRSSKB)/1024, 1), Unit: "MiB",
			Target: "< 150 MiB", Met: met(peakRSSKB > 0 && peakRSSKB < 150*1024)})
	}
	s.note("load generator and servers share the machine's %d cores; the no-op runs as its own process, like the collector", s.res.Machine.Cores)
	return nil
}

func pick(r *LoadResult, events bool) float64 {
	if events {
		return r.AcceptedEventsPerSec
	}
	return r.RequestsPerSec
}

// ---- scenario 2 ----

func (s *suite) scenarioHalfRate(ctx context.Context) error {
	p, err := s.serve(ctx, "half", map[string]string{"WAL_SYNC": "always"})
	if err != nil {
		return err
	}
	defer p.Kill()
	if s.ceiling == 0 {
		r, err := s.load(ctx, "ceiling probe", LoadOptions{Target: p.URL, Connections: 64, Duration: s.p.ceilDur, Traffic: TrafficOptions{Mix: Mix{KindJSON: 1}}})
		if err != nil {
			return err
		}
		s.ceiling = r.RequestsPerSec
		s.note("ceiling measured here (scenario 1 not run): %.0f req/s", s.ceiling)
	}
	rate := s.ceiling / 2
	o := LoadOptions{Target: p.URL, Connections: 64, Rate: rate, Duration: s.p.halfDur, Traffic: TrafficOptions{Mix: Mix{KindJSON: 1}}}
	r, err := s.load(ctx, fmt.Sprintf("collector at %.0f req/s", rate), o)
	if err != nil {
		return err
	}
	noop, err := s.noop(ctx)
	if err != nil {
		return err
	}
	defer noop.Kill()
	o.Target = noop.URL
	b, err := s.load(ctx, fmt.Sprintf("no-op at %.0f req/s", rate), o)
	if err != nil {
		return err
	}
	cmd := "WAL_SYNC=always collector serve & " + cmdFor(o)
	s.figure(Figure{Name: "rate (half the WAL_SYNC=always ceiling)", Value: r.RequestsPerSec, Unit: "req/s", Baseline: rate, BaselineName: "intended", Command: cmd})
	for _, q := range []struct {
		name    string
		v, base float64
	}{{"p50", r.Latency.P50, b.Latency.P50}, {"p90", r.Latency.P90, b.Latency.P90}, {"p99", r.Latency.P99, b.Latency.P99},
		{"p99.9", r.Latency.P999, b.Latency.P999}, {"max", r.Latency.Max, b.Latency.Max}} {
		f := Figure{Name: "accept latency " + q.name + " (from intended send time)", Value: q.v, Unit: "ms", Baseline: q.base, BaselineName: "no-op", Command: cmd}
		if q.name == "p99" {
			f.Target, f.Met = "< 5 ms", met(q.v < 5)
		}
		s.figure(f)
	}
	if r.LateSends > 0 {
		s.note("%d of %d sends left more than 1 ms late (stalls are included in the latency)", r.LateSends, r.Requests)
	}
	return nil
}

// ---- helpers for the PostgreSQL scenarios ----

func (s *suite) database(ctx context.Context) (string, func(), error) {
	url, drop, err := pgtest.Create(ctx, s.o.AdminPGURL, "collector_bench")
	if err != nil {
		if os.Getenv("CI") == "" {
			return "", nil, skipError{fmt.Sprintf("PostgreSQL unavailable: %v", err)}
		}
		return "", nil, err
	}
	return url, drop, nil
}

// waitDatabase waits until /health says the database is connected.
func (s *suite) waitDatabase(ctx context.Context, p *CollectorProc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health", nil)
		resp, err := s.http.Do(req)
		if err == nil {
			var h struct {
				Database string `json:"database"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.Database == "not configured" && last == "not configured" && time.Until(deadline) < limit-5*time.Second {
				return fmt.Errorf("the collector runs without a loader (health says database: not configured although DATABASE_URL is set); log %s", p.LogPath)
			}
			last = h.Database
			if h.Database == "connected" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("database not connected after %v (health says %q); log %s", limit, last, p.LogPath)
}

// watcher samples a collector's /metrics and /proc once a second.
type watcher struct {
	mu        sync.Mutex
	loaderLag Series
	loaderAge Series
	exportLag map[string]*Series
	rss       Series
	cpu       Series
	stop      chan struct{}
	done      chan struct{}
}

func (s *suite) watch(ctx context.Context, p func() *CollectorProc, every time.Duration) *watcher {
	w := &watcher{exportLag: map[string]*Series{}, stop: make(chan struct{}), done: make(chan struct{}),
		loaderLag: Series{Chart: "loader and shipper lag", Name: "loader lag", Unit: "events"},
		loaderAge: Series{Chart: "loader lag (seconds)", Name: "age of oldest unloaded event", Unit: "s"},
		rss:       Series{Chart: "collector memory", Name: "RSS", Unit: "MiB"},
		cpu:       Series{Chart: "collector CPU", Name: "CPU", Unit: "cores"}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastCPU float64
		var lastAt time.Time
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			proc := p()
			if proc == nil {
				continue
			}
			now := s.since()
			if m, err := Scrape(ctx, s.http, proc.URL+"/metrics"); err == nil {
				w.mu.Lock()
				if v, ok := m.Sum("collector_loader_lag_events"); ok {
					w.loaderLag.add(now, v)
				}
				if v, ok := m.Sum("collector_loader_lag_seconds"); ok {
					w.loaderAge.add(now, v)
				}
				for series, v := range m {
					if !strings.HasPrefix(series, "collector_export_lag_events") {
						continue
					}
					name := "shipper lag " + strings.TrimPrefix(series, "collector_export_lag_events")
					sr := w.exportLag[name]
					if sr == nil {
						sr = &Series{Chart: "loader and shipper lag", Name: name, Unit: "events"}
						w.exportLag[name] = sr
					}
					sr.add(now, v)
				}
				w.mu.Unlock()
			}
			if st, err := ReadProcStats(proc.Pid()); err == nil {
				w.mu.Lock()
				w.rss.add(now, roundTo(float64(st.RSSKB)/1024, 1))
				if !lastAt.IsZero() && st.CPUSeconds >= lastCPU {
					w.cpu.add(now, roundTo((st.CPUSeconds-lastCPU)/time.Since(lastAt).Seconds(), 2))
				}
				lastCPU, lastAt = st.CPUSeconds, time.Now()
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *watcher) maxLoaderLag() float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := 0.0
	for _, v := range w.loaderLag.V {
		m = max(m, v)
	}
	return m
}

// finish stops sampling and adds the series to the scenario.
func (w *watcher) finish(s *suite) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sr := range []*Series{&w.loaderLag, &w.loaderAge, &w.rss, &w.cpu} {
		if len(sr.T) > 0 {
			s.cur.Series = append(s.cur.Series, *sr)
		}
	}
	names := make([]string, 0, len(w.exportLag))
	for n := range w.exportLag {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s.cur.Series = append(s.cur.Series, *w.exportLag[n])
	}
}

// waitLoaded waits until PostgreSQL holds want rows (the loader caught up),
// sampling the count as a series. Every scenario has a database of its own,
// so a plain count(*) is the run's count and spares the database a JSONB
// scan while it is being measured.
func (s *suite) waitLoaded(ctx context.Context, dbURL string, want int64, limit time.Duration, series *Series) (int64, time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	deadline := start.Add(limit)
	var n int64
	for {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
		if err != nil && !strings.Contains(err.Error(), "does not exist") {
			return n, time.Since(start), fmt.Errorf("count events: %w", err)
		}
		if series != nil {
			series.add(s.since(), float64(n))
		}
		if n >= want || time.Now().After(deadline) {
			return n, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return n, time.Since(start), ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// visibility samples acknowledged events and polls PostgreSQL until each is
// queryable: the accept → queryable latency.
type visibility struct {
	every   uint64
	n       atomic.Uint64
	mu      sync.Mutex
	pending map[string]visSample
	hist    *hdrhistogram.Histogram
	found   int64
}

type visSample struct {
	session string
	at      time.Time
}

func newVisibility(every uint64) *visibility {
	return &visibility{every: max(every, 1), pending: map[string]visSample{}, hist: newHist()}
}

func (v *visibility) onAck(sent Sent, res AckResult, at time.Time) {
	for _, id := range res.IDs {
		if id == nil {
			continue
		}
		if v.n.Add(1)%v.every != 0 {
			continue
		}
		v.mu.Lock()
		v.pending[string(id)] = visSample{string(sent.SessionID), at}
		v.mu.Unlock()
	}
}

// poll runs until ctx is done or stop is closed and nothing is pending.
func (v *visibility) poll(ctx context.Context, dbURL string, stop <-chan struct{}, every time.Duration) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	stopped := false
	for {
		if stopped {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(every):
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-stop:
				stopped = true
			case <-time.After(every):
			}
		}
		v.mu.Lock()
		ids := make([]string, 0, len(v.pending))
		sessions := make([]string, 0, len(v.pending))
		for id, smp := range v.pending {
			ids = append(ids, id)
			sessions = append(sessions, smp.session)
			if len(ids) >= 2000 {
				break
			}
		}
		v.mu.Unlock()
		if len(ids) == 0 {
			if stopped {
				return nil
			}
			continue
		}
		// A row the query's snapshot shows was committed before the query
		// was sent: timing it here, not on the answer, keeps the query's
		// own duration out of the figure.
		now := time.Now()
		// session_id is indexed; event_id alone is not.
		rows, err := conn.Query(ctx, `SELECT event_id::text FROM events WHERE session_id = ANY($1) AND event_id::text = ANY($2)`, sessions, ids)
		if err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				continue // migrations not run yet
			}
			return fmt.Errorf("poll events: %w", err)
		}
		var id string
		for rows.Next() {
			if rows.Scan(&id) != nil {
				continue
			}
			v.mu.Lock()
			if smp, ok := v.pending[id]; ok {
				_ = v.hist.RecordValue(max(now.Sub(smp.at).Microseconds(), 1))
				v.found++
				delete(v.pending, id)
			}
			v.mu.Unlock()
		}
		rows.Close()
	}
}

// ---- S3 ----

// suiteTB adapts the suite to s3test's testing.TB subset: Fatalf and Skipf
// unwind through a panic that startS3 recovers.
type suiteTB struct {
	dir      string
	cleanups []func()
	log      func(string, ...any)
}

type tbAbort struct {
	skip bool
	msg  string
}

func (t *suiteTB) Helper()                        {}
func (t *suiteTB) Cleanup(f func())               { t.cleanups = append(t.cleanups, f) }
func (t *suiteTB) Fatalf(format string, a ...any) { panic(tbAbort{false, fmt.Sprintf(format, a...)}) }
func (t *suiteTB) Skipf(format string, a ...any)  { panic(tbAbort{true, fmt.Sprintf(format, a...)}) }
func (t *suiteTB) Logf(format string, a ...any)   { t.log(format, a...) }
func (t *suiteTB) TempDir() string {
	d, _ := os.MkdirTemp(t.dir, "versitygw-")
	return d
}
func (t *suiteTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

const (
	clientBucket = "bench-client"
	backupBucket = "bench-backup"
)

// startS3 starts versitygw once for the suite, through shipper/s3test.
func (s *suite) startS3() (*s3test.Server, error) {
	s.s3once.Do(func() {
		s.s3tb = &suiteTB{dir: s.work, log: s.logf}
		func() {
			defer func() {
				if r := recover(); r != nil {
					a, ok := r.(tbAbort)
					if !ok {
						panic(r)
					}
					if a.skip && os.Getenv("CI") == "" {
						s.s3err = skipError{a.msg}
					} else {
						s.s3err = errors.New(a.msg)
					}
				}
			}()
			s.s3 = s3test.Start(s.s3tb, clientBucket, backupBucket)
		}()
	})
	return s.s3, s.s3err
}

// exportSettings configures the collector's exports: to versitygw when it
// can be started, else to the local directory destination.
func (s *suite) exportSettings(format, compression, schedule, exportDir string) (map[string]string, []ObjectLister, string, error) {
	env := map[string]string{"EXPORT_FORMAT": format, "EXPORT_COMPRESSION": compression, "EXPORT_SCHEDULE": schedule,
		"EXPORT_DIR": exportDir, "S3_PREFIX": "analytics"}
	srv, err := s.startS3()
	if err != nil || srv == nil {
		if os.Getenv("CI") != "" {
			return nil, nil, "", fmt.Errorf("S3 server required under CI: %v", err)
		}
		reason := "no S3"
		if err != nil {
			reason = err.Error()
		}
		return env, []ObjectLister{dirDestinations(exportDir)}, "local directory destination (" + reason + ")", nil
	}
	prefix := "run-" + NewRunID()
	for k, v := range map[string]string{
		"CLIENT_S3_BUCKET": clientBucket, "S3_BACKUP_BUCKET": backupBucket,
		"CLIENT_S3_ACCESS_KEY": srv.AccessKey, "CLIENT_S3_SECRET_KEY": srv.SecretKey,
		"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_CA_BUNDLE": srv.CAFile,
		"S3_ENDPOINT": srv.Endpoint, "S3_REGION": srv.Region, "S3_FORCE_PATH_STYLE": "true", "S3_PREFIX": prefix,
	} {
		env[k] = v
	}
	mk := func(bucket string) ObjectLister {
		return NewS3Lister(S3Options{Endpoint: srv.Endpoint, Region: srv.Region, Bucket: bucket, Prefix: prefix + "/",
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true, Insecure: true})
	}
	return env, []ObjectLister{mk(clientBucket), mk(backupBucket)}, "versitygw over TLS on loopback (client and backup buckets)", nil
}

// dirDestinations is the local export root; verification splits it per
// destination by the part of each key before "site_id=".
func dirDestinations(root string) ObjectLister { return DirLister{Root: root} }

// prefixLister is the part of a lister under one destination root.
type prefixLister struct {
	inner  ObjectLister
	prefix string
}

func (p prefixLister) Name() string { return p.inner.Name() + "/" + p.prefix }

func (p prefixLister) Walk(ctx context.Context, fn func(string, int64, func() (io.ReadCloser, error)) error) error {
	return p.inner.Walk(ctx, func(key string, size int64, open func() (io.ReadCloser, error)) error {
		if destinationRoot(key) != p.prefix {
			return nil
		}
		return fn(key, size, open)
	})
}

func destinationRoot(key string) string {
	if i := strings.Index(key, "site_id="); i >= 0 {
		return strings.TrimSuffix(key[:i], "/")
	}
	return ""
}

// splitDestinations groups a lister's data objects by destination root (the
// key before "site_id="), so that a client's and the backup's copies of one
// event in one local export directory are not mistaken for duplicates.
func splitDestinations(ctx context.Context, l ObjectLister) ([]ObjectLister, error) {
	roots := map[string]bool{}
	err := l.Walk(ctx, func(key string, _ int64, _ func() (io.ReadCloser, error)) error {
		if _, ok := ParseExportKey(key); ok {
			roots[destinationRoot(key)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(roots) <= 1 {
		return []ObjectLister{l}, nil
	}
	var out []ObjectLister
	for r := range roots {
		out = append(out, prefixLister{l, r})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// exportLagZero reports whether the collector says every export destination
// is done (collector_export_lag_events is 0 for each, and there is at least
// one). Object names alone cannot say it: the objects of one unit (one per
// site) share the unit's index range, so the range shows up with the first.
func (s *suite) exportLagZero(ctx context.Context, p *CollectorProc) bool {
	m, err := Scrape(ctx, s.http, p.URL+"/metrics")
	if err != nil {
		return false
	}
	found := false
	for series, v := range m {
		if strings.HasPrefix(series, "collector_export_lag_events{") {
			found = true
			if v != 0 {
				return false
			}
		}
	}
	return found
}

// waitExportLag waits until the collector reports no export lag, as long as
// the lag keeps shrinking (a new low at least every 30 s) and at most limit.
func (s *suite) waitExportLag(ctx context.Context, p *CollectorProc, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	best := -1.0
	bestAt := start
	for time.Since(start) < limit && ctx.Err() == nil {
		m, err := Scrape(ctx, s.http, p.URL+"/metrics")
		if err == nil {
			if lag, ok := m.Sum("collector_export_lag_events"); ok {
				if lag == 0 {
					return time.Since(start), true
				}
				if best < 0 || lag < best {
					best, bestAt = lag, time.Now()
				}
			}
		}
		if time.Since(bestAt) > 30*time.Second {
			return time.Since(start), false
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Since(start), false
}

// waitExported waits until every destination's objects cover index 1..last
// and, when p is given, the collector reports no export lag.
func (s *suite) waitExported(ctx context.Context, p *CollectorProc, listers []ObjectLister, last uint64, limit time.Duration, series map[string]*Series) (time.Duration, bool) {
	start := time.Now()
	var lastCovered uint64
	progressAt := start
	for {
		all := true
		var total uint64
		for _, l := range listers {
			ls, err := splitDestinations(ctx, l)
			if err != nil {
				all = false
				continue
			}
			for _, d := range ls {
				covered, _, _, err := ExportedIndexes(ctx, d, "")
				if series != nil {
					sr := series[d.Name()]
					if sr == nil {
						sr = &Series{Chart: "events exported", Name: d.Name(), Unit: "events"}
						series[d.Name()] = sr
					}
					sr.add(s.since(), float64(covered))
				}
				total += covered
				if err != nil || covered < last {
					all = false
				}
			}
			if len(ls) == 0 {
				all = false
			}
		}
		if all && (p == nil || s.exportLagZero(ctx, p)) {
			return time.Since(start), true
		}
		if total != lastCovered {
			lastCovered, progressAt = total, time.Now()
		}
		// Nothing exported for 20 s: the shipper is stuck or absent; waiting
		// the full limit would only hide that for longer.
		if time.Since(start) > limit || time.Since(progressAt) > 20*time.Second || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// verifyAll checks rec against PostgreSQL (if dbURL) and every export
// destination; the scenario fails on any loss or duplicate.
func (s *suite) verifyAll(ctx context.Context, rec *Record, dbURL string, listers []ObjectLister, wait time.Duration) error {
	if len(rec.Events) == 0 {
		return errors.New("nothing was acknowledged: verification would prove nothing")
	}
	if s.live != nil && len(listers) > 0 {
		// A slow shipper is measured, not mistaken for a lossy one: wait
		// while its lag shrinks, then verify.
		took, ok := s.waitExportLag(ctx, s.live, s.p.waitExport)
		name := "exports complete after the load (collector_export_lag_events = 0)"
		if !ok {
			name = "exports still behind after (collector_export_lag_events > 0)"
		}
		s.figure(Figure{Name: name, Value: roundTo(took.Seconds(), 1), Unit: "s"})
		wait = min(wait, 20*time.Second)
	}
	var sources []Source
	if dbURL != "" {
		sources = append(sources, &PGSource{URL: dbURL})
	}
	for _, l := range listers {
		ls, err := splitDestinations(ctx, l)
		if err != nil {
			return err
		}
		for _, d := range ls {
			sources = append(sources, &ExportSource{Lister: d, Decode: s.o.Decode})
		}
	}
	var failed []string
	for _, src := range sources {
		rep, err := Verify(ctx, rec, src, VerifyOptions{Wait: wait, ListLimit: 10, Stall: 15 * time.Second})
		if err != nil {
			return err
		}
		if es, ok := src.(*ExportSource); ok && es.Objects == 0 && rep.Acknowledged > 0 {
			s.note("%s holds no export object at all after %v: is the shipper running in this collector (EXPORT_SCHEDULE=realtime:1)?", src.Name(), wait)
		}
		s.cur.Verify = append(s.cur.Verify, rep)
		s.logf("  verify %s: ok=%v matched=%d missing=%d duplicated=%d extra=%d", rep.Source, rep.OK, rep.Matched, rep.Missing, rep.Duplicated, rep.Extra)
		if !rep.OK {
			failed = append(failed, fmt.Sprintf("%s: %d missing, %d duplicated, %d mismatched", rep.Source, rep.Missing, rep.Duplicated, rep.Mismatched))
		}
	}
	if len(failed) > 0 {
		s.cur.Status = "failed"
		s.cur.Reason = strings.Join(failed, "; ")
		if s.live != nil {
			// Missing from an export may be lag rather than loss: say which.
			if m, err := Scrape(ctx, s.http, s.live.URL+"/metrics"); err == nil {
				if lag, ok := m.Sum("collector_export_lag_events"); ok && lag > 0 {
					s.cur.Reason += fmt.Sprintf(" (after %v the collector still reports %.0f events of export lag: behind, not necessarily lost)", wait, lag)
				}
			}
		}
	}
	return nil
}

// ---- scenario 3 ----

// loaderCounters are the loader's cumulative counters from /metrics.
type loaderCounters struct{ rows, batches, copySecs, copies float64 }

func (s *suite) loaderCounters(ctx context.Context, p *CollectorProc) loaderCounters {
	m, err := Scrape(ctx, s.http, p.URL+"/metrics")
	if err != nil {
		return loaderCounters{}
	}
	var c loaderCounters
	c.rows, _ = m.Sum("collector_loader_rows_total")
	c.batches, _ = m.Sum("collector_loader_batches_total")
	c.copySecs, _ = m.Sum("collector_loader_copy_duration_seconds_sum")
	c.copies, _ = m.Sum("collector_loader_copy_duration_seconds_count")
	return c
}

// pgCheckpoints is the server's count of checkpoints so far (every
// database's, neighbours' included): a checkpoint's burst of full-page
// writes and fsyncs is a classic cause of a COPY or commit stalling for
// seconds. ok is false when the server does not say.
func pgCheckpoints(ctx context.Context, dbURL string) (n int64, ok bool) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, false
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`, // PostgreSQL <= 16
		`SELECT num_timed + num_requested FROM pg_stat_checkpointer`,       // 17 and later
	} {
		if err := conn.QueryRow(ctx, q).Scan(&n); err == nil {
			return n, true
		}
	}
	return 0, false
}

// e2eRun is one sustained load at e2eRate with the accept → queryable
// latency sampled, and where the time went.
type e2eRun struct {
	r              *LoadResult
	vis            Latency
	found, missed  int64
	collectorCores float64 // the collector's CPU over the load
	machineCores   float64 // every process's, the load generator's included
	batchRows      float64 // mean rows per committed batch over the load
	copyMs         float64 // mean COPY + commit time per batch
	loaded         int64   // rows in PostgreSQL after waiting
	checkpoints    int64   // PostgreSQL checkpoints during the load; -1 unknown
	caughtUp       time.Duration
	cmd            string
}

// runEndToEnd loads p (whose loader writes to dbURL) at e2eRate, samples
// about 200 acknowledged events a second and polls PostgreSQL for them.
// The poll records the time just before the query whose snapshot first
// shows an event, so the figure overstates visibility by at most one poll
// interval (10 ms), and a query that finds nothing costs an index probe.
func (s *suite) runEndToEnd(ctx context.Context, name string, p *CollectorProc, dbURL string, rec *Recorder, run string, loaded *Series) (*e2eRun, error) {
	mean := MeanEventsPerRequest(DefaultMix, 20)
	vis := newVisibility(uint64(s.p.e2eRate / 200))
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	stopPoll := make(chan struct{})
	pollErr := make(chan error, 1)
	go func() { pollErr <- vis.poll(pollCtx, dbURL, stopPoll, 10*time.Millisecond) }()
	before, _ := ReadProcStats(p.Pid())
	cpu0, _ := ReadMachineCPU()
	lc0 := s.loaderCounters(ctx, p)
	cp0, cpOK0 := pgCheckpoints(ctx, dbURL)
	o := LoadOptions{Target: p.URL, Connections: 64, Rate: s.p.e2eRate / mean, Duration: s.p.e2eDur, Record: rec,
		OnAck: vis.onAck, Traffic: TrafficOptions{RunID: run}}
	r, err := s.load(ctx, name, o)
	if err != nil {
		return nil, err
	}
	cpu1, _ := ReadMachineCPU()
	lc1 := s.loaderCounters(ctx, p)
	cp1, cpOK1 := pgCheckpoints(ctx, dbURL)
	out := &e2eRun{r: r, cmd: cmdFor(o), checkpoints: -1,
		collectorCores: usage(p, before, r.Elapsed, r.AcceptedEventsPerSec, name).cpuCores,
		machineCores:   busyCores(cpu0, cpu1, time.Duration(r.Elapsed*float64(time.Second)))}
	if cpOK0 && cpOK1 {
		out.checkpoints = cp1 - cp0
	}
	if b := lc1.batches - lc0.batches; b > 0 {
		out.batchRows = (lc1.rows - lc0.rows) / b
	}
	if c := lc1.copies - lc0.copies; c > 0 {
		out.copyMs = (lc1.copySecs - lc0.copySecs) / c * 1000
	}
	n, took, err := s.waitLoaded(ctx, dbURL, r.EventsAccepted, s.p.waitLoaded, loaded)
	close(stopPoll)
	select {
	case err := <-pollErr:
		if err != nil {
			s.note("visibility poller: %v", err)
		}
	case <-time.After(5 * time.Second):
	}
	cancelPoll()
	if err != nil {
		return nil, err
	}
	out.loaded, out.caughtUp = n, took
	vis.mu.Lock()
	out.vis, out.found, out.missed = Summarize(vis.hist), vis.found, int64(len(vis.pending))
	vis.mu.Unlock()
	if n < r.EventsAccepted {
		s.note("%s: only %d of %d accepted events in PostgreSQL after %v", name, n, r.EventsAccepted, s.p.waitLoaded)
	}
	return out, nil
}

func (s *suite) scenarioEndToEnd(ctx context.Context) error {
	dbURL, drop, err := s.database(ctx)
	if err != nil {
		return err
	}
	defer drop()
	exportEnv, listers, where, err := s.exportSettings("ndjson", "zstd", "realtime:1", s.dir("exports"))
	if err != nil {
		return err
	}
	env := map[string]string{"DATABASE_URL": dbURL, "WAL_SYNC": "always"}
	for k, v := range exportEnv {
		env[k] = v
	}
	p, err := s.serve(ctx, "e2e", env)
	if err != nil {
		return err
	}
	defer p.Kill()
	if err := s.waitDatabase(ctx, p, 60*time.Second); err != nil {
		return err
	}
	s.note("exports: %s", where)
	recPath := filepath.Join(s.dir("record"), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(recPath, run, p.URL)
	if err != nil {
		return err
	}
	w := s.watch(ctx, func() *CollectorProc { return p }, time.Second)
	// The watcher keeps sampling through verification, which waits for the
	// exports: the shipper's lag series shows it catching up.
	finished := false
	defer func() {
		if !finished {
			w.finish(s)
		}
	}()
	loaded := Series{Chart: "events in PostgreSQL", Name: "rows of this run", Unit: "events"}
	load1 := LoadAverage()
	a, err := s.runEndToEnd(ctx, fmt.Sprintf("sustained %.0f events/s", s.p.e2eRate), p, dbURL, rec, run, &loaded)
	rec.Close()
	if err != nil {
		return err
	}
	s.e2eProc = &procUse{label: "end to end", eventsPerS: a.r.AcceptedEventsPerSec, cpuCores: a.collectorCores}
	if st, err := ReadProcStats(p.Pid()); err == nil {
		s.e2eProc.peakRSSKB = st.PeakRSSKB
	}
	s.cur.Series = append(s.cur.Series, loaded)
	cmd := "DATABASE_URL=... EXPORT_SCHEDULE=realtime:1 collector serve & " + a.cmd + " --record FILE && collector bench verify --record FILE --database-url ... --export-dir ..."
	s.figure(Figure{Name: "accepted events/s (intended " + strconv.Itoa(int(s.p.e2eRate)) + ")", Value: a.r.AcceptedEventsPerSec, Unit: "events/s", Baseline: s.p.e2eRate, BaselineName: "intended", Command: cmd})
	s.figure(Figure{Name: "accept latency p99 (from intended send time)", Value: a.r.Latency.P99, Unit: "ms"})
	s.figure(Figure{Name: "accept → queryable p50", Value: a.vis.P50, Unit: "ms"})
	s.figure(Figure{Name: "accept → queryable p99", Value: a.vis.P99, Unit: "ms", Target: "< 1000 ms", Met: met(a.vis.Count > 0 && a.vis.P99 < 1000)})
	s.figure(Figure{Name: "accept → queryable max", Value: a.vis.Max, Unit: "ms"})
	s.note("accept → queryable: %d sampled events found, %d never seen within the wait; PostgreSQL polled every 10 ms, the time taken just before the query that first saw the event (overstates by at most 10 ms)", a.found, a.missed)
	s.figure(Figure{Name: "loader lag max (collector_loader_lag_events)", Value: w.maxLoaderLag(), Unit: "events"})
	s.figure(Figure{Name: "time for the loader to catch up after the load", Value: roundTo(a.caughtUp.Seconds(), 2), Unit: "s"})
	s.figure(Figure{Name: "loader: mean rows per batch during the load", Value: roundTo(a.batchRows, 0), Unit: "rows"})
	s.figure(Figure{Name: "loader: mean COPY + commit per batch (collector_loader_copy_duration_seconds)", Value: roundTo(a.copyMs, 1), Unit: "ms"})
	s.figure(Figure{Name: "collector CPU during the load", Value: roundTo(a.collectorCores, 2), Unit: "cores"})
	s.figure(Figure{Name: fmt.Sprintf("machine CPU busy during the load (of %d cores; every process)", s.res.Machine.Cores), Value: roundTo(a.machineCores, 2), Unit: "cores"})
	if a.checkpoints >= 0 {
		s.figure(Figure{Name: "PostgreSQL checkpoints during the load (whole server)", Value: float64(a.checkpoints), Unit: "checkpoints"})
	}
	full, err := ReadRecordFile(recPath)
	if err != nil {
		return err
	}
	s.live = p
	err = s.verifyAll(ctx, full, dbURL, listers, s.p.waitExport)
	s.live = nil
	w.finish(s)
	finished = true
	if err != nil {
		return err
	}
	if err := p.Stop(30 * time.Second); err != nil {
		s.note("stop: %v", err)
	}
	return s.endToEndWithoutShipper(ctx, a, load1)
}

// endToEndWithoutShipper repeats the load with the shipper idle, in the same
// run, so that the share of the latency due to the shipper's competition for
// the cores shows as a ratio.
func (s *suite) endToEndWithoutShipper(ctx context.Context, a *e2eRun, loadA string) error {
	dbURL, drop, err := s.database(ctx)
	if err != nil {
		return err
	}
	defer drop()
	p, err := s.serve(ctx, "e2e-noship", map[string]string{"DATABASE_URL": dbURL, "WAL_SYNC": "always"})
	if err != nil {
		return err
	}
	defer p.Kill()
	if err := s.waitDatabase(ctx, p, 60*time.Second); err != nil {
		return err
	}
	loadB := LoadAverage()
	b, err := s.runEndToEnd(ctx, fmt.Sprintf("sustained %.0f events/s, shipper idle", s.p.e2eRate), p, dbURL, nil, NewRunID(), nil)
	if err != nil {
		return err
	}
	base := "with realtime export"
	cmd := "DATABASE_URL=... collector serve (exports idle) & " + b.cmd
	s.figure(Figure{Name: "shipper idle: accepted events/s", Value: b.r.AcceptedEventsPerSec, Unit: "events/s", Baseline: a.r.AcceptedEventsPerSec, BaselineName: base, Command: cmd})
	s.figure(Figure{Name: "shipper idle: accept → queryable p50", Value: b.vis.P50, Unit: "ms", Baseline: a.vis.P50, BaselineName: base})
	s.figure(Figure{Name: "shipper idle: accept → queryable p99", Value: b.vis.P99, Unit: "ms", Baseline: a.vis.P99, BaselineName: base, Target: "< 1000 ms", Met: met(b.vis.Count > 0 && b.vis.P99 < 1000)})
	s.figure(Figure{Name: "shipper idle: loader mean rows per batch", Value: roundTo(b.batchRows, 0), Unit: "rows", Baseline: roundTo(a.batchRows, 0), BaselineName: base})
	s.figure(Figure{Name: "shipper idle: loader mean COPY + commit per batch", Value: roundTo(b.copyMs, 1), Unit: "ms", Baseline: roundTo(a.copyMs, 1), BaselineName: base})
	s.figure(Figure{Name: "shipper idle: collector CPU", Value: roundTo(b.collectorCores, 2), Unit: "cores", Baseline: roundTo(a.collectorCores, 2), BaselineName: base})
	s.figure(Figure{Name: "shipper idle: machine CPU busy", Value: roundTo(b.machineCores, 2), Unit: "cores", Baseline: roundTo(a.machineCores, 2), BaselineName: base})
	if b.checkpoints >= 0 {
		s.figure(Figure{Name: "shipper idle: PostgreSQL checkpoints during the load (whole server)", Value: float64(b.checkpoints), Unit: "checkpoints"})
	}
	s.note("shipper idle: the same load into a fresh collector and database with EXPORT_SCHEDULE idle (not verified; %d of %d sampled events found); ratios below 1 are what the realtime shipper costs the pipeline on these shared cores. Load average before each load: %s (with export), %s (idle)",
		b.found, b.found+b.missed, loadA, loadB)
	return nil
}

// ---- scenario 4 ----

// ceilingOptions is scenario 1's headline load, the ingest issue's figure:
// single-event POSTs from 64 connections, closed loop, for ceilDur.
func (s *suite) ceilingOptions(target string) LoadOptions {
	return LoadOptions{Target: target, Connections: 64, Duration: s.p.ceilDur, Traffic: TrafficOptions{Mix: Mix{KindJSON: 1}, BatchSize: 1}}
}

// ingestKeptFigure pairs the ingest ceiling measured while background work
// ran with the same load measured without it, before and after, in the same
// run (their mean is the baseline, so a drift of the machine between them
// moves both sides alike). busy says whether the background work lasted the
// whole measurement; if not, the figure is reported but not judged.
func (s *suite) ingestKeptFigure(while string, during *LoadResult, without []*LoadResult, cmd string, busy bool) {
	var sum float64
	var vals []string
	for _, r := range without {
		sum += r.RequestsPerSec
		vals = append(vals, fmt.Sprintf("%.0f", r.RequestsPerSec))
	}
	base := sum / float64(len(without))
	f := Figure{Name: "ingest ceiling (single-event POST, WAL_SYNC=always) while " + while, Value: roundTo(during.RequestsPerSec, 0), Unit: "req/s",
		Baseline: roundTo(base, 0), BaselineName: "without, same run", Target: ">= 90% of without (unchanged within this machine's noise)", Command: cmd}
	lo, hi := without[0].RequestsPerSec, without[0].RequestsPerSec
	for _, r := range without {
		lo, hi = min(lo, r.RequestsPerSec), max(hi, r.RequestsPerSec)
	}
	// Before and after disagreeing by more than the margin judged means
	// something else moved the machine meanwhile: no verdict either way.
	steady := base > 0 && (hi-lo)/base <= 0.2
	switch {
	case !busy:
		s.note("%s ended before the ingest measurement did: the ratio is not judged", while)
	case !steady:
		s.note("without %s, ingest moved from %.0f to %.0f req/s between before and after: the machine was too busy with other work to judge the ratio; repeat at a lower load average", while, lo, hi)
	default:
		f.Met = met(during.RequestsPerSec >= 0.9*base)
	}
	s.figure(f)
	s.figure(Figure{Name: "accept latency p99 while " + while, Value: during.Latency.P99, Unit: "ms"})
	s.note("ingest ceiling without %s: %s req/s (before and after); with: %.0f req/s; load average now %s", while, strings.Join(vals, " and "), during.RequestsPerSec, LoadAverage())
}

// loadSample is the loader's row count at a time.
type loadSample struct {
	at   time.Time
	rows float64
}

// rowsAt is the last sample at or before t (the first if none is).
func rowsAt(samples []loadSample, t time.Time) loadSample {
	i := sort.Search(len(samples), func(i int) bool { return samples[i].at.After(t) })
	return samples[max(i-1, 0)]
}

func (s *suite) scenarioDrain(ctx context.Context) error {
	dbURL, drop, err := s.database(ctx)
	if err != nil {
		return err
	}
	defer drop()
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("database URL: %w", err)
	}
	host := u.Host
	if u.Port() == "" {
		host += ":5432"
	}
	proxy, err := StartProxy(host)
	if err != nil {
		return err
	}
	defer proxy.Close()
	viaProxy, err := pgtest.WithHost(dbURL, proxy.Addr)
	if err != nil {
		return err
	}
	// WAL_SYNC=always, as scenario 1's ceiling, which is measured here with
	// and without the drain.
	p, err := s.serve(ctx, "drain", map[string]string{"DATABASE_URL": viaProxy, "WAL_SYNC": "always", "WAL_MAX_BYTES": "8GiB"})
	if err != nil {
		return err
	}
	defer p.Kill()
	if err := s.waitDatabase(ctx, p, 60*time.Second); err != nil {
		return err
	}
	proxy.Down()
	s.note("database cut at the TCP proxy %s → %s after migrations", proxy.Addr, host)
	recPath := filepath.Join(s.dir("record"), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(recPath, run, p.URL)
	if err != nil {
		return err
	}
	recClosed := false
	defer func() {
		if !recClosed {
			rec.Close()
		}
	}()
	w := s.watch(ctx, func() *CollectorProc { return p }, 500*time.Millisecond)
	finished := false
	defer func() {
		if !finished {
			w.finish(s)
		}
	}()
	var accepted int64
	var seq uint64
	load := func(name string, o LoadOptions) (*LoadResult, error) {
		o.Record, o.SeqStart, o.Traffic.RunID = rec, seq, run
		r, err := s.load(ctx, name, o)
		if err != nil {
			return nil, err
		}
		accepted += r.EventsAccepted
		seq = r.LastSeq
		if r.EventsRefused > 0 {
			s.note("%s: %d events refused (status %v)", name, r.EventsRefused, r.Status)
		}
		return r, nil
	}
	o := LoadOptions{Target: p.URL, Connections: 16, MaxEvents: s.p.drainN, Duration: 10 * time.Minute,
		Traffic: TrafficOptions{Mix: Mix{KindBatch: 1}, BatchSize: 100}}
	r, err := load(fmt.Sprintf("backlog of %d events (database away)", s.p.drainN), o)
	if err != nil {
		return err
	}
	backlog := r.EventsAccepted
	s.figure(Figure{Name: "ingest with the database away", Value: r.AcceptedEventsPerSec, Unit: "events/s", Command: cmdFor(o)})
	co := s.ceilingOptions(p.URL)
	without1, err := load("ingest ceiling, no drain (database away)", co)
	if err != nil {
		return err
	}

	// The drain, timed from the loader's own counters scraped every 100 ms,
	// so that measuring does not scan the table being loaded.
	rows0, ok := s.loaderRows(ctx, p)
	if !ok {
		return fmt.Errorf("collector_loader_rows_total not in /metrics; log %s", p.LogPath)
	}
	loaded := Series{Chart: "events in PostgreSQL", Name: "rows loaded (collector_loader_rows_total)", Unit: "events"}
	var mu sync.Mutex
	var samples []loadSample
	var firstAt time.Time
	upAt := time.Now()
	if err := proxy.Up(); err != nil {
		return err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		prevAt := upAt // the last scrape that saw no progress: the drain began after it
		for sampleCtx.Err() == nil {
			at := time.Now()
			if rows, ok := s.loaderRows(sampleCtx, p); ok {
				n := rows - rows0
				mu.Lock()
				samples = append(samples, loadSample{at, n})
				loaded.add(s.since(), n)
				if n > 0 && firstAt.IsZero() {
					firstAt = prevAt
				}
				mu.Unlock()
				prevAt = at
			}
			select {
			case <-sampleCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { stopSampling(); <-sampled }()
	progress := func() (loadSample, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if len(samples) == 0 {
			return loadSample{}, firstAt
		}
		return samples[len(samples)-1], firstAt
	}
	waitRows := func(what string, want float64, limit time.Duration) (time.Time, error) {
		deadline := time.Now().Add(limit)
		for {
			last, _ := progress()
			if last.rows >= want {
				return last.at, nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return time.Time{}, fmt.Errorf("%s: %.0f of %.0f rows loaded after %v; log %s", what, last.rows, want, limit, p.LogPath)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The ingest measurement starts once rows flow, not when the database
	// comes back: the loader's backoff may take seconds to notice.
	if _, err := waitRows("drain start", 1, s.p.waitLoaded); err != nil {
		return err
	}
	startAt := time.Now()
	during, err := load("ingest ceiling while the backlog drains", co)
	if err != nil {
		return err
	}
	endAt := time.Now()
	atEnd, _ := progress()
	drainBusy := atEnd.rows < float64(backlog+without1.EventsAccepted)
	doneAt, err := waitRows("drain", float64(accepted), s.p.waitLoaded*2)
	if err != nil {
		return err
	}
	// The second measurement without a drain, under the same conditions as
	// the first: database away, loader idle.
	proxy.Down()
	without2, err := load("ingest ceiling, no drain (database away, after)", co)
	if err != nil {
		return err
	}
	if err := proxy.Up(); err != nil {
		return err
	}
	if _, err := waitRows("catch-up after the last measurement", float64(accepted), s.p.waitLoaded); err != nil {
		return err
	}
	stopSampling()
	<-sampled
	w.finish(s)
	finished = true
	s.cur.Series = append(s.cur.Series, loaded)

	mu.Lock()
	atStart, atStop, atDone := rowsAt(samples, startAt), rowsAt(samples, endAt), rowsAt(samples, doneAt)
	mu.Unlock()
	drainTotal := atDone.rows
	tailRate := (atDone.rows - atStop.rows) / max(atDone.at.Sub(atStop.at).Seconds(), 0.001)
	busyRate := (atStop.rows - atStart.rows) / max(atStop.at.Sub(atStart.at).Seconds(), 0.001)
	base, berr := copyBaseline(ctx, dbURL)
	f := Figure{Name: fmt.Sprintf("drain rate (%.0f events), once the ingest measurement is over", drainTotal), Value: roundTo(tailRate, 0), Unit: "events/s",
		Command: "cut DATABASE_URL's port, load N events, restore it; rows/s from the end of the ingest measurement to the last row"}
	fb := Figure{Name: "drain rate while ingest runs at its ceiling", Value: roundTo(busyRate, 0), Unit: "events/s"}
	if berr == nil {
		f.Baseline, f.BaselineName = roundTo(base, 0), "raw COPY of the same rows"
		fb.Baseline, fb.BaselineName = f.Baseline, f.BaselineName
		f.Target, f.Met = ">= 80% of raw COPY", met(tailRate >= 0.8*base)
	} else {
		s.note("raw COPY baseline: %v", berr)
	}
	s.figure(f)
	s.figure(fb)
	if !firstAt.IsZero() {
		s.figure(Figure{Name: "database back → first row loaded (loader backoff)", Value: roundTo(firstAt.Sub(upAt).Seconds(), 2), Unit: "s"})
	}
	s.ingestKeptFigure("the backlog drains", during, []*LoadResult{without1, without2},
		"collector bench --connections 64 --mix json=1 --duration "+s.p.ceilDur.String()+", with the loader draining the backlog and with the database away", drainBusy)
	s.note("the drain loaded %.0f rows during the %.1f s ingest measurement and %.0f after it", atStop.rows-atStart.rows, endAt.Sub(startAt).Seconds(), atDone.rows-atStop.rows)
	recClosed = true
	if err := rec.Close(); err != nil {
		return err
	}
	full, err := ReadRecordFile(recPath)
	if err != nil {
		return err
	}
	return s.verifyAll(ctx, full, dbURL, nil, 30*time.Second)
}

// loaderRows reads collector_loader_rows_total.
func (s *suite) loaderRows(ctx context.Context, p *CollectorProc) (float64, bool) {
	m, err := Scrape(ctx, s.http, p.URL+"/metrics")
	if err != nil {
		return 0, false
	}
	return m.Sum("collector_loader_rows_total")
}

// copyBaseline measures a raw binary COPY of the rows now in events into an
// unpartitioned table with the same columns and indexes: COPY TO STDOUT
// piped straight into COPY FROM STDIN on a second connection.
func copyBaseline(ctx context.Context, dbURL string) (float64, error) {
	src, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer src.Close(context.Background())
	dst, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer dst.Close(context.Background())
	if _, err := dst.Exec(ctx, `DROP TABLE IF EXISTS bench_copy_baseline`); err != nil {
		return 0, err
	}
	if _, err := dst.Exec(ctx, `CREATE TABLE bench_copy_baseline (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)`); err != nil {
		if _, err2 := dst.Exec(ctx, `CREATE TABLE bench_copy_baseline (LIKE events INCLUDING DEFAULTS)`); err2 != nil {
			return 0, fmt.Errorf("create baseline table: %w", err)
		}
	}
	defer dst.Exec(context.Background(), `DROP TABLE IF EXISTS bench_copy_baseline`)
	pr, pw := io.Pipe()
	start := time.Now()
	copyErr := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, pw, `COPY (SELECT * FROM events) TO STDOUT (FORMAT binary)`)
		pw.CloseWithError(err)
		copyErr <- err
	}()
	tag, err := dst.PgConn().CopyFrom(ctx, pr, `COPY bench_copy_baseline FROM STDIN (FORMAT binary)`)
	pr.Close()
	if err := <-copyErr; err != nil {
		return 0, fmt.Errorf("copy out: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("copy in: %w", err)
	}
	el := time.Since(start).Seconds()
	if tag.RowsAffected() == 0 || el <= 0 {
		return 0, errors.New("baseline copied no rows")
	}
	return float64(tag.RowsAffected()) / el, nil
}

// ---- scenario 5 ----

func (s *suite) scenarioShipper(ctx context.Context) error {
	// Preload a WAL with the shipper idle, then let each format export a
	// copy of it from scratch.
	template := s.dir("template-wal")
	p, err := s.serve(ctx, "preload", map[string]string{"WAL_DIR": template, "WAL_SYNC": "never", "WAL_SEGMENT_BYTES": "4MiB", "WAL_MAX_BYTES": "8GiB"})
	if err != nil {
		return err
	}
	recPath := filepath.Join(s.dir("record"), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(recPath, run, p.URL)
	if err != nil {
		p.Kill()
		return err
	}
	r, err := s.load(ctx, fmt.Sprintf("preload %d events", s.p.shipN), LoadOptions{Target: p.URL, Connections: 16, MaxEvents: s.p.shipN,
		Duration: 10 * time.Minute, Record: rec, Traffic: TrafficOptions{RunID: run, Mix: Mix{KindBatch: 1}, BatchSize: 100}})
	rec.Close()
	if err != nil {
		p.Kill()
		return err
	}
	if err := p.Stop(30 * time.Second); err != nil {
		return err
	}
	walBytes := dirSize(template)
	full, err := ReadRecordFile(recPath)
	if err != nil {
		return err
	}
	for _, fc := range s.p.shipFormats {
		name := fc[0] + "+" + fc[1]
		walCopy := s.dir("wal-" + fc[0] + "-" + fc[1])
		os.RemoveAll(walCopy)
		if out, err := exec.CommandContext(ctx, "cp", "-a", template, walCopy).CombinedOutput(); err != nil {
			return fmt.Errorf("copy WAL: %v: %s", err, out)
		}
		_ = os.Remove(filepath.Join(walCopy, "LOCK"))
		exportEnv, listers, where, err := s.exportSettings(fc[0], fc[1], "realtime:1", s.dir("exports-"+fc[0]+"-"+fc[1]))
		if err != nil {
			return err
		}
		exportEnv["WAL_DIR"] = walCopy
		exportEnv["WAL_MAX_BYTES"] = "8GiB"
		exported := map[string]*Series{}
		p, err := s.serve(ctx, "ship-"+fc[0]+"-"+fc[1], exportEnv)
		if err != nil {
			return err
		}
		before, _ := ReadProcStats(p.Pid())
		took, ok := s.waitExported(ctx, p, listers, uint64(r.EventsAccepted), s.p.waitLoaded, exported)
		u := usage(p, before, took.Seconds(), 0, "shipper "+name)
		for _, sr := range exported {
			sr.Chart = "events exported: " + name
			s.cur.Series = append(s.cur.Series, *sr)
		}
		if !ok {
			p.Kill()
			s.note("%s: exports did not cover all %d events within %v; log %s", name, r.EventsAccepted, s.p.waitLoaded, p.LogPath)
			s.cur.Status, s.cur.Reason = "failed", name+": export incomplete"
			continue
		}
		var outBytes int64
		for _, l := range listers {
			_, _, b, _ := ExportedIndexes(ctx, l, "")
			outBytes += b
		}
		secs := took.Seconds()
		s.figure(Figure{Name: name + ": events exported per second (all destinations)", Value: roundTo(float64(r.EventsAccepted)/secs, 0), Unit: "events/s",
			Command: fmt.Sprintf("EXPORT_FORMAT=%s EXPORT_COMPRESSION=%s EXPORT_SCHEDULE=realtime:1 collector serve over a preloaded WAL", fc[0], fc[1])})
		s.figure(Figure{Name: name + ": WAL bytes exported per second", Value: roundTo(float64(walBytes)/secs/1e6, 1), Unit: "MB/s"})
		s.figure(Figure{Name: name + ": output bytes / WAL bytes (all destinations)", Value: roundTo(float64(outBytes)/float64(walBytes), 3), Unit: "ratio"})
		s.figure(Figure{Name: name + ": shipper CPU", Value: roundTo(u.cpuCores, 2), Unit: "cores"})
		s.figure(Figure{Name: name + ": peak RSS", Value: roundTo(float64(u.peakRSSKB)/1024, 1), Unit: "MiB"})
		s.note("%s: %s", name, where)
		// Verified while the collector still runs, so that a unit still in
		// flight is not mistaken for a lost one.
		err = s.verifyAll(ctx, full, "", listers, s.p.waitExport)
		if serr := p.Stop(30 * time.Second); serr != nil {
			s.note("%s: stop: %v", name, serr)
		}
		if err != nil {
			return err
		}
		os.RemoveAll(walCopy)
	}
	s.note("time measured from the collector being ready until every destination's object keys cover every WAL index; it includes process start and the realtime:1 schedule's first tick")
	return s.ingestWhileShipping(ctx, template)
}

// ingestWhileShipping measures the ingest ceiling with the shipper exporting
// a preloaded backlog flat out, paired with the same load and WAL with the
// shipper idle before and after, in the same run (issue 4: "ingest figures
// unchanged within noise while the shipper runs flat out"). The collector
// restarts between the phases because the schedule is read at start; each
// phase's own events join the backlog, which keeps the shipper busy longer.
func (s *suite) ingestWhileShipping(ctx context.Context, template string) error {
	walCopy := s.dir("wal-ingest-pair")
	defer os.RemoveAll(walCopy)
	env, _, where, err := s.exportSettings("ndjson", "zstd", "realtime:1", s.dir("exports-ingest-pair"))
	if err != nil {
		return err
	}
	env["WAL_DIR"], env["WAL_MAX_BYTES"], env["WAL_SYNC"] = walCopy, "8GiB", "always"
	idle := map[string]string{}
	for k, v := range env {
		idle[k] = v
	}
	idle["EXPORT_SCHEDULE"] = "0 0 1 1 *"
	type outcome struct {
		r        *LoadResult
		busy     bool    // export lag left at the end: the shipper had work throughout
		exported float64 // events the shipper exported during the phase
	}
	// Each phase starts from a fresh copy of the preloaded WAL, so that the
	// phases without the shipper see the same WAL and the same backlog.
	phase := func(slug, name string, settings map[string]string, shipping bool) (outcome, error) {
		var out outcome
		os.RemoveAll(walCopy)
		if b, err := exec.CommandContext(ctx, "cp", "-a", template, walCopy).CombinedOutput(); err != nil {
			return out, fmt.Errorf("copy WAL: %v: %s", err, b)
		}
		_ = os.Remove(filepath.Join(walCopy, "LOCK"))
		// And from no shipper state: units the previous phase planned but
		// had not exported (the default EXPORT_STATE_DIR is beside WAL_DIR,
		// outside the copy) would otherwise be exported in the next phase,
		// idle or not.
		_ = os.RemoveAll(filepath.Join(filepath.Dir(walCopy), "shipper"))
		p, err := s.serve(ctx, "ingest-pair-"+slug, settings)
		if err != nil {
			return out, err
		}
		defer p.Kill()
		if shipping {
			// Measure once the shipper is at work, not while it waits for
			// its first tick.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if m, err := Scrape(ctx, s.http, p.URL+"/metrics"); err == nil {
					if n, _ := m.Sum("collector_export_events_total"); n > 0 {
						break
					}
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return out, fmt.Errorf("the shipper exported nothing within 30 s of start; log %s", p.LogPath)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		var ex0 float64
		if m, err := Scrape(ctx, s.http, p.URL+"/metrics"); err == nil {
			ex0, _ = m.Sum("collector_export_events_total")
		}
		if out.r, err = s.load(ctx, "ingest ceiling, "+name, s.ceilingOptions(p.URL)); err != nil {
			return out, err
		}
		if m, err := Scrape(ctx, s.http, p.URL+"/metrics"); err == nil {
			lag, _ := m.Sum("collector_export_lag_events")
			ex1, _ := m.Sum("collector_export_events_total")
			out.busy, out.exported = lag > 0, ex1-ex0
		}
		if err := p.Stop(30 * time.Second); err != nil {
			s.note("stop after %s: %v", name, err)
		}
		return out, nil
	}
	before, err := phase("idle-before", "shipper idle (before)", idle, false)
	if err != nil {
		return err
	}
	during, err := phase("shipping", "shipper exporting the backlog", env, true)
	if err != nil {
		return err
	}
	after, err := phase("idle-after", "shipper idle (after)", idle, false)
	if err != nil {
		return err
	}
	s.ingestKeptFigure("the shipper exports flat out (ndjson+zstd)", during.r, []*LoadResult{before.r, after.r},
		"collector bench --connections 64 --mix json=1 --duration "+s.p.ceilDur.String()+" against WAL_SYNC=always collector serve over a preloaded WAL, EXPORT_SCHEDULE=realtime:1 vs idle", during.busy)
	s.note("ingest while shipping: exports to %s; events exported during each measurement (all destinations): %.0f idle before, %.0f shipping, %.0f idle after",
		where, before.exported, during.exported, after.exported)
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// ---- scenario 6 ----

func (s *suite) scenarioResources(ctx context.Context) error {
	if s.e2eProc == nil {
		dbURL, drop, err := s.database(ctx)
		if err != nil {
			return err
		}
		defer drop()
		p, err := s.serve(ctx, "resources", map[string]string{"DATABASE_URL": dbURL, "EXPORT_SCHEDULE": "realtime:1"})
		if err != nil {
			return err
		}
		defer p.Kill()
		if err := s.waitDatabase(ctx, p, 60*time.Second); err != nil {
			return err
		}
		before, _ := ReadProcStats(p.Pid())
		r, err := s.load(ctx, fmt.Sprintf("sustained %.0f events/s", s.p.e2eRate), LoadOptions{Target: p.URL, Connections: 64,
			Rate: s.p.e2eRate / MeanEventsPerRequest(DefaultMix, 20), Duration: s.p.e2eDur})
		if err != nil {
			return err
		}
		u := usage(p, before, r.Elapsed, r.AcceptedEventsPerSec, "sustained")
		s.e2eProc = &u
	} else {
		s.note("measured during scenario 3 (ingest, loader and shipper running together)")
	}
	u := s.e2eProc
	if u.eventsPerS > 0 {
		s.figure(Figure{Name: fmt.Sprintf("CPU per 10k events/s (full pipeline at %.0f events/s)", u.eventsPerS), Value: roundTo(u.cpuCores/(u.eventsPerS/10000), 3), Unit: "cores"})
	}
	s.figure(Figure{Name: "peak RSS, full pipeline", Value: roundTo(float64(u.peakRSSKB)/1024, 1), Unit: "MiB", Target: "< 150 MiB", Met: met(u.peakRSSKB < 150*1024)})
	for _, c := range s.ceilPeaks {
		if c.eventsPerS > 0 {
			s.figure(Figure{Name: fmt.Sprintf("CPU per 10k events/s at the %s", c.label), Value: roundTo(c.cpuCores/(c.eventsPerS/10000), 3), Unit: "cores"})
		}
	}
	return nil
}

// ---- scenario 7 ----

func (s *suite) scenarioCrash(ctx context.Context) error {
	dbURL, drop, err := s.database(ctx)
	if err != nil {
		return err
	}
	defer drop()
	exportEnv, listers, where, err := s.exportSettings("ndjson", "zstd", "realtime:1", s.dir("exports"))
	if err != nil {
		return err
	}
	env := map[string]string{"DATABASE_URL": dbURL, "WAL_SYNC": "always", "WAL_DIR": s.dir("wal")}
	for k, v := range exportEnv {
		env[k] = v
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	env["COLLECTOR_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	p, err := s.serve(ctx, "crash-1", env)
	if err != nil {
		return err
	}
	if err := s.waitDatabase(ctx, p, 60*time.Second); err != nil {
		p.Kill()
		return err
	}
	s.note("exports: %s", where)
	var cur atomic.Pointer[CollectorProc]
	cur.Store(p)
	w := s.watch(ctx, func() *CollectorProc { return cur.Load() }, time.Second)
	recPath := filepath.Join(s.dir("record"), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(recPath, run, p.URL)
	if err != nil {
		return err
	}
	restartErr := make(chan error, 1)
	var killedAt, backAt time.Time
	go func() {
		select {
		case <-ctx.Done():
			restartErr <- ctx.Err()
			return
		case <-time.After(s.p.crashDur / 2):
		}
		killedAt = time.Now()
		s.logf("  SIGKILL collector pid %d", p.Pid())
		p.Kill()
		p2, err := s.serve(ctx, "crash-2", env)
		if err == nil {
			backAt = time.Now()
			cur.Store(p2)
		}
		restartErr <- err
	}()
	o := LoadOptions{Target: p.URL, Connections: 64, Rate: s.p.crashRate / MeanEventsPerRequest(DefaultMix, 20), Duration: s.p.crashDur,
		Record: rec, Timeout: 3 * time.Second, Traffic: TrafficOptions{RunID: run}}
	r, err := s.load(ctx, fmt.Sprintf("%.0f events/s with a SIGKILL at %v", s.p.crashRate, s.p.crashDur/2), o)
	rec.Close()
	rerr := <-restartErr
	if p2 := cur.Load(); p2 != p {
		defer p2.Kill()
	}
	if err != nil {
		w.finish(s)
		return err
	}
	if rerr != nil {
		w.finish(s)
		return fmt.Errorf("restart after SIGKILL: %w", rerr)
	}
	n, took, err := s.waitLoaded(ctx, dbURL, r.EventsAccepted, s.p.waitLoaded, nil)
	if err != nil {
		w.finish(s)
		return err
	}
	exported := map[string]*Series{}
	s.waitExported(ctx, nil, listers, 0, 0, exported)
	w.finish(s)
	s.figure(Figure{Name: "acknowledged events", Value: float64(r.EventsAccepted - r.PixelsAccepted), Unit: "events"})
	s.figure(Figure{Name: "requests that failed around the crash (not acknowledged)", Value: float64(r.TransportErrs), Unit: "requests"})
	if !backAt.IsZero() {
		s.figure(Figure{Name: "SIGKILL → serving again", Value: roundTo(backAt.Sub(killedAt).Seconds(), 2), Unit: "s"})
	}
	s.figure(Figure{Name: "loader caught up after the load", Value: roundTo(took.Seconds(), 2), Unit: "s"})
	if n < r.EventsAccepted-r.PixelsAccepted {
		s.note("PostgreSQL holds %d rows of the run, %d acknowledged", n, r.EventsAccepted)
	}
	full, err := ReadRecordFile(recPath)
	if err != nil {
		return err
	}
	s.live = cur.Load()
	err = s.verifyAll(ctx, full, dbURL, listers, s.p.waitExport)
	s.live = nil
	if err != nil {
		return err
	}
	lost, dup := 0, 0
	for _, v := range s.cur.Verify {
		lost += v.Missing + v.Mismatched
		dup += v.Duplicated
	}
	s.figure(Figure{Name: "lost (all destinations)", Value: float64(lost), Unit: "events", Target: "0", Met: met(lost == 0)})
	s.figure(Figure{Name: "duplicated (all destinations)", Value: float64(dup), Unit: "events", Target: "0", Met: met(dup == 0)})
	return s.selfCheck(ctx, full, dbURL)
}

// selfCheck proves that verification can fail here: it removes one loaded
// event and copies another in the scenario's database, and expects exactly
// one missing and one duplicated. A verifier that passes whatever it is
// shown would make scenario 7 worthless.
func (s *suite) selfCheck(ctx context.Context, rec *Record, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// Two acknowledged events (not pixels, not extras): the first and the last.
	var victim, twin string
	for _, ev := range rec.Events {
		if ev.EventID == "" {
			continue
		}
		if victim == "" {
			victim = ev.EventID
		}
		twin = ev.EventID
	}
	if victim == "" || victim == twin {
		return errors.New("self-check: fewer than two acknowledged events")
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `DELETE FROM events WHERE event_id::text = $1`, victim); err != nil {
		return fmt.Errorf("self-check delete: %w", err)
	}
	// The copy takes an id no WAL will reach, so no unique key refuses it.
	for _, q := range []string{
		`CREATE TEMP TABLE bench_twin ON COMMIT DROP AS SELECT * FROM events WHERE event_id::text = $1`,
		`UPDATE bench_twin SET id = id + 1000000000000`,
		`INSERT INTO events SELECT * FROM bench_twin`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, twin)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("self-check copy: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	rep, err := Verify(ctx, rec, &PGSource{URL: dbURL}, VerifyOptions{})
	if err != nil {
		return err
	}
	ok := !rep.OK && rep.Missing == 1 && rep.Duplicated == 1
	s.note("verification self-check: with one row deleted and one copied, verify reported %d missing and %d duplicated (%s)",
		rep.Missing, rep.Duplicated, map[bool]string{true: "as it must", false: "WRONG"}[ok])
	if !ok {
		return fmt.Errorf("verification self-check failed: after deleting one event and copying another, verify reported %d missing, %d duplicated", rep.Missing, rep.Duplicated)
	}
	return nil
}
