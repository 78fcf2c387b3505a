package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tidwall "github.com/tidwall/wal"
)

var (
	// ErrFull means the WAL is over Options.MaxBytes or the disk is nearly
	// full. Nothing was written; retry later.
	ErrFull = errors.New("wal full")
	// ErrFailed means a write or fsync failed. The log accepts nothing more
	// until it is reopened.
	ErrFailed = errors.New("wal failed")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("wal closed")
	// ErrCompacted means the records asked for were removed.
	ErrCompacted = errors.New("wal records compacted")
	// ErrLocked means another process has the WAL directory open.
	ErrLocked = errors.New("wal directory locked by another process")
)

// SyncMode says when appended records are fsync'd.
type SyncMode string

const (
	// SyncAlways acknowledges an Append after the fsync of its group commit.
	SyncAlways SyncMode = "always"
	// SyncInterval fsyncs every Options.SyncInterval and acknowledges after
	// the write: a power failure loses at most one interval of acknowledged
	// records (a process crash loses nothing: the page cache survives it).
	SyncInterval SyncMode = "interval"
	// SyncNever leaves fsync to the operating system (and to segment
	// rotation and Close). For benchmarks and disposable data only.
	SyncNever SyncMode = "never"
)

// Options configure a Log. Zero values take the defaults in the comments.
type Options struct {
	Dir          string
	Sync         SyncMode      // SyncAlways
	SyncInterval time.Duration // 50ms
	SegmentBytes int64         // 8 MiB
	MaxBytes     int64         // 2 GiB
	// MinFreeBytes: Append answers ErrFull when the file system has less
	// free space than this. Default: 2 segments + 64 MiB.
	MinFreeBytes int64
	Retention    time.Duration // 0: remove segments as soon as every consumer is past them
	// MaxBatchRecords caps one group commit. Default 8192.
	MaxBatchRecords int
	// SegmentCacheSize is how many sealed segments tidwall/wal keeps in
	// memory (each up to SegmentBytes). Read streams sealed segments from
	// their files itself, so tidwall only caches one in the instant between
	// a rotation and this package learning of it. Default 2.
	SegmentCacheSize int
	Logger           *slog.Logger
	Registerer       prometheus.Registerer

	// syncFile replaces (*os.File).Sync in tests, to inject slow or failing disks.
	syncFile func(*os.File) error
}

func (o *Options) setDefaults() {
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 50 * time.Millisecond
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 8 << 20
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 2 << 30
	}
	if o.MinFreeBytes <= 0 {
		o.MinFreeBytes = 2*o.SegmentBytes + 64<<20
	}
	if o.MaxBatchRecords <= 0 {
		o.MaxBatchRecords = 8192
	}
	if o.SegmentCacheSize <= 0 {
		o.SegmentCacheSize = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.syncFile == nil {
		o.syncFile = (*os.File).Sync
	}
}

// Record is one entry read from the log.
type Record struct {
	Index uint64
	Data  []byte // the payload, checksum verified; the caller may keep it
}

// Segment describes one segment file.
type Segment struct {
	FirstIndex uint64
	LastIndex  uint64 // FirstIndex-1 for an empty segment
	Bytes      int64
	Sealed     bool // sealed segments never change
	SealedAt   time.Time
	Path       string
}

// Stats is a snapshot of the log's state.
type Stats struct {
	FirstIndex uint64   `json:"first_index"`
	LastIndex  uint64   `json:"last_index"`
	Bytes      int64    `json:"bytes"`
	MaxBytes   int64    `json:"max_bytes"`
	Segments   int      `json:"segments"`
	Full       bool     `json:"full"`
	Failed     string   `json:"failed,omitempty"`
	Sync       SyncMode `json:"sync"`
}

// segMeta is this package's view of one segment. The tail's view mirrors
// tidwall/wal's rotation rule exactly, so that segment boundaries are known
// without asking tidwall (which does not expose them).
type segMeta struct {
	first    uint64
	count    uint64
	bytes    int64
	path     string
	sealedAt time.Time // zero for the tail
}

type appendReq struct {
	records [][]byte
	bytes   int64
	first   uint64
	err     error
	done    chan struct{}
}

