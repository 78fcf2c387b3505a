package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/evothesis/collector/bench"
	"github.com/evothesis/collector/shipper/export"
)

// benchFailed is a verification that found lost or duplicated events
// (exit status 3, so scripts can tell it from a usage or connection error).
type benchFailed struct{ msg string }

func (e benchFailed) Error() string { return e.msg }
func (e benchFailed) ExitCode() int { return 3 }

func benchUsage(w io.Writer) {
	fmt.Fprint(w, `usage:
  collector bench [flags]                 load-test a collector (closed loop, or open loop with --rate)
  collector bench verify --record FILE    check acknowledged events against PostgreSQL and exports
  collector bench suite [--quick|--smoke] run the scenarios against bin/collector, write JSON/HTML/BENCHMARKS.md
  collector bench report --in RESULT.json regenerate the HTML report and BENCHMARKS.md from a result
  collector bench noop [--addr ADDR]      serve the no-op baseline handler

Run 'collector bench <sub> -h' for flags.
`)
}

func runBench(ctx context.Context, c cli, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return runBenchVerify(ctx, c, args[1:])
		case "suite":
			return runBenchSuite(ctx, c, args[1:])
		case "report":
			return runBenchReport(ctx, c, args[1:])
		case "noop":
			return runBenchNoop(ctx, c, args[1:])
		case "help":
			benchUsage(c.stdout)
			return nil
		}
	}
	return runBenchLoad(ctx, c, args)
}

func newFlagSet(c cli, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return fs
}

