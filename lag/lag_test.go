package lag

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// fixture: a WAL of 100 events received 1 ms apart starting an hour ago,
// with three consumers at different positions.
func fixture(t *testing.T) (*wal.Log, string, time.Time) {
	t.Helper()
	dir := t.TempDir()
	log, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	var recs [][]byte
	for i := range 100 {
		e := event.Event{EventID: uuid.NewString(), ReceivedAt: start.Add(time.Duration(i) * time.Millisecond), Timestamp: start,
			EventType: "pageview", SiteID: "example-com", Raw: []byte(`{"pad":"` + strings.Repeat("x", 100) + `"}`)}
		recs = append(recs, event.AppendRecord(nil, &e))
	}
	if _, err := log.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	positions := map[string]uint64{"loader": 40, "export:acme:client": 100, "export:acme:backup": 0}
	for name := range positions { // all first, so that no segment is removed before the last registers
		if _, err := log.RegisterConsumer(name); err != nil {
			t.Fatal(err)
		}
	}
	for name, pos := range positions {
		if err := log.CommitConsumer(name, pos); err != nil {
			t.Fatal(err)
		}
	}
	log.ReportConsumerError("export:acme:backup", errors.New("s3: 503 SlowDown\nretrying"))
	return log, dir, start
}

func consumer(t *testing.T, r Report, name string) Consumer {
	t.Helper()
	for _, c := range r.Consumers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no consumer %q in %+v", name, r.Consumers)
	return Consumer{}
}

func checkFixtureReport(t *testing.T, r Report, start time.Time) {
	t.Helper()
	if r.WAL.LastIndex != 100 || len(r.Consumers) != 3 || r.NodeID != "node-a" {
		t.Fatalf("report %+v", r)
	}
	if r.Consumers[0].Name != "export:acme:backup" || r.Consumers[2].Name != "loader" {
		t.Errorf("consumers not sorted by name: %v", r.Consumers)
	}
	ld := consumer(t, r, "loader")
	if ld.Position != 40 || ld.Head != 100 || ld.EventsBehind != 60 || ld.BytesBehind <= 0 || ld.OldestPendingAt == nil {
		t.Fatalf("loader %+v", ld)
	}
	if want := start.Add(40 * time.Millisecond); !ld.OldestPendingAt.Equal(want) {
		t.Errorf("oldest pending %s, want received_at of index 41 %s", ld.OldestPendingAt, want)
	}
	if ld.OldestPendingAge < 3500 || ld.OldestPendingAge > 3700 {
		t.Errorf("oldest pending age %v s, want about an hour", ld.OldestPendingAge)
	}
	if ld.LastSuccess == nil {
		t.Error("loader has no last success")
	}
	client := consumer(t, r, "export:acme:client")
	if client.EventsBehind != 0 || client.BytesBehind != 0 || client.OldestPendingAt != nil || client.OldestPendingAge != 0 {
		t.Errorf("caught-up consumer %+v", client)
	}
	backup := consumer(t, r, "export:acme:backup")
	if backup.EventsBehind != 100 || backup.LastError == "" || backup.BytesBehind < ld.BytesBehind || backup.OldestPendingAt == nil || !backup.OldestPendingAt.Equal(start) {
		t.Errorf("backup %+v", backup)
	}
}

func TestLiveReport(t *testing.T) {
	log, _, start := fixture(t)
	r := Live(log, "node-a")
	if r.Mode != "online" {
		t.Errorf("mode %q", r.Mode)
	}
	checkFixtureReport(t, r, start)
}

type fakeLoader struct{ pos uint64 }

func (f fakeLoader) ConsumerState() wal.ConsumerState {
	return wal.ConsumerState{Name: "loader", Position: f.pos, LastSuccess: time.Now()}
}

