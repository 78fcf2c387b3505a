package shipper

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/evothesis/collector/shipper/export"
)

// Archive serves manual runs for ranges the WAL no longer holds (the
// loader's PostgreSQL). PGArchive implements it.
type Archive interface {
	// Groups is pass 1: the (site, receive hour) groups of this node's
	// events with since <= received_at < until and id < BeforeIndex.
	Groups(ctx context.Context, q ArchiveQuery) ([]ArchiveGroup, error)
	// Rows is pass 2: the rows of one group in id order.
	Rows(ctx context.Context, q ArchiveQuery, g ArchiveGroup, fn func(export.Row) error) error
}

// ArchiveQuery selects archived events.
type ArchiveQuery struct {
	NodeID       string
	Since, Until time.Time
	BeforeIndex  uint64 // only ids below this (the WAL serves the rest)
}

// ArchiveGroup is one (site, hour) of archived events.
type ArchiveGroup struct {
	Site         string
	Hour         time.Time
	Count        int
	First, Last  time.Time // receive-time range
	MinID, MaxID uint64
}

// Run states.
const (
	RunRunning     = "running"
	RunSucceeded   = "succeeded"
	RunFailed      = "failed"
	RunInterrupted = "interrupted"
)

// RunRequest is a manual export or backfill (POST /export/run).
type RunRequest struct {
	Client      string             `json:"client,omitempty"` // empty: every client
	Kind        string             `json:"destination"`      // client (default), backup or all
	Formats     []export.Format    `json:"formats,omitempty"`
	Compression export.Compression `json:"compression,omitempty"`
	Since       time.Time          `json:"since,omitzero"`
	Until       time.Time          `json:"until,omitzero"`
}

// Run is a manual run as shown by /export/status.
type Run struct {
	ID           string     `json:"run_id"`
	State        string     `json:"state"`
	Request      RunRequest `json:"request"`
	Destinations []string   `json:"destinations"`
	Prefix       string     `json:"key_prefix"` // under each destination's prefix
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Objects      int        `json:"objects"`
	Events       int        `json:"events"`
	Bytes        int64      `json:"bytes"`
	FromWAL      int        `json:"events_from_wal"`
	FromArchive  int        `json:"events_from_archive"`
	Manifests    []string   `json:"manifests,omitempty"`
	Error        string     `json:"error,omitempty"`
	Warning      string     `json:"warning,omitempty"`
}

// ManualPrefix is the directory, under a destination's prefix, that holds
// manual runs: {prefix}/_manual/{run id}/site_id=... Table readers (Hive,
// Spark, Athena) skip names starting with "_", so a backfill never doubles
// the rows a table over {prefix} sees; scheduled keys never contain it.
const ManualPrefix = "_manual"

const maxConcurrentRuns = 2

type runRegistry struct {
	dir  string
	mu   sync.Mutex
	runs map[string]*Run
	wg   sync.WaitGroup
	busy int
}

func newRunRegistry(dir string) *runRegistry {
	r := &runRegistry{dir: dir, runs: map[string]*Run{}}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var run Run
		if json.Unmarshal(data, &run) != nil || run.ID == "" {
			continue
		}
		if run.State == RunRunning {
			run.State = RunInterrupted
			run.Error = "the collector stopped during the run; start it again"
		}
		r.runs[run.ID] = &run
	}
	return r
}

func (r *runRegistry) save(run *Run) {
	r.mu.Lock()
	data, _ := json.MarshalIndent(run, "", "  ")
	r.mu.Unlock()
	_ = writeFileAtomic(filepath.Join(r.dir, run.ID+".json"), data)
}

func (r *runRegistry) list() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Run, 0, len(r.runs))
	for _, run := range r.runs {
		out = append(out, *run)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

func (r *runRegistry) get(id string) (Run, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run, ok := r.runs[id]
	if !ok {
		return Run{}, false
	}
	return *run, true
}

func (r *runRegistry) wait() { r.wg.Wait() }

// ErrBusy means too many manual runs are in progress.
var ErrBusy = errors.New("too many manual export runs in progress")

// ErrUnknownClient means a run named a client with no destination.
var ErrUnknownClient = errors.New("no such client")

func newRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "run_" + now.UTC().Format("20060102T150405Z") + "_" + hex.EncodeToString(b[:])
}

