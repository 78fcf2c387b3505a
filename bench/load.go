package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// LoadOptions configure one load run.
type LoadOptions struct {
	Target      string        // base URL of the collector, e.g. http://127.0.0.1:8000
	AllowRemote bool          // permit a non-loopback target
	Connections int           // connections (= workers); default 64
	Rate        float64       // open loop: requests per second; 0 runs the closed loop
	Duration    time.Duration // stop after this long (default 10s when no count is given)
	MaxRequests int64         // stop after this many requests (0: no limit)
	MaxEvents   int64         // stop after this many events sent (0: no limit)
	Timeout     time.Duration // per request read/write timeout (default 10s)
	Traffic     TrafficOptions
	Record      *Recorder // nil: do not record
	// OnAck, if set, is called from the worker goroutines for every answered
	// request; it must be safe for concurrent use and quick. at is when the
	// answer arrived; sent.SessionID and res.IDs are valid only during the call.
	OnAck func(sent Sent, res AckResult, at time.Time)
	// SeqStart offsets event sequence numbers, so that a second run into the
	// same record with the same RunID does not reuse bench ids.
	SeqStart uint64
	// Interval of the time series (default 1s).
	Interval time.Duration

	now   func() time.Time                                  // tests substitute a virtual clock
	sleep func(time.Duration)                               // tests substitute a virtual clock
	send  func(*fasthttp.Request, *fasthttp.Response) error // tests substitute a fake transport
}

// LoadResult is what a run measured.
type LoadResult struct {
	Name        string    `json:"name,omitempty"`
	Mode        string    `json:"mode"` // closed | open
	Target      string    `json:"target"`
	RunID       string    `json:"run_id"`
	Connections int       `json:"connections"`
	TargetRate  float64   `json:"target_requests_per_s,omitempty"`
	Mix         string    `json:"mix"`
	BatchSize   int       `json:"batch_size"`
	Started     time.Time `json:"started"`
	Elapsed     float64   `json:"elapsed_s"`

	Requests       int64  `json:"requests"`
	EventsSent     int64  `json:"events_sent"`
	EventsAccepted int64  `json:"events_accepted"`
	EventsRefused  int64  `json:"events_refused"`
	PixelsAccepted int64  `json:"pixels_accepted"` // counted in EventsAccepted; acknowledged without an event id
	TransportErrs  int64  `json:"transport_errors"`
	LastSeq        uint64 `json:"last_seq"`

	RequestsPerSec       float64 `json:"requests_per_s"`
	AcceptedEventsPerSec float64 `json:"accepted_events_per_s"`

	Status  map[string]int64 `json:"status"`
	Errors  map[string]int64 `json:"errors,omitempty"`
	Kinds   map[string]int64 `json:"requests_by_kind"`
	Latency Latency          `json:"latency"`
	// Service is measured from the actual send (open loop only): Latency
	// minus the time a request waited behind a stalled server.
	Service   *Latency     `json:"service_time,omitempty"`
	LateSends int64        `json:"late_sends,omitempty"` // open loop: sends more than 1 ms behind schedule
	Series    []SecondStat `json:"series"`
}

// NewRunID returns a short random run id.
func NewRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "r" + hex.EncodeToString(b[:])
}

// CheckTarget parses a base URL and refuses anything but loopback unless
// allowRemote. It returns host:port and whether the URL is HTTPS.
func CheckTarget(ctx context.Context, target string, allowRemote bool) (addr string, isTLS bool, err error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", false, fmt.Errorf("target %q: %w", target, err)
	}
	switch u.Scheme {
	case "http":
	case "https":
		isTLS = true
	default:
		return "", false, fmt.Errorf("target %q: scheme must be http or https", target)
	}
	if u.Path != "" && u.Path != "/" {
		return "", false, fmt.Errorf("target %q: give the base URL without a path", target)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", false, fmt.Errorf("target %q: no host", target)
	}
	if port == "" {
		port = map[bool]string{false: "80", true: "443"}[isTLS]
	}
	if !allowRemote {
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return "", false, fmt.Errorf("target %q: resolve: %w", target, err)
		}
		for _, ip := range ips {
			if !ip.IP.IsLoopback() {
				return "", false, fmt.Errorf("target %q resolves to %s, which is not loopback; pass --allow-remote to load-test another machine", target, ip.IP)
			}
		}
	}
	return net.JoinHostPort(host, port), isTLS, nil
}

// Run sends load until the duration or a count is reached, or ctx is done.
func Run(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if o.Connections <= 0 {
		o.Connections = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Duration <= 0 && o.MaxRequests <= 0 && o.MaxEvents <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		return nil, fmt.Errorf("rate %v: must be a positive number of requests per second (0 for the closed loop)", o.Rate)
	}
	if o.Traffic.RunID == "" {
		o.Traffic.RunID = NewRunID()
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.sleep == nil {
		o.sleep = time.Sleep
	}
	traffic, err := NewTraffic(strings.TrimRight(o.Target, "/"), o.Traffic)
	if err != nil {
		return nil, err
	}
	if o.send == nil {
		addr, isTLS, err := CheckTarget(ctx, o.Target, o.AllowRemote)
		if err != nil {
			return nil, err
		}
		hc := &fasthttp.HostClient{
			Addr:                     addr,
			IsTLS:                    isTLS,
			MaxConns:                 o.Connections,
			ReadTimeout:              o.Timeout,
			WriteTimeout:             o.Timeout,
			MaxConnWaitTimeout:       o.Timeout,
			MaxIdleConnDuration:      time.Minute,
			NoDefaultUserAgentHeader: true,
			ReadBufferSize:           8 << 10,
		}
		if isTLS {
			// Self-signed certificates are the norm on a test deployment; this
			// client only ever carries synthetic events.
			hc.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec
		}
		defer hc.CloseIdleConnections()
		o.send = hc.Do
	}

	r := &runner{o: o, traffic: traffic}
	r.seq.Store(o.SeqStart)
	r.start = o.now()
	if o.Duration > 0 {
		r.deadline = r.start.Add(o.Duration)
	}
	if o.Rate > 0 {
		r.interval = float64(time.Second) / o.Rate
	}
	r.col = newCollector(o.Connections, r.start, o.Interval)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.col.drain(o.now())
			}
		}
	}()

	var wg sync.WaitGroup
	for w := 0; w < o.Connections; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r.worker(ctx, w)
		}(w)
	}
	wg.Wait()
	cancel()
	<-tickDone
	end := o.now()
	r.col.drain(end)
	return r.result(end), nil
}

