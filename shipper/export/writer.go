package export

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Row is one event to export. ID is its WAL index, the seed's "id".
type Row struct {
	ID    uint64
	Event *event.Event
}

// Metadata describes an export object. ExportID, ExportTime, EventCount,
// Start and End form the json envelope's export_metadata, written before the
// events: a json object needs EventCount up front, and Close fails when it
// does not match the rows written. Every field goes into a parquet file's
// key/value metadata (event_count there is the number of rows written).
// ndjson and csv objects carry no metadata.
type Metadata struct {
	ExportID   string
	ExportTime time.Time
	EventCount int
	Start, End time.Time // time_range: the receive-time window the object covers
	Client     string
	NodeID     string
	FirstIndex uint64
	LastIndex  uint64
}

// ErrCountMismatch is returned (wrapped) when a json object receives a
// different number of rows than its Metadata.EventCount announced.
var ErrCountMismatch = errors.New("rows written differ from export_metadata.event_count")

// DefaultParquetRowGroupBytes is the default bound on the uncompressed string
// and number data of one parquet row group, and so on a parquet Writer's
// memory (the encoded group is buffered until it is complete).
const DefaultParquetRowGroupBytes = 32 << 20

// Option adjusts a Writer.
type Option func(*options)

type options struct {
	rowGroupBytes int64
	small         bool
}

// SmallObject says the object is small (the shipper's objects of groups
// under 256 KiB of records, which upload several to a slot): zstd then uses
// a 256 KiB window and its lower-memory mode, about 1.8 MiB an encoder
// instead of 3.7. The output is still one standard zstd frame.
func SmallObject() Option { return func(o *options) { o.small = true } }

// WithParquetRowGroupBytes bounds the data of one parquet row group (and so a
// parquet Writer's memory); n <= 0 keeps the default.
func WithParquetRowGroupBytes(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.rowGroupBytes = n
		}
	}
}

// Writer streams rows into one export object. It is not safe for concurrent
// use. After an error every later call returns that error.
//
// Memory does not grow with the object (BenchmarkWriterLiveHeap measures
// it, 250k events): json, ndjson and csv keep a 64 KiB buffer plus their
// compressor's state (gzip about 1 MiB, zstd about 4 MiB with its 1 MiB
// window; both pooled across writers); parquet keeps one row group, about
// 1.5 times WithParquetRowGroupBytes (about 50 MiB at the 32 MiB default,
// which holds a whole default 8 MiB WAL segment in one group).
type Writer struct {
	format  Format
	meta    Metadata
	comp    compressor // nil without stream compression
	enc     encoder
	rows    int
	err     error
	closed  bool
	row     Row             // the row being written, here so it does not escape per call
	prep    *RecordPreparer // WriteRecord's
	ev      *event.Event
	scratch []byte
}

type encoder interface {
	write(r *Row) error
	close(rows int) error // flush everything into the underlying writer
}

type compressor interface {
	io.Writer
	Close() error
	release() // return to its pool; the compressor is not used afterwards
}

// NewWriter starts an object in format f with stream compression c (ignored
// by parquet, which compresses pages: zstd, or snappy with
// CompressionSnappy) on w. Nothing is written to w until the first buffer
// fills or Close.
func NewWriter(w io.Writer, f Format, c Compression, meta Metadata, opts ...Option) (*Writer, error) {
	if err := checkFormat(f, c); err != nil {
		return nil, err
	}
	o := options{rowGroupBytes: DefaultParquetRowGroupBytes}
	for _, opt := range opts {
		opt(&o)
	}
	wr := &Writer{format: f, meta: meta}
	out := w
	switch streamCompression(f, c) {
	case CompressionGzip:
		wr.comp = getGzip(w)
		out = wr.comp
	case CompressionZstd:
		z, err := getZstd(w, o.small)
		if err != nil {
			return nil, fmt.Errorf("start zstd stream: %w", err)
		}
		wr.comp = z
		out = z
	}
	switch f {
	case FormatJSON:
		wr.enc = newJSONEncoder(out, true, &meta)
	case FormatNDJSON:
		wr.enc = newJSONEncoder(out, false, &meta)
	case FormatCSV:
		wr.enc = newCSVEncoder(out)
	case FormatParquet:
		wr.enc = newParquetEncoder(out, c, &meta, o.rowGroupBytes)
	}
	return wr, nil
}

// Write adds one row. The event is not retained after Write returns.
func (w *Writer) Write(r Row) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("export writer: write after close")
	}
	if r.Event == nil {
		return fmt.Errorf("export row %d: nil event", r.ID)
	}
	if w.format == FormatJSON && w.rows >= w.meta.EventCount {
		return w.fail(fmt.Errorf("export %s: row %d: %w (%d announced)", w.meta.ExportID, r.ID, ErrCountMismatch, w.meta.EventCount))
	}
	w.row = r
	err := w.enc.write(&w.row)
	w.row = Row{}
	if err != nil {
		return w.fail(fmt.Errorf("export %s: write row %d: %w", w.meta.ExportID, r.ID, err))
	}
	w.rows++
	return nil
}

