package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/valyala/fastjson"
)

// writeUnit writes one export object with the shipper's own encoder, for
// events first..last of run, under root.
func writeUnit(t *testing.T, root, prefix string, f export.Format, c export.Compression, run string, first, last uint64) string {
	t.Helper()
	hour := time.Date(2025, 6, 22, 11, 0, 0, 0, time.UTC)
	key := export.ObjectKey(prefix, "acme-com", hour, "node-1", first, last, f, c)
	var buf bytes.Buffer
	w, err := export.NewWriter(&buf, f, c, export.Metadata{ExportID: "exp_1", ExportTime: hour, EventCount: int(last - first + 1),
		Start: hour, End: hour.Add(time.Hour), NodeID: "node-1", FirstIndex: first, LastIndex: last})
	if err != nil {
		t.Fatal(err)
	}
	for i := first; i <= last; i++ {
		raw := fmt.Sprintf(`{"eventType":"pageview","siteId":"acme-com","bench_run":%q,"bench_id":%q,"title":"Caf\u00e9 \"x\", y"}`, run, BenchID(run, i))
		ev := &event.Event{EventID: fmt.Sprintf("ev-%d", i), ReceivedAt: hour, NodeID: "node-1", EventType: "pageview", SiteID: "acme-com",
			Timestamp: hour, URL: "https://acme.com/a,b", Path: "/a", Raw: []byte(raw)}
		if err := w.Write(export.Row{ID: i, Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

// The independent decoder reads what the shipper's encoder writes, in every
// format and compression, so `bench verify` does not depend on the code it
// checks.
func TestIndependentDecoderReadsEveryShipperFormat(t *testing.T) {
	combos := []struct {
		f export.Format
		c export.Compression
	}{{export.FormatJSON, export.CompressionGzip}, {export.FormatJSON, export.CompressionNone}, {export.FormatNDJSON, export.CompressionZstd},
		{export.FormatNDJSON, export.CompressionGzip}, {export.FormatCSV, export.CompressionGzip}, {export.FormatCSV, export.CompressionZstd},
		{export.FormatParquet, export.CompressionZstd}, {export.FormatParquet, export.CompressionSnappy}}
	for _, cb := range combos {
		t.Run(string(cb.f)+"+"+string(cb.c), func(t *testing.T) {
			root := t.TempDir()
			key := writeUnit(t, root, "analytics", cb.f, cb.c, "rx", 1, 50)
			data, err := os.ReadFile(filepath.Join(root, key))
			if err != nil {
				t.Fatal(err)
			}
			evs, err := DecodeExport(bytes.NewReader(data), key)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 50 {
				t.Fatalf("%d events", len(evs))
			}
			for i, ev := range evs {
				run, id := benchFields(new(fastjson.Parser), ev.Raw)
				if ev.EventID != fmt.Sprintf("ev-%d", i+1) || run != "rx" || id != BenchID("rx", uint64(i+1)) {
					t.Fatalf("event %d: %q raw %s", i, ev.EventID, ev.Raw)
				}
			}
			// Verification through the directory agrees.
			rec := &Record{Runs: []string{"rx"}}
			for i := uint64(1); i <= 50; i++ {
				rec.Events = append(rec.Events, RecordedEvent{BenchID: BenchID("rx", i), EventID: fmt.Sprintf("ev-%d", i), Kind: KindJSON})
			}
			src := &ExportSource{Lister: DirLister{Root: root}}
			rep, err := Verify(context.Background(), rec, src, VerifyOptions{})
			if err != nil || !rep.OK || rep.Matched != 50 || src.Objects != 1 {
				t.Fatalf("verify: %+v %v objects %d", rep, err, src.Objects)
			}
		})
	}
}

func TestExportVerificationSeesOverlappingUnitsAsDuplicates(t *testing.T) {
	root := t.TempDir()
	writeUnit(t, root, "analytics", export.FormatNDJSON, export.CompressionZstd, "rx", 1, 10)
	writeUnit(t, root, "analytics", export.FormatNDJSON, export.CompressionZstd, "rx", 8, 12) // a retry under another range
	if err := os.WriteFile(filepath.Join(root, "analytics", "README.txt"), []byte("not an export"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &Record{Runs: []string{"rx"}}
	for i := uint64(1); i <= 12; i++ {
		rec.Events = append(rec.Events, RecordedEvent{BenchID: BenchID("rx", i), EventID: fmt.Sprintf("ev-%d", i), Kind: KindJSON})
	}
	rep, err := Verify(context.Background(), rec, &ExportSource{Lister: DirLister{Root: root}}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Duplicated != 3 || rep.Missing != 0 {
		t.Fatalf("%+v", rep)
	}
	covered, objects, _, err := ExportedIndexes(context.Background(), DirLister{Root: root}, "node-1")
	if err != nil || covered != 12 || objects != 2 {
		t.Fatalf("covered %d objects %d err %v", covered, objects, err)
	}
}

func TestParseExportKey(t *testing.T) {
	k, ok := ParseExportKey("analytics/site_id=acme/dt=2025-06-22/hour=11/node-1-00000000000000000001-00000000000000000050.ndjson.zst")
	if !ok || k.Node != "node-1" || k.First != 1 || k.Last != 50 || k.Format != "ndjson" || k.Compress != "zst" {
		t.Fatalf("%+v %v", k, ok)
	}
	for _, key := range []string{"analytics/_manifests/node-1-00000000000000000001-00000000000000000050.json", "analytics/site_id=a/.tmp-node-1-00000000000000000001-00000000000000000050.json", "x.json", "node-1-1-2.json"} {
		if _, ok := ParseExportKey(key); ok {
			t.Errorf("%s parsed as a data object", key)
		}
	}
	if destinationRoot("client/analytics/site_id=a/dt=x/f") != "client/analytics" || destinationRoot("site_id=a/x") != "" {
		t.Fatal("destination root")
	}
}

// A local export directory holding a client's and the backup's copies is two
// destinations, each verified on its own: the copies are not duplicates.
func TestLocalExportDirSplitsIntoDestinations(t *testing.T) {
	root := t.TempDir()
	writeUnit(t, root, "client/analytics", export.FormatNDJSON, export.CompressionGzip, "rx", 1, 5)
	writeUnit(t, root, "backup/analytics", export.FormatNDJSON, export.CompressionGzip, "rx", 1, 5)
	ls, err := splitDestinations(context.Background(), DirLister{Root: root})
	if err != nil || len(ls) != 2 {
		t.Fatalf("%d destinations, %v", len(ls), err)
	}
	rec := &Record{Runs: []string{"rx"}}
	for i := uint64(1); i <= 5; i++ {
		rec.Events = append(rec.Events, RecordedEvent{BenchID: BenchID("rx", i), EventID: fmt.Sprintf("ev-%d", i), Kind: KindJSON})
	}
	for _, l := range ls {
		rep, err := Verify(context.Background(), rec, &ExportSource{Lister: l}, VerifyOptions{})
		if err != nil || !rep.OK || rep.Matched != 5 {
			t.Fatalf("%s: %+v %v", l.Name(), rep, err)
		}
	}
	whole, _ := Verify(context.Background(), rec, &ExportSource{Lister: DirLister{Root: root}}, VerifyOptions{})
	if whole.Duplicated != 5 {
		t.Fatalf("the directory as one destination should show every event twice: %+v", whole)
	}
}
