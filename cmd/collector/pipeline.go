package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/wal"
)

// pipeline is what the downstream stages add to the server.
type pipeline struct {
	routes    []httpapi.Route
	reporters []httpapi.HealthReporter
	stages    []stage
	database  func() string
	onHangup  []func(ctx context.Context) error
}

func buildPipeline(ctx context.Context, cfg *config.Config, log *wal.Log, logger *slog.Logger, reg prometheus.Registerer) (*pipeline, error) {
	p := &pipeline{}
	if err := addLoaderStage(ctx, p, cfg, log, logger, reg); err != nil {
		return nil, err
	}
	return p, nil
}
