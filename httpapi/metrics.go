package httpapi

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// routeLabelUnmatched is the route label of requests that matched no route
// (404s, protocol errors before routing), keeping the label set bounded.
const routeLabelUnmatched = "unmatched"

type serverMetrics struct {
	requests      *prometheus.CounterVec
	rejectedConns prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "collector_http_requests_total",
			Help: "HTTP responses by route pattern and status code.",
		}, []string{"route", "status"}),
		rejectedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "collector_http_connections_rejected_total",
			Help: "Connections answered 503 and closed because MAX_CONNECTIONS were open.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.rejectedConns} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// statusCounters caches one route's counters by status code, so that counting
// a response costs an atomic load instead of a label lookup (which hashes
// and allocates).
type statusCounters struct {
	route    string
	vec      *prometheus.CounterVec
	byStatus [600]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

func newStatusCounters(vec *prometheus.CounterVec, route string) *statusCounters {
	return &statusCounters{route: route, vec: vec}
}

func (s *statusCounters) inc(status int) {
	if status < 0 || status >= len(s.byStatus) {
		s.vec.WithLabelValues(s.route, strconv.Itoa(status)).Inc()
		return
	}
	ref := s.byStatus[status].Load()
	if ref == nil {
		ref = &counterRef{c: s.vec.WithLabelValues(s.route, strconv.Itoa(status))}
		s.byStatus[status].Store(ref)
	}
	ref.c.Inc()
}
