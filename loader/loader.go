package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// ConsumerName is the loader's name in the WAL consumer registry.
const ConsumerName = "loader"

// Source is what the loader needs from the WAL; *wal.Log implements it.
// Its methods must be safe for concurrent use (the batch reader and the lag
// probe of /health and /metrics read at the same time).
type Source interface {
	Read(from uint64, max, maxBytes int) ([]wal.Record, error)
	Wait(ctx context.Context, index uint64) error
	FirstIndex() uint64
	LastIndex() uint64
	RegisterConsumer(name string) (wal.ConsumerState, error)
	CommitConsumer(name string, position uint64) error
	ReportConsumerError(name string, err error)
}

var _ Source = (*wal.Log)(nil)

// Options configure a Loader. Zero values take the defaults in the comments.
type Options struct {
	NodeID      string // required: this node's NODE_ID
	BatchEvents int    // LOADER_BATCH_EVENTS: 5000
	// FlushInterval (LOADER_FLUSH_INTERVAL: 200ms) is the longest a batch
	// keeps gathering records while the writer is busy; a free writer takes
	// it at once (see MinCommitInterval), so it is an upper bound.
	FlushInterval time.Duration
	BatchBytes    int // records per batch at most about this many bytes: 8 MiB
	// MaxBatchesPerCommit: when the loader is behind and several batches
	// are already waiting, up to this many are loaded by one COPY in one
	// transaction, so that draining a backlog is not paced by commits: 4.
	MaxBatchesPerCommit int
	// MinCommitInterval spaces the commits of partial batches: a free
	// writer waits until this long after the previous commit began before
	// it takes a batch that is not full. Adaptive batching alone commits
	// every few records at a moderate rate, each commit costing the loader
	// and PostgreSQL CPU on cores ingest needs; this bounds partial commits
	// to 1/MinCommitInterval a second for at most this much latency: 20ms.
	MinCommitInterval time.Duration
	RetentionDays     int // EVENTS_RETENTION_DAYS: 0 keeps every partition

	SkipMigrations  bool // Run applies the embedded migrations first unless set
	PartitionsAhead int  // daily partitions created ahead of today: 3

	MinBackoff          time.Duration // first retry after a failure: 100ms
	MaxBackoff          time.Duration // cap of the exponential backoff: 2s (a returning database is noticed within about a second; one connection attempt every 2s costs it nothing)
	AttemptTimeout      time.Duration // one batch attempt at most: 2m
	MaintenanceInterval time.Duration // partitions ahead and retention: 1h
	PingInterval        time.Duration // database liveness while idle, for DatabaseState: 5s

	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: metrics not registered
}

// OptionsFromConfig takes the loader's settings from the configuration.
func OptionsFromConfig(c config.Config, logger *slog.Logger, reg prometheus.Registerer) Options {
	return Options{
		NodeID: c.NodeID, BatchEvents: c.LoaderBatchEvents, FlushInterval: c.LoaderFlushInterval,
		RetentionDays: c.EventsRetentionDays, Logger: logger, Registerer: reg,
	}
}