func TestLiveReportTakesTheLoadersPosition(t *testing.T) {
	log, _, _ := fixture(t)
	r := Live(log, "node-a", fakeLoader{pos: 90})
	ld := consumer(t, r, "loader")
	if ld.Position != 90 || ld.PositionSource != "loader" || ld.EventsBehind != 10 {
		t.Fatalf("loader %+v", ld)
	}
	if consumer(t, r, "export:acme:client").PositionSource != "wal" {
		t.Error("export consumer not from the registry")
	}
}

func TestOfflineReportMatchesLive(t *testing.T) {
	log, dir, start := fixture(t)
	live := Live(log, "node-a")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Offline(context.Background(), dir, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "offline" || r.WAL.Dir != dir {
		t.Errorf("mode %q dir %q", r.Mode, r.WAL.Dir)
	}
	checkFixtureReport(t, r, start)
	for i := range r.Consumers {
		a, b := r.Consumers[i], live.Consumers[i]
		samePending := (a.OldestPendingAt == nil) == (b.OldestPendingAt == nil) && (a.OldestPendingAt == nil || a.OldestPendingAt.Equal(*b.OldestPendingAt))
		if a.Position != b.Position || a.EventsBehind != b.EventsBehind || !samePending {
			t.Errorf("offline %+v != live %+v", a, b)
		}
	}
	// PostgreSQL's offset overrides the registry's lower bound.
	r, err = Offline(context.Background(), dir, "node-a", Override{Source: "database", State: wal.ConsumerState{Name: "loader", Position: 99}})
	if err != nil {
		t.Fatal(err)
	}
	if ld := consumer(t, r, "loader"); ld.Position != 99 || ld.PositionSource != "database" || ld.EventsBehind != 1 || ld.LastSuccess == nil {
		t.Fatalf("override: %+v", ld)
	}
	if _, err := Offline(context.Background(), t.TempDir()+"/missing", "n"); err == nil {
		t.Error("offline report of a missing directory")
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	log, _, _ := fixture(t)
	r := Live(log, "node-a")
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"node node-a", "head 100", "CONSUMER", "POSITION", "BEHIND", "OLDEST PENDING", "LAST ERROR",
		"export:acme:backup", "s3: 503 SlowDown retrying", "loader", "1h00m"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Count(out, "\n"); lines != 3+1+3 {
		t.Errorf("%d lines:\n%s", lines, out)
	}
	buf.Reset()
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Consumers) != 3 || back.Consumers[2].EventsBehind != 60 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
	for _, key := range []string{`"wal_head"`, `"events_behind"`, `"bytes_behind"`, `"oldest_pending_age_seconds"`, `"position_source"`, `"last_error"`} {
		if !bytes.Contains(buf.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestHandlerServesTheReport(t *testing.T) {
	log, _, _ := fixture(t)
	h := Handler(func() Report { return Live(log, "node-a") })
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/lag")
	h(&ctx)
	var r Report
	if err := json.Unmarshal(ctx.Response.Body(), &r); err != nil || ctx.Response.StatusCode() != 200 || len(r.Consumers) != 3 {
		t.Fatalf("%d %s: %v", ctx.Response.StatusCode(), ctx.Response.Body(), err)
	}
}

func TestBytesAfterSegments(t *testing.T) {
	segs := []wal.Segment{{FirstIndex: 1, LastIndex: 100, Bytes: 1000}, {FirstIndex: 101, LastIndex: 200, Bytes: 2000}, {FirstIndex: 201, LastIndex: 200}}
	for _, c := range []struct {
		after uint64
		want  int64
	}{{0, 3000}, {50, 2500}, {100, 2000}, {150, 1000}, {200, 0}, {500, 0}} {
		if got := bytesAfterSegments(segs, c.after); got != c.want {
			t.Errorf("after %d: %d, want %d", c.after, got, c.want)
		}
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 12 * time.Second: "12s",
		200 * time.Second: "3m20s", 5*time.Hour + 2*time.Minute: "5h02m", 76 * time.Hour: "3d04h"} {
		if got := FormatAge(in); got != want {
			t.Errorf("FormatAge(%s) = %q, want %q", in, got, want)
		}
	}
}
