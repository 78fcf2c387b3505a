package shipper

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/evothesis/collector/httpapi"
	"github.com/evothesis/collector/shipper/export"
	"github.com/valyala/fasthttp"
)

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.Response.Header.Set("Cache-Control", "no-store")
	httpapi.WriteJSON(ctx, status, v)
}

func writeError(ctx *fasthttp.RequestCtx, status int, message, field string) {
	httpapi.WriteError(ctx, status, message, field)
}

// Routes returns the /export endpoints, all admin (ADMIN_TOKEN).
func (s *Shipper) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Method: http.MethodPost, Path: "/export/run", Handler: s.HandleRun, Admin: true},
		{Method: http.MethodGet, Path: "/export/status", Handler: s.HandleStatus, Admin: true},
		{Method: http.MethodGet, Path: "/export/config", Handler: s.HandleConfig, Admin: true},
		{Method: http.MethodPost, Path: "/export/retry", Handler: s.HandleRetry, Admin: true},
	}
}

// parseTime accepts RFC 3339 or a bare date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", s)
}

// HandleRun is POST /export/run?format=&compression=&since=&until=&client=&destination=.
// It answers 202 with the run id; the run shows in GET /export/status.
func (s *Shipper) HandleRun(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	var req RunRequest
	if v := string(args.Peek("format")); v != "" {
		for _, part := range strings.Split(v, ",") {
			f, err := export.ParseFormat(strings.TrimSpace(part))
			if err != nil {
				writeError(ctx, http.StatusBadRequest, "format: want json, ndjson, csv or parquet", "format")
				return
			}
			req.Formats = append(req.Formats, f)
		}
	}
	if v := string(args.Peek("compression")); v != "" {
		c, err := export.ParseCompression(v)
		if err != nil {
			writeError(ctx, http.StatusBadRequest, "compression: want gzip, zstd or none", "compression")
			return
		}
		req.Compression = c
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &req.Since}, {"until", &req.Until}} {
		if v := string(args.Peek(f.name)); v != "" {
			t, err := parseTime(v)
			if err != nil {
				writeError(ctx, http.StatusBadRequest, f.name+": want an RFC 3339 time (2025-06-22T00:00:00Z) or a date", f.name)
				return
			}
			*f.dst = t
		}
	}
	if !req.Since.IsZero() && !req.Until.IsZero() && !req.Since.Before(req.Until) {
		writeError(ctx, http.StatusBadRequest, "since must be before until", "until")
		return
	}
	req.Client = string(args.Peek("client"))
	req.Kind = string(args.Peek("destination"))
	switch req.Kind {
	case "", KindClient, KindBackup, "all":
	default:
		writeError(ctx, http.StatusBadRequest, "destination: want client, backup or all", "destination")
		return
	}
	run, err := s.StartRun(req)
	switch {
	case errors.Is(err, ErrUnknownClient):
		writeError(ctx, http.StatusNotFound, err.Error(), "client")
		return
	case errors.Is(err, ErrBusy):
		ctx.Response.Header.Set("Retry-After", "10")
		writeError(ctx, http.StatusTooManyRequests, err.Error(), "")
		return
	case err != nil:
		writeError(ctx, http.StatusConflict, err.Error(), "")
		return
	}
	writeJSON(ctx, http.StatusAccepted, map[string]any{
		"status": "accepted", "message": "export run started", "run_id": run.ID,
		"destinations": run.Destinations, "key_prefix": run.Prefix,
	})
}

// Status is GET /export/status.
type Status struct {
	Status       string              `json:"status"` // ok, degraded
	NodeID       string              `json:"node_id"`
	Timestamp    time.Time           `json:"timestamp"`
	Destinations []DestinationStatus `json:"destinations"`
	Runs         []Run               `json:"runs"`
}

// Status reports every destination and the recent manual runs.
func (s *Shipper) Status() Status {
	st := Status{Status: "ok", NodeID: s.opts.NodeID, Timestamp: s.now().UTC(), Destinations: []DestinationStatus{}, Runs: s.runs.list()}
	for _, r := range s.runners() {
		d := r.status()
		if d.State != StateActive {
			st.Status = "degraded"
		}
		st.Destinations = append(st.Destinations, d)
	}
	return st
}