func (o *Options) defaults() {
	setDefault := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = 5000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 8 << 20
	}
	if o.MaxBatchesPerCommit <= 0 {
		o.MaxBatchesPerCommit = 4
	}
	if o.PartitionsAhead <= 0 {
		o.PartitionsAhead = 3
	}
	setDefault(&o.FlushInterval, 200*time.Millisecond)
	setDefault(&o.MinCommitInterval, 20*time.Millisecond)
	setDefault(&o.MinBackoff, 100*time.Millisecond)
	setDefault(&o.MaxBackoff, 2*time.Second)
	setDefault(&o.AttemptTimeout, 2*time.Minute)
	setDefault(&o.MaintenanceInterval, time.Hour)
	setDefault(&o.PingInterval, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Loader tails a WAL into PostgreSQL. Create it with New, run it with Run.
type Loader struct {
	pool  *pgxpool.Pool
	src   Source
	opts  Options
	log   *slog.Logger
	m     *metrics
	parts *partitions
	free  chan *batch
	bo    backoff

	pendingMu  sync.Mutex
	pendingFor uint64 // index whose received_at is pendingAt
	pendingAt  time.Time

	// position is the last index committed in PostgreSQL (until the database
	// first answers: the WAL registry's lower bound).
	position      atomic.Uint64
	positionKnown atomic.Bool
	connected     atomic.Bool
	running       atomic.Bool

	walNoted   uint64 // last position told to the WAL registry (see noteWAL)
	walNotedAt time.Time

	mu          sync.Mutex
	lastSuccess time.Time
	lastError   string
	lastErrorAt time.Time
	loaded      uint64 // since start
	rejected    uint64
	duplicate   uint64
	migrated    bool
}

// New returns a loader of src into the database behind pool. It does not
// touch either until Run.
func New(pool *pgxpool.Pool, src Source, opts Options) (*Loader, error) {
	if pool == nil || src == nil {
		return nil, errors.New("loader: pool and source are required")
	}
	if opts.NodeID == "" || strings.ContainsRune(opts.NodeID, 0) {
		return nil, errors.New("loader: NodeID is required (and cannot contain NUL)")
	}
	opts.defaults()
	l := &Loader{pool: pool, src: src, opts: opts, log: opts.Logger.With("component", "loader"),
		parts: newPartitions(pool), free: make(chan *batch, opts.MaxBatchesPerCommit+2)}
	l.bo = backoff{min: opts.MinBackoff, max: opts.MaxBackoff}
	l.m = newMetrics(opts.Registerer, func() float64 { return float64(l.lagEvents()) }, func() float64 { return l.lagSeconds(time.Now()) })
	return l, nil
}

// Run loads until ctx ends, then returns nil; a batch in flight is rolled
// back and loaded again by the next Run (nothing is lost or duplicated).
// Database failures never end Run: it retries with backoff. It returns an
// error only when it cannot work at all (the WAL is closed, or the consumer
// cannot be registered). Stop Run before closing the WAL and the pool.
func (l *Loader) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("loader: already running")
	}
	defer l.running.Store(false)
	st, err := l.src.RegisterConsumer(ConsumerName)
	if err != nil {
		return fmt.Errorf("register WAL consumer %q: %w", ConsumerName, err)
	}
	if !l.positionKnown.Load() {
		l.position.Store(st.Position)
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.maintain(ctx) })
	defer wg.Wait()
	defer l.noteWAL(true)
	for {
		err := l.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, wal.ErrClosed) {
			return fmt.Errorf("loader: %w", err)
		}
		l.fail(err)
		if !sleep(ctx, l.bo.next()) {
			return nil
		}
	}
}

