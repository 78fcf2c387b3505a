package shipper

import (
	"context"

	"github.com/evothesis/collector/wal"
)

// Pacer slows background work down while the foreground (ingest) needs
// the CPU (*elastic.Limiter implements it). Wait blocks until n more units
// of work may go on, or ctx ends (it then returns ctx's error).
type Pacer interface {
	Wait(ctx context.Context, n int) error
}

// paceChunk is how many records an export pass reads per Wait.
const paceChunk = 256

// pacedReader paces the export passes' reads: pass 1 and pass 2 pay for
// each paceChunk records of their ScanRange before reading them. The
// transcoding, compression, spool and upload of those records are
// downstream of the read, so they follow its pace.
type pacedReader struct {
	recordReader
	pacer Pacer
}

// paced is log paced by p, or log itself without a pacer.
func paced(log recordReader, p Pacer) recordReader {
	if p == nil {
		return log
	}
	return pacedReader{recordReader: log, pacer: p}
}

func (r pacedReader) ScanRange(ctx context.Context, from, to uint64, fn func(wal.Record) error) error {
	paid := from // the first index not paid for
	return r.recordReader.ScanRange(ctx, from, to, func(rec wal.Record) error {
		if rec.Index >= paid {
			n := min(paceChunk, to-rec.Index+1)
			if err := r.pacer.Wait(ctx, int(n)); err != nil {
				return err
			}
			paid = rec.Index + n
		}
		return fn(rec)
	})
}
