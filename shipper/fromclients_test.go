package shipper

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/secrets"
	"github.com/evothesis/collector/shipper/clients"
	"github.com/evothesis/collector/shipper/s3test"
)

// TestClientsFileDestinationsExportEndToEnd: a clients file with encrypted
// credentials, one client on S3, the backup on S3, a site nobody claims.
func TestClientsFileDestinationsExportEndToEnd(t *testing.T) {
	srv := s3test.Start(t, "acme-bucket", "backup")
	kr, err := secrets.NewKeyring(make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	encAccess, _ := kr.Encrypt(srv.AccessKey)
	encSecret, _ := kr.Encrypt(srv.SecretKey)
	yaml := fmt.Sprintf(`version: 1
defaults:
  endpoint: %[1]s
  force_path_style: true
backup:
  bucket: backup
  prefix: raw
  endpoint: %[1]s
  force_path_style: true
  credentials: {access_key: "%[2]s", secret_key: "%[3]s"}
  formats: [ndjson]
  compression: zstd
clients:
  - name: acme
    site_ids: [a.com]
    bucket: acme-bucket
    prefix: ev
    credentials: {access_key: "%[2]s", secret_key: "%[3]s"}
    formats: [json, parquet]
    schedule: "realtime:1"
`, srv.Endpoint, encAccess, encSecret)
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"EXPORT_DIR": t.TempDir(), "NODE_ID": "node-1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := clients.Parse([]byte(yaml), "test.yaml", cfg, kr)
	if err != nil {
		t.Fatal(err)
	}
	dests, err := Destinations(context.Background(), cc, StoreOptions{CAPEM: srv.CAPEM, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dests {
		names = append(names, d.Name())
	}
	if got := strings.Join(names, ","); got != "export:acme:client,export:acme:backup,export:_unclaimed:backup" {
		t.Fatalf("destinations %s", got)
	}
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 400, []string{"a.com", "stray.net"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	for i := range dests { // not a second per tick in a test

		dests[i].Schedule = realtimeSchedule{interval: 10 * time.Millisecond}
	}
	ts := startShipper(t, Options{Log: l, StateDir: t.TempDir(), ClientsConfig: cc.Redacted()}, dests)
	last := l.LastIndex()
	waitFor(t, "every destination at the last index", 60*time.Second, func() bool {
		for _, d := range ts.Status().Destinations {
			if d.Position != last {
				return false
			}
		}
		return true
	})
	acme, stray := map[uint64]event.Event{}, map[uint64]event.Event{}
	for id, e := range want {
		if e.SiteID == "a.com" {
			acme[id] = e
		} else {
			stray[id] = e
		}
	}
	exactlyOnce(t, srv, s3Dest(t, srv, "acme-bucket", srv.SecretKey), "acme-bucket", "ev", 2, acme)
	exactlyOnce(t, srv, s3Dest(t, srv, "backup", srv.SecretKey), "backup", "raw/client=acme", 1, acme)
	exactlyOnce(t, srv, s3Dest(t, srv, "backup", srv.SecretKey), "backup", "raw/client=_unclaimed", 1, stray)
	conf, _ := json.Marshal(ts.Config())
	status, _ := json.Marshal(ts.Status())
	for _, s := range []string{srv.SecretKey, encSecret} {
		if strings.Contains(string(conf), s) || strings.Contains(string(status), s) {
			t.Fatalf("a secret shows in config or status")
		}
	}
	if !strings.Contains(string(conf), "acme-bucket") {
		t.Fatalf("config lacks the destination: %s", conf)
	}
}