type runner struct {
	o        LoadOptions
	traffic  *Traffic
	col      *collector
	seq      atomic.Uint64
	next     atomic.Int64 // next request index
	start    time.Time
	deadline time.Time
	interval float64 // ns between intended sends (open loop)
}

func (r *runner) worker(ctx context.Context, w int) {
	gen := r.traffic.NewGenerator(w, &r.seq)
	sh := r.col.shards[w]
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var rec *RecordBuffer
	if r.o.Record != nil {
		rec = r.o.Record.Buffer()
		defer rec.Flush()
	}
	var parser AckParser
	open := r.interval > 0
	for ctx.Err() == nil {
		idx := r.next.Add(1) - 1
		if r.o.MaxRequests > 0 && idx >= r.o.MaxRequests {
			return
		}
		if r.o.MaxEvents > 0 && int64(r.seq.Load()-r.o.SeqStart) >= r.o.MaxEvents {
			return
		}
		var intended time.Time
		if open {
			intended = r.start.Add(time.Duration(float64(idx) * r.interval))
			if !r.deadline.IsZero() && !intended.Before(r.deadline) {
				return
			}
			if d := intended.Sub(r.o.now()); d > 0 {
				r.o.sleep(d)
			}
		} else if !r.deadline.IsZero() && !r.o.now().Before(r.deadline) {
			return
		}
		if !open {
			intended = r.o.now()
		}
		// Building the request counts against latency in the open loop, as a
		// browser's own work would; it is a few microseconds (see the Go
		// benchmarks).
		sent := gen.Next(req, intended)
		begin := r.o.now()
		err := r.o.send(req, resp)
		done := r.o.now()
		var res AckResult
		if err == nil {
			res = parser.Parse(sent.Kind, resp.StatusCode(), resp.Header.ContentType(), resp.Body(), sent.Events)
			if rec != nil && res.Accepted > 0 {
				rec.Add(sent.Kind, sent.FirstSeq, res.IDs, res.Accepted)
			}
			if r.o.OnAck != nil {
				r.o.OnAck(sent, res, done)
			}
		}
		lat := done.Sub(intended).Microseconds()
		svc := done.Sub(begin).Microseconds()
		sh.mu.Lock()
		sh.requests++
		sh.kinds[sent.Kind]++
		_ = sh.hist.RecordValue(max(lat, histLowest))
		if open {
			_ = sh.service.RecordValue(max(svc, histLowest))
			if begin.Sub(intended) > time.Millisecond {
				sh.late++
			}
		}
		if err != nil {
			sh.errors++
			sh.refused += int64(sent.Events)
			sh.errs[errorClass(err)]++
		} else {
			sh.status[resp.StatusCode()]++
			sh.accepted += int64(res.Accepted)
			sh.refused += int64(res.Refused)
			if sent.Kind == KindPixel {
				sh.pixels += int64(res.Accepted)
			}
		}
		sh.mu.Unlock()
	}
}

func (r *runner) result(end time.Time) *LoadResult {
	c := r.col
	elapsed := end.Sub(r.start).Seconds()
	t := r.traffic.Options()
	res := &LoadResult{
		Mode: "closed", Target: r.o.Target, RunID: t.RunID, Connections: r.o.Connections,
		Mix: t.Mix.String(), BatchSize: t.BatchSize, Started: r.start.UTC(),
		Elapsed:  math.Round(elapsed*1000) / 1000,
		Requests: c.sums.Requests, EventsAccepted: c.sums.Accepted, EventsRefused: c.sums.Refused,
		EventsSent: int64(r.seq.Load() - r.o.SeqStart), PixelsAccepted: c.pixels, TransportErrs: c.sums.Errors,
		LastSeq: r.seq.Load(),
		Status:  statusMap(c.status), Errors: c.errs, Kinds: map[string]int64{},
		Latency: Summarize(c.total), Series: c.series,
	}
	for k, n := range c.kinds {
		if n > 0 {
			res.Kinds[kindNames[k]] = n
		}
	}
	if r.interval > 0 {
		res.Mode = "open"
		res.TargetRate = r.o.Rate
		s := Summarize(c.service)
		res.Service = &s
		res.LateSends = c.late
	}
	if elapsed > 0 {
		res.RequestsPerSec = math.Round(float64(res.Requests) / elapsed)
		res.AcceptedEventsPerSec = math.Round(float64(res.EventsAccepted) / elapsed)
	}
	return res
}

// errorClass names a transport error for the report.
func errorClass(err error) string {
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_connections"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, fasthttp.ErrConnectionClosed):
		return "connection_reset"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}