// Log is an open write-ahead log. Its methods are safe for concurrent use.
type Log struct {
	opts    Options
	dir     string
	segDir  string
	log     *slog.Logger
	metrics *metrics
	lock    *dirLock
	tw      *tidwall.Log

	// closeMu guards closed and sending on reqs.
	closeMu sync.RWMutex
	closed  bool
	reqs    chan *appendReq
	reqPool sync.Pool

	writerDone chan struct{}
	syncCh     chan syncItem // writer → syncer, unbuffered: the writer runs at most one write ahead of the fsync
	syncerDone chan struct{}
	maintStop  chan struct{}
	maintDone  chan struct{}
	maintKick  chan struct{}

	// Owned by the writer goroutine.
	written  uint64   // last index written to the file
	tailFile *os.File // the tail segment, opened for fsync; handed to the syncer
	twBatch  tidwall.Batch
	frameBuf []byte

	visible atomic.Uint64 // last index readers may see (durable per mode)
	first   atomic.Uint64 // first readable index
	failed  atomic.Pointer[error]
	lowDisk atomic.Bool
	// refusedFull is set when an append did not fit and cleared when one
	// does, so that Err and /ready report "full" before totalBytes reaches
	// the limit exactly.
	refusedFull atomic.Bool

	notifyMu sync.Mutex
	notifyCh chan struct{}

	// readMu serializes tidwall Reads: tidwall loads and caches sealed
	// segments inside Read while holding only its read lock, so two
	// concurrent Reads of different segments race on its cache.
	readMu sync.Mutex

	// cursorMu guards cursors: open readers of sealed segments, most
	// recently used last, so that a consumer's next Read continues where
	// its last one stopped instead of rescanning the segment.
	cursorMu sync.Mutex
	cursors  []*segmentReader

	segMu      sync.Mutex
	segs       []segMeta
	totalBytes int64

	consumers *registry
}

// Open opens (creating if needed) the WAL in opts.Dir, repairing a torn tail.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts.setDefaults()
	if opts.Dir == "" {
		return nil, errors.New("wal: Options.Dir is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal dir: %w", err)
	}
	l := &Log{
		opts: opts, dir: dir, segDir: filepath.Join(dir, segmentsDirName), log: opts.Logger.With("component", "wal"),
		reqs: make(chan *appendReq, 4096), writerDone: make(chan struct{}), syncCh: make(chan syncItem), syncerDone: make(chan struct{}), maintStop: make(chan struct{}),
		maintDone: make(chan struct{}), maintKick: make(chan struct{}, 1), notifyCh: make(chan struct{}),
	}
	l.reqPool.New = func() any { return &appendReq{done: make(chan struct{}, 1)} }
	if err := os.MkdirAll(l.segDir, 0o750); err != nil {
		return nil, fmt.Errorf("create wal dir: %w", err)
	}
	if l.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			l.lock.release()
		}
	}()
	l.metrics = newMetrics(opts.Registerer, l)

	segs, err := recoverSegments(dir, func(path string, offset int64, cut int, reason string) {
		l.log.Warn("wal torn tail cut", "segment", path, "offset", offset, "bytes_cut", cut, "reason", reason,
			"quarantine", filepath.Join(dir, quarantineDirName))
		l.metrics.repairs.Inc()
		l.metrics.quarantinedBytes.Add(float64(cut))
	})
	if err != nil {
		return nil, fmt.Errorf("open wal %s: %w", dir, err)
	}
	createdFirst := len(segs) == 0
	l.tw, err = tidwall.Open(l.segDir, &tidwall.Options{
		NoSync: true, SegmentSize: int(opts.SegmentBytes), LogFormat: tidwall.Binary,
		SegmentCacheSize: opts.SegmentCacheSize, AllowEmpty: true, DirPerms: 0o750, FilePerms: 0o640,
	})
	if err != nil {
		return nil, fmt.Errorf("open wal segments %s: %w", l.segDir, err)
	}
	defer func() {
		if !ok {
			l.tw.Close()
		}
	}()
	if createdFirst {
		if err := syncDir(l.segDir); err != nil {
			return nil, err
		}
		segs = []segMeta{{first: 1, path: filepath.Join(l.segDir, segmentName(1))}}
	}
	twFirst, _ := l.tw.FirstIndex()
	twLast, _ := l.tw.LastIndex()
	tail := segs[len(segs)-1]
	if twFirst != segs[0].first || twLast != tail.first+tail.count-1 {
		return nil, fmt.Errorf("open wal %s: segment scan (%d-%d) disagrees with tidwall/wal (%d-%d)",
			dir, segs[0].first, tail.first+tail.count-1, twFirst, twLast)
	}
	l.segs = segs
	for _, s := range segs {
		l.totalBytes += s.bytes
	}
	l.written = twLast
	l.visible.Store(twLast)
	l.first.Store(twFirst)
	if l.tailFile, err = os.Open(tail.path); err != nil {
		return nil, fmt.Errorf("open tail segment for fsync: %w", err)
	}
	if l.consumers, err = openRegistry(filepath.Join(dir, consumersFileName)); err != nil {
		l.tailFile.Close()
		return nil, err
	}
	l.updateLowDisk()
	ok = true
	go l.writer()
	go l.syncer(l.tailFile, twLast)
	go l.maintain()
	l.log.Info("wal opened", "dir", dir, "first_index", twFirst, "last_index", twLast,
		"segments", len(segs), "bytes", l.totalBytes, "sync", string(opts.Sync))
	return l, nil
}