// WriteRecord adds the event of a WAL record, data as ingest appended it
// and id its index: the same bytes as Write of the decoded event
// (RecordDecoder). json and ndjson objects are written straight from the
// record's bytes when the record has the shape event.AppendRecord writes,
// skipping the decode. data is not retained after WriteRecord returns.
func (w *Writer) WriteRecord(id uint64, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.prep == nil {
		w.prep, w.ev = new(RecordPreparer), new(event.Event)
	}
	transcode := w.TranscodesRecords()
	var p Prepared
	var err error
	w.scratch, p, err = w.prep.Prepare(w.scratch[:0], id, data, transcode, !transcode, w.ev)
	if err != nil {
		return w.fail(fmt.Errorf("export %s: %w", w.meta.ExportID, err))
	}
	return w.WritePrepared(&p)
}

// WritePrepared adds a prepared record: the same bytes as Write of its
// decoded event. json and ndjson copy the event object the preparer wrote
// when there is one; the other formats need p.Event (Prepare with events).
func (w *Writer) WritePrepared(p *Prepared) error {
	if p.obj == nil || !w.TranscodesRecords() {
		if p.Event == nil {
			return w.fail(fmt.Errorf("export %s: row %d: prepared without its event, which %s needs", w.meta.ExportID, p.ID, w.format))
		}
		return w.Write(Row{ID: p.ID, Event: p.Event})
	}
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("export writer: write after close")
	}
	if w.format == FormatJSON && w.rows >= w.meta.EventCount {
		return w.fail(fmt.Errorf("export %s: row %d: %w (%d announced)", w.meta.ExportID, p.ID, ErrCountMismatch, w.meta.EventCount))
	}
	if err := w.enc.(*jsonEncoder).writeObject(p.obj); err != nil {
		return w.fail(fmt.Errorf("export %s: write row %d: %w", w.meta.ExportID, p.ID, err))
	}
	w.rows++
	return nil
}

// TranscodesRecords reports whether WriteRecord writes this format straight
// from a record's bytes (json, ndjson). For the others it decodes the
// record first, so a caller that already holds the decoded event should
// call Write.
func (w *Writer) TranscodesRecords() bool {
	_, ok := w.enc.(*jsonEncoder)
	return ok
}

// Rows is the number of rows written so far.
func (w *Writer) Rows() int { return w.rows }

// Close finishes the object: it flushes the encoder, writes the json
// envelope's end or the parquet footer and closes the stream compressor. It
// does not close the underlying io.Writer. Calling Close again returns the
// first result.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.releaseCompressor()
		return w.err
	}
	if w.format == FormatJSON && w.rows != w.meta.EventCount {
		w.releaseCompressor()
		w.err = fmt.Errorf("export %s: %w: wrote %d, announced %d", w.meta.ExportID, ErrCountMismatch, w.rows, w.meta.EventCount)
		return w.err
	}
	if err := w.enc.close(w.rows); err != nil {
		w.releaseCompressor()
		w.err = fmt.Errorf("export %s: finish %s: %w", w.meta.ExportID, w.format, err)
		return w.err
	}
	if w.comp != nil {
		err := w.comp.Close()
		w.releaseCompressor()
		if err != nil {
			w.err = fmt.Errorf("export %s: finish compression: %w", w.meta.ExportID, err)
			return w.err
		}
	}
	return nil
}

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

func (w *Writer) releaseCompressor() {
	if w.comp != nil {
		w.comp.release()
		w.comp = nil
	}
}

// zstdWindow is the zstd window of export objects, smallZstdWindow of small
// ones (SmallObject).
const (
	zstdWindow      = 1 << 20
	smallZstdWindow = 256 << 10
)

// Compressors are pooled: a zstd encoder allocates several MiB of tables and
// a shipper writes many objects.
var (
	gzipPool      sync.Pool
	zstdPool      sync.Pool
	smallZstdPool sync.Pool
)

type pooledGzip struct{ *gzip.Writer }

func (g pooledGzip) release() {
	g.Writer.Reset(io.Discard)
	gzipPool.Put(g.Writer)
}

func getGzip(w io.Writer) compressor {
	if g, ok := gzipPool.Get().(*gzip.Writer); ok {
		g.Reset(w)
		return pooledGzip{g}
	}
	g, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression) // cannot fail for a valid level
	return pooledGzip{g}
}

type pooledZstd struct {
	*zstd.Encoder
	pool *sync.Pool
}

func (z pooledZstd) release() {
	z.Encoder.Reset(io.Discard)
	z.pool.Put(z.Encoder)
}

func getZstd(w io.Writer, small bool) (compressor, error) {
	pool := &zstdPool
	if small {
		pool = &smallZstdPool
	}
	if z, ok := pool.Get().(*zstd.Encoder); ok {
		z.Reset(w)
		return pooledZstd{z, pool}, nil
	}
	if small {
		z, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true),
			zstd.WithWindowSize(smallZstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, err
		}
		return pooledZstd{z, pool}, nil
	}
	// One goroutine per stream: the shipper bounds concurrent uploads, and
	// must never take the cores ingest needs. A 1 MiB window instead of the
	// default level's 8 MiB: events repeat at short distances, so the ratio
	// is the same (slightly better on realistic NDJSON), and an encoder
	// holds about 4 MiB instead of 18 (each new one zeroes all of it).
	z, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithWindowSize(zstdWindow))
	if err != nil {
		return nil, err
	}
	return pooledZstd{z, pool}, nil
}
