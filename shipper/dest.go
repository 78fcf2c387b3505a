package shipper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
	"github.com/valyala/fastjson"
)

// Destination states shown by /export/status.
const (
	StateActive  = "active"
	StatePaused  = "paused"
	StateFailing = "failing"
)

// destRunner runs one destination: it plans units, exports them in WAL
// order and advances the destination's WAL position over completed ones.
type destRunner struct {
	s    *Shipper
	name string

	mu                  sync.Mutex
	spec                Destination
	st                  *destState
	position            uint64
	paused              string
	pausedAt            time.Time
	lastSuccess         time.Time
	lastError           string
	lastErrorAt         time.Time
	consecutiveFailures int
	nextAttempt         time.Time
	lastPlan            time.Time
	counted             uint64 // WAL index up to which pending events were counted
	pendingMatched      int    // this destination's events in (planned end, counted]
	running             string // id of the unit being exported (the latest started)
	// finishing is closed when the unit exported before the one being
	// encoded is finished (uploads, manifest, position); nil when none is.
	// Only the loop's goroutine touches it.
	finishing chan struct{}

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// reconcile aligns the persisted plan with the WAL position (authoritative):
// units at or below the position are finished; a unit straddling it is
// dropped (its range will be planned again from position+1).
func (r *destRunner) reconcile() {
	var keep []*unit
	next := r.position + 1
	for _, u := range r.st.Units {
		if u.Last < next {
			continue
		}
		if u.First != next {
			// A gap or overlap: the plan no longer matches the position.
			// Everything from here is planned again.
			break
		}
		keep = append(keep, u)
		next = u.Last + 1
	}
	r.st.Units = keep
	r.counted = r.plannedEnd()
}

func (r *destRunner) plannedEnd() uint64 {
	if n := len(r.st.Units); n > 0 {
		return r.st.Units[n-1].Last
	}
	return r.position
}

func (r *destRunner) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.loop(ctx)
	}()
}

func (r *destRunner) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

func (r *destRunner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *destRunner) update(d Destination) {
	r.mu.Lock()
	r.spec = d
	wasPaused := r.paused
	r.paused = ""
	r.nextAttempt = time.Time{}
	r.mu.Unlock()
	if wasPaused != "" {
		r.s.logger.Info("export destination resumed after reload", "destination", r.name)
		r.s.audit.write(auditEntry{Kind: "resumed", Destination: r.name, Result: "config reloaded"})
	}
	r.poke()
}

func (r *destRunner) retry(ids map[string]bool) []string {
	r.mu.Lock()
	var out []string
	for _, u := range r.st.Units {
		if u.Status == unitDead && (len(ids) == 0 || ids[u.ID] || ids[r.name+"/"+u.ID]) {
			u.Status, u.Attempts, u.DeadAt = unitPending, 0, time.Time{}
			out = append(out, r.name+"/"+u.ID)
		}
	}
	resumed := r.paused != "" && len(ids) == 0
	if resumed {
		r.paused = ""
	}
	r.nextAttempt = time.Time{}
	err := saveState(r.s.opts.StateDir, r.st)
	r.mu.Unlock()
	if err != nil {
		r.s.logger.Error("save export plan", "destination", r.name, "error", err)
	}
	if resumed {
		r.s.audit.write(auditEntry{Kind: "resumed", Destination: r.name, Result: "retry requested"})
	}
	for _, id := range out {
		r.s.audit.write(auditEntry{Kind: "retry_requested", Destination: r.name, Unit: id})
	}
	r.poke()
	return out
}