// Dir is the WAL directory.
func (l *Log) Dir() string { return l.dir }

// FirstIndex is the first readable index (LastIndex()+1 when empty).
func (l *Log) FirstIndex() uint64 { return l.first.Load() }

// LastIndex is the last index readers may see: durable per the sync mode.
func (l *Log) LastIndex() uint64 { return l.visible.Load() }

// Err returns why the log cannot accept appends now (ErrFailed, ErrFull,
// ErrClosed), or nil.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("%w: %v", ErrFailed, *p)
	}
	l.closeMu.RLock()
	closed := l.closed
	l.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	if l.isFull(0) || l.refusedFull.Load() {
		return ErrFull
	}
	return nil
}

func (l *Log) isFull(extra int64) bool {
	if l.lowDisk.Load() {
		return true
	}
	l.segMu.Lock()
	total := l.totalBytes
	l.segMu.Unlock()
	return total+extra > l.opts.MaxBytes
}

// Append writes records as consecutive indexes and returns the first. It
// returns nil only once the records are durable per the sync mode. If ctx
// ends first, Append returns ctx.Err() and the records may or may not have
// been written.
func (l *Log) Append(ctx context.Context, records [][]byte) (uint64, error) {
	if len(records) == 0 {
		return 0, nil
	}
	if p := l.failed.Load(); p != nil {
		return 0, fmt.Errorf("%w: %v", ErrFailed, *p)
	}
	req := l.reqPool.Get().(*appendReq)
	req.records, req.bytes, req.first, req.err = records, 0, 0, nil
	for _, r := range records {
		req.bytes += entrySize(len(r) + frameHeaderSize)
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		l.reqPool.Put(req)
		return 0, ErrClosed
	}
	select {
	case l.reqs <- req:
		l.closeMu.RUnlock()
	case <-ctx.Done():
		l.closeMu.RUnlock()
		l.reqPool.Put(req)
		return 0, ctx.Err()
	}
	select {
	case <-req.done:
		first, err := req.first, req.err
		req.records = nil
		l.reqPool.Put(req)
		return first, err
	case <-ctx.Done():
		// The writer still owns req; it is not returned to the pool.
		return 0, ctx.Err()
	}
}

// writer is the only goroutine that writes to the log. It hands each write
// to the syncer and goes on gathering the next group while that fsync runs:
// one write ahead of the disk, so with WAL_SYNC=always the write of group
// N+1 overlaps the fsync of group N instead of waiting for it.
func (l *Log) writer() {
	defer close(l.writerDone)
	defer close(l.syncCh)
	batch := make([]*appendReq, 0, 64)
	for {
		req, ok := <-l.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], req)
		n := len(req.records)
	gather:
		for n < l.opts.MaxBatchRecords {
			select {
			case r, more := <-l.reqs:
				if !more {
					break gather
				}
				batch = append(batch, r)
				n += len(r.records)
			default:
				break gather
			}
		}
		l.commit(batch)
	}
}

