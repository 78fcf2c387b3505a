package main

// The loader's commands (`migrate`, `lag`, `replay`) and its part of `serve`
// (addLoaderStage). Owned by the loader; main.go and pipeline.go call in.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/lag"
	"github.com/evothesis/collector/loader"
	"github.com/evothesis/collector/wal"
)

// addLoaderStage adds the loader to the server when DATABASE_URL is set: the
// stage that tails the WAL into PostgreSQL (migrating first, retrying while
// the database is away), its /health entry and database state, the admin
// route GET /events/recent, and GET /lag (which works without a database
// too, for the export consumers).
func addLoaderStage(ctx context.Context, p *pipeline, cfg *config.Config, log *wal.Log, logger *slog.Logger, reg prometheus.Registerer) error {
	var sources []lag.StateSource
	defer func() {
		p.routes = append(p.routes, httpapi.Route{Method: fasthttp.MethodGet, Path: "/lag",
			Handler: lag.Handler(func() lag.Report { return lag.Live(log, cfg.NodeID, sources...) })})
	}()
	if cfg.DatabaseURL == "" {
		logger.Warn("DATABASE_URL is empty: events are kept in the WAL and exported, but not loaded into PostgreSQL")
		return nil
	}
	pool, err := loader.NewPool(ctx, cfg.DatabaseURL, cfg.DBPoolSize, cfg.DBMaxOverflow)
	if err != nil {
		return err
	}
	ld, err := loader.New(pool, log, loader.OptionsFromConfig(*cfg, logger, reg))
	if err != nil {
		pool.Close()
		return err
	}
	sources = append(sources, ld)
	p.routes = append(p.routes, httpapi.Route{Method: fasthttp.MethodGet, Path: "/events/recent",
		Handler: loader.RecentHandler(pool, 10*time.Second), Admin: true})
	p.reporters = append(p.reporters, ld)
	p.database = ld.DatabaseState
	p.pool = pool
	p.stages = append(p.stages, stage{name: "loader", run: ld.Run})
	// The stages stop after the HTTP server has finished, and the pool
	// closes after every stage (the shipper's backfills read it too).
	p.closers = append(p.closers, func() error { pool.Close(); return nil })
	return nil
}

func loaderFlagSet(c cli, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s\n\nflags:\n", usage)
		fs.PrintDefaults()
		fmt.Fprintln(c.stderr, "\nEvery other setting comes from the environment (DATABASE_URL, WAL_DIR, NODE_ID, ...).")
	}
	return fs
}

func parseLoaderFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// envConfig is the configuration from the environment alone (these
// commands take their own flags, not serve's).
func envConfig(c cli) (config.Config, error) {
	cfg, err := config.Load(nil, c.getenv)
	if err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, usageError{"DATABASE_URL is not set (or pass --database-url)"}
	}
	return loader.NewPool(ctx, databaseURL, 2, 0)
}

// runMigrate: collector migrate [status]
func runMigrate(ctx context.Context, c cli, args []string) error {
	cfg, err := envConfig(c)
	if err != nil {
		return err
	}
	fs := loaderFlagSet(c, "migrate", "collector migrate [--database-url URL] [status]\n\n"+
		"Applies the embedded schema migrations (safe while other nodes start: an advisory lock serialises them;\n"+
		"re-running is a no-op). 'status' lists them instead.")
	dbURL := fs.String("database-url", cfg.DatabaseURL, "PostgreSQL URL (default: DATABASE_URL)")
	if err := parseLoaderFlags(fs, args); err != nil {
		return err
	}
	status := false
	switch {
	case fs.NArg() == 0:
	case fs.NArg() == 1 && fs.Arg(0) == "status":
		status = true
	default:
		return usageError{fmt.Sprintf("unexpected argument %q (want nothing or 'status')", fs.Arg(0))}
	}
	pool, err := openPool(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if status {
		st, err := loader.MigrationStatus(ctx, pool)
		if err != nil {
			return err
		}
		for _, m := range st {
			state := "pending"
			if m.Applied {
				state = "applied"
			}
			fmt.Fprintf(c.stdout, "%05d  %-8s %s\n", m.Version, state, m.Name)
		}
		return nil
	}
	applied, err := loader.Migrate(ctx, pool, nil)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "schema is up to date; nothing applied")
	}
	for _, m := range applied {
		fmt.Fprintf(c.stdout, "applied %05d %s\n", m.Version, m.Name)
	}
	return nil
}

