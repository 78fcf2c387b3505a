package shipper

import (
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
)

func benchRecords(b *testing.B) [][]byte {
	l := openTestWAL(b, b.TempDir(), 16<<20)
	defer l.Close()
	m := map[uint64]event.Event{}
	appendEventsStep(b, l, 2000, []string{"shop.example.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), time.Millisecond, m)
	var out [][]byte
	for _, e := range m {
		out = append(out, event.AppendRecord(nil, &e))
	}
	return out
}

// BenchmarkDecodeRecord compares pass 2's decoder with event.Decoder.
func BenchmarkDecodeRecord(b *testing.B) {
	recs := benchRecords(b)
	var n int64
	for _, r := range recs {
		n += int64(len(r))
	}
	b.Run("event.Decoder", func(b *testing.B) {
		var d event.Decoder
		var e event.Event
		b.SetBytes(n)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, r := range recs {
				_ = d.DecodeRecord(r, &e)
			}
		}
	})
	b.Run("export.RecordDecoder", func(b *testing.B) {
		var d export.RecordDecoder
		var e event.Event
		b.SetBytes(n)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			for _, r := range recs {
				_ = d.Decode(r, &e)
			}
		}
	})
	b.Run("peek", func(b *testing.B) {
		var p recordPeeker
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			for _, r := range recs {
				p.peek(r)
			}
		}
	})
}
