package loader

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// Rejection stages (events_rejected.stage).
const (
	stageDecode   = "decode"
	stageEncode   = "encode"
	stageDatabase = "database"
)

// batch is a run of consecutive WAL records, decoded and encoded as binary
// COPY tuples, on its way to one transaction.
type batch struct {
	first, last uint64 // WAL indexes covered, inclusive; every one is in rows or rejects
	recordBytes int

	buf     []byte   // the tuples of rows, back to back
	rows    []rowRef // one per tuple, in index order
	rejects []rejected
	days    []time.Time // distinct UTC days of rows' received_at

	opened          time.Time // when the reader put the first record in
	firstReceivedAt time.Time // of the first row (age of the oldest pending event)
	lastReceivedAt  time.Time // latest received_at of rows (loader_offsets.last_received_at)

	ev event.Event // decode scratch
}

type rowRef struct {
	index  uint64
	end    int // end offset of the tuple in buf; it starts at the previous row's end
	nodeID string
	raw    []byte // the WAL record, for events_rejected
}

type rejected struct {
	nodeID   string
	index    uint64
	raw      []byte
	stage    string
	sqlstate string
	err      string
}

func (b *batch) count() int { return len(b.rows) + len(b.rejects) }

func (b *batch) reset() {
	b.first, b.last, b.recordBytes = 0, 0, 0
	b.buf = b.buf[:0]
	clear(b.rows)
	b.rows = b.rows[:0]
	clear(b.rejects)
	b.rejects = b.rejects[:0]
	b.days = b.days[:0]
	b.opened, b.firstReceivedAt, b.lastReceivedAt = time.Time{}, time.Time{}, time.Time{}
}

// add decodes and encodes one record. A record that does not decode or encode
// becomes a rejection; the batch covers its index either way.
func (b *batch) add(dec *event.Decoder, rec wal.Record, defaultNodeID string) {
	if b.count() == 0 {
		b.first = rec.Index
	}
	b.last = rec.Index
	b.recordBytes += len(rec.Data)
	if err := dec.DecodeRecord(rec.Data, &b.ev); err != nil {
		b.rejects = append(b.rejects, rejected{nodeID: defaultNodeID, index: rec.Index, raw: rec.Data, stage: stageDecode, err: err.Error()})
		return
	}
	nodeID := b.ev.NodeID
	if nodeID == "" {
		nodeID = defaultNodeID
	}
	buf, err := appendRow(b.buf, rec.Index, nodeID, &b.ev)
	if err != nil {
		b.rejects = append(b.rejects, rejected{nodeID: nodeID, index: rec.Index, raw: rec.Data, stage: stageEncode, err: err.Error()})
		return
	}
	b.buf = buf
	b.rows = append(b.rows, rowRef{index: rec.Index, end: len(buf), nodeID: nodeID, raw: rec.Data})
	recv := b.ev.ReceivedAt
	if len(b.rows) == 1 {
		b.firstReceivedAt = recv
	}
	if recv.After(b.lastReceivedAt) {
		b.lastReceivedAt = recv
	}
	day := dayOf(recv)
	for _, d := range b.days {
		if d.Equal(day) {
			return
		}
	}
	b.days = append(b.days, day)
}

// tuples returns the COPY stream of rows[i:j].
func (b *batch) tuples(i, j int) io.Reader {
	start := 0
	if i > 0 {
		start = b.rows[i-1].end
	}
	return io.MultiReader(bytes.NewReader(copyHeader), bytes.NewReader(b.buf[start:b.rows[j-1].end]), bytes.NewReader(copyTrailer))
}

// readBatches decodes the WAL from index from into batches and publishes
// them on h, until ctx ends or reading fails. A batch is published when it
// holds BatchEvents records or BatchBytes bytes, and also whenever the reader
// has decoded everything the WAL holds, so that a free writer commits it at
// once. While the writer is busy, the reader takes its last partial batch
// back and keeps filling it, for at most FlushInterval after its first
// record, after which it starts another. With the handoff's limit of
// batches waiting, the reader waits and records stay in the WAL.
func (l *Loader) readBatches(ctx context.Context, from uint64, h *handoff) error {
	var dec event.Decoder
	next := from
	maxEvents, maxBytes := l.opts.BatchEvents, l.opts.BatchBytes
	open := func(b *batch) bool {
		return b.count() < maxEvents && b.recordBytes < maxBytes && time.Since(b.opened) < l.opts.FlushInterval
	}
	var cur *batch
	for {
		if cur == nil {
			cur = l.getBatch()
		}
		recs, err := l.src.Read(next, maxEvents-cur.count(), maxBytes-cur.recordBytes)
		if err != nil {
			return fmt.Errorf("read WAL from index %d: %w", next, err)
		}
		if len(recs) > 0 {
			if recs[0].Index != next {
				return fmt.Errorf("read WAL from index %d: got index %d", next, recs[0].Index)
			}
			if cur.count() == 0 {
				cur.opened = time.Now()
			}
			for _, r := range recs {
				cur.add(&dec, r, l.opts.NodeID)
			}
			next = recs[len(recs)-1].Index + 1
			if cur.count() >= maxEvents || cur.recordBytes >= maxBytes {
				if err := h.waitRoom(ctx); err != nil {
					return err
				}
				h.publish(cur)
				cur = nil
			}
			continue
		}
		if cur.count() > 0 {
			// Room is needed here too: while a slow or absent database
			// holds the writer, batches closed by FlushInterval would
			// otherwise pile up in memory instead of staying in the WAL.
			if err := h.waitRoom(ctx); err != nil {
				return err
			}
			h.publish(cur)
			cur = nil
		}
		if err := l.src.Wait(ctx, next); err != nil {
			return err
		}
		if b := h.reclaim(open); b != nil {
			if cur != nil {
				l.putBatch(cur) // empty: nothing was read since it was taken
			}
			cur = b
		}
	}
}

func (l *Loader) getBatch() *batch {
	select {
	case b := <-l.free:
		return b
	default:
		return &batch{}
	}
}

func (l *Loader) putBatch(b *batch) {
	if cap(b.buf) > 2*l.opts.MaxBatchesPerCommit*l.opts.BatchBytes {
		return // one huge batch should not pin its memory forever
	}
	b.reset()
	select {
	case l.free <- b:
	default:
	}
}

// merge appends the batches after the first to it (they follow each other
// in the WAL) and recycles them.
func (l *Loader) merge(bs []*batch) *batch {
	b := bs[0]
	for _, next := range bs[1:] {
		b.absorb(next)
		l.putBatch(next)
	}
	return b
}

// absorb appends next, which must follow b in the WAL.
func (b *batch) absorb(next *batch) {
	if next.count() == 0 {
		return
	}
	if b.count() == 0 {
		b.first = next.first
	}
	b.last = next.last
	b.recordBytes += next.recordBytes
	off := len(b.buf)
	b.buf = append(b.buf, next.buf...)
	if len(b.rows) == 0 {
		b.firstReceivedAt = next.firstReceivedAt
	}
	for _, r := range next.rows {
		r.end += off
		b.rows = append(b.rows, r)
	}
	b.rejects = append(b.rejects, next.rejects...)
	if next.lastReceivedAt.After(b.lastReceivedAt) {
		b.lastReceivedAt = next.lastReceivedAt
	}
outer:
	for _, d := range next.days {
		for _, have := range b.days {
			if have.Equal(d) {
				continue outer
			}
		}
		b.days = append(b.days, d)
	}
}