// syncItem is one write handed from the writer to the syncer.
type syncItem struct {
	reqs  []*appendReq // with WAL_SYNC=always, answered after the fsync
	upTo  uint64       // last index written
	file  *os.File     // the tail segment at that point (changes on rotation)
	start time.Time
}

// commit writes one group of requests. With WAL_SYNC=always the syncer
// answers them after its fsync; otherwise they are answered here.
func (l *Log) commit(batch []*appendReq) {
	reply := func(reqs []*appendReq) {
		for _, r := range reqs {
			r.done <- struct{}{}
		}
	}
	if p := l.failed.Load(); p != nil {
		for _, r := range batch {
			r.err = fmt.Errorf("%w: %v", ErrFailed, *p)
		}
		reply(batch)
		return
	}
	// The disk guard admits requests in order while they fit.
	accepted := make([]*appendReq, 0, len(batch))
	var rejected []*appendReq
	var extra int64
	for _, r := range batch {
		if l.isFull(extra + r.bytes) {
			r.err = ErrFull
			rejected = append(rejected, r)
			continue
		}
		extra += r.bytes
		accepted = append(accepted, r)
	}
	if len(rejected) > 0 {
		l.metrics.full.Add(float64(len(rejected)))
		l.refusedFull.Store(true)
		reply(rejected)
	}
	if len(accepted) == 0 {
		return
	}
	if len(rejected) == 0 {
		l.refusedFull.Store(false)
	}
	l.twBatch.Clear()
	next := l.written + 1
	records := 0
	for _, r := range accepted {
		r.first = next
		for _, rec := range r.records {
			l.frameBuf = appendFrame(l.frameBuf[:0], rec)
			l.twBatch.Write(next, l.frameBuf)
			next++
			records++
		}
	}
	start := time.Now()
	err := l.tw.WriteBatch(&l.twBatch)
	if err == nil {
		err = l.trackSegments(accepted)
	}
	if err != nil {
		l.failStop(fmt.Errorf("write indexes %d-%d: %w", l.written+1, next-1, err))
		for _, r := range accepted {
			r.err = fmt.Errorf("%w: %v", ErrFailed, err)
		}
		reply(accepted)
		return
	}
	l.written = next - 1
	l.metrics.batchRecords.Observe(float64(records))
	l.metrics.appended.Add(float64(records))
	item := syncItem{upTo: l.written, file: l.tailFile, start: start}
	switch l.opts.Sync {
	case SyncAlways:
		item.reqs = accepted
	case SyncNever:
		l.publish(l.written)
		l.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		reply(accepted)
	case SyncInterval:
		// Acknowledged after the write; readers see it after the next tick's fsync.
		l.metrics.commitSeconds.Observe(time.Since(start).Seconds())
		reply(accepted)
	}
	l.syncCh <- item
}

// syncer owns the fsync of the tail segment: per write with WAL_SYNC=always
// (answering that write's requests after it), on a timer with interval, and
// once more when the log closes. A failure fail-stops the log.
func (l *Log) syncer(file *os.File, synced uint64) {
	defer close(l.syncerDone)
	written := synced
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	syncNow := func() error {
		if synced == written {
			return nil
		}
		if p := l.failed.Load(); p != nil {
			return *p
		}
		start := time.Now()
		if err := l.opts.syncFile(file); err != nil {
			err = fmt.Errorf("fsync %s through index %d: %w", file.Name(), written, err)
			l.failStop(err)
			return err
		}
		l.metrics.fsyncSeconds.Observe(time.Since(start).Seconds())
		synced = written
		l.publish(synced)
		return nil
	}
	for {
		select {
		case <-tick:
			syncNow()
			continue
		case it, ok := <-l.syncCh:
			if !ok {
				syncNow()
				file.Close()
				return
			}
			if it.file != file {
				// Rotated: tidwall fsync'd the sealed segment when it
				// closed it, so only the new tail needs our fsync.
				file.Close()
				file = it.file
			}
			written = it.upTo
			if l.opts.Sync != SyncAlways {
				continue
			}
			err := syncNow()
			l.metrics.commitSeconds.Observe(time.Since(it.start).Seconds())
			for _, r := range it.reqs {
				if err != nil {
					r.err = fmt.Errorf("%w: %v", ErrFailed, err)
				}
				r.done <- struct{}{}
			}
		}
	}
}

