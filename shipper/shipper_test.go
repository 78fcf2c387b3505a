package shipper

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/shipper/s3test"
)

func TestRoundTripEveryFormatAndCompression(t *testing.T) {
	srv := s3test.Start(t, "client")
	cases := []struct {
		f export.Format
		c export.Compression
	}{
		{export.FormatJSON, export.CompressionGzip}, {export.FormatJSON, export.CompressionZstd}, {export.FormatJSON, export.CompressionNone},
		{export.FormatNDJSON, export.CompressionGzip}, {export.FormatNDJSON, export.CompressionZstd}, {export.FormatNDJSON, export.CompressionNone},
		{export.FormatCSV, export.CompressionGzip}, {export.FormatCSV, export.CompressionZstd}, {export.FormatCSV, export.CompressionNone},
		{export.FormatParquet, export.CompressionZstd}, {export.FormatParquet, export.CompressionSnappy},
	}
	for _, tc := range cases {
		t.Run(string(tc.f)+"/"+string(tc.c), func(t *testing.T) {
			l := openTestWAL(t, t.TempDir(), 64<<10)
			defer l.Close()
			want := map[uint64]event.Event{}
			// Two hours, three sites: several (site, hour) objects per unit, several units.
			appendEvents(t, l, 1200, []string{"a.com", "b.org", "weird/site id"}, time.Date(2025, 6, 22, 10, 40, 0, 0, time.UTC), want)
			prefix := "t/" + string(tc.f) + "-" + string(tc.c)
			store := s3Dest(t, srv, "client", srv.SecretKey)
			ts := startShipper(t, Options{Log: l, StateDir: t.TempDir()}, []Destination{{
				Client: "acme", Kind: KindClient, Store: store, Prefix: prefix, Formats: []export.Format{tc.f},
				Compression: tc.c, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
			}})
			last := l.LastIndex()
			waitFor(t, "position at last index", 60*time.Second, func() bool {
				return ts.Status().Destinations[0].Position == last
			})
			keys, err := srv.Objects("client")
			if err != nil {
				t.Fatal(err)
			}
			var mine []string
			for _, k := range keys {
				if strings.HasPrefix(k, prefix+"/") {
					mine = append(mine, k)
				}
			}
			got, manifests := readAll(t, store, mine)
			t.Logf("%d keys, %d manifests, first key %s", len(mine), len(manifests), mine[0])
			if len(got) != len(want) {
				t.Fatalf("exported %d distinct events, appended %d", len(got), len(want))
			}
			for id, w := range want {
				g := got[id]
				if len(g) != 1 {
					t.Fatalf("event %d exported %d times", id, len(g))
				}
				checkEvent(t, tc.f, id, g[0], w)
			}
			// Manifests list every object with the size and hash actually stored.
			listed := 0
			for _, m := range manifests {
				for _, e := range m.Objects {
					res, err := hashObject(context.Background(), store, e.Key)
					if err != nil || res.Bytes != e.Bytes || res.SHA256 != e.SHA256 {
						t.Fatalf("manifest entry %s: stored %+v (%v), manifest says %d bytes %s", e.Key, res, err, e.Bytes, e.SHA256)
					}
					listed++
				}
			}
			if listed != len(mine)-len(manifests) {
				t.Fatalf("manifests list %d objects, %d stored", listed, len(mine)-len(manifests))
			}
		})
	}
}
