package bench

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzReadRecord(f *testing.F) {
	f.Add(recordMagic + " run=r1 target=x\n1\tid-1\tjson\n2\t-\tpixel\n")
	f.Add(recordMagic + " run=a\n" + recordMagic + " run=b\n3\tx\tbatch\n")
	f.Add("1\t2\t3\n")
	f.Fuzz(func(t *testing.T, in string) {
		rec, err := ReadRecord(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(rec.Runs) == 0 {
			t.Fatal("a record without a run parsed")
		}
		for _, ev := range rec.Events {
			if ev.Kind >= numKinds || (ev.Kind != KindPixel && ev.EventID == "") || ev.BenchID == "" {
				t.Fatalf("bad event %+v", ev)
			}
		}
	})
}

// Arbitrary bytes under any export name are an error or events, never a panic.
func FuzzDecodeExport(f *testing.F) {
	f.Add([]byte(`{"export_metadata":{"event_count":1},"events":[{"event_id":"a","raw_event_data":{"bench_id":"r-1"}}]}`), uint8(0))
	f.Add([]byte("{\"event_id\":\"a\",\"raw_event_data\":\"{}\"}\n"), uint8(1))
	f.Add([]byte("id,event_id,raw_event_data\n1,a,\"{}\"\n"), uint8(2))
	f.Add([]byte("PAR1\x00\x00PAR1"), uint8(3))
	names := []string{"n-00000000000000000001-00000000000000000002.json", "n-00000000000000000001-00000000000000000002.ndjson",
		"n-00000000000000000001-00000000000000000002.csv", "n-00000000000000000001-00000000000000000002.parquet",
		"n-00000000000000000001-00000000000000000002.ndjson.gz", "n-00000000000000000001-00000000000000000002.csv.zst"}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		_, _ = DecodeExport(bytes.NewReader(data), names[int(which)%len(names)])
	})
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("collector_loader_lag_events 42\nx{a=\"b\"} 1 2\n# HELP y\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMetrics(strings.NewReader(in))
		if err != nil {
			return
		}
		_, _ = m.Sum("collector_loader_lag_events")
		_ = m.ByLabel("x", "a")
	})
}