// session connects, finds where to resume, and loads until something fails.
func (l *Loader) session(ctx context.Context) error {
	if !l.opts.SkipMigrations && !l.isMigrated() {
		applied, err := Migrate(ctx, l.pool, l.log)
		if err != nil {
			return err
		}
		for _, m := range applied {
			l.log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
		l.mu.Lock()
		l.migrated = true
		l.mu.Unlock()
	}
	pos, err := initOffset(ctx, l.pool, l.opts.NodeID)
	if err != nil {
		return err
	}
	l.connected.Store(true)
	l.setPosition(pos)
	if last := l.src.LastIndex(); pos > last {
		return fmt.Errorf("PostgreSQL has node %q loaded up to WAL index %d but this WAL ends at %d: "+
			"WAL_DIR was replaced or another node uses NODE_ID %q; loading would reuse ids. "+
			"Give this node a new NODE_ID, or fix loader_offsets by hand", l.opts.NodeID, pos, last, l.opts.NodeID)
	}
	if first := l.src.FirstIndex(); pos+1 < first {
		if pos, err = l.skipGap(ctx, pos, first-1); err != nil {
			return err
		}
	}
	if err := l.parts.ensureAhead(ctx, time.Now(), l.opts.PartitionsAhead); err != nil {
		return err
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Room for the full batches one commit may merge, so the reader keeps
	// decoding while a COPY runs.
	h := newHandoff(l.opts.MaxBatchesPerCommit - 1)
	readDone := make(chan error, 1)
	go func() { readDone <- l.readBatches(sctx, pos+1, h) }()
	defer func() { cancel(); <-readDone }()
	maxEvents := l.opts.BatchEvents * l.opts.MaxBatchesPerCommit
	maxBytes := l.opts.BatchBytes * l.opts.MaxBatchesPerCommit
	var taken []*batch
	var lastCommit time.Time
	spacing := time.NewTimer(0)
	defer spacing.Stop()
	for {
		// Spacing applies to partial batches only: a full one (a backlog)
		// ends the wait as soon as the reader publishes it.
		if wait := time.Until(lastCommit.Add(l.opts.MinCommitInterval)); wait > 0 {
			spacing.Reset(wait)
		spaced:
			for !h.fullWaiting(l.opts.BatchEvents, l.opts.BatchBytes) {
				select {
				case <-spacing.C:
					break spaced
				case <-h.wake:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		taken = h.take(taken[:0], maxEvents, maxBytes)
		if len(taken) == 0 {
			// Idle: the note the last commits did not send goes when due.
			var noteDue <-chan time.Time
			if l.position.Load() != l.walNoted {
				spacing.Reset(max(0, time.Until(l.walNotedAt.Add(walNoteInterval))))
				noteDue = spacing.C
			}
			select {
			case <-h.wake:
				continue
			case <-noteDue:
				l.noteWAL(false)
				continue
			case err := <-readDone:
				readDone <- err // for the deferred receive
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		b := l.merge(taken)
		clear(taken)
		lastCommit = time.Now()
		if err := l.write(sctx, b); err != nil {
			return err
		}
		l.putBatch(b)
	}
}

// skipGap moves the offset over indexes the WAL no longer has. They were
// loaded once (the WAL removes nothing the loader has not committed), so the
// database was restored from an older backup or replaced; the operator can
// re-load them from the exports, and `collector replay` if WAL_RETENTION kept
// them elsewhere.
func (l *Loader) skipGap(ctx context.Context, pos, to uint64) (uint64, error) {
	tag, err := l.pool.Exec(ctx, `UPDATE loader_offsets SET last_index = $3, events_skipped = events_skipped + ($3 - $2), updated_at = now()
		WHERE node_id = $1 AND last_index = $2`, l.opts.NodeID, int64(pos), int64(to))
	if err != nil {
		return pos, fmt.Errorf("skip WAL indexes %d-%d: %w", pos+1, to, err)
	}
	if tag.RowsAffected() != 1 {
		return pos, &offsetMovedError{nodeID: l.opts.NodeID, want: pos}
	}
	l.m.skipped.Add(float64(to - pos))
	l.log.Error("WAL indexes are gone from the WAL and were never loaded into this database; skipped",
		"from", pos+1, "to", to, "hint", "the database was probably restored from an older backup; re-load them from the exports")
	l.setPosition(to)
	return to, nil
}

// write commits b, retrying with backoff until it is committed or ctx ends.
func (l *Loader) write(ctx context.Context, b *batch) error {
	for {
		err := l.commit(ctx, b)
		if err == nil {
			l.bo.reset()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var moved *offsetMovedError
		if errors.As(err, &moved) {
			return err
		}
		l.fail(err)
		if !sleep(ctx, l.bo.next()) {
			return ctx.Err()
		}
	}
}

// commit makes one attempt at loading b.
func (l *Loader) commit(ctx context.Context, b *batch) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.AttemptTimeout)
	defer cancel()
	if err := l.parts.ensure(ctx, b.days); err != nil {
		return err
	}
	start := time.Now()
	res, err := l.commitFast(ctx, b)
	if err != nil {
		switch classify(err) {
		case kindData, kindDuplicate:
			l.log.Info("batch refused; isolating the rows at fault", "first", b.first, "last", b.last, "error", err)
			res, err = l.commitSlow(ctx, b, classify(err) == kindDuplicate)
		}
	}
	if err != nil {
		if classify(err) == kindNoPartition {
			l.parts.forget()
		}
		return fmt.Errorf("load batch %d-%d: %w", b.first, b.last, err)
	}
	l.m.copySecs.Observe(time.Since(start).Seconds())
	l.connected.Store(true)
	if !res.alreadyCommitted {
		l.m.batches.Inc()
		l.m.rows.Add(float64(res.loaded))
		l.m.duplicate.Add(float64(res.duplicate))
		for _, r := range res.rejected {
			l.m.rejected.WithLabelValues(r.stage).Inc()
			l.log.Warn("record rejected", "wal_index", r.index, "node_id", r.nodeID, "stage", r.stage, "sqlstate", r.sqlstate, "error", r.err)
		}
	}
	l.setPosition(b.last)
	l.mu.Lock()
	l.lastSuccess = time.Now()
	if !res.alreadyCommitted {
		l.loaded += uint64(res.loaded)
		l.rejected += uint64(len(res.rejected))
		l.duplicate += uint64(res.duplicate)
	}
	l.mu.Unlock()
	l.noteWAL(false)
	return nil
}

// walNoteInterval spaces the loader's notes to the WAL consumer registry.
// Each note rewrites and fsyncs the registry file on the WAL's disk (where
// ingest's fsyncs wait) under the registry lock the shipper's notes take
// too; adaptive batching commits up to 1/MinCommitInterval times a second.
// The registry only tells the WAL which segments it may remove, so being up
// to this much behind PostgreSQL delays a removal, nothing else.
const walNoteInterval = time.Second

// noteWAL tells the WAL registry the committed position, at most every
// walNoteInterval unless final (the loader stopping). PostgreSQL's offset is
// authoritative; a crash loses only a note the next start repeats. Called
// only from the goroutine that commits.
func (l *Loader) noteWAL(final bool) {
	pos := l.position.Load()
	if !l.positionKnown.Load() || pos == l.walNoted || (!final && time.Since(l.walNotedAt) < walNoteInterval) {
		return
	}
	l.walNotedAt = time.Now() // a failed note is retried after the interval too
	if err := l.src.CommitConsumer(ConsumerName, pos); err != nil {
		l.log.Warn("could not record loader position in the WAL", "position", pos, "error", err)
		return
	}
	l.walNoted = pos
}

func (l *Loader) setPosition(p uint64) {
	l.position.Store(p)
	l.positionKnown.Store(true)
}

func (l *Loader) isMigrated() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.migrated
}

// fail records a failed attempt for health, lag and metrics.
func (l *Loader) fail(err error) {
	if err == nil {
		return
	}
	l.m.retries.Inc()
	if isConnectionError(err) {
		l.connected.Store(false)
	}
	now := time.Now()
	l.mu.Lock()
	l.lastError, l.lastErrorAt = err.Error(), now
	l.mu.Unlock()
	l.src.ReportConsumerError(ConsumerName, err)
	l.log.Warn("loading failed; retrying", "error", err, "database", l.DatabaseState())
}

// maintain keeps partitions ahead, applies retention, and pings the database
// while the loader is idle so that DatabaseState notices an outage.
func (l *Loader) maintain(ctx context.Context) {
	ping := time.NewTicker(l.opts.PingInterval)
	defer ping.Stop()
	var lastMaintenance time.Time
	for {
		schemaReady := l.opts.SkipMigrations || l.isMigrated()
		if schemaReady && (lastMaintenance.IsZero() || time.Since(lastMaintenance) >= l.opts.MaintenanceInterval) {
			if err := l.maintainPartitions(ctx); err == nil {
				lastMaintenance = time.Now()
			} else if ctx.Err() == nil {
				l.log.Warn("partition maintenance failed; will retry", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
		}
		pctx, cancel := context.WithTimeout(ctx, l.opts.PingInterval)
		err := l.pool.Ping(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			l.connected.Store(true)
		case isConnectionError(err):
			l.connected.Store(false)
		}
	}
}

func (l *Loader) maintainPartitions(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.AttemptTimeout)
	defer cancel()
	now := time.Now()
	if err := l.parts.ensureAhead(ctx, now, l.opts.PartitionsAhead); err != nil {
		return err
	}
	dropped, err := l.parts.dropExpired(ctx, now, l.opts.RetentionDays)
	if err != nil {
		return err
	}
	if len(dropped) > 0 {
		l.log.Info("dropped expired partitions", "partitions", dropped, "retention_days", l.opts.RetentionDays)
	}
	return nil
}

// DatabaseState is "connected" or "disconnected", for /health's database
// field (the caller reports "not configured" when there is no loader).
func (l *Loader) DatabaseState() string {
	if l.connected.Load() {
		return "connected"
	}
	return "disconnected"
}

func (l *Loader) lagEvents() uint64 {
	last, pos := l.src.LastIndex(), l.position.Load()
	if last <= pos {
		return 0
	}
	return last - pos
}

// lagSeconds is the age of the oldest record not yet loaded (0 when caught
// up): the received_at of the record after the position.
func (l *Loader) lagSeconds(now time.Time) float64 {
	t, ok := l.oldestPending()
	if !ok {
		return 0
	}
	return max(0, now.Sub(t).Seconds())
}

// OldestPendingReceivedAt is the received_at of the first record not yet
// loaded; false when caught up.
func (l *Loader) OldestPendingReceivedAt() (time.Time, bool) { return l.oldestPending() }

func (l *Loader) oldestPending() (time.Time, bool) {
	pos := l.position.Load()
	if l.src.LastIndex() <= pos {
		return time.Time{}, false
	}
	// A record never changes, so the answer for one position is cached:
	// /health, /metrics and /lag cost one WAL read per commit, not per call.
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	if l.pendingFor == pos+1 {
		return l.pendingAt, true
	}
	recs, err := l.src.Read(pos+1, 1, 1)
	if err != nil || len(recs) == 0 {
		return time.Time{}, false
	}
	var dec event.Decoder
	var ev event.Event
	if err := dec.DecodeRecord(recs[0].Data, &ev); err != nil {
		return time.Time{}, false
	}
	l.pendingFor, l.pendingAt = pos+1, ev.ReceivedAt
	return ev.ReceivedAt, true
}

// State is the loader's state for /health and `collector lag`.
type State struct {
	NodeID   string `json:"node_id"`
	Database string `json:"database"`
	Position uint64 `json:"position"`
	// PositionSource is "database" once PostgreSQL has answered, "wal" (the
	// WAL registry's lower bound) before.
	PositionSource  string     `json:"position_source"`
	WALLastIndex    uint64     `json:"wal_last_index"`
	LagEvents       uint64     `json:"lag_events"`
	LagSeconds      float64    `json:"lag_seconds"`
	OldestPendingAt *time.Time `json:"oldest_pending_received_at,omitempty"`
	LastSuccess     *time.Time `json:"last_success,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	LastErrorAt     *time.Time `json:"last_error_at,omitempty"`
	RowsLoaded      uint64     `json:"rows_loaded"`
	RowsRejected    uint64     `json:"rows_rejected"`
	RowsDuplicate   uint64     `json:"rows_duplicate"`
	Failing         bool       `json:"failing"`
}

// State returns a snapshot.
func (l *Loader) State() State {
	now := time.Now()
	s := State{NodeID: l.opts.NodeID, Database: l.DatabaseState(), Position: l.position.Load(),
		PositionSource: "wal", WALLastIndex: l.src.LastIndex(), LagEvents: l.lagEvents()}
	if l.positionKnown.Load() {
		s.PositionSource = "database"
	}
	if t, ok := l.oldestPending(); ok {
		s.OldestPendingAt = &t
		s.LagSeconds = max(0, now.Sub(t).Seconds())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lastSuccess.IsZero() {
		t := l.lastSuccess
		s.LastSuccess = &t
	}
	if l.lastError != "" {
		t := l.lastErrorAt
		s.LastError, s.LastErrorAt = l.lastError, &t
	}
	s.RowsLoaded, s.RowsRejected, s.RowsDuplicate = l.loaded, l.rejected, l.duplicate
	// Failing: the latest attempt failed and nothing succeeded since.
	s.Failing = l.lastError != "" && l.lastErrorAt.After(l.lastSuccess)
	return s
}

// HealthKey is the loader's key in /health.
func (l *Loader) HealthKey() string { return "loader" }

// Health reports State; the service is degraded while the database is
// unreachable or loading keeps failing (ingest is unaffected: the WAL holds
// the backlog).
func (l *Loader) Health() (details any, degraded bool) {
	s := l.State()
	return s, s.Database != "connected" || s.Failing
}

// ConsumerState is the loader's entry for `collector lag`: the WAL registry
// entry, with PostgreSQL's authoritative position.
func (l *Loader) ConsumerState() wal.ConsumerState {
	s := l.State()
	cs := wal.ConsumerState{Name: ConsumerName, Position: s.Position, LastError: s.LastError}
	if s.LastSuccess != nil {
		cs.LastSuccess = *s.LastSuccess
	}
	if s.LastErrorAt != nil {
		cs.LastErrorAt = *s.LastErrorAt
	}
	return cs
}
