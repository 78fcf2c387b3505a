package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// ReplayOptions select what Replay re-loads.
type ReplayOptions struct {
	Dir  string // WAL directory (a live one, or a copy from another node)
	From uint64 // first index; below the directory's first index starts there
	To   uint64 // last index, inclusive; 0 = to the end
	// NodeID is the node id for records that carry none (and for
	// events_rejected rows of records that do not decode). Records that
	// carry one load under theirs, so a WAL copied from another node loads
	// under that node's id.
	NodeID      string
	BatchEvents int                // rows per transaction: 5000
	Progress    func(ReplayResult) // called after each committed batch; may be nil
}

// ReplayResult counts what Replay did. Every scanned record is exactly one of
// Loaded, Skipped or Rejected.
type ReplayResult struct {
	First, Last uint64 // indexes scanned (0, 0 when none)
	Scanned     int64
	Loaded      int64 // inserted into events
	Skipped     int64 // already in events
	Rejected    int64 // refused (decode, encode or database); in events_rejected
	NewRejected int64 // of Rejected, not in events_rejected before
}

var errStopScan = errors.New("stop scan")

// Replay re-loads WAL records into events idempotently: through a staging
// table and INSERT ... ON CONFLICT DO NOTHING on the events key, in
// transactions of BatchEvents records, so running it twice loads nothing the
// second time, and running it over a range the loader has loaded (or will
// load) is harmless. It does not move loader_offsets. Records PostgreSQL
// refuses go to events_rejected as in the loader.
func Replay(ctx context.Context, pool *pgxpool.Pool, opts ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	if opts.NodeID == "" {
		return res, errors.New("replay: node id is required")
	}
	if opts.To != 0 && opts.To < opts.From {
		return res, fmt.Errorf("replay: --to %d is before --from %d", opts.To, opts.From)
	}
	if opts.BatchEvents <= 0 {
		opts.BatchEvents = 5000
	}
	parts := newPartitions(pool)
	var dec event.Decoder
	b := &batch{}
	flush := func() error {
		if b.count() == 0 {
			return nil
		}
		if err := parts.ensure(ctx, b.days); err != nil {
			return err
		}
		var br batchResult
		var newRejected int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			br = batchResult{}
			if err := loadRows(ctx, tx, b, true, &br); err != nil {
				return err
			}
			br.rejected = append(append(br.rejected[:0:0], b.rejects...), br.rejected...)
			var err error
			newRejected, err = insertRejectedCounting(ctx, tx, br.rejected)
			return err
		})
		if err != nil {
			return fmt.Errorf("replay batch %d-%d: %w", b.first, b.last, err)
		}
		if res.First == 0 {
			res.First = b.first
		}
		res.Last = b.last
		res.Scanned += int64(b.count())
		res.Loaded += br.loaded
		res.Skipped += br.duplicate
		res.Rejected += int64(len(br.rejected))
		res.NewRejected += newRejected
		b.reset()
		if opts.Progress != nil {
			opts.Progress(res)
		}
		return nil
	}
	err := wal.Scan(ctx, opts.Dir, opts.From, func(r wal.Record) error {
		if opts.To != 0 && r.Index > opts.To {
			return errStopScan
		}
		if b.count() > 0 && r.Index != b.last+1 {
			return fmt.Errorf("replay: WAL index %d follows %d", r.Index, b.last)
		}
		// Scan may reuse its buffer; the batch keeps the record for
		// events_rejected.
		r.Data = bytes.Clone(r.Data)
		b.add(&dec, r, opts.NodeID)
		if b.count() >= opts.BatchEvents {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return res, fmt.Errorf("replay %s from %d: %w", opts.Dir, opts.From, err)
	}
	if err := flush(); err != nil {
		return res, err
	}
	return res, nil
}

// insertRejectedCounting is insertRejected that also returns how many rows
// were new.
func insertRejectedCounting(ctx context.Context, tx pgx.Tx, rs []rejected) (int64, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	var qb pgx.Batch
	for _, r := range rs {
		queueRejected(&qb, r)
	}
	results := tx.SendBatch(ctx, &qb)
	var n int64
	for range rs {
		tag, err := results.Exec()
		if err != nil {
			results.Close()
			return n, fmt.Errorf("insert into events_rejected: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, results.Close()
}
