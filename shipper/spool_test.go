package shipper

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/shipper/s3test"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClientAndBackupShareEncodedObjects(t *testing.T) {
	srv := s3test.Start(t, "client", "backup")
	l := openTestWAL(t, t.TempDir(), 64<<10)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 1500, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 40, 0, 0, time.UTC), want)
	stateDir := t.TempDir()
	client, backup := s3Dest(t, srv, "client", srv.SecretKey), s3Dest(t, srv, "backup", srv.SecretKey)
	// Both hourly on one clock: they plan the same units, and their
	// runners race for each object.
	clock := newFakeClock(time.Now())
	dest := func(kind string, st Store, formats ...export.Format) Destination {
		return Destination{Client: "acme", Kind: kind, Store: st, Prefix: "p", Formats: formats,
			Compression: export.CompressionZstd, Schedule: everySchedule{d: time.Hour}, ScheduleName: "hourly"}
	}
	ts := startShipper(t, Options{Log: l, StateDir: stateDir, Now: clock.now}, []Destination{
		dest(KindClient, client, export.FormatNDJSON, export.FormatCSV),
		dest(KindBackup, backup, export.FormatNDJSON, export.FormatParquet),
	})
	time.Sleep(100 * time.Millisecond) // both runners take their first tick time
	clock.set(clock.now().Add(time.Hour))
	for _, r := range ts.runners() {
		r.poke()
	}
	last := l.LastIndex()
	waitFor(t, "both destinations at the last index", 60*time.Second, func() bool {
		st := ts.Status().Destinations
		return st[0].Position == last && st[1].Position == last
	})
	objects := func(bucket string) map[string]string {
		keys, err := srv.Objects(bucket)
		if err != nil {
			t.Fatal(err)
		}
		st := map[string]Store{"client": client, "backup": backup}[bucket]
		out := map[string]string{}
		for _, k := range keys {
			res, err := hashObject(context.Background(), st, k)
			if err != nil {
				t.Fatal(err)
			}
			out[k] = res.SHA256
		}
		return out
	}
	c, b := objects("client"), objects("backup")
	var ndjson int
	for k, sum := range c {
		if strings.HasSuffix(k, ".ndjson.zst") {
			ndjson++
			if b[k] != sum {
				t.Errorf("%s: client SHA-256 %s, backup %q", k, sum, b[k])
			}
		}
	}
	if ndjson == 0 {
		t.Fatal("no ndjson objects")
	}
	// Each ndjson object was encoded once: the destination that came
	// second took the other's bytes.
	shared := testutil.ToFloat64(ts.metrics.shared.WithLabelValues("export:acme:client")) +
		testutil.ToFloat64(ts.metrics.shared.WithLabelValues("export:acme:backup"))
	if int(shared) != ndjson {
		t.Fatalf("%v objects shared, want the %d ndjson objects", shared, ndjson)
	}
	// And every event is in each destination, once per format.
	for _, bucket := range []string{"client", "backup"} {
		st := map[string]Store{"client": client, "backup": backup}[bucket]
		var keys []string
		for k := range objects(bucket) {
			keys = append(keys, k)
		}
		got, _ := readAll(t, st, keys)
		for id, w := range want {
			if len(got[id]) != 2 {
				t.Fatalf("%s: event %d exported %d times, want once per format", bucket, id, len(got[id]))
			}
			for _, g := range got[id] {
				checkEvent(t, export.FormatCSV, id, g, w) // the fields every format has
			}
		}
	}
	// Nothing is left in the spool once both have passed every unit.
	waitFor(t, "an empty spool", 10*time.Second, func() bool {
		left, _ := os.ReadDir(filepath.Join(stateDir, "spool"))
		return len(left) == 0
	})
}

func TestSpoolEntryOfAFailedLeaderIsNotUsed(t *testing.T) {
	sp, err := openSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e, lead := sp.claim("sig", 10, "a", []string{"b"})
	if !lead {
		t.Fatal("first claim does not lead")
	}
	f, lead := sp.claim("sig", 10, "b", []string{"a"})
	if lead || f != e {
		t.Fatal("second claim does not follow the first")
	}
	sp.finish(e, 0, "", os.ErrClosed)
	<-f.done
	if f.ok {
		t.Fatal("a failed leader's entry is usable")
	}
	if again, lead := sp.claim("sig", 10, "b", []string{"a"}); !lead || again == e {
		t.Fatal("after a failure, the next claim does not lead afresh")
	}
	if e, _ := sp.claim("alone", 10, "a", nil); e != nil {
		t.Fatal("an object nobody else wants is spooled")
	}
}

func TestSharedScanGivesEachDestinationWhatItsOwnScanWould(t *testing.T) {
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	appendEventsStep(t, l, 900, []string{"a.com", "b.org", "c.net"}, time.Date(2025, 6, 22, 10, 50, 0, 0, time.UTC), 2*time.Second, map[uint64]event.Event{})
	first, last := l.FirstIndex(), l.LastIndex()
	cache := newScanCache()
	for _, claimed := range [][]string{{"a.com"}, {"b.org", "c.net"}, {}, {"a.com", "b.org", "c.net"}} {
		claims := func(site string) bool { return slices.Contains(claimed, site) }
		want, wantOf, err := scanGroups(context.Background(), l, first, last, func(site string, _ time.Time) bool { return claims(site) })
		if err != nil {
			t.Fatal(err)
		}
		got, gotOf, err := cache.groups(context.Background(), l, first, last, claims)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || !slices.Equal(gotOf, wantOf) {
			t.Fatalf("claims %v: shared scan gives %d groups, own scan %d (or the record map differs)", claimed, len(got), len(want))
		}
	}
	if len(cache.scans) != 1 {
		t.Fatalf("%d scans cached for one unit", len(cache.scans))
	}
}