// StartRun starts a manual export in the background and returns it.
func (s *Shipper) StartRun(req RunRequest) (Run, error) {
	if req.Kind == "" {
		req.Kind = KindClient
	}
	var targets []*destRunner
	for _, r := range s.runners() {
		r.mu.Lock()
		spec := r.spec
		r.mu.Unlock()
		if req.Client != "" && spec.Client != req.Client {
			continue
		}
		if req.Kind != "all" && spec.Kind != req.Kind {
			continue
		}
		targets = append(targets, r)
	}
	if len(targets) == 0 {
		if req.Client != "" {
			return Run{}, fmt.Errorf("%w %q with a %s destination", ErrUnknownClient, req.Client, req.Kind)
		}
		return Run{}, fmt.Errorf("no %s destination configured", req.Kind)
	}
	ctx := s.baseCtx
	if ctx.Err() != nil {
		return Run{}, errors.New("shipper has stopped")
	}
	now := s.now()
	run := &Run{ID: newRunID(now), State: RunRunning, Request: req, StartedAt: now.UTC()}
	run.Prefix = ManualPrefix + "/" + run.ID
	for _, t := range targets {
		run.Destinations = append(run.Destinations, t.name)
	}
	s.runs.mu.Lock()
	if s.runs.busy >= maxConcurrentRuns {
		s.runs.mu.Unlock()
		return Run{}, ErrBusy
	}
	s.runs.busy++
	s.runs.runs[run.ID] = run
	s.runs.wg.Add(1)
	s.runs.mu.Unlock()
	s.runs.save(run)
	go func() {
		defer s.runs.wg.Done()
		err := s.executeRun(ctx, run, targets)
		s.runs.mu.Lock()
		s.runs.busy--
		fin := s.now().UTC()
		run.FinishedAt = &fin
		switch {
		case err != nil && ctx.Err() != nil:
			run.State, run.Error = RunInterrupted, "the collector stopped during the run"
		case err != nil:
			run.State, run.Error = RunFailed, redactError(err)
		default:
			run.State = RunSucceeded
		}
		entry := auditEntry{Kind: "manual_run", Run: run.ID, Client: req.Client, Objects: run.Objects, Events: run.Events,
			Bytes: run.Bytes, Result: run.State, Error: run.Error, DurationMS: fin.Sub(run.StartedAt).Milliseconds()}
		s.runs.mu.Unlock()
		s.runs.save(run)
		s.audit.write(entry)
		s.logger.Info("manual export run finished", "run_id", run.ID, "state", run.State, "objects", run.Objects, "events", run.Events)
	}()
	return *run, nil
}

func (s *Shipper) executeRun(ctx context.Context, run *Run, targets []*destRunner) error {
	req := run.Request
	inRange := func(t time.Time) bool {
		return (req.Since.IsZero() || !t.Before(req.Since)) && (req.Until.IsZero() || t.Before(req.Until))
	}
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	walStart, walHolds := s.oldestWALTime(first, last)
	for _, r := range targets {
		r.mu.Lock()
		spec := r.spec
		r.mu.Unlock()
		if len(req.Formats) > 0 {
			spec.Formats = req.Formats
		}
		if req.Compression != "" {
			spec.Compression = req.Compression
		}
		prefix := joinPrefix(spec.Prefix, run.Prefix)
		// Older than the WAL: from the archive, by index below the WAL's first.
		needArchive := first > 1 && (!walHolds || req.Since.IsZero() || req.Since.Before(walStart))
		if needArchive {
			if s.opts.Archive == nil {
				s.runs.mu.Lock()
				run.Warning = "part of the range is older than the WAL and no database is configured: only the WAL's part was exported"
				s.runs.mu.Unlock()
			} else if err := s.runArchive(ctx, run, &spec, prefix, first); err != nil {
				return fmt.Errorf("%s: archive part: %w", r.name, err)
			}
		}
		if !walHolds {
			continue
		}
		for _, rg := range cutUnits(s.log.Segments(), first, last, 0) {
			u := &unit{ID: unitID(s.opts.NodeID, rg[0], rg[1]), First: rg[0], Last: rg[1], PlannedAt: run.StartedAt, Status: unitPending}
			job := &unitJob{
				dest: &spec, u: u, prefix: prefix, node: s.opts.NodeID,
				filter:   func(site string, recv time.Time) bool { return spec.Claims(site) && inRange(recv) },
				exportID: run.ID + "_" + u.ID, formats: spec.Formats, comp: spec.Compression,
				sem: s.slots, metrics: s.metrics,
			}
			res, err := job.run(ctx, s.src)
			if err != nil {
				return fmt.Errorf("%s: WAL %d-%d: %w", r.name, rg[0], rg[1], err)
			}
			s.runs.mu.Lock()
			run.Objects += len(res.entries)
			run.Events += res.events
			run.FromWAL += res.events
			run.Bytes += res.bytes
			if res.manifest != "" {
				run.Manifests = append(run.Manifests, res.manifest)
			}
			s.runs.mu.Unlock()
			s.runs.save(run)
		}
	}
	return nil
}

// oldestWALTime is the receive time of the WAL's first record.
func (s *Shipper) oldestWALTime(first, last uint64) (time.Time, bool) {
	if last < first {
		return time.Time{}, false
	}
	age := s.ageOf(first)
	return s.now().Add(-time.Duration(age * float64(time.Second))), true
}

