package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/wal"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures the server. The zero value of every field falls back to
// the same default as config (a server that works on a laptop).
type Options struct {
	Addr            string        // COLLECTOR_ADDR
	ReadTimeout     time.Duration // READ_TIMEOUT: whole request, headers and body
	WriteTimeout    time.Duration // WRITE_TIMEOUT
	IdleTimeout     time.Duration // IDLE_TIMEOUT: keep-alive connections
	MaxHeaderBytes  int           // MAX_HEADER_BYTES (431 above)
	MaxConnections  int           // MAX_CONNECTIONS (connections above are answered 503 and closed)
	MaxBodyBytes    int           // MAX_BODY_BYTES (413 above)
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT

	CORSAllowedOrigins []string // CORS_ALLOWED_ORIGINS; "*" allows all (refused in production)
	Environment        string   // ENVIRONMENT: development | production
	AdminToken         string   // ADMIN_TOKEN; empty disables admin routes (403)
	NodeID             string   // shown in /health

	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered
	Gatherer   prometheus.Gatherer   // nil: no /metrics route

	// WAL is the write-ahead log, for /health ("wal") and /ready. nil:
	// /health has no "wal" key and the service counts as able to accept.
	WAL WALState
	// Database reports "connected", "disconnected" or "not configured" for
	// /health's "database". nil: "not configured".
	Database func() string
}

// WALState is what /health and /ready need from the WAL; *wal.Log has it.
type WALState interface {
	Stats() wal.Stats
	// Err says why the log cannot accept appends now (wal.ErrFull,
	// wal.ErrFailed, wal.ErrClosed), or nil.
	Err() error
}

// OptionsFromConfig copies the HTTP settings of c. The caller adds Logger,
// Registerer, Gatherer, WAL and Database.
func OptionsFromConfig(c *config.Config) Options {
	return Options{
		Addr:               c.Addr,
		ReadTimeout:        c.ReadTimeout,
		WriteTimeout:       c.WriteTimeout,
		IdleTimeout:        c.IdleTimeout,
		MaxHeaderBytes:     c.MaxHeaderBytes,
		MaxConnections:     c.MaxConnections,
		MaxBodyBytes:       c.MaxBodyBytes,
		ShutdownTimeout:    c.ShutdownTimeout,
		CORSAllowedOrigins: c.CORSAllowedOrigins,
		Environment:        c.Environment,
		AdminToken:         c.AdminToken,
		NodeID:             c.NodeID,
	}
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
		o.Addr = ":8000"
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 8192
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 10000
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 20 * time.Second
	}
	if o.Environment == "" {
		o.Environment = "development"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	var errs []error
	for _, origin := range o.CORSAllowedOrigins {
		if origin == "*" && o.Environment == "production" {
			errs = append(errs, errors.New("CORS_ALLOWED_ORIGINS: * is not allowed in production"))
		}
		if origin != "*" && (strings.HasSuffix(origin, "/") || !strings.Contains(origin, "://")) {
			errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an origin (scheme://host[:port], no path)", origin))
		}
	}
	return errors.Join(errs...)
}

// *wal.Log is what cmd/collector passes as Options.WAL.
var _ WALState = (*wal.Log)(nil)
