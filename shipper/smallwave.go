package shipper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/wal"
)

// Small objects.
//
// A unit holds one group per (site, receive hour), and a site's group of
// one segment is often tiny: with a few hundred sites, most objects of a
// unit hold a few dozen events. Streamed one upload slot at a time, each
// such object would cost a read of the whole unit and an upload round trip
// of its own, one after the other. So the objects of small groups (at most
// smallGroupBytes of records each) go in small waves of at most
// smallWaveBytes of records: one read of the unit copies their records
// into memory (bufferRange), then each object is encoded from there in
// turn, by one encoder, into memory (and into a spool file when other
// destinations want it too), and uploaded from memory while the next one
// is encoded, smallUploadsPerSlot at once per upload slot the wave holds.
// The bytes are the same as streamed: the same records, in the same order,
// through the same writer (TestSmallWavesWriteTheStreamedBytes).

// smallWaveBytes bounds the WAL record bytes a small wave holds: the S3
// minimum part size, so a wave's records, its encoded objects and their
// upload buffers stay within what one upload slot may hold (3 × the part
// size).
const smallWaveBytes = 5 << 20

// smallGroupBytes is the largest group that goes in a small wave. A larger
// one is worth its own read of the unit: streamed, its records are
// prepared and compressed by two goroutines at once. A variable for tests
// (negative: every object is streamed).
var smallGroupBytes int64 = 1 << 20

// splitSmall separates the objects of small groups from the others,
// keeping the order of each.
func splitSmall(todo []objectSpec) (small, large []objectSpec) {
	for _, s := range todo {
		if s.g.bytes <= smallGroupBytes {
			small = append(small, s)
		} else {
			large = append(large, s)
		}
	}
	return small, large
}

// smallWaveLen is how many objects at the head of small form one wave: as
// many groups as fit in smallWaveBytes together (at least one), with all
// their formats.
func smallWaveLen(small []objectSpec) int {
	var total int64
	var last *group
	k := 0
	for ; k < len(small); k++ {
		if g := small[k].g; g != last {
			if k > 0 && total+g.bytes > smallWaveBytes {
				break
			}
			total += g.bytes
			last = g
		}
	}
	return k
}

// smallRecords is a small wave's records, copied out of the WAL.
type smallRecords struct {
	data    []byte
	byGroup map[uint32][]smallRecord
}

type smallRecord struct {
	index  uint64
	off, n int
}

func (s *smallRecords) add(gi uint32, index uint64, data []byte) {
	s.byGroup[gi] = append(s.byGroup[gi], smallRecord{index: index, off: len(s.data), n: len(data)})
	s.data = append(s.data, data...)
}

