package shipper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
	"github.com/prometheus/client_golang/prometheus"
)

// Log is the part of *wal.Log the shipper uses.
type Log interface {
	FirstIndex() uint64
	LastIndex() uint64
	Read(from uint64, max, maxBytes int) ([]wal.Record, error)
	ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error
	Wait(ctx context.Context, index uint64) error
	Segments() []wal.Segment
	RegisterConsumer(name string) (wal.ConsumerState, error)
	CommitConsumer(name string, position uint64) error
	ReportConsumerError(name string, err error)
	UnregisterConsumer(name string) error
}

// Schedule says when a destination's units become eligible
// (clients.Schedule satisfies it).
type Schedule interface {
	// Next is the first tick strictly after t.
	Next(after time.Time) time.Time
	// Realtime reports a real-time schedule: export every interval or every
	// events pending events, whichever comes first.
	Realtime() (interval time.Duration, events int, ok bool)
}

// Destination kinds.
const (
	KindClient = "client"
	KindBackup = "backup"
)

// UnclaimedClient is the client name under which events of sites no client
// claims go to the backup destination ("export:_unclaimed:backup").
const UnclaimedClient = "_unclaimed"

// Destination is one place a client's events go, with its own WAL position.
type Destination struct {
	Client      string
	Kind        string // KindClient or KindBackup
	Store       Store
	Prefix      string
	Formats     []export.Format
	Compression export.Compression
	Schedule    Schedule
	// ScheduleName is how the schedule was written (hourly, realtime:10, a cron expression).
	ScheduleName string
	// Threshold > 0 also exports as soon as this many of the destination's
	// events are pending.
	Threshold int
	// Webhook receives JSON notifications (paused, dead-lettered, resumed).
	Webhook string
	// Claims reports whether an event of site belongs to this destination.
	Claims func(site string) bool
	// Config is the destination's effective configuration, secrets
	// redacted, shown by GET /export/config.
	Config any
}

// Name is the destination's WAL consumer name, export:<client>:<kind>.
func (d *Destination) Name() string { return "export:" + d.Client + ":" + d.Kind }

// Options configure a Shipper. Zero values take the defaults in the comments.
type Options struct {
	Log      Log    // required
	NodeID   string // required: part of every key
	StateDir string // required: plans, dead letters, audit log, manual runs
	// Concurrency is the number of upload slots across all destinations
	// (EXPORT_CONCURRENCY, 2): one object uploads in each, or up to 4 small ones.
	Concurrency int
	// MaxAttempts before a unit is dead-lettered (EXPORT_MAX_ATTEMPTS, 8).
	MaxAttempts int
	// RetryBase and RetryMax bound the capped exponential backoff between
	// attempts of one unit (1s, 5m); each wait is jittered.
	RetryBase, RetryMax time.Duration
	// PollInterval is how often a real-time or threshold destination looks
	// at the WAL tail (1s).
	PollInterval time.Duration
	// LagInterval is how often every destination's lag gauges are set
	// (5 s); a destination's are also set whenever it finishes a unit.
	LagInterval time.Duration
	// Archive serves manual runs for ranges the WAL no longer holds (nil: none).
	Archive Archive
	// HTTPClient sends webhook notifications (default: 10s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// ClientsConfig is shown under "clients" by GET /export/config
	// (clients.Config.Redacted(): no secret in it); see SetClientsConfig.
	ClientsConfig any
	// Pacer paces the export passes' WAL reads, one unit per record
	// (ELASTIC_*: an *elastic.Limiter); nil reads flat out.
	Pacer Pacer
}

// DefaultStateDir is where the shipper keeps its state when
// EXPORT_STATE_DIR is not set: "shipper" beside the WAL directory.
func DefaultStateDir(walDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(walDir)), "shipper")
}

// Shipper exports every destination's units and serves the /export API.
type Shipper struct {
	opts    Options
	log     Log
	src     recordReader // log, paced by opts.Pacer: what unit exports read
	logger  *slog.Logger
	slots   *uploadSlots
	metrics *metrics
	audit   *auditLog
	spool   *spool
	scans   *scanCache
	notify  *notifier
	now     func() time.Time

	mu      sync.Mutex
	clients any
	dests   map[string]*destRunner
	runCtx  context.Context // destinations' context, set by Run
	baseCtx context.Context // manual runs' context: from New until Run ends
	stopAll context.CancelFunc
	runs    *runRegistry
	started bool

	recvMu sync.Mutex
	recvAt map[uint64]time.Time // receive time of WAL records, for ageOf

	// peers is dests for the runners themselves (sharing): Reload holds mu
	// while it waits for a runner to stop, so runners never take mu.
	peersMu sync.Mutex
	peers   map[string]*destRunner
}