// HandleStatus is GET /export/status; ?run_id= shows one run.
func (s *Shipper) HandleStatus(ctx *fasthttp.RequestCtx) {
	if id := string(ctx.QueryArgs().Peek("run_id")); id != "" {
		run, ok := s.runs.get(id)
		if !ok {
			writeError(ctx, http.StatusNotFound, "no such run", "run_id")
			return
		}
		writeJSON(ctx, http.StatusOK, map[string]any{"status": "ok", "run": run})
		return
	}
	writeJSON(ctx, http.StatusOK, s.Status())
}

// DestinationConfig is one destination in GET /export/config.
type DestinationConfig struct {
	Name        string   `json:"name"`
	Client      string   `json:"client"`
	Kind        string   `json:"kind"`
	Store       string   `json:"store"`
	Prefix      string   `json:"prefix"`
	Formats     []string `json:"formats"`
	Compression string   `json:"compression"`
	Schedule    string   `json:"schedule"`
	Threshold   int      `json:"threshold_events"`
	Webhook     string   `json:"webhook,omitempty"`
	Config      any      `json:"config,omitempty"`
}

// Config is the effective configuration, secrets redacted.
func (s *Shipper) Config() map[string]any {
	var dests []DestinationConfig
	for _, r := range s.runners() {
		r.mu.Lock()
		d := r.spec
		r.mu.Unlock()
		dc := DestinationConfig{Name: d.Name(), Client: d.Client, Kind: d.Kind, Store: d.Store.String(), Prefix: d.Prefix,
			Compression: string(d.Compression), Schedule: d.ScheduleName, Threshold: d.Threshold, Config: d.Config}
		if d.Webhook != "" {
			dc.Webhook = redactURL(d.Webhook)
		}
		for _, f := range d.Formats {
			dc.Formats = append(dc.Formats, string(f))
		}
		dests = append(dests, dc)
	}
	s.mu.Lock()
	cc := s.clients
	s.mu.Unlock()
	return map[string]any{
		"status": "ok", "node_id": s.opts.NodeID, "state_dir": s.opts.StateDir, "clients": cc,
		"concurrency": s.opts.Concurrency, "max_attempts": s.opts.MaxAttempts,
		"retry_base": s.opts.RetryBase.String(), "retry_max": s.opts.RetryMax.String(),
		"archive_configured": s.opts.Archive != nil, "destinations": dests,
	}
}

// HandleConfig is GET /export/config.
func (s *Shipper) HandleConfig(ctx *fasthttp.RequestCtx) { writeJSON(ctx, http.StatusOK, s.Config()) }

// HandleRetry is POST /export/retry: ?id=<unit> (repeatable) or a JSON body
// {"ids":[...]}; none retries every dead-lettered unit and resumes paused
// destinations.
func (s *Shipper) HandleRetry(ctx *fasthttp.RequestCtx) {
	var ids []string
	for _, v := range ctx.QueryArgs().PeekMulti("id") {
		ids = append(ids, string(v))
	}
	if body := ctx.PostBody(); len(body) > 0 {
		var in struct {
			IDs []string `json:"ids"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			writeError(ctx, http.StatusBadRequest, "body: want {\"ids\":[...]}", "ids")
			return
		}
		ids = append(ids, in.IDs...)
	}
	requeued := s.Retry(ids)
	if len(ids) > 0 && len(requeued) == 0 {
		writeError(ctx, http.StatusNotFound, "no dead-lettered unit with that id", "id")
		return
	}
	if requeued == nil {
		requeued = []string{}
	}
	writeJSON(ctx, http.StatusOK, map[string]any{"status": "ok", "requeued": requeued})
}

// HealthKey is the shipper's key in /health.
func (s *Shipper) HealthKey() string { return "exports" }

// Health summarises each destination for /health; degraded when one is
// paused, failing or has dead-lettered units.
func (s *Shipper) Health() (any, bool) {
	type h struct {
		State       string  `json:"state"`
		LagEvents   uint64  `json:"lag_events"`
		LagSeconds  float64 `json:"lag_seconds"`
		DeadLetters int     `json:"dead_letters"`
		Reason      string  `json:"reason,omitempty"`
	}
	out := map[string]h{}
	degraded := false
	for _, r := range s.runners() {
		d := r.status()
		out[d.Name] = h{State: d.State, LagEvents: d.LagEvents, LagSeconds: d.LagSeconds, DeadLetters: len(d.DeadLetters), Reason: d.PausedReason}
		if d.State != StateActive {
			degraded = true
		}
	}
	return out, degraded
}