func (l *Log) failStop(err error) {
	if l.failed.CompareAndSwap(nil, &err) {
		l.metrics.failures.Inc()
		l.log.Error("wal fail-stopped: accepting nothing until reopened", "error", err)
	}
}

// publish makes records up to index visible and wakes waiting readers.
func (l *Log) publish(index uint64) {
	l.visible.Store(index)
	l.notifyMu.Lock()
	close(l.notifyCh)
	l.notifyCh = make(chan struct{})
	l.notifyMu.Unlock()
}

// trackSegments applies tidwall/wal's rotation rule to the records just
// written, so this package knows every segment boundary. On rotation the old
// segment has been fsync'd by tidwall; the directory is fsync'd here so the
// new file's name is durable, and the fsync descriptor moves to the new tail.
func (l *Log) trackSegments(reqs []*appendReq) error {
	l.segMu.Lock()
	rotated := false
	index := l.written
	tail := &l.segs[len(l.segs)-1]
	rotate := func() {
		tail.sealedAt = time.Now()
		l.segs = append(l.segs, segMeta{first: index + 1, path: filepath.Join(l.segDir, segmentName(index+1))})
		tail = &l.segs[len(l.segs)-1]
		rotated = true
	}
	if tail.bytes > l.opts.SegmentBytes {
		rotate()
	}
	for _, r := range reqs {
		for _, rec := range r.records {
			index++
			n := entrySize(len(rec) + frameHeaderSize)
			tail.bytes += n
			tail.count++
			l.totalBytes += n
			if tail.bytes >= l.opts.SegmentBytes {
				rotate()
			}
		}
	}
	tailPath := tail.path
	l.segMu.Unlock()
	if !rotated {
		return nil
	}
	if err := syncDir(l.segDir); err != nil {
		return err
	}
	f, err := os.Open(tailPath)
	if err != nil {
		return fmt.Errorf("open new tail segment: %w", err)
	}
	// Records before the rotation were fsync'd by tidwall when it sealed
	// their segment; the ones after are in the new tail. The syncer closes
	// the old descriptor when it takes the new one.
	l.tailFile = f
	// tidwall keeps a sealed tail's whole buffer in its read cache; drop it
	// so memory stays at one segment plus what readers actually load.
	l.readMu.Lock()
	err = l.tw.ClearCache()
	l.readMu.Unlock()
	if err != nil {
		return fmt.Errorf("clear segment cache: %w", err)
	}
	select {
	case l.maintKick <- struct{}{}:
	default:
	}
	return nil
}

// Wait blocks until LastIndex() >= index, ctx ends, or the log is closed.
func (l *Log) Wait(ctx context.Context, index uint64) error {
	for {
		if l.visible.Load() >= index {
			return nil
		}
		l.notifyMu.Lock()
		ch := l.notifyCh
		l.notifyMu.Unlock()
		if l.visible.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.syncerDone:
			if l.visible.Load() >= index {
				return nil
			}
			return ErrClosed
		}
	}
}

