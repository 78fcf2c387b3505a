package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
	"github.com/valyala/fasthttp"
)

// HealthReporter is a component that shows its state in /health under its
// key. Health must not block (report cached state, not a fresh probe):
// load balancers call /health often and a slow answer looks like an outage.
// degraded means the component is impaired but events are still accepted.
type HealthReporter interface {
	HealthKey() string
	Health() (details any, degraded bool)
}

const (
	healthHealthy   = "healthy"
	healthDegraded  = "degraded"
	healthUnhealthy = "unhealthy"

	databaseNotConfigured = "not configured"
	databaseDisconnected  = "disconnected"
)

// isReservedHealthKey reports whether k is one of /health's own keys, which
// a reporter may not take.
func isReservedHealthKey(k string) bool {
	switch k {
	case "status", "database", "timestamp", "node_id", "wal", "reasons":
		return true
	}
	return false
}

func validateReporters(reporters []HealthReporter) error {
	seen := map[string]bool{}
	for _, r := range reporters {
		k := r.HealthKey()
		switch {
		case k == "":
			return fmt.Errorf("health reporter %T: empty key", r)
		case isReservedHealthKey(k):
			return fmt.Errorf("health reporter %T: key %q is reserved", r, k)
		case seen[k]:
			return fmt.Errorf("health reporter %T: key %q used twice", r, k)
		}
		seen[k] = true
	}
	return nil
}

// walRefusal says why the WAL cannot take events, or "" when it can.
func walRefusal(w WALState) string {
	err := w.Err()
	switch {
	case err == nil:
		return ""
	case errors.Is(err, wal.ErrFull):
		return "WAL is full (WAL_MAX_BYTES or low disk space)"
	case errors.Is(err, wal.ErrClosed):
		return "WAL is closed"
	}
	return "WAL cannot accept: " + err.Error()
}

func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	status, code := healthHealthy, fasthttp.StatusOK
	var reasons []string
	database := databaseNotConfigured
	if s.opts.Database != nil {
		database = s.opts.Database()
	}
	if database == databaseDisconnected {
		status = healthDegraded
		reasons = append(reasons, "database disconnected")
	}
	var walStats *wal.Stats
	walWhy := ""
	if s.opts.WAL != nil {
		st := s.opts.WAL.Stats()
		walStats = &st
		walWhy = walRefusal(s.opts.WAL)
	}
	type part struct {
		key     string
		details any
	}
	parts := make([]part, 0, len(s.reporters))
	for _, r := range s.reporters {
		details, degraded := r.Health()
		if degraded {
			status = healthDegraded
			reasons = append(reasons, r.HealthKey()+" degraded")
		}
		parts = append(parts, part{r.HealthKey(), details})
	}
	if walWhy != "" {
		status, code = healthUnhealthy, fasthttp.StatusServiceUnavailable
		reasons = append([]string{walWhy}, reasons...)
	}

	b := make([]byte, 0, 512)
	b = append(b, `{"status":`...)
	b = event.AppendJSONString(b, status)
	b = append(b, `,"database":`...)
	b = event.AppendJSONString(b, database)
	b = append(b, `,"timestamp":"`...)
	b = AppendTimestamp(b, time.Now())
	b = append(b, '"')
	if s.opts.NodeID != "" {
		b = append(b, `,"node_id":`...)
		b = event.AppendJSONString(b, s.opts.NodeID)
	}
	appendValue := func(key string, v any) {
		enc, err := json.Marshal(v)
		if err != nil {
			enc, _ = json.Marshal(map[string]string{"error": "cannot encode: " + err.Error()})
		}
		b = append(b, ',')
		b = event.AppendJSONString(b, key)
		b = append(b, ':')
		b = append(b, enc...)
	}
	if walStats != nil {
		appendValue("wal", walStats)
	}
	for _, p := range parts {
		appendValue(p.key, p.details)
	}
	if len(reasons) > 0 {
		appendValue("reasons", reasons)
	}
	b = append(b, '}')
	ctx.SetStatusCode(code)
	ctx.SetContentType(ContentTypeJSON)
	ctx.SetBody(b)
}

func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "5")
		WriteError(ctx, fasthttp.StatusServiceUnavailable, "not ready: shutting down", "")
		return
	}
	if s.opts.WAL != nil {
		if why := walRefusal(s.opts.WAL); why != "" {
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "5")
			WriteError(ctx, fasthttp.StatusServiceUnavailable, "not ready: "+why, "wal")
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(ContentTypeJSON)
	ctx.SetBodyString(`{"status":"ready"}`)
}