// parseFlags turns a flag error into a usage error (exit 2), keeping -h as help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func runBenchLoad(ctx context.Context, c cli, args []string) error {
	fs := newFlagSet(c, "bench")
	fs.Usage = func() {
		benchUsage(c.stderr)
		fmt.Fprintln(c.stderr, "\nflags of 'collector bench':")
		fs.PrintDefaults()
	}
	target := fs.String("target", "http://127.0.0.1:8000", "collector base URL (loopback only unless --allow-remote)")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not loopback (load-test your own deployment)")
	conns := fs.Int("connections", 64, "connections (closed loop: concurrent requests; open loop: sender pool)")
	rate := fs.Float64("rate", 0, "open loop: requests per second (0: closed loop, as fast as the connections go)")
	eventRate := fs.Float64("event-rate", 0, "open loop: events per second (converted to requests with the mix's mean events per request)")
	duration := fs.Duration("duration", 10*time.Second, "stop after this long (0: only the counts bound the run)")
	requests := fs.Int64("requests", 0, "stop after this many requests")
	events := fs.Int64("events", 0, "stop after this many events")
	mix := fs.String("mix", bench.DefaultMix.String(), "request kinds and weights: json, beacon (text/plain), pixel (GET /pixel.gif), batch")
	batch := fs.Int("batch-size", 20, "events per batch request")
	sites := fs.Int("sites", 200, "distinct sites (Zipf popularity)")
	visitors := fs.Int("visitors", 5000, "visitors per site (Zipf activity)")
	session := fs.Duration("session-length", 30*time.Second, "how often a visitor's session changes")
	seed := fs.Uint64("seed", 1, "traffic seed")
	timeout := fs.Duration("timeout", 10*time.Second, "per request timeout")
	record := fs.String("record", "", "append every acknowledged event (event_id, bench_id) to this file, for 'bench verify'")
	runID := fs.String("run-id", "", "bench_run written into every event (default: random)")
	seqStart := fs.Uint64("seq-start", 0, "first bench sequence number minus one (continue a run id in the same record)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := bench.ParseMix(*mix)
	if err != nil {
		return usageError{err.Error()}
	}
	if *duration <= 0 && *requests <= 0 && *events <= 0 {
		return usageError{"give a --duration, --requests or --events bound"}
	}
	if *runID == "" {
		*runID = bench.NewRunID()
	}
	opts := bench.LoadOptions{
		Target: *target, AllowRemote: *allowRemote, Connections: *conns, Rate: *rate,
		Duration: *duration, MaxRequests: *requests, MaxEvents: *events, Timeout: *timeout, SeqStart: *seqStart,
		Traffic: bench.TrafficOptions{Sites: *sites, VisitorsPerSite: *visitors, SessionLength: *session,
			BatchSize: *batch, Mix: m, RunID: *runID, Seed: *seed},
	}
	if *eventRate > 0 {
		if *rate > 0 {
			return usageError{"give --rate or --event-rate, not both"}
		}
		opts.Rate = *eventRate / bench.MeanEventsPerRequest(m, *batch)
	}
	if *record != "" {
		rec, err := bench.CreateRecord(*record, *runID, *target)
		if err != nil {
			return err
		}
		opts.Record = rec
	}
	res, err := bench.Run(ctx, opts)
	if opts.Record != nil {
		if cerr := opts.Record.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	bench.WriteLoadReport(c.stdout, res)
	if *record != "" {
		fmt.Fprintf(c.stdout, "\nrecorded %d acknowledged events in %s (run %s)\n", res.EventsAccepted, *record, *runID)
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runBenchVerify(ctx context.Context, c cli, args []string) error {
	fs := newFlagSet(c, "bench verify")
	record := fs.String("record", "", "record file written by 'collector bench --record' (required)")
	dbURL := fs.String("database-url", "", "PostgreSQL URL of the collector's database (table events)")
	table := fs.String("table", "events", "events table")
	var dirs multiFlag
	fs.Var(&dirs, "export-dir", "local export destination root (repeatable)")
	s3Endpoint := fs.String("s3-endpoint", "", "S3-compatible endpoint URL (empty: AWS)")
	s3Bucket := fs.String("s3-bucket", "", "bucket of the exported objects")
	s3Prefix := fs.String("s3-prefix", "", "key prefix of the exported objects")
	s3Region := fs.String("s3-region", "us-east-1", "S3 region")
	s3Access := fs.String("s3-access-key", "", "S3 access key (default: $AWS_ACCESS_KEY_ID)")
	s3Secret := fs.String("s3-secret-key", "", "S3 secret key (default: $AWS_SECRET_ACCESS_KEY)")
	s3PathStyle := fs.Bool("s3-path-style", true, "path-style addressing (most S3-compatible stores)")
	s3Insecure := fs.Bool("s3-insecure", false, "skip TLS verification (a test server's self-signed certificate)")
	wait := fs.Duration("wait", 0, "re-check while events are missing, up to this long (the loader and shipper are asynchronous)")
	list := fs.Int("list", 20, "list the first N of each problem")
	strictPixels := fs.Bool("strict-pixels", false, "count pixel hits that never arrived as missing")
	asJSON := fs.Bool("json", false, "print the reports as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *record == "" {
		return usageError{"--record is required"}
	}
	var sources []bench.Source
	if *dbURL != "" {
		sources = append(sources, &bench.PGSource{URL: *dbURL, Table: *table})
	}
	for _, d := range dirs {
		sources = append(sources, &bench.ExportSource{Lister: bench.DirLister{Root: d}, Decode: exportDecoder()})
	}
	if *s3Bucket != "" {
		ak, sk := *s3Access, *s3Secret
		if ak == "" {
			ak, sk = c.getenv("AWS_ACCESS_KEY_ID"), c.getenv("AWS_SECRET_ACCESS_KEY")
		}
		l := bench.NewS3Lister(bench.S3Options{Endpoint: *s3Endpoint, Region: *s3Region, Bucket: *s3Bucket, Prefix: *s3Prefix,
			AccessKey: ak, SecretKey: sk, PathStyle: *s3PathStyle, Insecure: *s3Insecure})
		sources = append(sources, &bench.ExportSource{Lister: l, Decode: exportDecoder()})
	}
	if len(sources) == 0 {
		return usageError{"give at least one of --database-url, --export-dir, --s3-bucket"}
	}
	rec, err := bench.ReadRecordFile(*record)
	if err != nil {
		return err
	}
	opts := bench.VerifyOptions{ListLimit: *list, Wait: *wait, StrictPixels: *strictPixels}
	var reports []*bench.VerifyReport
	var failed []string
	for _, src := range sources {
		rep, err := bench.Verify(ctx, rec, src, opts)
		if err != nil {
			return err
		}
		reports = append(reports, rep)
		if !rep.OK {
			failed = append(failed, fmt.Sprintf("%s: %d missing, %d duplicated, %d mismatched", rep.Source, rep.Missing, rep.Duplicated, rep.Mismatched))
		}
		if !*asJSON {
			bench.WriteVerifyReport(c.stdout, rep)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return benchFailed{"verification failed: " + strings.Join(failed, "; ")}
	}
	return nil
}

// exportDecoder decodes exported objects for verification with the
// shipper's own decoder (shipper/export). bench.DecodeExport, an independent
// implementation of the documented formats, is checked against the same
// encoder in bench's tests, so the two cannot drift apart silently.
func exportDecoder() bench.ExportDecoder {
	return func(r io.Reader, key string) ([]bench.ExportedEvent, error) {
		f, comp, err := export.DetectFromKey(key)
		if err != nil {
			return nil, err
		}
		evs, err := export.Decode(r, f, comp)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", key, err)
		}
		out := make([]bench.ExportedEvent, len(evs))
		for i, e := range evs {
			out[i] = bench.ExportedEvent{EventID: e.EventID, Raw: e.RawEventData}
		}
		return out, nil
	}
}

func runBenchNoop(ctx context.Context, c cli, args []string) error {
	fs := newFlagSet(c, "bench noop")
	addr := fs.String("addr", "127.0.0.1:8001", "listen address")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return bench.ServeNoop(ctx, *addr, func(a string) { fmt.Fprintf(c.stdout, "noop listening on %s\n", a) })
}

func runBenchSuite(ctx context.Context, c cli, args []string) error {
	fs := newFlagSet(c, "bench suite")
	quick := fs.Bool("quick", false, "the quick suite (under a minute)")
	smoke := fs.Bool("smoke", false, "the CI smoke (seconds per scenario; checks that everything runs and verifies)")
	out := fs.String("out", "", "directory for result.json and report.html (default bench/results/<UTC time>)")
	md := fs.String("md", "", "BENCHMARKS.md to regenerate (empty: do not touch)")
	bin := fs.String("collector", "", "collector binary to start (default: this executable)")
	pgURL := fs.String("pg-url", "postgres://postgres@127.0.0.1:5432/postgres", "PostgreSQL admin URL; the suite creates and drops its own database")
	only := fs.String("scenarios", "", "comma-separated scenario numbers to run (default: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *quick && *smoke {
		return usageError{"give --quick or --smoke, not both"}
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this executable: %w", err)
		}
		*bin = exe
	}
	level := bench.LevelFull
	switch {
	case *quick:
		level = bench.LevelQuick
	case *smoke:
		level = bench.LevelSmoke
	}
	if *out == "" {
		*out = "bench/results/" + time.Now().UTC().Format("20060102T150405Z")
	}
	res, err := bench.RunSuite(ctx, bench.SuiteOptions{
		Level: level, Collector: *bin, AdminPGURL: *pgURL, Out: *out, Only: *only,
		Command: "collector bench suite " + strings.Join(args, " "), Log: c.stderr, Decode: exportDecoder(),
	})
	if res != nil {
		if err := bench.WriteOutputs(res, *out, *md); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "wrote %s/result.json and %s/report.html\n", *out, *out)
		if *md != "" {
			fmt.Fprintf(c.stdout, "regenerated %s\n", *md)
		}
		bench.WriteSuiteSummary(c.stdout, res)
	}
	if err != nil {
		return err
	}
	if failed := res.Failures(); len(failed) > 0 {
		return benchFailed{"suite failed: " + strings.Join(failed, "; ")}
	}
	return nil
}

func runBenchReport(_ context.Context, c cli, args []string) error {
	fs := newFlagSet(c, "bench report")
	in := fs.String("in", "", "result.json written by 'bench suite' (required)")
	md := fs.String("md", "", "BENCHMARKS.md to regenerate")
	html := fs.String("html", "", "HTML report to write (default: beside the result)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return usageError{"--in is required"}
	}
	res, err := bench.ReadSuiteResult(*in)
	if err != nil {
		return err
	}
	if *html == "" {
		*html = strings.TrimSuffix(*in, ".json") + ".html"
		if strings.HasSuffix(*in, "result.json") {
			*html = strings.TrimSuffix(*in, "result.json") + "report.html"
		}
	}
	if err := bench.WriteHTML(res, *html); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s\n", *html)
	if *md != "" {
		if err := bench.UpdateBenchmarksMD(*md, res); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "regenerated %s\n", *md)
	}
	return nil
}