// bufferRange is pass 2's reader for a small wave: it copies the unit's
// records that belong to the wave's groups.
func (j *unitJob) bufferRange(ctx context.Context, log recordReader, of []uint32, recs *smallRecords) error {
	first, last := j.u.First, j.u.Last
	err := log.ScanRange(ctx, first, last, func(r wal.Record) error {
		gi := of[r.Index-first]
		if gi == noGroup {
			return nil
		}
		if _, ok := recs.byGroup[gi]; !ok {
			return nil
		}
		recs.add(gi, r.Index, r.Data)
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("read WAL %d-%d: %w", first, last, err)
	}
	return nil
}

// startSmallWave is pass 2 for a small wave (see above). Like startWave it
// returns when every object is encoded (or its leader's spool file is
// complete) and its upload started; on error no upload is left running.
func (j *unitJob) startSmallWave(ctx context.Context, log recordReader, specs []objectSpec, of []uint32, slots int) (*waveUploads, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &smallWave{j: j, ctx: ctx, permits: make(chan struct{}, smallUploadsPerSlot*slots)}
	var size int64
	recs := &smallRecords{byGroup: map[uint32][]smallRecord{}}
	for _, s := range specs {
		if _, ok := recs.byGroup[s.gi]; !ok {
			recs.byGroup[s.gi] = nil
			size += s.g.bytes
		}
	}
	recs.data = make([]byte, 0, size)
	err := j.bufferRange(ctx, log, of, recs)
	var follow []*openObject
	for _, s := range specs {
		if err != nil {
			break
		}
		o := &openObject{spec: s, done: make(chan struct{}), start: time.Now()}
		w.all = append(w.all, o)
		var lead *spoolEntry
		if j.share != nil {
			// Claimed only now, and encoded at once when led: a leader
			// never waits while its followers wait for it.
			e, leads := j.share.spool.claim(j.objectSig(s), j.u.Last, j.share.self, j.share.others(s.format, j.compFor(s.format), s.g.site))
			switch {
			case e == nil:
			case leads:
				lead = e
			default:
				o.spooled = e
				follow = append(follow, o)
				continue
			}
		}
		var data []byte
		data, err = w.encode(o, recs)
		if lead != nil {
			// Spooled for the others; this one uploads from memory.
			size, sum, serr := writeSpoolFile(lead, data, err)
			j.share.spool.finish(lead, size, sum, serr)
		}
		if err == nil {
			err = w.upload(o, data, "")
		}
	}
	// Then the objects other destinations lead, as in startWave.
	for _, o := range follow {
		if err != nil {
			break
		}
		select {
		case <-o.spooled.done:
		case <-ctx.Done():
			err = ctx.Err()
			continue
		}
		if o.spooled.ok {
			if data, rerr := os.ReadFile(o.spooled.path); rerr == nil {
				err = w.upload(o, data, o.spooled.sha256)
				continue
			}
		}
		// The leader failed (or its file is gone): encode it here.
		o.spooled = nil
		var data []byte
		if data, err = w.encode(o, recs); err == nil {
			err = w.upload(o, data, "")
		}
	}
	if err != nil {
		cancel()
		for _, o := range w.all {
			if o.started {
				<-o.done
			}
		}
		return nil, err
	}
	return &waveUploads{j: j, ctx: ctx, cancel: cancel, all: w.all}, nil
}

// smallUploadsPerSlot is how many of a small wave's objects upload at once
// per upload slot it holds. Their bodies are in memory, the size of the
// object (no part buffer: S3Store.Put), so the wave's memory is its
// records, its encoded objects and its followers' copies of spool files,
// each at most smallWaveBytes, whatever the number: within one slot's 3 ×
// the part size. Small objects are cheap to hold and costly in round trips.
const smallUploadsPerSlot = 4

type smallWave struct {
	j       *unitJob
	ctx     context.Context
	permits chan struct{} // smallUploadsPerSlot per upload slot the wave holds
	all     []*openObject
}

// encode writes object o from the wave's records into memory.
func (w *smallWave) encode(o *openObject, recs *smallRecords) ([]byte, error) {
	s := o.spec
	var buf bytes.Buffer
	ew, err := export.NewWriter(&buf, s.format, w.j.compFor(s.format), w.j.objectMeta(s))
	if err != nil {
		return nil, fmt.Errorf("open %s writer: %w", s.format, err)
	}
	for _, r := range recs.byGroup[s.gi] {
		if err := ew.WriteRecord(r.index, recs.data[r.off:r.off+r.n]); err != nil {
			ew.Abort()
			return nil, fmt.Errorf("encode %s: %w", s.key, err)
		}
	}
	if err := ew.Close(); err != nil {
		return nil, fmt.Errorf("finish %s: %w", s.key, err)
	}
	return buf.Bytes(), nil
}

// writeSpoolFile writes a lead object's bytes (or its encoding error) to
// its spool entry's file, for spool.finish.
func writeSpoolFile(e *spoolEntry, data []byte, encErr error) (int64, string, error) {
	if encErr != nil {
		return 0, "", encErr
	}
	sw, err := createSpoolFile(e)
	if err != nil {
		return 0, "", err
	}
	_, err = sw.Write(data)
	size, sum, cerr := sw.close()
	if err == nil {
		err = cerr
	}
	return size, sum, err
}

// upload puts data once one of the wave's uploads is free; with wantSHA
// (a follower's spooled bytes) the store must have stored exactly those.
func (w *smallWave) upload(o *openObject, data []byte, wantSHA string) error {
	select {
	case w.permits <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	o.started = true
	j := w.j
	go func() {
		defer func() { <-w.permits }()
		defer close(o.done)
		o.result, o.err = j.dest.Store.Put(w.ctx, j.putInput(o.spec, NewMemBody(data)))
		if o.err == nil && wantSHA != "" && o.result.SHA256 != wantSHA {
			o.err = fmt.Errorf("upload %s from the export spool: stored SHA-256 %s, spooled %s", o.spec.key, o.result.SHA256, wantSHA)
		}
	}()
	return nil
}
