package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/evothesis/collector/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Appender is where accepted events go: *wal.Log in the server, a fake in
// unit tests.
//
// Append must return nil only once the records are durable (the answer to
// the client depends on it). After a nil return the caller reuses the
// records' memory, so the Appender must not keep references to them; after
// an error the caller abandons that memory, so an Appender that gave up
// waiting (ctx) may still write them.
type Appender interface {
	Append(ctx context.Context, records [][]byte) (uint64, error)
}

// Options configures the ingest handlers. Zero values take the defaults of
// package config.
type Options struct {
	NodeID         string         // NODE_ID, stamped on every event
	MaxBodyBytes   int            // MAX_BODY_BYTES (413 above)
	MaxBatchEvents int            // MAX_BATCH_EVENTS (413 above)
	TrustedProxies []netip.Prefix // TRUSTED_PROXIES; nil: loopback; empty non-nil: nobody
	IPAnonymize    bool           // IP_ANONYMIZE: zero the host part (/24, /48)

	// RetryAfter is sent with every 503 (WAL full, failed, closed). Default 5s.
	RetryAfter time.Duration
	// AppendTimeout bounds the wait for the WAL; 0 waits as long as the WAL
	// takes (it fail-stops on errors, so only a hung disk waits forever).
	// A timed-out event is answered 503 but may still become durable.
	AppendTimeout time.Duration

	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics are not registered
}

// OptionsFromConfig copies the ingest settings of c; the caller adds Logger
// and Registerer.
func OptionsFromConfig(c *config.Config) Options {
	return Options{
		NodeID:         c.NodeID,
		MaxBodyBytes:   c.MaxBodyBytes,
		MaxBatchEvents: c.MaxBatchEvents,
		TrustedProxies: c.TrustedProxies,
		IPAnonymize:    c.IPAnonymize,
	}
}

func (o *Options) setDefaults() error {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 500
	}
	if o.TrustedProxies == nil {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for i, p := range o.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES[%d]: invalid prefix", i))
		}
		// A prefix like ::ffff:10.0.0.0/104 would never match: peers are
		// compared after IPv4-mapped addresses are unmapped.
		if p.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %s is IPv4-mapped IPv6; write it as IPv4", p))
		}
	}
	return errors.Join(errs...)
}
