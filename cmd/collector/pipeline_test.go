package main

import (
	"context"
	"strings"
	"testing"

	"github.com/evothesis/collector/wal"
)

func TestExportBacklogOverCountsTheFurthestBehindExportOnly(t *testing.T) {
	l, err := wal.Open(context.Background(), wal.Options{Dir: t.TempDir(), Sync: wal.SyncNever, SegmentBytes: 64 << 10, MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	over := exportBacklogOver(l, 100<<10)
	rec := []byte(`{"site_id":"a.com","received_at":"2025-06-22T10:00:00Z","pad":"` + strings.Repeat("x", 900) + `"}`)
	for i := 0; i < 200; i++ { // about 190 KiB
		if _, err := l.Append(context.Background(), [][]byte{rec}); err != nil {
			t.Fatal(err)
		}
	}
	if over() {
		t.Fatal("no export consumer, yet a backlog was reported")
	}
	for _, name := range []string{"loader", "export:acme:client", "export:acme:backup"} {
		if _, err := l.RegisterConsumer(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.CommitConsumer("loader", 200); err != nil {
		t.Fatal(err)
	}
	if err := l.CommitConsumer("export:acme:client", 200); err != nil {
		t.Fatal(err)
	}
	if !over() {
		t.Fatalf("the backup destination owes %d bytes (limit %d): not reported", l.BytesAfter(0), 100<<10)
	}
	if err := l.CommitConsumer("export:acme:backup", 150); err != nil {
		t.Fatal(err)
	}
	if over() {
		t.Fatalf("50 records (%d bytes) behind reported over 100 KiB", l.BytesAfter(150))
	}
}
