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
	for from := first; from <= last; {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		recs, err := log.Read(from, readBatchRecords, readBatchBytes)
		if err != nil {
			return nil, nil, fmt.Errorf("read WAL %d-%d: %w", from, last, err)
		}
		if len(recs) == 0 {
			return nil, nil, fmt.Errorf("read WAL %d-%d: no records (log ends at an earlier index)", from, last)
		}
		for _, r := range recs {
			if r.Index > last {
				break
			}
			site, recv, ok := p.peek(r.Data)
			if !ok {
				return nil, nil, fmt.Errorf("WAL record %d: %w: no site_id/received_at", r.Index, event.ErrBadRecord)
			}
			if !filter(site, recv) {
				of = append(of, noGroup)
				from = r.Index + 1
				continue
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
			if recv.Before(g.first) {
				g.first = recv
			}
			if recv.After(g.last) {
				g.last = recv
			}
			of = append(of, uint32(gi))
			from = r.Index + 1
		}
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
	groups, of, err := scanGroups(ctx, log, j.u.First, j.u.Last, j.filter)
	if err != nil {
		return unitResult{}, err
	}
	stored := map[string]export.ManifestEntry{}
	for _, e := range j.u.Stored {
		stored[e.Key] = e
	}
	var todo []objectSpec
	var res unitResult
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
	for len(todo) > 0 {
		n := j.sem.acquireUpTo(ctx, len(todo))
		if n == 0 {
			return res, ctx.Err()
		}
		wave := todo[:n]
		todo = todo[n:]
		entries, err := j.wave(ctx, log, wave, of)
		j.sem.release(n)
		for _, e := range entries {
			res.entries = append(res.entries, e)
			if j.onStored != nil {
				j.onStored(e)
			}
		}
		if err != nil {
			return res, err
		}
	}
	sort.Slice(res.entries, func(a, b int) bool { return res.entries[a].Key < res.entries[b].Key })
	for _, e := range res.entries {
		res.bytes += e.Bytes
	}
	if len(res.entries) == 0 {
		// Nothing of this destination's in the range: no objects, no manifest.
		return res, nil
	}
	key, err := j.writeManifest(ctx, res.entries)
	res.manifest = key
	return res, err
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

type openObject struct {
	spec   objectSpec
	w      *export.Writer
	buf    *bufio.Writer
	pw     *io.PipeWriter
	done   chan struct{}
	result PutResult
	err    error
	start  time.Time
}

// wave is pass 2 for a set of objects: one read of the unit feeds all of
// them, each streaming through an io.Pipe into its own upload.
func (j *unitJob) wave(ctx context.Context, log recordReader, specs []objectSpec, of []uint32) ([]export.ManifestEntry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	byGroup := map[uint32][]*openObject{}
	var objs []*openObject
	for _, s := range specs {
		c := j.compFor(s.format)
		meta := export.Metadata{
			ExportID: j.exportID, ExportTime: j.u.PlannedAt, EventCount: s.g.count,
			Start: s.g.first, End: s.g.last, Client: j.dest.Client, NodeID: j.node,
			FirstIndex: j.u.First, LastIndex: j.u.Last,
		}
		pr, pw := io.Pipe()
		buf := bufio.NewWriterSize(pw, 64<<10)
		w, err := export.NewWriter(buf, s.format, c, meta)
		if err != nil {
			pw.Close()
			for _, o := range objs {
				o.pw.CloseWithError(err)
				<-o.done
			}
			return nil, fmt.Errorf("open %s writer: %w", s.format, err)
		}
		o := &openObject{spec: s, w: w, buf: buf, pw: pw, done: make(chan struct{}), start: time.Now()}
		ct, ce := export.ContentType(s.format, c)
		in := PutInput{Key: s.key, Body: pr, ContentType: ct, ContentEncoding: ce, Metadata: map[string]string{
			"export-id": j.exportID, "first-index": strconv.FormatUint(j.u.First, 10),
			"last-index": strconv.FormatUint(j.u.Last, 10), "events": strconv.Itoa(s.g.count),
			"format": string(s.format), "compression": string(c), "node-id": j.node,
		}}
		go func() {
			defer close(o.done)
			o.result, o.err = j.dest.Store.Put(ctx, in)
			// Unblock the encoder if the upload stopped reading early.
			pr.CloseWithError(errUploadEnded(o.err))
		}()
		objs = append(objs, o)
		byGroup[s.gi] = append(byGroup[s.gi], o)
	}
	abort := func(err error) error {
		cancel()
		for _, o := range objs {
			o.pw.CloseWithError(err)
		}
		for _, o := range objs {
			<-o.done
		}
		return err
	}

	// Decoding (one goroutine) and encoding + compression (this one) run
	// concurrently, a few small batches apart.
	batches := make(chan *rowBatch, 2)
	free := make(chan *rowBatch, 3)
	for i := 0; i < 3; i++ {
		free <- &rowBatch{}
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- j.decodeRange(ctx, log, of, byGroup, free, batches)
	}()
	drain := func() {
		cancel()
		for range batches {
		}
	}
	for b := range batches {
		for k := range b.rows {
			for _, o := range byGroup[b.groups[k]] {
				if err := o.w.Write(b.rows[k]); err != nil {
					drain()
					return nil, abort(j.uploadError(o, fmt.Errorf("encode %s: %w", o.spec.key, err)))
				}
			}
		}
		free <- b
	}
	if err := <-readErr; err != nil {
		return nil, abort(err)
	}
	for _, o := range objs {
		err := o.w.Close()
		if err == nil {
			err = o.buf.Flush()
		}
		if err != nil {
			return nil, abort(j.uploadError(o, fmt.Errorf("finish %s: %w", o.spec.key, err)))
		}
		o.pw.Close()
	}
	var entries []export.ManifestEntry
	var firstErr error
	for _, o := range objs {
		<-o.done
		res, err := o.result, o.err
		if errors.Is(err, ErrExists) {
			res, err = verifyExisting(ctx, j.dest.Store, o.spec.key, j.u.First, j.u.Last, o.spec.g.count)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		j.metrics.observeUpload(j.dest.Name(), time.Since(o.start), res.Bytes, o.spec.g.count)
		entries = append(entries, export.ManifestEntry{
			Key: o.spec.key, Format: o.spec.format, Compression: j.compFor(o.spec.format),
			Events: o.spec.g.count, Bytes: res.Bytes, SHA256: res.SHA256,
			FirstIndex: j.u.First, LastIndex: j.u.Last, SiteID: o.spec.g.site,
		})
	}
	return entries, firstErr
}

// rowBatch is a few decoded records on their way to the encoders.
type rowBatch struct {
	rows   []export.Row
	evs    []event.Event
	groups []uint32
}

const rowBatchSize = 256

// decodeRange is pass 2's reader: it decodes the unit's records that
// belong to this wave's groups and hands them over in batches.
func (j *unitJob) decodeRange(ctx context.Context, log recordReader, of []uint32, byGroup map[uint32][]*openObject,
	free, out chan *rowBatch) error {
	var dec recordDecoder
	first, last := j.u.First, j.u.Last
	var b *rowBatch
	send := func() bool {
		if b == nil || len(b.rows) == 0 {
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
	for from := first; from <= last; {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, err := log.Read(from, readBatchRecords, readBatchBytes)
		if err != nil {
			return fmt.Errorf("read WAL %d-%d: %w", from, last, err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("read WAL %d-%d: no records", from, last)
		}
		for _, r := range recs {
			if r.Index > last {
				break
			}
			from = r.Index + 1
			gi := of[r.Index-first]
			if gi == noGroup || len(byGroup[gi]) == 0 {
				continue
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
				b.rows, b.groups = b.rows[:0], b.groups[:0]
			}
			k := len(b.rows)
			if err := dec.decode(r.Data, &b.evs[k]); err != nil {
				return fmt.Errorf("WAL record %d: %w", r.Index, err)
			}
			b.rows = append(b.rows, export.Row{ID: r.Index, Event: &b.evs[k]})
			b.groups = append(b.groups, gi)
			if len(b.rows) == rowBatchSize && !send() {
				return ctx.Err()
			}
		}
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
