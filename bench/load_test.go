package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startFake(t *testing.T, f *fakeCollector) *Server {
	t.Helper()
	s, err := StartServer("127.0.0.1:0", f.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestClosedLoopCountBoundedRecordsEveryAcknowledgedEvent(t *testing.T) {
	f := &fakeCollector{}
	srv := startFake(t, f)
	path := filepath.Join(t.TempDir(), "record.tsv")
	run := NewRunID()
	rec, err := CreateRecord(path, run, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), LoadOptions{
		Target: srv.URL(), Connections: 8, MaxRequests: 400, Record: rec,
		Traffic: TrafficOptions{RunID: run, Seed: 1, BatchSize: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if res.Requests != 400 {
		t.Fatalf("requests = %d, want 400", res.Requests)
	}
	if res.EventsAccepted != res.EventsSent || res.EventsRefused != 0 || f.bad != 0 {
		t.Fatalf("accepted %d of %d sent, refused %d, unparseable %d", res.EventsAccepted, res.EventsSent, res.EventsRefused, f.bad)
	}
	for _, k := range []string{"json", "beacon", "pixel", "batch"} {
		if res.Kinds[k] == 0 {
			t.Errorf("no %s requests in the default mix: %v", k, res.Kinds)
		}
	}
	if res.Status["200"] != 400 || res.Latency.Count != 400 || res.Latency.P99 <= 0 {
		t.Fatalf("status %v latency %+v", res.Status, res.Latency)
	}
	got, err := ReadRecordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got.Events)) != res.EventsAccepted {
		t.Fatalf("record has %d events, run accepted %d", len(got.Events), res.EventsAccepted)
	}
	rep, err := Verify(context.Background(), got, f.source(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Matched != len(got.Events) || rep.Extra != 0 {
		t.Fatalf("verify: %+v", rep)
	}
}

func TestDurationBoundedRunStopsByItself(t *testing.T) {
	srv := startFake(t, &fakeCollector{})
	start := time.Now()
	res, err := Run(context.Background(), LoadOptions{Target: srv.URL(), Connections: 4, Duration: 300 * time.Millisecond,
		Interval: 100 * time.Millisecond, Traffic: TrafficOptions{RunID: "rtest"}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a 300ms run took %v", took)
	}
	if res.Requests == 0 || len(res.Series) < 2 {
		t.Fatalf("requests %d, series %d points", res.Requests, len(res.Series))
	}
	var sum int64
	for _, s := range res.Series {
		sum += s.Requests
	}
	// The series may leave out a final sliver of an interval, never add to it.
	if sum > res.Requests || sum < res.Requests/2 {
		t.Fatalf("series adds up to %d requests, total says %d", sum, res.Requests)
	}
}

func TestRemoteTargetRefusedWithoutAllowRemote(t *testing.T) {
	for _, target := range []string{"http://192.0.2.10:8000", "http://[2001:db8::1]:80", "ftp://127.0.0.1", "http://127.0.0.1:8000/collect"} {
		if _, _, err := CheckTarget(context.Background(), target, false); err == nil {
			t.Errorf("%s: accepted", target)
		}
	}
	for _, target := range []string{"http://127.0.0.1:8000", "http://localhost:1", "https://[::1]:8443/"} {
		if _, _, err := CheckTarget(context.Background(), target, false); err != nil {
			t.Errorf("%s: %v", target, err)
		}
	}
	if _, _, err := CheckTarget(context.Background(), "http://192.0.2.10:8000", true); err != nil {
		t.Errorf("allow remote: %v", err)
	}
}

func TestRefusedAnswersAreCountedNotRecorded(t *testing.T) {
	f := &fakeCollector{refuseEvery: 3}
	srv := startFake(t, f)
	path := filepath.Join(t.TempDir(), "rec")
	rec, _ := CreateRecord(path, "rx", srv.URL())
	res, err := Run(context.Background(), LoadOptions{Target: srv.URL(), Connections: 1, MaxRequests: 30, Record: rec,
		Traffic: TrafficOptions{RunID: "rx", Mix: Mix{KindJSON: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close()
	if res.EventsAccepted != 20 || res.EventsRefused != 10 || res.Status["503"] != 10 || res.Status["200"] != 20 {
		t.Fatalf("accepted %d refused %d status %v", res.EventsAccepted, res.EventsRefused, res.Status)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 21 {
		t.Fatalf("record has %d lines, want header + 20", n)
	}
}
