package bench

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The generator's own cost per request: what a load figure must be read
// against (the generator shares the machine with the server).
func BenchmarkGeneratorNext(b *testing.B) {
	for _, k := range []Kind{KindJSON, KindBeacon, KindPixel, KindBatch} {
		b.Run(k.String(), func(b *testing.B) {
			m := Mix{}
			m[k] = 1
			tr, _ := NewTraffic("http://127.0.0.1:8000", TrafficOptions{RunID: "rbench", Mix: m})
			var seq atomic.Uint64
			g := tr.NewGenerator(0, &seq)
			var req fasthttp.Request
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var n int
			for i := 0; i < b.N; i++ {
				g.Next(&req, now)
				n += len(req.Body()) + len(req.URI().QueryString())
			}
			b.SetBytes(int64(n / max(b.N, 1)))
		})
	}
}

func BenchmarkAckParse(b *testing.B) {
	single := []byte(`{"status":"success","message":"Event received and stored","event_id":"0190c1c2-7a9b-7cde-8f00-0123456789ab","timestamp":"2025-06-22T12:00:00.123Z"}`)
	batch := []byte(`{"status":"success","results":[` +
		`{"index":0,"status":"success","event_id":"0190c1c2-7a9b-7cde-8f00-0123456789ab"},{"index":1,"status":"success","event_id":"0190c1c2-7a9b-7cde-8f00-0123456789ac"},` +
		`{"index":2,"status":"success","event_id":"0190c1c2-7a9b-7cde-8f00-0123456789ad"},{"index":3,"status":"error","message":"eventType is required","field":"eventType"}]}`)
	ct := []byte("application/json")
	b.Run("single", func(b *testing.B) {
		var p AckParser
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p.Parse(KindJSON, 200, ct, single, 1)
		}
	})
	b.Run("batch4", func(b *testing.B) {
		var p AckParser
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			p.Parse(KindBatch, 200, ct, batch, 4)
		}
	})
}

func BenchmarkRecordAdd(b *testing.B) {
	r, err := CreateRecord(b.TempDir()+"/rec", "rbench", "x")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	buf := r.Buffer()
	ids := [][]byte{[]byte("0190c1c2-7a9b-7cde-8f00-0123456789ab")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf.Add(KindJSON, uint64(i), ids, 1)
	}
	buf.Flush()
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := newHist()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = h.RecordValue(int64(i%100000) + 1)
	}
}

// End to end through loopback against the no-op handler in process: the
// generator and client overhead per request, all cores shared.
func BenchmarkClosedLoopAgainstNoop(b *testing.B) {
	srv, err := StartServer("127.0.0.1:0", NoopHandler())
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	b.ReportAllocs()
	b.ResetTimer()
	res, err := Run(context.Background(), LoadOptions{Target: srv.URL(), Connections: 16, MaxRequests: int64(b.N), Duration: time.Hour,
		Traffic: TrafficOptions{RunID: "rbench", Mix: Mix{KindJSON: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.RequestsPerSec, "req/s")
}
