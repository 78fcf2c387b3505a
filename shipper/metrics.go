package shipper

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	objects     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	events      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	failures    *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	lagEvents   *prometheus.GaugeVec
	lagSeconds  *prometheus.GaugeVec
	unclaimed   prometheus.Counter
	shared      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	dest := []string{"destination"}
	m := &metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_objects_total",
			Help: "Export objects stored, per destination."}, dest),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_bytes_total",
			Help: "Bytes of export objects stored, per destination."}, dest),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_events_total",
			Help: "Events in export objects stored, per destination (once per format)."}, dest),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "collector_export_upload_duration_seconds",
			Help: "Time to encode and upload one export object.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12)}, dest),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_retries_total",
			Help: "Failed unit attempts that will be retried after a backoff."}, dest),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_failures_total",
			Help: "Failed unit attempts, by reason (error, denied)."}, []string{"destination", "reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_dead_letters_total",
			Help: "Units dead-lettered after EXPORT_MAX_ATTEMPTS attempts."}, dest),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "collector_export_lag_events",
			Help: "WAL records after the destination's position."}, dest),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "collector_export_lag_seconds",
			Help: "Age of the oldest WAL record the destination has not exported."}, dest),
		unclaimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_export_unclaimed_events_total",
			Help: "Events of sites no client claims, exported to the backup destination only."}),
		shared: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "collector_export_objects_shared_total",
			Help: "Export objects stored from the spool, encoded by another destination (their bytes are identical), per destination."}, dest),
	}
	if reg != nil {
		reg.MustRegister(m.objects, m.bytes, m.events, m.duration, m.retries, m.failures, m.deadLetters,
			m.lagEvents, m.lagSeconds, m.unclaimed, m.shared)
	}
	return m
}

func (m *metrics) observeUpload(dest string, d time.Duration, bytes int64, events int) {
	m.objects.WithLabelValues(dest).Inc()
	m.bytes.WithLabelValues(dest).Add(float64(bytes))
	m.events.WithLabelValues(dest).Add(float64(events))
	m.duration.WithLabelValues(dest).Observe(d.Seconds())
}
