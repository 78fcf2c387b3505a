package loader

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rows      prometheus.Counter
	batches   prometheus.Counter
	copySecs  prometheus.Histogram
	rejected  *prometheus.CounterVec
	duplicate prometheus.Counter
	retries   prometheus.Counter
	skipped   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, lagEvents, lagSeconds func() float64) *metrics {
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_loader_rows_total",
			Help: "Events loaded into PostgreSQL.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_loader_batches_total",
			Help: "Batches committed to PostgreSQL.",
		}),
		copySecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "collector_loader_copy_duration_seconds",
			Help:    "Time to load and commit one batch (COPY plus offset update).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14), // 2ms .. 16s
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_loader_rejected_rows_total",
			Help: "Records written to events_rejected instead of events, by stage (decode, encode, database).",
		}, []string{"stage"}),
		duplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_loader_duplicate_rows_total",
			Help: "Records found already in events (loaded by a replay) and skipped.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_loader_retries_total",
			Help: "Failed attempts that were retried after a backoff (database down, slow or refusing).",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_loader_skipped_events_total",
			Help: "WAL indexes the loader could not load because the WAL had removed them (database restored from an older backup).",
		}),
	}
	for _, stage := range []string{stageDecode, stageEncode, stageDatabase} {
		m.rejected.WithLabelValues(stage)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.rows, m.batches, m.copySecs, m.rejected, m.duplicate, m.retries, m.skipped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "collector_loader_lag_events",
			Help: "WAL records not yet loaded into PostgreSQL.",
		}, lagEvents),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "collector_loader_lag_seconds",
			Help: "Age of the oldest event not yet loaded into PostgreSQL (0 when caught up).",
		}, lagSeconds),
	)
	return m
}
