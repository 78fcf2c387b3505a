package shipper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/shipper/s3test"
	"github.com/evothesis/collector/wal"
)

// exactlyOnce checks that the scheduled objects under prefix hold every
// appended event exactly once (per format).
func exactlyOnce(t *testing.T, srv *s3test.Server, st Store, bucket, prefix string, formats int, want map[uint64]event.Event) {
	t.Helper()
	keys, err := srv.Objects(bucket)
	if err != nil {
		t.Fatal(err)
	}
	var mine []string
	for _, k := range keys {
		if strings.HasPrefix(k, prefix+"/") && !strings.Contains(k, "/"+ManualPrefix+"/") {
			mine = append(mine, k)
		}
	}
	got, _ := readAll(t, st, mine)
	missing, dup := 0, 0
	for id := range want {
		switch n := len(got[id]); {
		case n < formats:
			missing++
		case n > formats:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(got) != len(want) {
		t.Fatalf("%s: %d events missing, %d duplicated, %d distinct exported of %d", bucket, missing, dup, len(got), len(want))
	}
}

func TestExactlyOnceAcrossAbortsOutageAndRestarts(t *testing.T) {
	srv := s3test.Start(t, "client", "backup")
	walDir, stateDir := t.TempDir(), t.TempDir()
	l := openTestWAL(t, walDir, 6<<20)
	want := map[uint64]event.Event{}
	appendEvents(t, l, 30000, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	dests := func() []Destination {
		return []Destination{
			{Client: "acme", Kind: KindClient, Store: s3Dest(t, srv, "client", srv.SecretKey), Prefix: "x",
				Formats: []export.Format{export.FormatNDJSON, export.FormatJSON}, Compression: export.CompressionNone,
				Schedule: realtimeSchedule{interval: 5 * time.Millisecond, events: 7000}, ScheduleName: "realtime"},
			{Client: "acme", Kind: KindBackup, Store: s3Dest(t, srv, "backup", srv.SecretKey), Prefix: "backup/acme",
				Formats: []export.Format{export.FormatParquet}, Compression: export.CompressionZstd,
				Schedule: everySchedule{d: 10 * time.Millisecond}, ScheduleName: "every 10ms"},
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// Aborts at random instants, each followed by a restart on the same
	// WAL and state directories, more events arriving meanwhile.
	for i := 0; i < 6; i++ {
		ts := startShipper(t, Options{Log: l, StateDir: stateDir, Concurrency: 2}, dests())
		time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		if i == 2 {
			// The store goes away mid-export and comes back.
			_ = srv.Stop()
			time.Sleep(300 * time.Millisecond)
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		ts.stop()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openTestWAL(t, walDir, 6<<20)
		appendEvents(t, l, 1000, []string{"a.com", "c.net"}, time.Date(2025, 6, 22, 14, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour), want)
	}
	defer l.Close()
	ts := startShipper(t, Options{Log: l, StateDir: stateDir, Concurrency: 2}, dests())
	last := l.LastIndex()
	waitFor(t, "both destinations at the last index", 120*time.Second, func() bool {
		for _, d := range ts.Status().Destinations {
			if d.Position != last {
				return false
			}
		}
		return true
	})
	ts.stop()
	exactlyOnce(t, srv, s3Dest(t, srv, "client", srv.SecretKey), "client", "x", 2, want)
	exactlyOnce(t, srv, s3Dest(t, srv, "backup", srv.SecretKey), "backup", "backup/acme", 1, want)
	// The WAL freed what both destinations exported.
	if first := l.FirstIndex(); first == 1 {
		t.Fatalf("no segment freed after every destination passed it (first index %d)", first)
	}
}

// TestHelperShipperProcess is the child of TestExactlyOnceAcrossSIGKILL.
func TestHelperShipperProcess(t *testing.T) {
	if os.Getenv("SHIPPER_HELPER") != "1" {
		t.Skip("helper process")
	}
	ca, _ := os.ReadFile(os.Getenv("SHIPPER_CA"))
	l, err := wal.Open(context.Background(), wal.Options{Dir: os.Getenv("SHIPPER_WAL"), Sync: wal.SyncNever, SegmentBytes: 6 << 20, MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewS3Store(context.Background(), S3Config{Bucket: "client", Endpoint: os.Getenv("SHIPPER_ENDPOINT"), UsePathStyle: true,
		AccessKey: os.Getenv("SHIPPER_ACCESS"), SecretKey: os.Getenv("SHIPPER_SECRET"), CAPEM: ca, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Log: l, NodeID: "node-1", StateDir: os.Getenv("SHIPPER_STATE"), RetryBase: 20 * time.Millisecond,
		RetryMax: 200 * time.Millisecond, PollInterval: 10 * time.Millisecond}, []Destination{{
		Client: "acme", Kind: KindClient, Store: st, Prefix: "k", Formats: []export.Format{export.FormatNDJSON, export.FormatCSV},
		Compression: export.CompressionNone, Schedule: realtimeSchedule{interval: 5 * time.Millisecond, events: 9000}, ScheduleName: "realtime",
	}})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Run(context.Background()) // until SIGKILL
}

func TestExactlyOnceAcrossSIGKILL(t *testing.T) {
	srv := s3test.Start(t, "client")
	walDir, stateDir := t.TempDir(), t.TempDir()
	want := map[uint64]event.Event{}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperShipperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SHIPPER_HELPER=1", "SHIPPER_WAL="+walDir, "SHIPPER_STATE="+stateDir,
			"SHIPPER_ENDPOINT="+srv.Endpoint, "SHIPPER_CA="+srv.CAFile, "SHIPPER_ACCESS="+srv.AccessKey, "SHIPPER_SECRET="+srv.SecretKey)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	position := func() uint64 {
		cs, err := wal.ReadConsumers(walDir)
		if err != nil {
			return 0
		}
		for _, c := range cs {
			if c.Name == "export:acme:client" {
				return c.Position
			}
		}
		return 0
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var last uint64
	for i := 0; i < 5; i++ {
		// The child owns the WAL while it runs (the WAL is locked), so events
		// are appended between runs.
		l := openTestWAL(t, walDir, 6<<20)
		appendEvents(t, l, 12000, []string{"a.com", "b.org"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour), want)
		last = l.LastIndex()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		cmd := start()
		time.Sleep(time.Duration(150+rng.IntN(400)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		t.Logf("kill %d: position %d of %d", i, position(), last)
	}
	cmd := start()
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()
	waitFor(t, "position at the last index", 120*time.Second, func() bool { return position() == last })
	exactlyOnce(t, srv, s3Dest(t, srv, "client", srv.SecretKey), "client", "k", 2, want)
	entries, _ := os.ReadDir(filepath.Join(stateDir, "destinations"))
	if len(entries) == 0 {
		t.Fatal("no destination state persisted")
	}
	_ = fmt.Sprint(strconv.Itoa(0))
}
