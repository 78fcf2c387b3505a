package loader

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/evothesis/collector/wal"
)

// TestHelperLoaderProcess is not a test: TestLoaderExactlyOnceAcrossSIGKILL
// runs the test binary with LOADER_HELPER_DB set, and this loads WAL_DIR into
// that database until the process is killed.
func TestHelperLoaderProcess(t *testing.T) {
	url := os.Getenv("LOADER_HELPER_DB")
	if url == "" {
		t.Skip("helper process for TestLoaderExactlyOnceAcrossSIGKILL")
	}
	ctx := context.Background()
	log, err := wal.Open(ctx, wal.Options{Dir: os.Getenv("LOADER_HELPER_WAL"), Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := NewPool(ctx, url, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions("node-a")
	opts.BatchEvents = 700
	l, err := New(pool, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Run(ctx) // until SIGKILL
}

// TestLoaderExactlyOnceAcrossSIGKILL kills a loader process at random
// instants (mid-COPY, mid-commit, between commit and the WAL registry
// update) while the WAL grows, then lets one finish: every record is loaded
// exactly once and the offset is the last index.
func TestLoaderExactlyOnceAcrossSIGKILL(t *testing.T) {
	db := newTestDB(t, false)
	dir := t.TempDir()
	var last uint64
	grow := func(n int) {
		log := openWAL(t, dir)
		last = appendEvents(t, log, "node-a", int(last), n, nil)
		if err := log.Close(); err != nil {
			t.Fatal(err)
		}
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLoaderProcess$", "-test.v=false")
		cmd.Env = append(os.Environ(), "LOADER_HELPER_DB="+db.url, "LOADER_HELPER_WAL="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	grow(3000)
	kills := 0
	for round := range 6 {
		cmd := start()
		time.Sleep(time.Duration(150+rand.IntN(250)+40*round) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		kills++
		grow(1500)
	}
	before := db.offset(t, "node-a")
	cmd := start()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitFor(t, 60*time.Second, "the last loader to catch up", func() bool { return db.offset(t, "node-a") == last })
	if before == 0 || before == last {
		t.Logf("offset before the last run: %d of %d (the kills did not land mid-load; the test is weaker)", before, last)
	}
	db.checkExactlyOnce(t, "node-a", last, 0)
	t.Logf("%d SIGKILLs; offset was %d of %d before the last run", kills, before, last)
}