// Read returns up to max records (and about maxBytes) from index from,
// without waiting. It returns nothing when from > LastIndex() and
// ErrCompacted when from < FirstIndex().
//
// Sealed segments are streamed from their files through a small buffer, so a
// reader holds about maxBytes whatever WAL_SEGMENT_BYTES is; the tail is read
// from tidwall/wal, which keeps it in memory anyway.
func (l *Log) Read(from uint64, max, maxBytes int) ([]Record, error) {
	if from < l.first.Load() {
		return nil, fmt.Errorf("%w: index %d is before the first index %d", ErrCompacted, from, l.first.Load())
	}
	last := l.visible.Load()
	if from > last || max <= 0 {
		return nil, nil
	}
	if n := last - from + 1; uint64(max) > n {
		max = int(n)
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 62
	}
	b := &readBatch{out: make([]Record, 0, max), max: max, maxBytes: maxBytes}
	next := from
	for !b.full() {
		seg, sealed := l.sealedSegmentOf(next)
		if !sealed {
			break
		}
		var err error
		if next, err = l.readSealed(seg, next, b); err != nil {
			return b.out, err
		}
	}
	if b.full() {
		return b.out, nil
	}
	l.readMu.Lock()
	defer l.readMu.Unlock()
	for i := next; !b.full(); i++ {
		frame, err := l.tw.Read(i)
		if err != nil {
			if i < l.first.Load() {
				return b.out, fmt.Errorf("%w: index %d was removed while reading", ErrCompacted, i)
			}
			if errors.Is(err, tidwall.ErrClosed) {
				return b.out, ErrClosed
			}
			return b.out, fmt.Errorf("read index %d: %w", i, err)
		}
		payload, err := openFrame(frame)
		if err != nil {
			return b.out, &CorruptionError{Segment: l.segmentPath(i), Offset: -1, Index: i, Reason: err.Error()}
		}
		// tidwall's Read returned a copy: keep it rather than copy again.
		b.out = append(b.out, Record{Index: i, Data: payload})
		b.size += len(payload)
	}
	return b.out, nil
}

// ScanRange calls fn for each record from index from through to, in order,
// and stops at fn's first error. Unlike Read's, the Data that fn gets is only
// valid during the call: records of sealed segments come straight from the
// cursor's buffer, so a consumer that only looks at each record (the
// shipper's first pass over a unit) copies and allocates nothing. to must
// not be past LastIndex().
func (l *Log) ScanRange(ctx context.Context, from, to uint64, fn func(Record) error) error {
	if from < l.first.Load() {
		return fmt.Errorf("%w: index %d is before the first index %d", ErrCompacted, from, l.first.Load())
	}
	if last := l.visible.Load(); to > last {
		return fmt.Errorf("scan %d-%d: the last durable index is %d", from, to, last)
	}
	for i := from; i <= to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		seg, sealed := l.sealedSegmentOf(i)
		if !sealed {
			recs, err := l.Read(i, int(min(to-i+1, 4096)), 4<<20)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("scan %d-%d: no record at %d", from, to, i)
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
			i = recs[len(recs)-1].Index + 1
			continue
		}
		c, err := l.takeCursor(seg, i)
		if err != nil {
			if i < l.first.Load() {
				return fmt.Errorf("%w: index %d was removed while reading", ErrCompacted, i)
			}
			return fmt.Errorf("read sealed segment %s: %w", seg.path, err)
		}
		end := min(seg.first+seg.count-1, to)
		for c.index <= end {
			payload, err := c.next()
			if err != nil {
				c.close()
				if errors.Is(err, io.EOF) {
					err = &CorruptionError{Segment: seg.path, Offset: c.off, Index: c.index,
						Reason: fmt.Sprintf("sealed segment ends before index %d", seg.first+seg.count-1)}
				}
				return err
			}
			if err := fn(Record{Index: c.index - 1, Data: payload}); err != nil {
				l.returnCursor(c)
				return err
			}
		}
		i = c.index
		l.returnCursor(c)
	}
	return nil
}

// readBatch collects the records of one Read.
type readBatch struct {
	out           []Record
	slab          []byte // payloads of sealed-segment records are carved from it
	size          int
	max, maxBytes int
}

func (b *readBatch) full() bool { return len(b.out) >= b.max || b.size >= b.maxBytes }

// addCopy appends a record whose payload is only borrowed.
func (b *readBatch) addCopy(index uint64, payload []byte) {
	if cap(b.slab)-len(b.slab) < len(payload) {
		b.slab = make([]byte, 0, max(len(payload), min(b.maxBytes-b.size, segmentReadBuffer)))
	}
	start := len(b.slab)
	b.slab = append(b.slab, payload...)
	b.out = append(b.out, Record{Index: index, Data: b.slab[start:len(b.slab):len(b.slab)]})
	b.size += len(payload)
}

// maxCursors bounds the open sealed-segment readers: one per consumer (the
// loader, two export destinations) and one for a manual export or replay.
const maxCursors = 4

