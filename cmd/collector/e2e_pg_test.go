package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evothesis/collector/wal"
)

// TestLoaderExactlyOnceAcrossSIGKILL runs the real binary with a database,
// SIGKILLs it twice while events are being accepted and loaded, restarts it,
// and checks that every acknowledged event is in PostgreSQL exactly once and
// the loader's offset is the WAL's last index.
func TestLoaderExactlyOnceAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	dbURL := loaderTestDB(t)
	walDir := t.TempDir()
	env := map[string]string{"WAL_DIR": walDir, "WAL_SEGMENT_BYTES": "64KiB", "DATABASE_URL": dbURL,
		"LOADER_BATCH_EVENTS": "200", "LOADER_FLUSH_INTERVAL": "20ms", "EXPORT_DIR": t.TempDir()}
	var acked []string
	for round := 0; round < 2; round++ {
		n := startNode(t, env)
		stop := make(chan struct{})
		res := make(chan []string, 1)
		go func() { a, _ := postEvents(t, n.addr, 8, stop); res <- a }()
		time.Sleep(2 * time.Second)
		n.kill()
		close(stop)
		got := <-res
		if len(got) == 0 {
			t.Fatalf("round %d: nothing acknowledged", round)
		}
		acked = append(acked, got...)
	}
	n := startNode(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// The restarted node catches up on its own.
	var last uint64
	for {
		info, err := wal.Inspect(walDir)
		if err != nil {
			t.Fatal(err)
		}
		last = info.LastIndex
		var offset uint64
		err = db.QueryRow(ctx, "SELECT last_index FROM loader_offsets WHERE node_id = 'e2e-node'").Scan(&offset)
		if err == nil && offset == last {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("loader did not catch up: offset %d, WAL last index %d (%v)", offset, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	var rows, distinct, maxID int64
	if err := db.QueryRow(ctx, "SELECT count(*), count(DISTINCT id), coalesce(max(id),0) FROM events WHERE node_id = 'e2e-node'").Scan(&rows, &distinct, &maxID); err != nil {
		t.Fatal(err)
	}
	if rows != distinct || uint64(rows) != last || uint64(maxID) != last {
		t.Fatalf("events: %d rows, %d distinct ids, max id %d; WAL last index %d", rows, distinct, maxID, last)
	}
	var missing int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM unnest($1::uuid[]) AS a(id) WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = a.id)", acked).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	var dup int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM (SELECT event_id FROM events GROUP BY event_id HAVING count(*) > 1) d").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if missing != 0 || dup != 0 {
		t.Fatalf("%d acknowledged events missing from PostgreSQL, %d duplicated", missing, dup)
	}
	t.Logf("%d acknowledged, %d rows loaded exactly once, offset %d", len(acked), rows, last)
}
