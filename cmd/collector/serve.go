package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/ingest"
	"github.com/evothesis/collector/wal"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

func newLogger(c *config.Config, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node_id", c.NodeID)
}

// stage is a background part of the server (loader, shipper) that runs until
// its context ends.
type stage struct {
	name string
	run  func(ctx context.Context) error
}

func runServe(ctx context.Context, c cli, args []string) error {
	cfg, err := config.Load(args, c.getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err) // wraps flag.ErrHelp for -h: main exits 0
	}
	logger := newLogger(&cfg, os.Stderr)
	logger.Info("collector starting", "version", version, "addr", cfg.Addr, "environment", cfg.Environment, "wal_dir", cfg.WALDir, "wal_sync", cfg.WALSync)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	log, err := wal.Open(ctx, wal.Options{
		Dir: cfg.WALDir, Sync: wal.SyncMode(cfg.WALSync), SyncInterval: cfg.WALSyncInterval,
		SegmentBytes: cfg.WALSegmentBytes, MaxBytes: cfg.WALMaxBytes, Retention: cfg.WALRetention,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	// The WAL closes last: after the HTTP server has answered every
	// in-flight request and the stages have stopped reading.
	defer func() {
		if err := log.Close(); err != nil {
			logger.Error("close wal", "error", err)
		}
	}()

	ingestOpts := ingest.OptionsFromConfig(&cfg)
	ingestOpts.Logger, ingestOpts.Registerer = logger, reg
	collect, err := ingest.New(log, ingestOpts)
	if err != nil {
		return err
	}

	routes := collect.Routes()
	var reporters []httpapi.HealthReporter
	var stages []stage
	database := func() string { return "not configured" }

	lim, err := newElastic(&cfg, log, collect.Requests, logger, reg)
	if err != nil {
		return err
	}
	p, err := buildPipeline(ctx, &cfg, log, lim, logger, reg)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			p.close() // startup failed before the stages ran
		}
	}()
	routes = append(routes, p.routes...)
	reporters = append(reporters, p.reporters...)
	stages = append(stages, p.stages...)
	if p.database != nil {
		database = p.database
	}

	httpOpts := httpapi.OptionsFromConfig(&cfg)
	httpOpts.Logger, httpOpts.Registerer, httpOpts.Gatherer = logger, reg, reg
	httpOpts.Database = database
	httpOpts.WAL = log
	srv, err := httpapi.New(httpOpts, routes, reporters...)
	if err != nil {
		return err
	}

	started = true
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, s := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(stageCtx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("stage stopped", "stage", s.name, "error", err)
			}
		}()
	}
	for _, h := range p.onHangup {
		go watchHangup(stageCtx, logger, h)
	}

	logger.Info("collector listening", "addr", cfg.Addr)
	serveErr := srv.ListenAndServe(ctx)
	// SIGTERM: the server has stopped accepting and finished in-flight
	// requests; now stop the stages, then close the WAL (final fsync).
	logger.Info("collector stopping: stages")
	stopStages()
	wg.Wait()
	if err := p.close(); err != nil {
		logger.Error("close pipeline", "error", err)
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("collector stopped")
	return nil
}
