package shipper

import (
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsCountWhatWasShippedAndTheLag(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	appendEvents(t, l, 250, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), map[uint64]event.Event{})
	reg := prometheus.NewRegistry()
	fs, _ := NewFileStore(t.TempDir())
	clock := newFakeClock(time.Now())
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), Registerer: reg, Now: clock.now}, []Destination{{
		Client: "acme", Kind: KindClient, Store: fs, Formats: []export.Format{export.FormatNDJSON, export.FormatCSV},
		Compression: export.CompressionGzip, Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly",
	}})
	time.Sleep(100 * time.Millisecond)
	ts.refreshLag()
	const dest = "export:acme:client"
	if got := testutil.ToFloat64(ts.metrics.lagEvents.WithLabelValues(dest)); got != 250 {
		t.Fatalf("lag before the tick: %v events, want 250", got)
	}
	if got := testutil.ToFloat64(ts.metrics.lagSeconds.WithLabelValues(dest)); got <= 0 {
		t.Fatalf("lag seconds %v, want > 0", got)
	}
	clock.set(clock.now().Add(time.Hour))
	ts.runners()[0].poke()
	waitFor(t, "export", 30*time.Second, func() bool { return ts.Status().Destinations[0].Position == 250 })
	ts.refreshLag()
	if got := testutil.ToFloat64(ts.metrics.events.WithLabelValues(dest)); got != 500 {
		t.Fatalf("events_total %v, want 500 (250 per format)", got)
	}
	if got := testutil.ToFloat64(ts.metrics.objects.WithLabelValues(dest)); got < 2 {
		t.Fatalf("objects_total %v", got)
	}
	if got := testutil.ToFloat64(ts.metrics.lagEvents.WithLabelValues(dest)); got != 0 {
		t.Fatalf("lag after export %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "collector_export_upload_duration_seconds"); err != nil || n == 0 {
		t.Fatalf("upload duration histogram: %d %v", n, err)
	}
}
