package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// rejectReason labels collector_events_rejected_total and, for the pixel,
// collector_pixel_failures_total. The set is fixed so labels stay bounded.
type rejectReason int

const (
	reasonMalformed     rejectReason = iota // body is not JSON (or not an object/array)
	reasonInvalidEvent                      // a required field is missing or a field is invalid
	reasonBodyTooLarge                      // body over MAX_BODY_BYTES
	reasonBatchTooLarge                     // more than MAX_BATCH_EVENTS events
	reasonUnsupported                       // Content-Type or Content-Encoding we cannot read
	reasonWALFull                           // wal.ErrFull
	reasonWALFailed                         // wal.ErrFailed
	reasonWALClosed                         // wal.ErrClosed (shutting down)
	reasonAppendError                       // any other Append error
	numReasons
)

func (r rejectReason) String() string {
	return [...]string{
		reasonMalformed:     "malformed",
		reasonInvalidEvent:  "invalid_event",
		reasonBodyTooLarge:  "body_too_large",
		reasonBatchTooLarge: "batch_too_large",
		reasonUnsupported:   "unsupported_media_type",
		reasonWALFull:       "wal_full",
		reasonWALFailed:     "wal_failed",
		reasonWALClosed:     "wal_closed",
		reasonAppendError:   "append_error",
	}[r]
}

type metrics struct {
	accepted       prometheus.Counter
	rejected       [numReasons]prometheus.Counter
	pixelFailures  [numReasons]prometheus.Counter
	acceptDuration prometheus.Histogram
	batchEvents    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	accepted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "collector_events_accepted_total",
		Help: "Events acknowledged to clients (durable in the WAL per WAL_SYNC).",
	})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collector_events_rejected_total",
		Help: "Events not stored, by reason (a malformed or oversized body counts as one).",
	}, []string{"reason"})
	pixel := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "collector_pixel_failures_total",
		Help: "GET /collect and /pixel.gif requests answered with the GIF although the event was not stored, by reason.",
	}, []string{"reason"})
	acceptDuration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "collector_accept_duration_seconds",
		Help: "Time from the start of handling a request to its acknowledgement (after the WAL append returned).",
		// 50µs to ~3.3s: group-committed fsyncs sit around 0.2-2 ms.
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 17),
	})
	batchEvents := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "collector_batch_events",
		Help:    "Events per ingest request (1 for single events and pixels).",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	})
	m := &metrics{accepted: accepted, acceptDuration: acceptDuration, batchEvents: batchEvents}
	for r := rejectReason(0); r < numReasons; r++ {
		m.rejected[r] = rejected.WithLabelValues(r.String())
		m.pixelFailures[r] = pixel.WithLabelValues(r.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{accepted, rejected, pixel, acceptDuration, batchEvents} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