// sealedSegmentOf returns the segment holding index if it is sealed.
func (l *Log) sealedSegmentOf(index uint64) (segMeta, bool) {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	k := sort.Search(len(l.segs), func(j int) bool { return l.segs[j].first > index }) - 1
	if k < 0 || k == len(l.segs)-1 {
		return segMeta{}, false
	}
	return l.segs[k], true
}

// readSealed reads records of sealed segment seg from index from into b and
// returns the index after the last one read.
func (l *Log) readSealed(seg segMeta, from uint64, b *readBatch) (uint64, error) {
	c, err := l.takeCursor(seg, from)
	if err != nil {
		if from < l.first.Load() {
			return from, fmt.Errorf("%w: index %d was removed while reading", ErrCompacted, from)
		}
		return from, fmt.Errorf("read sealed segment %s: %w", seg.path, err)
	}
	end := seg.first + seg.count
	for !b.full() && c.index < end {
		payload, err := c.next()
		if err != nil {
			c.close()
			if errors.Is(err, io.EOF) {
				err = &CorruptionError{Segment: seg.path, Offset: c.off, Index: c.index,
					Reason: fmt.Sprintf("sealed segment ends before index %d", end-1)}
			}
			return c.index, err
		}
		b.addCopy(c.index-1, payload)
	}
	next := c.index
	l.returnCursor(c) // c may be someone else's from here on
	return next, nil
}

// takeCursor removes from the cache a cursor of seg that can reach from
// (preferring one exactly there), or opens one; the caller owns it until
// returnCursor.
func (l *Log) takeCursor(seg segMeta, from uint64) (*segmentReader, error) {
	l.cursorMu.Lock()
	best := -1
	for i, c := range l.cursors {
		if c.first == seg.first && c.index <= from && (best < 0 || c.index > l.cursors[best].index) {
			best = i
		}
	}
	var c *segmentReader
	if best >= 0 {
		c = l.cursors[best]
		l.cursors = append(l.cursors[:best], l.cursors[best+1:]...)
	}
	l.cursorMu.Unlock()
	if c == nil {
		var err error
		if c, err = openSegmentReader(seg.path, seg.first); err != nil {
			return nil, err
		}
		l.metrics.segmentOpens.Inc()
	}
	if err := c.skipTo(from); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (l *Log) returnCursor(c *segmentReader) {
	if c.first < l.first.Load() {
		c.close() // its segment was removed meanwhile
		return
	}
	l.cursorMu.Lock()
	l.cursors = append(l.cursors, c)
	var evicted *segmentReader
	if len(l.cursors) > maxCursors {
		evicted = l.cursors[0]
		l.cursors = l.cursors[1:]
	}
	l.cursorMu.Unlock()
	if evicted != nil {
		evicted.close()
	}
}

// closeCursors closes the cached cursors of segments before first (all of
// them when first is 0).
func (l *Log) closeCursors(first uint64) {
	l.cursorMu.Lock()
	keep := l.cursors[:0]
	var closing []*segmentReader
	for _, c := range l.cursors {
		if first == 0 || c.first < first {
			closing = append(closing, c)
		} else {
			keep = append(keep, c)
		}
	}
	l.cursors = keep
	l.cursorMu.Unlock()
	for _, c := range closing {
		c.close()
	}
}

func (l *Log) segmentPath(index uint64) string {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	for i := len(l.segs) - 1; i >= 0; i-- {
		if l.segs[i].first <= index {
			return l.segs[i].path
		}
	}
	return ""
}

// Segments describes the segments, oldest first; the last is the tail.
func (l *Log) Segments() []Segment {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	out := make([]Segment, len(l.segs))
	visible := l.visible.Load()
	for i, s := range l.segs {
		last := s.first + s.count - 1
		sealed := i < len(l.segs)-1
		if !sealed && last > visible {
			// Written but not yet durable: not visible to readers.
			last = visible
		}
		out[i] = Segment{FirstIndex: s.first, LastIndex: last, Bytes: s.bytes, Sealed: sealed && last <= visible, SealedAt: s.sealedAt, Path: s.path}
	}
	return out
}

// BytesAfter estimates the bytes of records after index (for lag display).
func (l *Log) BytesAfter(index uint64) int64 {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	var total int64
	for _, s := range l.segs {
		last := s.first + s.count - 1
		switch {
		case s.count == 0 || last <= index:
		case s.first > index:
			total += s.bytes
		default:
			total += s.bytes * int64(last-index) / int64(s.count)
		}
	}
	return total
}

// Stats is a snapshot for /health and metrics.
func (l *Log) Stats() Stats {
	l.segMu.Lock()
	st := Stats{Bytes: l.totalBytes, Segments: len(l.segs), MaxBytes: l.opts.MaxBytes, Sync: l.opts.Sync}
	l.segMu.Unlock()
	st.FirstIndex, st.LastIndex = l.first.Load(), l.visible.Load()
	st.Full = l.isFull(0) || l.refusedFull.Load()
	if p := l.failed.Load(); p != nil {
		st.Failed = (*p).Error()
	}
	return st
}

// Close stops accepting appends, lets queued ones finish, makes everything
// durable and releases the directory.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	close(l.reqs)
	l.closeMu.Unlock()
	<-l.writerDone
	<-l.syncerDone
	close(l.maintStop)
	<-l.maintDone
	var errs []error
	if p := l.failed.Load(); p != nil {
		errs = append(errs, fmt.Errorf("wal was fail-stopped: %w", *p))
	}
	errs = append(errs, l.consumers.flush())
	// tidwall's Close fsyncs the tail once more; after a fail-stop that
	// result means nothing, but closing releases the file.
	if err := l.tw.Close(); err != nil && l.failed.Load() == nil {
		errs = append(errs, fmt.Errorf("close segments: %w", err))
	}
	l.closeCursors(0)
	errs = append(errs, l.lock.release())
	l.log.Info("wal closed", "last_index", l.visible.Load())
	return errors.Join(errs...)
}

