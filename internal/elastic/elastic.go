package elastic

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Defaults of Options.
const (
	DefaultTarget   = time.Millisecond
	DefaultFloor    = 1000
	DefaultInterval = 100 * time.Millisecond
)

// Controller constants (see doc.go).
const (
	// maxCut and minCut bound the factor a congested window multiplies the
	// achieved rate by: (target/p99)², at least 1/20 and at most 1/2.
	maxCut, minCut = 0.5, 0.05
	// increase is the factor an uncongested window raises the limit by
	// (and it adds the floor, so that it leaves the floor quickly).
	increase = 1.5
	// unlimitedAt: a limit raised past this many times the floor is lifted.
	unlimitedAt = 1024
	// logEvery bounds the state-change logs.
	logEvery = 10 * time.Second
)

// Options configure a Limiter. Zero values take the defaults.
type Options struct {
	// Target is the p99 scheduling latency above which a window counts as
	// congested (DefaultTarget).
	Target time.Duration
	// Floor is the rate, in units per second, background work is always
	// allowed, however congested (DefaultFloor).
	Floor float64
	// Interval is the controller's window (DefaultInterval).
	Interval time.Duration
	// Foreground counts foreground work begun so far (it only grows; ingest:
	// requests). A window in which it did not move is never congested, so
	// background work alone never slows itself down. Nil: every window
	// counts.
	Foreground func() uint64
	// Urgent, if set, reports that background work must not be held back
	// (the shipper: its backlog fills half the WAL, whose high-water would
	// refuse ingest). While it says so the limit is lifted; congestion is
	// judged again when it stops.
	Urgent func() bool
	// Latency returns the p99 of the scheduling latencies recorded since
	// its previous call and how many there were (default: the Go runtime's
	// scheduler, SchedLatency).
	Latency func() (p99 time.Duration, samples uint64)
	// Now is the clock (time.Now).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Limiter paces background work. Background stages call Wait before each
// chunk of work; Run adjusts the allowed rate. A nil *Limiter never waits.
type Limiter struct {
	opts Options
	lim  *rate.Limiter

	admitted  atomic.Int64  // units Wait let through, since New
	limitBits atomic.Uint64 // math.Float64bits of the allowed rate (+Inf: unlimited)

	// The controller's own state: only tick touches it.
	last         time.Time
	lastAdmitted int64
	lastFG       uint64
	lastLog      time.Time
	limitedSince time.Time
	waitedAt     float64 // wait seconds when the limit was last set from unlimited
	changes      int     // state changes not logged since lastLog

	m limiterMetrics
}

type limiterMetrics struct {
	allowed  prometheus.Gauge
	p99      prometheus.Gauge
	waited   prometheus.Counter
	admitted prometheus.Counter
	cuts     prometheus.Counter
	waitSecs atomic.Int64 // nanoseconds, mirrored in waited for the logs
}

// New returns a limiter that starts unlimited. It does nothing until Run.
func New(opts Options) (*Limiter, error) {
	if opts.Target < 0 || opts.Floor < 0 || opts.Interval < 0 {
		return nil, errors.New("elastic: negative target, floor or interval")
	}
	if opts.Target == 0 {
		opts.Target = DefaultTarget
	}
	if opts.Floor == 0 {
		opts.Floor = DefaultFloor
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Latency == nil {
		s := NewSchedLatency()
		opts.Latency = func() (time.Duration, uint64) { return s.Window(0.99) }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Limiter{opts: opts, lim: rate.NewLimiter(rate.Inf, 1)}
	l.limitBits.Store(math.Float64bits(math.Inf(1)))
	l.m = limiterMetrics{
		allowed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "collector_elastic_allowed_rate",
			Help: "Units per second background work (exports: WAL records read) is allowed now; +Inf when unlimited."}),
		p99: prometheus.NewGauge(prometheus.GaugeOpts{Name: "collector_elastic_sched_latency_p99_seconds",
			Help: "p99 Go scheduler latency (runnable to running) over the controller's last window."}),
		waited: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_elastic_wait_seconds_total",
			Help: "Time background work spent waiting for the elastic limiter (summed over concurrent waiters)."}),
		admitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_elastic_admitted_total",
			Help: "Units of background work the elastic limiter let through (exports: WAL records read)."}),
		cuts: prometheus.NewCounter(prometheus.CounterOpts{Name: "collector_elastic_congested_windows_total",
			Help: "Controller windows whose p99 scheduler latency was over the target while foreground work ran: each cut the allowed rate."}),
	}
	l.m.allowed.Set(math.Inf(1))
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{l.m.allowed, l.m.p99, l.m.waited, l.m.admitted, l.m.cuts} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// Wait blocks until background work may process n more units, or ctx
// ends. It returns ctx's error then, nil otherwise. Unlimited, it returns
// at once.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	var start time.Time
	for n > 0 {
		k := n // unlimited: all at once
		if l.lim.Limit() != rate.Inf {
			k = min(n, l.lim.Burst())
		}
		r := l.lim.ReserveN(time.Now(), k)
		if !r.OK() {
			continue // limited or its burst shrunk meanwhile: read it again
		}
		if d := r.Delay(); d > 0 {
			if start.IsZero() {
				start = time.Now()
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				r.Cancel()
				l.addWait(time.Since(start))
				return ctx.Err()
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		l.admitted.Add(int64(k))
		l.m.admitted.Add(float64(k))
		n -= k
	}
	if !start.IsZero() {
		l.addWait(time.Since(start))
	}
	return nil
}

func (l *Limiter) addWait(d time.Duration) {
	l.m.waitSecs.Add(int64(d))
	l.m.waited.Add(d.Seconds())
}

// Limit is the rate background work is allowed now, in units per second;
// +Inf when unlimited.
func (l *Limiter) Limit() float64 {
	if l == nil {
		return math.Inf(1)
	}
	return math.Float64frombits(l.limitBits.Load())
}

// Run adjusts the rate every Interval until ctx ends.
func (l *Limiter) Run(ctx context.Context) error {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	l.start()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.tick()
		}
	}
}

