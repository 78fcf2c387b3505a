package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// watchHangup calls reload on every SIGHUP until ctx ends.
func watchHangup(ctx context.Context, logger *slog.Logger, reload func(ctx context.Context) error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			if err := reload(ctx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("reload on SIGHUP failed; keeping the previous configuration", "error", err)
			} else {
				logger.Info("configuration reloaded on SIGHUP")
			}
		}
	}
}
