package wal

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appended         prometheus.Counter
	batchRecords     prometheus.Histogram
	fsyncSeconds     prometheus.Histogram
	commitSeconds    prometheus.Histogram
	full             prometheus.Counter
	failures         prometheus.Counter
	repairs          prometheus.Counter
	quarantinedBytes prometheus.Counter
	removedSegments  prometheus.Counter
	segmentOpens     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, l *Log) *metrics {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_records_appended_total", Help: "Records appended to the WAL."}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "collector_wal_batch_records", Help: "Records per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "collector_wal_fsync_duration_seconds", Help: "Duration of one WAL fsync.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "collector_wal_commit_duration_seconds", Help: "Duration of one group commit (write and, with WAL_SYNC=always, fsync).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
		full:             prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_full_rejections_total", Help: "Appends refused because the WAL was over its size limit or the disk was nearly full."}),
		failures:         prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_failures_total", Help: "Write or fsync failures (each fail-stops the WAL)."}),
		repairs:          prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_repairs_total", Help: "Torn tails cut at open."}),
		quarantinedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_quarantined_bytes_total", Help: "Bytes cut from torn tails and kept in quarantine/."}),
		removedSegments:  prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_segments_removed_total", Help: "Segments removed after every consumer processed them."}),
		segmentOpens: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_wal_sealed_segment_opens_total",
			Help: "Sealed segments opened for reading; more than one per segment and consumer means readers jump backwards (retries)."}),
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(l.Stats()) })
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(m.appended, m.batchRecords, m.fsyncSeconds, m.commitSeconds, m.full, m.failures, m.repairs, m.quarantinedBytes, m.removedSegments, m.segmentOpens,
		gauge("collector_wal_bytes", "Bytes in WAL segments.", func(s Stats) float64 { return float64(s.Bytes) }),
		gauge("collector_wal_max_bytes", "WAL_MAX_BYTES.", func(s Stats) float64 { return float64(s.MaxBytes) }),
		gauge("collector_wal_segments", "WAL segment files.", func(s Stats) float64 { return float64(s.Segments) }),
		gauge("collector_wal_first_index", "First readable WAL index.", func(s Stats) float64 { return float64(s.FirstIndex) }),
		gauge("collector_wal_last_index", "Last durable WAL index.", func(s Stats) float64 { return float64(s.LastIndex) }),
		gauge("collector_wal_full", "1 while the WAL refuses appends for lack of space.", func(s Stats) float64 { return b2f(s.Full) }),
		gauge("collector_wal_failed", "1 while the WAL is fail-stopped.", func(s Stats) float64 { return b2f(s.Failed != "") }),
	)
	return m
}