// New checks the options and loads each destination's persisted plan. It
// registers every destination as a WAL consumer, so from now on the WAL
// keeps what they have not exported.
func New(opts Options, dests []Destination) (*Shipper, error) {
	if opts.Log == nil {
		return nil, errors.New("shipper: Log is required")
	}
	if opts.NodeID == "" {
		return nil, errors.New("shipper: NodeID is required")
	}
	if opts.StateDir == "" {
		return nil, errors.New("shipper: StateDir is required")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.LagInterval <= 0 {
		opts.LagInterval = 5 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("shipper state directory %s: %w", opts.StateDir, err)
	}
	audit, err := openAuditLog(filepath.Join(opts.StateDir, "audit.jsonl"))
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(filepath.Join(opts.StateDir, "spool"), defaultSpoolBytes)
	if err != nil {
		return nil, err
	}
	s := &Shipper{
		opts: opts, log: opts.Log, src: paced(opts.Log, opts.Pacer), logger: opts.Logger, slots: newUploadSlots(opts.Concurrency),
		metrics: newMetrics(opts.Registerer), audit: audit, now: opts.Now, spool: sp, scans: newScanCache(),
		dests: map[string]*destRunner{}, clients: opts.ClientsConfig, recvAt: map[uint64]time.Time{},
		peers: map[string]*destRunner{},
	}
	s.baseCtx, s.stopAll = context.WithCancel(context.Background())
	s.notify = newNotifier(opts.HTTPClient, opts.Logger, opts.RetryBase)
	s.runs = newRunRegistry(filepath.Join(opts.StateDir, "runs"))
	for i := range dests {
		if _, err := s.addDestination(dests[i]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func validateDestination(d *Destination) error {
	if d.Client == "" || (d.Kind != KindClient && d.Kind != KindBackup) {
		return fmt.Errorf("destination %q/%q: want a client name and kind client or backup", d.Client, d.Kind)
	}
	if d.Store == nil {
		return fmt.Errorf("destination %s: no store", d.Name())
	}
	if len(d.Formats) == 0 {
		return fmt.Errorf("destination %s: no format", d.Name())
	}
	if d.Compression == "" {
		d.Compression = export.CompressionGzip
	}
	if d.Schedule == nil {
		return fmt.Errorf("destination %s: no schedule", d.Name())
	}
	if d.Claims == nil {
		d.Claims = func(string) bool { return true }
	}
	return nil
}

func (s *Shipper) addDestination(d Destination) (*destRunner, error) {
	if err := validateDestination(&d); err != nil {
		return nil, err
	}
	name := d.Name()
	if _, dup := s.dests[name]; dup {
		return nil, fmt.Errorf("destination %s configured twice", name)
	}
	cs, err := s.log.RegisterConsumer(name)
	if err != nil {
		return nil, fmt.Errorf("register WAL consumer %s: %w", name, err)
	}
	st, err := loadState(s.opts.StateDir, name)
	if err != nil {
		return nil, err
	}
	r := &destRunner{s: s, spec: d, name: name, st: st, position: cs.Position, wake: make(chan struct{}, 1),
		lastSuccess: cs.LastSuccess}
	r.reconcile()
	if err := saveState(s.opts.StateDir, r.st); err != nil {
		return nil, err
	}
	s.dests[name] = r
	s.peersMu.Lock()
	s.peers[name] = r
	s.peersMu.Unlock()
	return r, nil
}

// Run exports until ctx ends. It returns nil after a clean stop.
func (s *Shipper) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("shipper: Run called twice")
	}
	s.started = true
	s.runCtx = ctx
	for _, r := range s.dests {
		r.start(ctx)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.notify.run(ctx) }()
	t := time.NewTicker(s.opts.LagInterval)
	defer t.Stop()
	for {
		s.refreshLag()
		select {
		case <-ctx.Done():
			s.stopAll()
			s.mu.Lock()
			var rs []*destRunner
			for _, r := range s.dests {
				rs = append(rs, r)
			}
			s.mu.Unlock()
			for _, r := range rs {
				r.stop()
			}
			s.runs.wait()
			wg.Wait()
			return s.audit.close()
		case <-t.C:
		}
	}
}

// Reload applies a new set of destinations (SIGHUP): changed ones take
// their new configuration and resume if paused, new ones start, removed
// ones stop and are unregistered from the WAL so it no longer keeps
// segments for them.
func (s *Shipper) Reload(ctx context.Context, dests []Destination) error {
	want := map[string]Destination{}
	for i := range dests {
		d := dests[i]
		if err := validateDestination(&d); err != nil {
			return err
		}
		if _, dup := want[d.Name()]; dup {
			return fmt.Errorf("destination %s configured twice", d.Name())
		}
		want[d.Name()] = d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range s.dests {
		if _, ok := want[name]; ok {
			continue
		}
		r.stop()
		delete(s.dests, name)
		s.peersMu.Lock()
		delete(s.peers, name)
		s.peersMu.Unlock()
		if err := s.log.UnregisterConsumer(name); err != nil {
			s.logger.Warn("unregister export destination", "destination", name, "error", err)
		}
		s.audit.write(auditEntry{Kind: "destination_removed", Destination: name})
		s.logger.Info("export destination removed", "destination", name)
	}
	for name, d := range want {
		if r, ok := s.dests[name]; ok {
			r.update(d)
			continue
		}
		r, err := s.addDestination(d)
		if err != nil {
			return err
		}
		if s.started {
			r.start(s.runCtx)
		}
		s.logger.Info("export destination added", "destination", name, "store", d.Store.String())
	}
	return nil
}

// SetClientsConfig replaces what GET /export/config shows under
// "clients" (call it with the new clients.Config.Redacted() on SIGHUP).
func (s *Shipper) SetClientsConfig(v any) {
	s.mu.Lock()
	s.clients = v
	s.mu.Unlock()
}

// Retry puts dead-lettered units back in line (all, or those whose id is
// in ids) and resumes paused destinations. It returns the units requeued.
func (s *Shipper) Retry(ids []string) []string {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []string
	for _, r := range s.runners() {
		out = append(out, r.retry(want)...)
	}
	sort.Strings(out)
	return out
}

func (s *Shipper) runners() []*destRunner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*destRunner, 0, len(s.dests))
	for _, r := range s.dests {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// sharers lists the destinations besides self that will export the object
// of format f, compression c and site under a unit ending at last: they
// may take it from the spool.
func (s *Shipper) sharers(self string, f export.Format, c export.Compression, site string, last uint64) []string {
	var out []string
	for _, r := range s.peerRunners() {
		if r.name == self {
			continue
		}
		r.mu.Lock()
		spec, paused, pos := r.spec, r.paused != "", r.position
		r.mu.Unlock()
		if paused || pos >= last || !slices.Contains(spec.Formats, f) || !spec.Claims(site) {
			continue
		}
		if (&unitJob{comp: spec.Compression}).compFor(f) == c {
			out = append(out, r.name)
		}
	}
	return out
}

func (s *Shipper) peerRunners() []*destRunner {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	out := make([]*destRunner, 0, len(s.peers))
	for _, r := range s.peers {
		out = append(out, r)
	}
	return out
}

// sweepSpool drops spool entries no destination still expects.
func (s *Shipper) sweepSpool() {
	pos := map[string]uint64{}
	for _, r := range s.peerRunners() {
		r.mu.Lock()
		pos[r.name] = r.position
		r.mu.Unlock()
	}
	s.spool.sweep(func(name string) (uint64, bool) {
		p, ok := pos[name]
		return p, ok
	})
}

// refreshLag sets every destination's lag gauges (every LagInterval, and
// for one destination whenever it finishes a unit: refreshLagOf).
func (s *Shipper) refreshLag() {
	for _, r := range s.runners() {
		s.refreshLagOf(r)
	}
}

func (s *Shipper) refreshLagOf(r *destRunner) {
	st := r.status()
	s.metrics.lagEvents.WithLabelValues(r.name).Set(float64(st.LagEvents))
	s.metrics.lagSeconds.WithLabelValues(r.name).Set(st.LagSeconds)
}

// backoff is capped exponential with jitter: a random wait in [d/2, d]
// where d = base * 2^(attempt-1), at most max.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}
