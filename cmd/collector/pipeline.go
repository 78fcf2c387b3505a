package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/internal/elastic"
	"github.com/evothesis/collector/secrets"
	"github.com/evothesis/collector/shipper"
	"github.com/evothesis/collector/shipper/clients"
	"github.com/evothesis/collector/wal"
)

// pipeline is what the downstream stages add to the server.
type pipeline struct {
	routes    []httpapi.Route
	reporters []httpapi.HealthReporter
	stages    []stage
	database  func() string
	onHangup  []func(ctx context.Context) error
	pool      *pgxpool.Pool  // the loader's pool, nil without DATABASE_URL
	closers   []func() error // run after every stage has stopped
}

func (p *pipeline) close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	return errors.Join(errs...)
}

// buildPipeline adds the loader and the shipper; lim (nil: off) paces the
// shipper's exports.
func buildPipeline(ctx context.Context, cfg *config.Config, log *wal.Log, lim *elastic.Limiter, logger *slog.Logger, reg prometheus.Registerer) (*pipeline, error) {
	p := &pipeline{}
	if err := addLoaderStage(ctx, p, cfg, log, logger, reg); err != nil {
		return nil, err
	}
	if err := addShipperStage(ctx, p, cfg, log, lim, logger, reg); err != nil {
		p.close()
		return nil, err
	}
	if lim != nil {
		p.stages = append(p.stages, stage{name: "elastic", run: lim.Run})
	}
	return p, nil
}

// newElastic builds the limiter that slows background work (exports) down
// while ingest needs the CPU: foreground counts ingest requests; exports
// are never held back while their backlog fills half of WAL_MAX_BYTES.
// Nil when ELASTIC_LATENCY_TARGET is off.
func newElastic(cfg *config.Config, log *wal.Log, foreground func() uint64, logger *slog.Logger, reg prometheus.Registerer) (*elastic.Limiter, error) {
	if cfg.ElasticLatencyTarget <= 0 {
		return nil, nil
	}
	return elastic.New(elastic.Options{
		Target: cfg.ElasticLatencyTarget, Floor: cfg.ElasticFloorRate, Interval: cfg.ElasticInterval,
		Foreground: foreground, Urgent: exportBacklogOver(log, cfg.WALMaxBytes/2),
		Logger: logger.With("stage", "elastic"), Registerer: reg,
	})
}

// exportBacklogOver reports whether the WAL bytes the furthest-behind
// export destination has not shipped reach limit.
func exportBacklogOver(log *wal.Log, limit int64) func() bool {
	return func() bool {
		pos, found := uint64(math.MaxUint64), false
		for _, c := range log.Consumers() {
			if strings.HasPrefix(c.Name, "export:") {
				pos, found = min(pos, c.Position), true
			}
		}
		return found && log.BytesAfter(pos) >= limit
	}
}

// loadDestinations reads the clients file (or the single-client variables)
// and builds the export destinations; SIGHUP calls it again.
func loadDestinations(ctx context.Context, cfg *config.Config, so shipper.StoreOptions) (*clients.Config, []shipper.Destination, error) {
	kr, err := secrets.LoadKeyring(cfg.SecretKey, cfg.SecretKeyFile, cfg.PreviousSecretKey)
	if err != nil {
		return nil, nil, fmt.Errorf("secret key: %w", err)
	}
	cc, err := clients.Load(*cfg, kr)
	if err != nil {
		return nil, nil, fmt.Errorf("export destinations: %w", err)
	}
	dests, err := shipper.Destinations(ctx, cc, so)
	if err != nil {
		return nil, nil, fmt.Errorf("export destinations: %w", err)
	}
	return cc, dests, nil
}

func addShipperStage(ctx context.Context, p *pipeline, cfg *config.Config, log *wal.Log, lim *elastic.Limiter, logger *slog.Logger, reg prometheus.Registerer) error {
	so := shipper.StoreOptions{PartSize: cfg.ExportPartBytes}
	if cfg.S3CAFile != "" {
		ca, err := os.ReadFile(cfg.S3CAFile)
		if err != nil {
			return fmt.Errorf("S3_CA_FILE: %w", err)
		}
		so.CAPEM = ca
	}
	cc, dests, err := loadDestinations(ctx, cfg, so)
	if err != nil {
		return err
	}
	stateDir := cfg.ExportStateDir
	if stateDir == "" {
		stateDir = shipper.DefaultStateDir(cfg.WALDir)
	}
	opts := shipper.Options{
		Log: log, NodeID: cfg.NodeID, StateDir: stateDir,
		Concurrency: cfg.ExportConcurrency, MaxAttempts: cfg.ExportMaxAttempts,
		RetryBase: cfg.ExportRetryBase, RetryMax: cfg.ExportRetryMax,
		Logger: logger.With("stage", "shipper"), Registerer: reg, ClientsConfig: cc.Redacted(),
	}
	if p.pool != nil {
		opts.Archive = &shipper.PGArchive{Pool: p.pool}
	}
	if lim != nil {
		opts.Pacer = lim
	}
	sh, err := shipper.New(opts, dests)
	if err != nil {
		return err
	}
	p.stages = append(p.stages, stage{name: "shipper", run: sh.Run})
	p.routes = append(p.routes, sh.Routes()...)
	p.reporters = append(p.reporters, sh)
	p.onHangup = append(p.onHangup, func(ctx context.Context) error {
		cc, dests, err := loadDestinations(ctx, cfg, so)
		if err != nil {
			return err
		}
		if err := sh.Reload(ctx, dests); err != nil {
			return err
		}
		sh.SetClientsConfig(cc.Redacted())
		return nil
	})
	for _, d := range dests {
		logger.Info("export destination", "consumer", d.Name(), "schedule", d.ScheduleName, "formats", fmt.Sprint(d.Formats))
	}
	return nil
}
