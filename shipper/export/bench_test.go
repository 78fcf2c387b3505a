package export

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
)

// Every benchmark here works on the same realistic events and reports MB/s
// against the same number of bytes, their NDJSON text, so that figures
// compare directly: export ndjson+zstd against bare zstd of that text,
// export parquet against bare parquet-go writing the same rows.

const benchEvents = 20000

var benchData = sync.OnceValues(func() ([]Row, []byte) {
	rows := realisticEvents(benchEvents, 42)
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, FormatNDJSON, CompressionNone, Metadata{})
	for _, r := range rows {
		_ = w.Write(r)
	}
	_ = w.Close()
	return rows, buf.Bytes()
})

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func reportRatio(b *testing.B, in int, out int64) {
	b.ReportMetric(float64(in)/float64(out), "ratio")
}

// cpuTimer measures the process's CPU time (user+system) over the timed
// loop. On a machine shared with other work, wall-clock MB/s swings with
// the load; cpu-MB/s (bytes per CPU second) does not, and is what the
// ratios between encoders are computed from.
type cpuTimer struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{start: cpuNow()} }

func (c cpuTimer) report(b *testing.B, bytesPerOp int) {
	used := cpuNow() - c.start
	if used > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/used.Seconds()/1e6, "cpu-MB/s")
	}
}

func BenchmarkBareZstd(b *testing.B) {
	_, text := benchData()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	var out countingWriter
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		out.n = 0
		enc.Reset(&out)
		if _, err := enc.Write(text); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, len(text))
	reportRatio(b, len(text), out.n)
}

func BenchmarkBareGzip(b *testing.B) {
	_, text := benchData()
	enc, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	var out countingWriter
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		out.n = 0
		enc.Reset(&out)
		if _, err := enc.Write(text); err != nil {
			b.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, len(text))
	reportRatio(b, len(text), out.n)
}

// BenchmarkBareParquetGo is parquet-go alone: the rows already in its struct,
// the same schema and options as the export writer.
func BenchmarkBareParquetGo(b *testing.B) {
	rows, text := benchData()
	prows := make([]parquetRow, len(rows))
	for i, r := range rows {
		ev := r.Event
		prows[i] = parquetRow{
			ID: int64(r.ID), EventID: ev.EventID, EventType: ev.EventType, SessionID: ev.SessionID, VisitorID: ev.VisitorID,
			SiteID: ev.SiteID, Timestamp: ev.Timestamp.UnixMicro(), URL: ev.URL, Path: ev.Path, RawEventData: ev.Raw,
			ReceivedAt: ev.ReceivedAt.UnixMicro(), Referrer: ev.Referrer, IPAddress: ev.IPAddress, UserAgent: ev.UserAgent, NodeID: ev.NodeID,
		}
	}
	var out countingWriter
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		out.n = 0
		w := parquet.NewGenericWriter[parquetRow](&out, parquet.Compression(&parquet.Zstd), parquet.DataPageVersion(1))
		for i := 0; i < len(prows); i += parquetBatch {
			if _, err := w.Write(prows[i:min(i+parquetBatch, len(prows))]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b, len(text))
	reportRatio(b, len(text), out.n)
}

func BenchmarkExport(b *testing.B) {
	rows, text := benchData()
	meta := metaFor(rows)
	for _, fc := range formatCases() {
		b.Run(string(fc.f)+"/"+string(fc.c), func(b *testing.B) {
			var out countingWriter
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				out.n = 0
				w, err := NewWriter(&out, fc.f, fc.c, meta)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range rows {
					if err := w.Write(r); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, len(text))
			reportRatio(b, len(text), out.n)
		})
	}
}

// BenchmarkWriterLiveHeap measures what a Writer keeps alive while it
// streams a large object (250k events, about 270 MB of NDJSON): the live
// heap after a GC, sampled as rows go in, minus the live heap before. It
// must stay flat for json/ndjson/csv, and under the row-group bound for
// parquet, however many rows are written.
func BenchmarkWriterLiveHeap(b *testing.B) {
	rows, _ := benchData()
	const total = 250000
	for _, fc := range []struct {
		f Format
		c Compression
	}{{FormatNDJSON, CompressionZstd}, {FormatJSON, CompressionGzip}, {FormatCSV, CompressionZstd}, {FormatParquet, CompressionZstd}} {
		b.Run(string(fc.f)+"/"+string(fc.c), func(b *testing.B) {
			var peak uint64
			var ms runtime.MemStats
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				base := ms.HeapAlloc
				meta := metaFor(rows)
				meta.EventCount = total
				w, err := NewWriter(io.Discard, fc.f, fc.c, meta)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < total; i++ {
					r := rows[i%len(rows)]
					r.ID = uint64(i + 1)
					if err := w.Write(r); err != nil {
						b.Fatal(err)
					}
					if i%25000 == 24999 {
						runtime.GC()
						runtime.ReadMemStats(&ms)
						if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
							peak = ms.HeapAlloc - base
						}
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "live-MiB")
		})
	}
}

func BenchmarkAppendRaw(b *testing.B) {
	rows, _ := benchData()
	var total int64
	for _, r := range rows[:1000] {
		total += int64(len(r.Event.Raw))
	}
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(total)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		for _, r := range rows[:1000] {
			buf = appendRaw(buf[:0], r.Event.Raw)
		}
	}
	cpu.report(b, int(total))
}