// maintain removes consumed segments and watches free disk space.
func (l *Log) maintain() {
	defer close(l.maintDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.maintStop:
			return
		case <-t.C:
			l.updateLowDisk()
			if err := l.consumers.flushIfDirty(); err != nil {
				l.log.Warn("persist consumer registry", "error", err)
			}
		case <-l.maintKick:
		}
		if err := l.removeConsumedSegments(time.Now()); err != nil {
			l.log.Error("remove consumed segments", "error", err)
		}
	}
}

func (l *Log) updateLowDisk() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(l.segDir, &st); err != nil {
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	low := free < l.opts.MinFreeBytes
	if low != l.lowDisk.Load() {
		l.lowDisk.Store(low)
		if low {
			l.log.Error("wal disk nearly full: refusing appends", "free_bytes", free, "min_free_bytes", l.opts.MinFreeBytes)
		} else {
			l.log.Info("wal disk space recovered", "free_bytes", free)
		}
	}
}

// removeConsumedSegments deletes sealed segments, oldest first, that every
// consumer has processed and that retention no longer keeps. Under disk
// pressure (above 90% of MaxBytes) retention yields; consumers never do.
func (l *Log) removeConsumedSegments(now time.Time) error {
	minPos, any := l.consumers.minPosition()
	if !any {
		return nil // nobody has read these records: the WAL is their only copy
	}
	for {
		l.segMu.Lock()
		if len(l.segs) < 2 {
			l.segMu.Unlock()
			return nil
		}
		s := l.segs[0]
		last := s.first + s.count - 1
		pressure := l.totalBytes > l.opts.MaxBytes/10*9
		keep := last > minPos || last > l.visible.Load() ||
			(l.opts.Retention > 0 && now.Sub(s.sealedAt) < l.opts.Retention && !pressure)
		if keep {
			l.segMu.Unlock()
			return nil
		}
		// Readers learn first, then the file goes.
		l.first.Store(l.segs[1].first)
		l.segs = l.segs[1:]
		l.totalBytes -= s.bytes
		l.segMu.Unlock()
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove segment %s: %w", s.path, err)
		}
		if err := syncDir(l.segDir); err != nil {
			return err
		}
		l.closeCursors(l.first.Load())
		l.metrics.removedSegments.Inc()
		l.refusedFull.Store(false)
		l.log.Info("wal segment removed", "segment", s.path, "first_index", s.first, "last_index", last, "min_consumer_position", minPos)
	}
}