// runReplay: collector replay --from INDEX [--to INDEX] [--wal-dir DIR] [--node-id ID]
func runReplay(ctx context.Context, c cli, args []string) error {
	cfg, err := envConfig(c)
	if err != nil {
		return err
	}
	fs := loaderFlagSet(c, "replay", "collector replay --from INDEX [--to INDEX] [--wal-dir DIR] [--node-id ID]\n\n"+
		"Re-loads a WAL range into PostgreSQL idempotently (staging table + INSERT ... ON CONFLICT DO NOTHING):\n"+
		"for a database restored from an older backup, or a WAL directory copied from another node. Events load\n"+
		"under the node id in their records; running it twice loads nothing the second time. It does not move\n"+
		"the loader's offset. Safe while the server runs.")
	from := fs.Uint64("from", 0, "first WAL index to re-load (required; 1 = from the start)")
	to := fs.Uint64("to", 0, "last WAL index to re-load, inclusive (default: the end)")
	walDir := fs.String("wal-dir", cfg.WALDir, "WAL directory (default: WAL_DIR)")
	nodeID := fs.String("node-id", cfg.NodeID, "node id for records that carry none (default: NODE_ID)")
	dbURL := fs.String("database-url", cfg.DatabaseURL, "PostgreSQL URL (default: DATABASE_URL)")
	batch := fs.Int("batch", cfg.LoaderBatchEvents, "records per transaction (default: LOADER_BATCH_EVENTS)")
	if err := parseLoaderFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *from == 0 {
		return usageError{"--from is required (1 = from the start of the WAL)"}
	}
	if *to != 0 && *to < *from {
		return usageError{fmt.Sprintf("--to %d is before --from %d", *to, *from)}
	}
	pool, err := openPool(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := loader.Migrate(ctx, pool, nil); err != nil {
		return err
	}
	lastReport := time.Now()
	res, err := loader.Replay(ctx, pool, loader.ReplayOptions{
		Dir: *walDir, From: *from, To: *to, NodeID: *nodeID, BatchEvents: *batch,
		Progress: func(r loader.ReplayResult) {
			if time.Since(lastReport) >= 2*time.Second {
				lastReport = time.Now()
				fmt.Fprintf(c.stderr, "… at index %d: %d loaded, %d skipped, %d rejected\n", r.Last, r.Loaded, r.Skipped, r.Rejected)
			}
		},
	})
	if res.Scanned == 0 && err == nil {
		fmt.Fprintf(c.stdout, "nothing to replay: %s has no records from index %d", *walDir, *from)
		if *to != 0 {
			fmt.Fprintf(c.stdout, " to %d", *to)
		}
		fmt.Fprintln(c.stdout)
		return nil
	}
	fmt.Fprintf(c.stdout, "replayed %s indexes %d-%d: %d records: %d loaded, %d skipped (already loaded), %d rejected (%d new in events_rejected)\n",
		*walDir, res.First, res.Last, res.Scanned, res.Loaded, res.Skipped, res.Rejected, res.NewRejected)
	if err != nil {
		return fmt.Errorf("%w (what is reported above is committed; re-run to continue, it is idempotent)", err)
	}
	return nil
}

// runLag: collector lag [--json] [--watch] [--offline] [--url URL]
func runLag(ctx context.Context, c cli, args []string) error {
	cfg, err := envConfig(c)
	if err != nil {
		return err
	}
	fs := loaderFlagSet(c, "lag", "collector lag [--json] [--watch [--interval D]] [--url URL | --offline [--wal-dir DIR] [--node-id ID]]\n\n"+
		"How far behind each WAL consumer (the loader, each export destination) is. Asks the running node\n"+
		"(GET /lag); when none answers, or with --offline, reads WAL_DIR directly and the loader's position\n"+
		"from DATABASE_URL's loader_offsets.")
	asJSON := fs.Bool("json", false, "print JSON instead of the table")
	watch := fs.Bool("watch", false, "refresh until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "refresh period with --watch")
	offline := fs.Bool("offline", false, "do not ask a running node; read WAL_DIR and DATABASE_URL")
	url := fs.String("url", "", "base URL of the running node (default: from COLLECTOR_ADDR, on loopback)")
	token := fs.String("token", cfg.AdminToken, "Bearer token for the node (default: ADMIN_TOKEN)")
	walDir := fs.String("wal-dir", cfg.WALDir, "WAL directory for --offline (default: WAL_DIR)")
	nodeID := fs.String("node-id", cfg.NodeID, "node whose loader offset to read offline (default: NODE_ID)")
	dbURL := fs.String("database-url", cfg.DatabaseURL, "PostgreSQL URL for --offline (default: DATABASE_URL; empty: the loader position is the WAL registry's lower bound)")
	if err := parseLoaderFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *interval <= 0 {
		return usageError{"--interval must be positive"}
	}
	explicitURL := *url != ""
	if !explicitURL {
		*url = loopbackURL(cfg.Addr)
	}
	var pool *pgxpool.Pool
	defer func() {
		if pool != nil {
			pool.Close()
		}
	}()
	fellBack := false
	fetch := func() (lag.Report, error) {
		if !*offline && !fellBack {
			r, err := fetchLag(ctx, *url, *token)
			if err == nil || explicitURL || !isUnreachable(err) {
				return r, err
			}
			fellBack = true
			fmt.Fprintf(c.stderr, "no collector answers at %s; reading %s offline\n", *url, *walDir)
		}
		var overrides []lag.Override
		if *dbURL != "" {
			if pool == nil {
				if pool, err = loader.NewPool(ctx, *dbURL, 1, 0); err != nil {
					return lag.Report{}, err
				}
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			o, found, err := loader.ReadOffset(qctx, pool, *nodeID)
			cancel()
			switch {
			case err != nil:
				fmt.Fprintf(c.stderr, "cannot read the loader's offset from PostgreSQL (%v); showing the WAL registry's lower bound\n", err)
			case found:
				overrides = append(overrides, lag.Override{Source: "database",
					State: wal.ConsumerState{Name: loader.ConsumerName, Position: o.LastIndex, LastSuccess: o.UpdatedAt}})
			}
		}
		return lag.Offline(ctx, *walDir, *nodeID, overrides...)
	}
	render := func(r lag.Report) error {
		if *asJSON {
			if *watch {
				return json.NewEncoder(c.stdout).Encode(r) // one line per refresh
			}
			return lag.WriteJSON(c.stdout, r)
		}
		if *watch {
			fmt.Fprint(c.stdout, "\033[H\033[2J")
		}
		return lag.WriteTable(c.stdout, r)
	}
	for {
		r, err := fetch()
		if err != nil {
			return err
		}
		if err := render(r); err != nil {
			return err
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// loopbackURL turns a listen address (":8000", "0.0.0.0:8000", "[::]:8000")
// into the URL of this host's node.
func loopbackURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8000"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func fetchLag(ctx context.Context, base, token string) (lag.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/lag", nil)
	if err != nil {
		return lag.Report{}, usageError{fmt.Sprintf("--url: %v", err)}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return lag.Report{}, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return lag.Report{}, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(body, &e)
		return lag.Report{}, fmt.Errorf("GET %s: %s %s", req.URL, resp.Status, e.Message)
	}
	var r lag.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return lag.Report{}, fmt.Errorf("GET %s: not a lag report: %w", req.URL, err)
	}
	return r, nil
}

// isUnreachable: nothing listens (as opposed to a node that answered badly).
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}