func (r *destRunner) loop(ctx context.Context) {
	defer r.waitFinishing()
	for ctx.Err() == nil {
		now := r.s.now()
		r.mu.Lock()
		paused := r.paused != ""
		r.mu.Unlock()
		if paused {
			select {
			case <-ctx.Done():
			case <-r.wake:
			}
			continue
		}
		if err := r.plan(now); err != nil {
			r.s.logger.Error("plan export units", "destination", r.name, "error", err)
		}
		r.mu.Lock()
		u := r.nextUnit()
		wait := r.nextWake(now)
		if u != nil && !now.Before(r.nextAttempt) {
			r.running, u.exporting = u.ID, true
			r.mu.Unlock()
			r.export(ctx, u)
			continue
		}
		if u != nil && r.nextAttempt.Sub(now) < wait {
			wait = r.nextAttempt.Sub(now)
		}
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// nextUnit is the first unit still to export and not being exported;
// dead-lettered ones are passed over (later units still export, but the
// position stops at them).
func (r *destRunner) nextUnit() *unit {
	for _, u := range r.st.Units {
		if u.Status == unitPending && !u.exporting {
			return u
		}
	}
	return nil
}

// waitFinishing waits until the unit finishing behind the one being encoded
// is finished.
func (r *destRunner) waitFinishing() {
	if r.finishing != nil {
		<-r.finishing
		r.finishing = nil
	}
}

// nextWake is how long to sleep before planning again.
func (r *destRunner) nextWake(now time.Time) time.Duration {
	wait := time.Hour
	_, _, realtime := r.spec.Schedule.Realtime()
	if realtime || r.spec.Threshold > 0 {
		wait = r.s.opts.PollInterval
	}
	if !realtime {
		if d := r.spec.Schedule.Next(r.st.LastTick).Sub(now); d < wait {
			wait = d
		}
	}
	if wait < 10*time.Millisecond {
		wait = 10 * time.Millisecond
	}
	return wait
}

// plan fixes the boundaries of new units when the schedule, a real-time
// trigger or the threshold says so, and persists them before any upload.
func (r *destRunner) plan(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	spec := r.spec
	interval, maxEvents, realtime := spec.Schedule.Realtime()
	if r.st.LastTick.IsZero() {
		// First start: the first scheduled export is the next tick. Saved
		// at once, so a restart after a tick passes exports it; a real-time
		// schedule has no ticks, and its plan is saved with its first units.
		r.st.LastTick = now
		r.lastPlan = now
		if !realtime {
			if err := saveState(r.s.opts.StateDir, r.st); err != nil {
				return err
			}
		}
	}
	// A tick passes whether or not there is anything to export: it is not
	// owed again later.
	tickDue := !realtime && !now.Before(spec.Schedule.Next(r.st.LastTick))
	if tickDue {
		r.st.LastTick = now
	}
	last := r.s.log.LastIndex()
	next := r.plannedEnd() + 1
	if next > last {
		if tickDue {
			return saveState(r.s.opts.StateDir, r.st)
		}
		return nil
	}
	counting := spec.Threshold > 0 || (realtime && maxEvents > 0)
	if counting {
		if err := r.countPending(last); err != nil {
			return err
		}
	}
	trigger := tickDue
	if realtime {
		trigger = (interval > 0 && now.Sub(r.lastPlan) >= interval) || (maxEvents > 0 && r.pendingMatched >= maxEvents)
	}
	if spec.Threshold > 0 && r.pendingMatched >= spec.Threshold {
		trigger = true
	}
	if !trigger {
		if tickDue {
			return saveState(r.s.opts.StateDir, r.st)
		}
		return nil
	}
	upTo := last
	if counting && r.counted < upTo {
		upTo = r.counted
	}
	ranges := cutUnits(r.s.log.Segments(), next, upTo, maxEvents)
	for _, rg := range ranges {
		r.st.Units = append(r.st.Units, &unit{
			ID: unitID(r.s.opts.NodeID, rg[0], rg[1]), First: rg[0], Last: rg[1], PlannedAt: now.UTC().Truncate(time.Microsecond), Status: unitPending,
		})
	}
	r.lastPlan = now
	r.pendingMatched = 0
	if r.counted < upTo {
		r.counted = upTo
	}
	return saveState(r.s.opts.StateDir, r.st)
}

// countPending counts, incrementally, this destination's events after the
// planned end, so threshold and real-time triggers count the client's
// events rather than everyone's.
func (r *destRunner) countPending(last uint64) error {
	var p recordPeeker
	from := r.counted + 1
	if from <= r.plannedEnd() {
		from = r.plannedEnd() + 1
	}
	budget := 65536
	for from <= last && budget > 0 {
		recs, err := r.s.log.Read(from, readBatchRecords, readBatchBytes)
		if err != nil {
			return fmt.Errorf("count pending events from %d: %w", from, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if rec.Index > last {
				break
			}
			if site, _, ok := p.peek(rec.Data); ok && r.spec.Claims(site) {
				r.pendingMatched++
			}
			r.counted = rec.Index
			from = rec.Index + 1
			budget--
		}
	}
	return nil
}

// cutUnits splits from..to into units that never cross a segment boundary
// (so a sealed segment is one unit, and no unit is larger than a segment)
// and hold at most maxEvents records when maxEvents > 0.
func cutUnits(segs []wal.Segment, from, to uint64, maxEvents int) [][2]uint64 {
	var out [][2]uint64
	emit := func(a, b uint64) {
		for a <= b {
			end := b
			if maxEvents > 0 && b-a+1 > uint64(maxEvents) {
				end = a + uint64(maxEvents) - 1
			}
			out = append(out, [2]uint64{a, end})
			a = end + 1
		}
	}
	pos := from
	for _, sg := range segs {
		if sg.LastIndex < sg.FirstIndex || sg.LastIndex < pos || sg.FirstIndex > to {
			continue
		}
		a, b := max(pos, sg.FirstIndex), min(to, sg.LastIndex)
		if a > pos {
			emit(pos, a-1) // not described by any segment: keep contiguous
		}
		emit(a, b)
		pos = b + 1
		if pos > to {
			break
		}
	}
	if pos <= to {
		emit(pos, to)
	}
	return out
}

// export runs one unit and records the outcome. It returns once the unit's
// records are all encoded: its last uploads, its manifest and the position
// finish in the background while the next unit is read and encoded, so a
// backlog does not wait on the store's and the disk's round trips between
// units. At most one unit finishes behind the one being encoded (its
// uploads still hold their upload slots), and units finish in order.
func (r *destRunner) export(ctx context.Context, u *unit) {
	r.mu.Lock()
	spec := r.spec
	var next *unit
	for i, v := range r.st.Units {
		if v == u && i+1 < len(r.st.Units) && r.st.Units[i+1].Status == unitPending {
			next = r.st.Units[i+1]
		}
	}
	r.mu.Unlock()
	start := time.Now()
	job := &unitJob{
		dest: &spec, u: u, prefix: spec.Prefix, node: r.s.opts.NodeID,
		filter:   func(site string, _ time.Time) bool { return spec.Claims(site) },
		exportID: "exp_" + u.ID, formats: spec.Formats, comp: spec.Compression,
		sem: r.s.slots, metrics: r.s.metrics,
		share: &sharing{spool: r.s.spool, scans: r.s.scans, next: next, self: r.name, others: func(f export.Format, c export.Compression, site string) []string {
			return r.s.sharers(r.name, f, c, site, u.Last)
		}},
		// Kept in memory and persisted with the next save: an object stored
		// but not yet recorded is found (412) and verified on a retry.
		onStored: func(e export.ManifestEntry) {
			r.mu.Lock()
			u.Stored = append(u.Stored, e)
			r.mu.Unlock()
		},
	}
	p, err := job.start(ctx, r.s.src)
	// The unit before this one finishes first.
	r.waitFinishing()
	if err != nil {
		r.finished(ctx, u, &spec, p.res, err, start)
		return
	}
	done := make(chan struct{})
	r.finishing = done
	go func() {
		defer close(done)
		res, err := p.finish(ctx)
		r.finished(ctx, u, &spec, res, err, start)
		// The loop may be asleep: a failed unit is due again after its
		// backoff, and nothing else would wake it.
		r.poke()
	}()
}

// finished records the outcome of a unit's export.
func (r *destRunner) finished(ctx context.Context, u *unit, spec *Destination, res unitResult, err error, start time.Time) {
	defer r.s.sweepSpool()
	// The gauges follow the position at once rather than at the next
	// periodic refresh: lag 0 is what says a backlog is drained.
	defer r.s.refreshLagOf(r)
	entry := auditEntry{
		Kind: "export", Destination: r.name, Client: spec.Client, Store: spec.Store.String(), Unit: u.ID,
		FirstIndex: u.First, LastIndex: u.Last, Objects: len(res.entries), Events: res.events, Bytes: res.bytes,
		Manifest: res.manifest, DurationMS: time.Since(start).Milliseconds(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// Under the same lock as the outcome: the loop must not take the unit
	// again before its status says whether it is due.
	u.exporting = false
	if r.running == u.ID {
		r.running = ""
	}
	if err != nil && ctx.Err() != nil {
		return // stopping: not an attempt
	}
	now := r.s.now()
	if err == nil {
		u.Status, u.Events, u.LastError = unitDone, res.events, ""
		r.lastSuccess, r.consecutiveFailures = now, 0
		entry.Result = "ok"
		r.s.audit.write(entry)
		if spec.Client == UnclaimedClient {
			r.s.metrics.unclaimed.Add(float64(res.events))
		}
		if err := r.advanceLocked(); err != nil {
			r.s.logger.Error("advance export position", "destination", r.name, "error", err)
		}
		r.s.logger.Debug("export unit done", "destination", r.name, "unit", u.ID, "objects", len(res.entries), "events", res.events)
		return
	}
	r.lastError, r.lastErrorAt = redactError(err), now
	r.consecutiveFailures++
	u.LastError, u.LastErrorAt = r.lastError, now
	r.s.log.ReportConsumerError(r.name, errors.New(r.lastError))
	entry.Result, entry.Error = "failed", r.lastError
	var denied *DeniedError
	if errors.As(err, &denied) && r.paused != "" {
		// The unit encoded while the one before was refused: already paused.
		entry.Result = "paused"
		r.s.audit.write(entry)
		_ = saveState(r.s.opts.StateDir, r.st)
		return
	}
	if denied != nil {
		r.paused, r.pausedAt = denied.Reason+": "+r.lastError, now
		r.s.metrics.failures.WithLabelValues(r.name, "denied").Inc()
		entry.Result = "paused"
		r.s.audit.write(entry)
		r.s.logger.Error("export destination paused: access denied", "destination", r.name, "reason", denied.Reason, "error", r.lastError)
		r.s.notify.send(spec.Webhook, notification{
			Event: "export.paused", Client: spec.Client, Destination: r.name, Store: spec.Store.String(),
			Reason: denied.Reason, Error: r.lastError, Time: now.UTC(), Unit: u.ID,
		})
		_ = saveState(r.s.opts.StateDir, r.st)
		return
	}
	u.Attempts++
	r.s.metrics.failures.WithLabelValues(r.name, "error").Inc()
	if u.Attempts >= r.s.opts.MaxAttempts {
		u.Status, u.DeadAt = unitDead, now
		entry.Result = "dead_lettered"
		r.s.metrics.deadLetters.WithLabelValues(r.name).Inc()
		r.s.logger.Error("export unit dead-lettered", "destination", r.name, "unit", u.ID, "attempts", u.Attempts, "error", r.lastError)
		r.s.notify.send(spec.Webhook, notification{
			Event: "export.dead_lettered", Client: spec.Client, Destination: r.name, Store: spec.Store.String(),
			Error: r.lastError, Time: now.UTC(), Unit: u.ID, Attempts: u.Attempts,
		})
		r.nextAttempt = time.Time{}
	} else {
		r.s.metrics.retries.WithLabelValues(r.name).Inc()
		r.nextAttempt = now.Add(backoff(r.s.opts.RetryBase, r.s.opts.RetryMax, u.Attempts))
		r.s.logger.Warn("export unit failed; will retry", "destination", r.name, "unit", u.ID, "attempt", u.Attempts, "retry_at", r.nextAttempt, "error", r.lastError)
	}
	r.s.audit.write(entry)
	if err := saveState(r.s.opts.StateDir, r.st); err != nil {
		r.s.logger.Error("save export plan", "destination", r.name, "error", err)
	}
}

// advanceLocked moves the WAL position over the leading run of finished
// units, then persists the plan: it never passes a pending or
// dead-lettered unit, so the WAL keeps everything not yet exported.
func (r *destRunner) advanceLocked() error {
	pos, n := r.position, 0
	for _, u := range r.st.Units {
		if u.Status != unitDone {
			break
		}
		pos, n = u.Last, n+1
	}
	if n == 0 {
		// Blocked behind a pending or dead-lettered unit: remember this
		// one is done so a restart does not export it again.
		return saveState(r.s.opts.StateDir, r.st)
	}
	// A crash between the commit and the save leaves finished units at or
	// below the position in the file; reconcile drops them at start.
	if err := r.s.log.CommitConsumer(r.name, pos); err != nil {
		return fmt.Errorf("commit %s at %d: %w", r.name, pos, err)
	}
	r.position = pos
	r.st.Units = append([]*unit(nil), r.st.Units[n:]...)
	return saveState(r.s.opts.StateDir, r.st)
}

// DestinationStatus is one destination in GET /export/status.
type DestinationStatus struct {
	Name                string         `json:"name"`
	Client              string         `json:"client"`
	Kind                string         `json:"kind"`
	Store               string         `json:"store"`
	Prefix              string         `json:"prefix"`
	Formats             []string       `json:"formats"`
	Compression         string         `json:"compression"`
	Schedule            string         `json:"schedule"`
	State               string         `json:"state"`
	PausedReason        string         `json:"paused_reason,omitempty"`
	PausedAt            *time.Time     `json:"paused_at,omitempty"`
	Position            uint64         `json:"position"`
	WALLastIndex        uint64         `json:"wal_last_index"`
	LagEvents           uint64         `json:"lag_events"`
	LagSeconds          float64        `json:"lag_seconds"`
	PendingUnits        int            `json:"pending_units"`
	Exporting           string         `json:"exporting,omitempty"`
	NextRun             *time.Time     `json:"next_run,omitempty"`
	NextRetry           *time.Time     `json:"next_retry,omitempty"`
	LastSuccess         *time.Time     `json:"last_success"`
	LastError           string         `json:"last_error,omitempty"`
	LastErrorAt         *time.Time     `json:"last_error_at,omitempty"`
	ConsecutiveFailures int            `json:"consecutive_failures"`
	DeadLetters         []DeadLetter   `json:"dead_letters"`
	Units               []UnitProgress `json:"units,omitempty"`
}

// DeadLetter is a unit that failed EXPORT_MAX_ATTEMPTS times.
type DeadLetter struct {
	ID          string    `json:"id"`
	FirstIndex  uint64    `json:"first_index"`
	LastIndex   uint64    `json:"last_index"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	DeadAt      time.Time `json:"dead_lettered_at"`
	StoredParts int       `json:"objects_stored"`
}

// UnitProgress is a planned unit not yet past the position.
type UnitProgress struct {
	ID         string `json:"id"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (r *destRunner) status() DestinationStatus {
	r.mu.Lock()
	spec := r.spec
	st := DestinationStatus{
		Name: r.name, Client: spec.Client, Kind: spec.Kind, Store: spec.Store.String(), Prefix: spec.Prefix,
		Compression: string(spec.Compression), Schedule: spec.ScheduleName, Position: r.position,
		LastSuccess: tptr(r.lastSuccess), LastError: r.lastError, LastErrorAt: tptr(r.lastErrorAt),
		ConsecutiveFailures: r.consecutiveFailures, Exporting: r.running, DeadLetters: []DeadLetter{},
		PausedReason: r.paused, PausedAt: tptr(r.pausedAt),
	}
	for _, f := range spec.Formats {
		st.Formats = append(st.Formats, string(f))
	}
	for _, u := range r.st.Units {
		switch u.Status {
		case unitDead:
			st.DeadLetters = append(st.DeadLetters, DeadLetter{ID: u.ID, FirstIndex: u.First, LastIndex: u.Last,
				Attempts: u.Attempts, LastError: u.LastError, DeadAt: u.DeadAt.UTC(), StoredParts: len(u.Stored)})
		case unitPending:
			st.PendingUnits++
		}
		st.Units = append(st.Units, UnitProgress{ID: u.ID, FirstIndex: u.First, LastIndex: u.Last, Status: u.Status, Attempts: u.Attempts})
	}
	if _, _, rt := spec.Schedule.Realtime(); !rt {
		st.NextRun = tptr(spec.Schedule.Next(r.st.LastTick))
	}
	if r.nextAttempt.After(r.s.now()) {
		st.NextRetry = tptr(r.nextAttempt)
	}
	switch {
	case r.paused != "":
		st.State = StatePaused
	case r.consecutiveFailures > 0 || len(st.DeadLetters) > 0:
		st.State = StateFailing
	default:
		st.State = StateActive
	}
	pos := r.position
	r.mu.Unlock()
	last := r.s.log.LastIndex()
	st.WALLastIndex = last
	if last > pos {
		st.LagEvents = last - pos
		st.LagSeconds = r.s.ageOf(pos + 1)
	}
	return st
}

// ageOf is how long ago the record at index was received (0 if unknown).
// A record's receive time never changes, so it is read from the WAL once
// per index: a read of a sealed segment at an arbitrary index scans the
// segment from its start, and status and the lag gauges ask often.
func (s *Shipper) ageOf(index uint64) float64 {
	s.recvMu.Lock()
	t, ok := s.recvAt[index]
	s.recvMu.Unlock()
	if !ok {
		recs, err := s.log.Read(index, 1, 1<<20)
		if err != nil || len(recs) == 0 {
			return 0
		}
		var p fastjson.Parser
		v, err := p.ParseBytes(recs[0].Data)
		if err != nil {
			return 0
		}
		if t, err = time.Parse(time.RFC3339Nano, string(v.GetStringBytes("received_at"))); err != nil {
			return 0
		}
		s.recvMu.Lock()
		if len(s.recvAt) >= 64 {
			clear(s.recvAt) // positions move forward: old ones are not asked again
		}
		s.recvAt[index] = t
		s.recvMu.Unlock()
	}
	return max(0, s.now().Sub(t).Seconds())
}