func joinPrefix(a, b string) string {
	a, b = strings.Trim(a, "/"), strings.Trim(b, "/")
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}

// runArchive exports archived events: per (site, hour) group and format,
// one object streamed from the archive into the store, then one manifest.
func (s *Shipper) runArchive(ctx context.Context, run *Run, spec *Destination, prefix string, before uint64) error {
	q := ArchiveQuery{NodeID: s.opts.NodeID, Since: run.Request.Since, Until: run.Request.Until, BeforeIndex: before}
	groups, err := s.opts.Archive.Groups(ctx, q)
	if err != nil {
		return fmt.Errorf("list archived events: %w", err)
	}
	var entries []export.ManifestEntry
	var minID, maxID uint64
	events := 0
	for _, g := range groups {
		if !spec.Claims(g.Site) || g.Count == 0 {
			continue
		}
		events += g.Count
		if minID == 0 || g.MinID < minID {
			minID = g.MinID
		}
		maxID = max(maxID, g.MaxID)
		for _, f := range spec.Formats {
			j := &unitJob{dest: spec, comp: spec.Compression}
			c := j.compFor(f)
			key := export.ObjectKey(prefix, g.Site, g.Hour, s.opts.NodeID, g.MinID, g.MaxID, f, c)
			meta := export.Metadata{ExportID: run.ID, ExportTime: run.StartedAt, EventCount: g.Count, Start: g.First, End: g.Last,
				Client: spec.Client, NodeID: s.opts.NodeID, FirstIndex: g.MinID, LastIndex: g.MaxID}
			if !s.slots.acquireSlot(ctx) {
				return ctx.Err()
			}
			start := time.Now()
			res, err := s.streamArchiveObject(ctx, spec, q, g, key, f, c, meta)
			s.slots.releaseSlot()
			if err != nil {
				return err
			}
			s.metrics.observeUpload(spec.Name(), time.Since(start), res.Bytes, g.Count)
			entries = append(entries, export.ManifestEntry{Key: key, Format: f, Compression: c, Events: g.Count,
				Bytes: res.Bytes, SHA256: res.SHA256, FirstIndex: g.MinID, LastIndex: g.MaxID, SiteID: g.Site})
		}
	}
	if len(entries) == 0 {
		return nil
	}
	m := export.Manifest{ExportID: run.ID, Client: spec.Client, NodeID: s.opts.NodeID, CreatedAt: run.StartedAt,
		FirstIndex: minID, LastIndex: maxID, Objects: entries}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	mkey := export.ManifestKey(prefix, s.opts.NodeID, minID, maxID)
	if _, err := spec.Store.Put(ctx, PutInput{Key: mkey, Body: bytes.NewReader(data), ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write manifest %s: %w", mkey, err)
	}
	var total int64
	for _, e := range entries {
		total += e.Bytes
	}
	s.runs.mu.Lock()
	run.Objects += len(entries)
	run.Events += events
	run.FromArchive += events
	run.Bytes += total
	run.Manifests = append(run.Manifests, mkey)
	s.runs.mu.Unlock()
	s.runs.save(run)
	return nil
}

func (s *Shipper) streamArchiveObject(ctx context.Context, spec *Destination, q ArchiveQuery, g ArchiveGroup, key string,
	f export.Format, c export.Compression, meta export.Metadata) (PutResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	ct, ce := export.ContentType(f, c)
	type result struct {
		res PutResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := spec.Store.Put(ctx, PutInput{Key: key, Body: pr, ContentType: ct, ContentEncoding: ce, Metadata: map[string]string{
			"export-id": meta.ExportID, "first-index": strconv.FormatUint(g.MinID, 10), "last-index": strconv.FormatUint(g.MaxID, 10),
			"events": strconv.Itoa(g.Count), "format": string(f), "compression": string(c), "node-id": meta.NodeID,
		}})
		pr.CloseWithError(errUploadEnded(err))
		done <- result{res, err}
	}()
	buf := bufio.NewWriterSize(pw, 64<<10)
	w, err := export.NewWriter(buf, f, c, meta)
	if err == nil {
		err = s.opts.Archive.Rows(ctx, q, g, func(row export.Row) error { return w.Write(row) })
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = buf.Flush()
	}
	if err != nil {
		pw.CloseWithError(err)
		r := <-done
		if r.err != nil {
			return PutResult{}, r.err
		}
		return PutResult{}, fmt.Errorf("export archived %s: %w", key, err)
	}
	pw.Close()
	r := <-done
	if errors.Is(r.err, ErrExists) {
		return verifyExisting(ctx, spec.Store, key, g.MinID, g.MaxID, g.Count)
	}
	return r.res, r.err
}