// start begins the first window.
func (l *Limiter) start() {
	l.last = l.opts.Now()
	l.lastAdmitted = l.admitted.Load()
	if l.opts.Foreground != nil {
		l.lastFG = l.opts.Foreground()
	}
	l.opts.Latency() // the first window starts now, not at process start
}

// window is what the controller saw over one interval.
type window struct {
	p99        time.Duration
	samples    uint64
	foreground bool    // foreground work began during the window
	achieved   float64 // units per second Wait let through
	urgent     bool    // background work must not be held back
}

// next is the controller's decision: the allowed rate after a window, and
// whether the window was congested.
func next(limit float64, w window, target time.Duration, floor float64) (float64, bool) {
	if w.urgent {
		return math.Inf(1), false
	}
	if w.foreground && w.samples > 0 && w.p99 > target {
		base := w.achieved
		if !math.IsInf(limit, 1) {
			base = min(base, limit)
		}
		over := float64(target) / float64(w.p99)
		cut := min(maxCut, max(minCut, over*over))
		return max(floor, base*cut), true
	}
	if math.IsInf(limit, 1) {
		return limit, false
	}
	raised := max(limit*increase, limit+floor)
	if raised >= unlimitedAt*floor {
		return math.Inf(1), false
	}
	return raised, false
}

// tick ends a window: it samples the signal and sets the next rate.
func (l *Limiter) tick() {
	now := l.opts.Now()
	elapsed := now.Sub(l.last).Seconds()
	if elapsed <= 0 {
		return
	}
	admitted := l.admitted.Load()
	var w window
	w.p99, w.samples = l.opts.Latency()
	w.achieved = float64(admitted-l.lastAdmitted) / elapsed
	w.foreground = true
	if l.opts.Foreground != nil {
		fg := l.opts.Foreground()
		w.foreground = fg != l.lastFG
		l.lastFG = fg
	}
	w.urgent = l.opts.Urgent != nil && l.opts.Urgent()
	l.last, l.lastAdmitted = now, admitted
	if w.samples > 0 {
		l.m.p99.Set(w.p99.Seconds())
	}
	old := l.Limit()
	limit, congested := next(old, w, l.opts.Target, l.opts.Floor)
	if congested {
		l.m.cuts.Inc()
	}
	if limit != old {
		l.setLimit(limit)
	}
	l.logChange(now, old, limit, w)
}

func (l *Limiter) setLimit(limit float64) {
	l.limitBits.Store(math.Float64bits(limit))
	l.m.allowed.Set(limit)
	if math.IsInf(limit, 1) {
		l.lim.SetLimit(rate.Inf)
		return
	}
	// The burst is one window's worth: a waiter never sleeps much longer
	// than a window for one reservation, so a raise takes effect soon.
	burst := max(1, int(limit*l.opts.Interval.Seconds()))
	l.lim.SetBurst(burst)
	l.lim.SetLimit(rate.Limit(limit))
}

// logChange logs the limiter leaving or regaining unlimited, at most once
// per logEvery (the state at that time, and how many changes were not
// logged).
func (l *Limiter) logChange(now time.Time, old, limit float64, w window) {
	wasInf, isInf := math.IsInf(old, 1), math.IsInf(limit, 1)
	if wasInf == isInf {
		return
	}
	waited := float64(l.m.waitSecs.Load()) / 1e9
	if wasInf {
		l.limitedSince = now
		l.waitedAt = waited
	}
	l.changes++
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < logEvery {
		return
	}
	attrs := []any{"p99_sched_latency", w.p99.String(), "target", l.opts.Target.String(),
		"achieved_per_second", math.Round(w.achieved), "changes_since_last_log", l.changes - 1}
	if w.urgent {
		attrs = append(attrs, "urgent", true)
	}
	if isInf {
		attrs = append(attrs, "limited_for", now.Sub(l.limitedSince).Round(time.Millisecond).String(),
			"background_waited_seconds", math.Round((waited-l.waitedAt)*1000)/1000)
		l.opts.Logger.Info("elastic limiter: background work unlimited again", attrs...)
	} else {
		attrs = append(attrs, "allowed_per_second", math.Round(limit))
		l.opts.Logger.Info("elastic limiter: background work slowed, foreground needs the CPU", attrs...)
	}
	l.lastLog, l.changes = now, 0
}
