package shipper

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
)

// recordReader is the part of the WAL a unit export reads.
type recordReader interface {
	Read(from uint64, max, maxBytes int) ([]wal.Record, error)
	ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error
}

const (
	readBatchRecords = 4096
	readBatchBytes   = 4 << 20
	noGroup          = ^uint32(0)
)

// group is the events of one (site, receive hour) within a unit: one object per format.
type group struct {
	site        string
	hour        time.Time
	count       int
	bytes       int64     // of its WAL records: small groups share upload slots
	first, last time.Time // receive-time range
}

// unitJob is one unit export for one destination.
type unitJob struct {
	dest      *Destination
	u         *unit
	prefix    string // key prefix (the destination's, or a manual run's)
	node      string
	filter    func(site string, received time.Time) bool
	exportID  string
	formats   []export.Format
	comp      export.Compression
	sem       *uploadSlots
	onStored  func(export.ManifestEntry) // called after each object is durable
	metrics   *metrics
	partBytes int64
	share     *sharing // nil: every object is encoded here
}

// unitResult is what a unit export stored.
type unitResult struct {
	entries  []export.ManifestEntry
	manifest string
	events   int
	bytes    int64
}

// scanGroups is pass 1: it reads the unit's records once, keeping only the
// site and receive time of each, and returns the groups and, per record, the
// index of its group. Memory: 4 bytes per record of the unit.
func scanGroups(ctx context.Context, log recordReader, first, last uint64, filter func(string, time.Time) bool) ([]*group, []uint32, error) {
	var p recordPeeker
	byKey := map[string]int{}
	var groups []*group
	of := make([]uint32, 0, last-first+1)
	// Only the site and the receive time are kept, so the records are
	// borrowed from the WAL's read buffer rather than copied.
	err := log.ScanRange(ctx, first, last, func(r wal.Record) error {
		site, recv, ok := p.peek(r.Data)
		if !ok {
			return fmt.Errorf("WAL record %d: %w: no site_id/received_at", r.Index, event.ErrBadRecord)
		}
		if !filter(site, recv) {
			of = append(of, noGroup)
			return nil
		}
		hour := recv.UTC().Truncate(time.Hour)
		gi, ok := lookupGroup(byKey, site, hour)
		if !ok {
			gi = len(groups)
			byKey[site+"\x00"+strconv.FormatInt(hour.Unix(), 10)] = gi
			groups = append(groups, &group{site: site, hour: hour, first: recv, last: recv})
		}
		g := groups[gi]
		g.count++
		g.bytes += int64(len(r.Data))
		if recv.Before(g.first) {
			g.first = recv
		}
		if recv.After(g.last) {
			g.last = recv
		}
		of = append(of, uint32(gi))
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan WAL %d-%d: %w", first, last, err)
	}
	return groups, of, nil
}

// lookupGroup finds a group without allocating the key in the common case.
func lookupGroup(byKey map[string]int, site string, hour time.Time) (int, bool) {
	var buf [128]byte
	k := append(append(append(buf[:0], site...), 0), strconv.FormatInt(hour.Unix(), 10)...)
	gi, ok := byKey[string(k)]
	return gi, ok
}

type objectSpec struct {
	g      *group
	gi     uint32
	format export.Format
	key    string
}

// run exports the unit: pass 1 groups its records, pass 2 streams each
// group into one object per format, in waves of at most the free upload
// slots, then writes the manifest. Objects already stored by an earlier
// attempt are skipped; an object that exists but was not recorded (a crash
// after the upload) is verified and taken as stored.
func (j *unitJob) run(ctx context.Context, log recordReader) (unitResult, error) {
	p, err := j.start(ctx, log)
	if err != nil {
		return p.res, err
	}
	return p.finish(ctx)
}

// finishingUnit is a unit whose records are all read and encoded: what is
// left is the last wave's uploads and the manifest, which need neither the
// WAL nor pass 1's index.
type finishingUnit struct {
	j      *unitJob
	res    unitResult
	last   *waveUploads // nil: no wave left running
	tokens int          // of the upload slots, the last wave holds
}

// start runs the unit up to the end of its last wave's encoding; finish
// does the rest. The finishingUnit is never nil: after an error it holds
// what was stored.
func (j *unitJob) start(ctx context.Context, log recordReader) (*finishingUnit, error) {
	p := &finishingUnit{j: j}
	var groups []*group
	var of []uint32
	var err error
	if j.share != nil && j.share.scans != nil {
		groups, of, err = j.share.scans.groups(ctx, log, j.u.First, j.u.Last, j.dest.Claims)
		if err == nil && j.share.next != nil {
			// Pass 1 of the next unit reads the WAL while this one's pass 2
			// compresses.
			go j.share.scans.groups(ctx, log, j.share.next.First, j.share.next.Last, j.dest.Claims)
		}
	} else {
		groups, of, err = scanGroups(ctx, log, j.u.First, j.u.Last, j.filter)
	}
	if err != nil {
		return p, err
	}
	stored := map[string]export.ManifestEntry{}
	for _, e := range j.u.Stored {
		stored[e.Key] = e
	}
	var todo []objectSpec
	res := &p.res
	for gi, g := range groups {
		res.events += g.count
		for _, f := range j.formats {
			key := export.ObjectKey(j.prefix, g.site, g.hour, j.node, j.u.First, j.u.Last, f, j.compFor(f))
			if e, ok := stored[key]; ok {
				res.entries = append(res.entries, e)
				continue
			}
			todo = append(todo, objectSpec{g: g, gi: uint32(gi), format: f, key: key})
		}
	}
	// A wave is as many objects as the free upload slots take, small ones
	// several to a slot: with many sites, most objects are small, and each
	// wave is one read of the unit and, per object, a store round trip.
	tokens := make([]int, len(todo))
	for i, o := range todo {
		tokens[i] = objectTokens(o.g)
	}
	for len(todo) > 0 {
		n, held := j.sem.acquire(ctx, tokens)
		if n == 0 {
			return p, ctx.Err()
		}
		wave := todo[:n]
		todo, tokens = todo[n:], tokens[n:]
		up, err := j.startWave(ctx, log, wave, of)
		if err != nil {
			j.sem.release(held)
			return p, err
		}
		if len(todo) == 0 {
			// The last wave uploads while the caller goes on (finish).
			p.last, p.tokens = up, held
			break
		}
		if err := p.collect(up, held); err != nil {
			return p, err
		}
	}
	return p, nil
}

// collect waits for a wave's uploads, gives its tokens back and records
// what it stored.
func (p *finishingUnit) collect(up *waveUploads, tokens int) error {
	entries, err := up.wait()
	p.j.sem.release(tokens)
	for _, e := range entries {
		p.res.entries = append(p.res.entries, e)
		if p.j.onStored != nil {
			p.j.onStored(e)
		}
	}
	return err
}

// finish waits for the last wave's uploads, then writes the manifest.
func (p *finishingUnit) finish(ctx context.Context) (unitResult, error) {
	j, res := p.j, &p.res
	if up := p.last; up != nil {
		p.last = nil
		if err := p.collect(up, p.tokens); err != nil {
			return *res, err
		}
	}
	sort.Slice(res.entries, func(a, b int) bool { return res.entries[a].Key < res.entries[b].Key })
	for _, e := range res.entries {
		res.bytes += e.Bytes
	}
	if len(res.entries) == 0 {
		// Nothing of this destination's in the range: no objects, no manifest.
		return *res, nil
	}
	key, err := j.writeManifest(ctx, res.entries)
	res.manifest = key
	return *res, err
}

// compFor is the compression an object of format f gets: parquet
// compresses its pages (snappy if asked, zstd otherwise); the stream
// formats take the destination's compression, gzip when it named snappy.
func (j *unitJob) compFor(f export.Format) export.Compression {
	switch {
	case f == export.FormatParquet && j.comp == export.CompressionSnappy:
		return export.CompressionSnappy
	case f == export.FormatParquet:
		return export.CompressionZstd
	case j.comp == "" || j.comp == export.CompressionSnappy:
		return export.CompressionGzip
	}
	return j.comp
}

// sharing is how a unit job uses the spool. Only scheduled exports share:
// a manual run's filter also depends on time, so its objects differ.
type sharing struct {
	spool *spool
	scans *scanCache // pass 1
	next  *unit      // the destination's next unit, whose pass 1 may start early
	self  string     // this destination's name
	// others lists the other destinations that export the object of
	// format f and compression c for site, under the same unit.
	others func(f export.Format, c export.Compression, site string) []string
}

// objectSig is what determines an object's bytes: the records (unit, site,
// hour; the filter of a scheduled export depends on the site alone), the
// format and compression, and the metadata the format writes.
func (j *unitJob) objectSig(s objectSpec) string {
	sig := fmt.Sprintf("%s|%s|%s|%d|%d|%d|%q", s.format, j.compFor(s.format), j.node, j.u.First, j.u.Last, s.g.hour.Unix(), s.g.site)
	if s.format == export.FormatJSON || s.format == export.FormatParquet {
		sig += fmt.Sprintf("|%q|%q|%d|%d|%d|%d", j.exportID, j.dest.Client, j.u.PlannedAt.UnixNano(), s.g.count, s.g.first.UnixNano(), s.g.last.UnixNano())
	}
	return sig
}

type openObject struct {
	spec objectSpec
	w    *export.Writer
	buf  *bufio.Writer
	pw   *io.PipeWriter // direct: the encoder streams into the upload
	lead *spoolEntry    // lead: the encoder writes a spool file...
	sw   *spoolWriter
	// ...and, like a follower, the object is uploaded from the spool file.
	spooled *spoolEntry
	body    io.ReadCloser

	done   chan struct{}
	result PutResult
	err    error
	start  time.Time
}

func (j *unitJob) putInput(s objectSpec, body io.Reader) PutInput {
	c := j.compFor(s.format)
	ct, ce := export.ContentType(s.format, c)
	return PutInput{Key: s.key, Body: body, ContentType: ct, ContentEncoding: ce, Metadata: map[string]string{
		"export-id": j.exportID, "first-index": strconv.FormatUint(j.u.First, 10),
		"last-index": strconv.FormatUint(j.u.Last, 10), "events": strconv.Itoa(s.g.count),
		"format": string(s.format), "compression": string(c), "node-id": j.node,
	}}
}

// waveUploads is a wave whose objects are all encoded (or, for those
// another destination encoded, spooled): only their uploads are left.
type waveUploads struct {
	j      *unitJob
	ctx    context.Context // the uploads'
	cancel context.CancelFunc
	all    []*openObject
}

// startWave is pass 2 for a set of objects: one read of the unit feeds
// every object this destination encodes, each streaming through an io.Pipe
// into its own upload (or, when other destinations want the same object,
// into a spool file then uploaded); objects another destination is
// encoding are uploaded from its spool file once it is complete. It
// returns when every object's bytes are ready and its upload started; on
// error no upload is left running.
func (j *unitJob) startWave(ctx context.Context, log recordReader, specs []objectSpec, of []uint32) (*waveUploads, error) {
	ctx, cancel := context.WithCancel(ctx)
	ok := false
	defer func() {
		if !ok {
			cancel()
		}
	}()
	var all, encode, follow []*openObject
	for _, s := range specs {
		o := &openObject{spec: s, done: make(chan struct{}), start: time.Now()}
		all = append(all, o)
		if j.share != nil {
			e, lead := j.share.spool.claim(j.objectSig(s), j.u.Last, j.share.self, j.share.others(s.format, j.compFor(s.format), s.g.site))
			switch {
			case e == nil:
			case lead:
				o.lead = e
			default:
				o.spooled = e
				follow = append(follow, o)
				continue
			}
		}
		encode = append(encode, o)
	}
	if err := j.encode(ctx, log, encode, of); err != nil {
		return nil, err
	}
	// Followers wait for their leaders only now, having encoded what they
	// lead: waves never wait on each other in a cycle.
	var fallback []*openObject
	for _, o := range follow {
		select {
		case <-o.spooled.done:
		case <-ctx.Done():
			j.abortSpooled(all)
			for _, o := range encode {
				if o.pw != nil {
					<-o.done
				}
			}
			return nil, ctx.Err()
		}
		if o.spooled.ok {
			if o.body, o.err = openSpooled(o.spooled); o.err == nil {
				continue
			}
		}
		// The leader failed (or its file is gone): encode it here.
		o.spooled, o.err = nil, nil
		fallback = append(fallback, o)
	}
	if err := j.encode(ctx, log, fallback, of); err != nil {
		j.abortSpooled(all)
		cancel()
		for _, o := range encode {
			if o.pw != nil {
				<-o.done
			}
		}
		return nil, err
	}
	for _, o := range all {
		if o.spooled != nil {
			go j.uploadSpooled(ctx, o)
		}
	}
	ok = true
	return &waveUploads{j: j, ctx: ctx, cancel: cancel, all: all}, nil
}

// wait waits for every upload of the wave and returns what was stored.
func (w *waveUploads) wait() ([]export.ManifestEntry, error) {
	j, ctx := w.j, w.ctx
	defer w.cancel()
	var entries []export.ManifestEntry
	var firstErr error
	for _, o := range w.all {
		<-o.done
		res, err := o.result, o.err
		if errors.Is(err, ErrExists) {
			res, err = verifyExisting(ctx, j.dest.Store, o.spec.key, j.u.First, j.u.Last, o.spec.g.count)
		}
		if err == nil && o.spooled != nil && o.lead == nil {
			j.share.spool.release(o.spooled, j.share.self)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		j.metrics.observeUpload(j.dest.Name(), time.Since(o.start), res.Bytes, o.spec.g.count)
		if o.spooled != nil && o.lead == nil {
			j.metrics.shared.WithLabelValues(j.dest.Name()).Inc()
		}
		entries = append(entries, export.ManifestEntry{
			Key: o.spec.key, Format: o.spec.format, Compression: j.compFor(o.spec.format),
			Events: o.spec.g.count, Bytes: res.Bytes, SHA256: res.SHA256,
			FirstIndex: j.u.First, LastIndex: j.u.Last, SiteID: o.spec.g.site,
		})
	}
	return entries, firstErr
}

// uploadSpooled uploads an object from its spool file and checks that what
// was stored is what the leader encoded.
func (j *unitJob) uploadSpooled(ctx context.Context, o *openObject) {
	defer close(o.done)
	defer o.body.Close()
	o.result, o.err = j.dest.Store.Put(ctx, j.putInput(o.spec, o.body))
	if o.err == nil && o.result.SHA256 != o.spooled.sha256 {
		o.err = fmt.Errorf("upload %s from the export spool: stored SHA-256 %s, spooled %s", o.spec.key, o.result.SHA256, o.spooled.sha256)
	}
}

// abortSpooled ends a wave before its spooled uploads started.
func (j *unitJob) abortSpooled(objs []*openObject) {
	for _, o := range objs {
		if o.body != nil {
			o.body.Close()
		}
	}
}

// encode runs one read of the unit into objs: direct objects start their
// uploads (their done closes when it ends), lead objects fill their spool
// entries and become spooled ones. On error every direct upload has ended
// and every lead entry is failed.
func (j *unitJob) encode(ctx context.Context, log recordReader, objs []*openObject, of []uint32) error {
	if len(objs) == 0 {
		return nil
	}
	// Direct uploads run on ctx, the wave's: they outlive the pass. The
	// reader runs on rctx.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	byGroup := map[uint32][]*openObject{}
	var opened []*openObject
	abort := func(err error) error {
		for _, o := range opened {
			if o.pw != nil {
				o.pw.CloseWithError(err)
			}
			if o.sw != nil {
				o.sw.close()
				j.share.spool.finish(o.lead, 0, "", err)
			}
			if o.body != nil {
				o.body.Close()
			}
		}
		for _, o := range opened {
			if o.pw != nil {
				<-o.done
			}
		}
		return err
	}
	for _, o := range objs {
		s := o.spec
		meta := export.Metadata{
			ExportID: j.exportID, ExportTime: j.u.PlannedAt, EventCount: s.g.count,
			Start: s.g.first, End: s.g.last, Client: j.dest.Client, NodeID: j.node,
			FirstIndex: j.u.First, LastIndex: j.u.Last,
		}
		var sink io.Writer
		if o.lead != nil {
			sw, err := createSpoolFile(o.lead)
			if err != nil {
				j.share.spool.finish(o.lead, 0, "", err)
				o.lead = nil // encode it directly instead
			} else {
				o.sw, sink = sw, sw
			}
		}
		var pr *io.PipeReader
		if o.lead == nil {
			pr, o.pw = io.Pipe()
			sink = o.pw
		}
		opened = append(opened, o)
		o.buf = bufio.NewWriterSize(sink, 64<<10)
		var opts []export.Option
		if s.g.small() {
			opts = append(opts, export.SmallObject())
		}
		w, err := export.NewWriter(o.buf, s.format, j.compFor(s.format), meta, opts...)
		if err != nil {
			if o.pw != nil {
				close(o.done) // no upload started
				o.pw = nil
			}
			return abort(fmt.Errorf("open %s writer: %w", s.format, err))
		}
		o.w = w
		if pr != nil {
			in := j.putInput(s, pr)
			go func() {
				defer close(o.done)
				o.result, o.err = j.dest.Store.Put(ctx, in)
				// Unblock the encoder if the upload stopped reading early.
				pr.CloseWithError(errUploadEnded(o.err))
			}()
		}
		byGroup[s.gi] = append(byGroup[s.gi], o)
	}

	// Reading and preparing records (one goroutine: json and ndjson event
	// objects transcoded from the records' bytes, events decoded for csv
	// and parquet) and writing + compression (this one) run concurrently,
	// a few small batches apart.
	var need preparation
	for _, o := range objs {
		if o.w.TranscodesRecords() {
			need.objects = true
		} else {
			need.events = true
		}
	}
	batches := make(chan *rowBatch, 2)
	free := make(chan *rowBatch, 3)
	for i := 0; i < 3; i++ {
		free <- &rowBatch{}
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- j.prepareRange(rctx, log, of, byGroup, need, free, batches)
	}()
	drain := func() {
		cancel()
		for range batches {
		}
	}
	for b := range batches {
		for k := range b.recs {
			for _, o := range byGroup[b.groups[k]] {
				if err := o.w.WritePrepared(&b.recs[k]); err != nil {
					drain()
					return abort(j.uploadError(o, fmt.Errorf("encode %s: %w", o.spec.key, err)))
				}
			}
		}
		free <- b
	}
	if err := <-readErr; err != nil {
		return abort(err)
	}
	for _, o := range objs {
		err := o.w.Close()
		if err == nil {
			err = o.buf.Flush()
		}
		if err != nil {
			return abort(j.uploadError(o, fmt.Errorf("finish %s: %w", o.spec.key, err)))
		}
		if o.pw != nil {
			o.pw.Close()
			continue
		}
		size, sum, err := o.sw.close()
		if err == nil {
			o.body, err = openSpooled(o.lead)
		}
		j.share.spool.finish(o.lead, size, sum, err)
		o.sw = nil
		if err != nil {
			// Nobody can use the file, this destination included.
			return abort(fmt.Errorf("spool %s: %w", o.spec.key, err))
		}
		o.spooled = o.lead
	}
	return nil
}

// rowBatch is a few prepared records on their way to the writers.
type rowBatch struct {
	recs   []export.Prepared
	objs   []byte // the transcoded event objects recs refer to
	evs    []event.Event
	groups []uint32
}

// preparation is what the writers of a wave need of each record.
type preparation struct{ objects, events bool }

const rowBatchSize = 256

// prepareRange is pass 2's reader: it prepares the unit's records that
// belong to this wave's groups and hands them over in batches.
func (j *unitJob) prepareRange(ctx context.Context, log recordReader, of []uint32, byGroup map[uint32][]*openObject,
	need preparation, free, out chan *rowBatch) error {
	var prep export.RecordPreparer
	first, last := j.u.First, j.u.Last
	var b *rowBatch
	send := func() bool {
		if b == nil || len(b.recs) == 0 {
			return true
		}
		select {
		case out <- b:
			b = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	// Prepare copies what it keeps (transcoded bytes, decoded strings), so
	// the records are borrowed from the WAL's read buffer, not copied.
	var prepErr error
	err := log.ScanRange(ctx, first, last, func(r wal.Record) error {
		gi := of[r.Index-first]
		if gi == noGroup || len(byGroup[gi]) == 0 {
			return nil
		}
		if b == nil {
			select {
			case b = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
			if b.evs == nil {
				b.evs = make([]event.Event, rowBatchSize)
			}
			b.recs, b.objs, b.groups = b.recs[:0], b.objs[:0], b.groups[:0]
		}
		k := len(b.recs)
		var p export.Prepared
		var err error
		if b.objs, p, err = prep.Prepare(b.objs, r.Index, r.Data, need.objects, need.events, &b.evs[k]); err != nil {
			prepErr = err
			return err
		}
		b.recs = append(b.recs, p)
		b.groups = append(b.groups, gi)
		if len(b.recs) == rowBatchSize && !send() {
			return ctx.Err()
		}
		return nil
	})
	switch {
	case prepErr != nil:
		return prepErr
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("read WAL %d-%d: %w", first, last, err)
	}
	if !send() {
		return ctx.Err()
	}
	return nil
}

// uploadError prefers the upload's own error (e.g. access denied) over the
// broken-pipe error the encoder saw because of it.
func (j *unitJob) uploadError(o *openObject, encErr error) error {
	select {
	case <-o.done:
		if o.err != nil {
			return o.err
		}
	default:
	}
	return encErr
}

func errUploadEnded(err error) error {
	if err != nil {
		return err
	}
	return io.ErrClosedPipe
}

// verifyExisting accepts an object that is already at key (a crash after
// its upload, or a retry) when its metadata says it holds the same unit.
// Its size and SHA-256 come from the store (x-amz-meta-sha256, or reading
// it whole), so the manifest describes the bytes actually stored.
func verifyExisting(ctx context.Context, st Store, key string, first, last uint64, events int) (PutResult, error) {
	info, err := st.Head(ctx, key)
	if err != nil {
		return PutResult{}, fmt.Errorf("verify existing %s: %w", key, err)
	}
	if info.Metadata != nil {
		want := map[string]string{"first-index": strconv.FormatUint(first, 10), "last-index": strconv.FormatUint(last, 10)}
		if events >= 0 {
			want["events"] = strconv.Itoa(events)
		}
		for k, v := range want {
			if got := info.Metadata[k]; got != v {
				return PutResult{}, fmt.Errorf("verify existing %s: %s is %q, want %q: %w", key, k, got, v, errConflict)
			}
		}
		if sum := info.Metadata["sha256"]; len(sum) == 64 {
			return PutResult{Bytes: info.Bytes, SHA256: sum}, nil
		}
	}
	res, err := hashObject(ctx, st, key)
	if err != nil {
		return PutResult{}, fmt.Errorf("verify existing %s: %w", key, err)
	}
	return res, nil
}

var errConflict = errors.New("an object with different content holds this key")

func (j *unitJob) writeManifest(ctx context.Context, entries []export.ManifestEntry) (string, error) {
	m := export.Manifest{
		ExportID: j.exportID, Client: j.dest.Client, NodeID: j.node, CreatedAt: j.u.PlannedAt,
		FirstIndex: j.u.First, LastIndex: j.u.Last, Objects: entries,
	}
	data, err := m.Marshal()
	if err != nil {
		return "", err
	}
	key := export.ManifestKey(j.prefix, j.node, j.u.First, j.u.Last)
	_, err = j.dest.Store.Put(ctx, PutInput{Key: key, Body: bytes.NewReader(data), ContentType: "application/json",
		Metadata: map[string]string{"export-id": j.exportID, "first-index": strconv.FormatUint(j.u.First, 10),
			"last-index": strconv.FormatUint(j.u.Last, 10), "events": "-1"}})
	if errors.Is(err, ErrExists) {
		_, err = verifyExisting(ctx, j.dest.Store, key, j.u.First, j.u.Last, -1)
	}
	if err != nil {
		return "", fmt.Errorf("write manifest %s: %w", key, err)
	}
	return key, nil
}
