package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/evothesis/collector/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func adminPGURL() string {
	if u := os.Getenv("BENCH_TEST_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// testDB creates a throwaway database; without PostgreSQL it skips locally
// and fails under CI.
func testDB(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, drop, err := pgtest.Create(ctx, adminPGURL(), "collector_test_bench")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL required under CI: %v", err)
		}
		t.Skipf("PostgreSQL unavailable: %v", err)
	}
	t.Cleanup(drop)
	return url
}

func TestVerifyAgainstRealPostgreSQL(t *testing.T) {
	url := testDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The columns verification reads, typed as the loader's migration types them.
	if _, err := conn.Exec(ctx, `CREATE TABLE events (id bigint NOT NULL, node_id text NOT NULL, event_id uuid NOT NULL,
		session_id text, raw_event_data jsonb NOT NULL, PRIMARY KEY (node_id, id))`); err != nil {
		t.Fatal(err)
	}
	uuid := func(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", i) }
	insert := func(id int, eventID, raw string) {
		t.Helper()
		if _, err := conn.Exec(ctx, `INSERT INTO events (id, node_id, event_id, raw_event_data) VALUES ($1, 'n1', $2, $3)`, id, eventID, raw); err != nil {
			t.Fatal(err)
		}
	}
	rec := &Record{Runs: []string{"rp"}}
	for i := 1; i <= 20; i++ {
		rec.Events = append(rec.Events, RecordedEvent{BenchID: BenchID("rp", uint64(i)), EventID: uuid(i), Kind: KindJSON})
	}
	for i := 1; i <= 20; i++ {
		if i == 5 || i == 6 {
			continue // lost
		}
		insert(i, uuid(i), fmt.Sprintf(`{"bench_run":"rp","bench_id":%q}`, BenchID("rp", uint64(i))))
	}
	insert(100, uuid(100), fmt.Sprintf(`{"bench_run":"rp","bench_id":%q}`, BenchID("rp", 7))) // one send stored twice
	insert(101, uuid(101), `{"bench_run":"rp","bench_id":"rp-999"}`)                          // never acknowledged
	insert(102, uuid(102), `{"bench_run":"another","bench_id":"another-1"}`)                  // another run: ignored
	src := &PGSource{URL: url}
	rep, err := Verify(ctx, rec, src, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Missing != 2 || rep.Duplicated != 1 || rep.Extra != 1 || rep.Matched != 17 || rep.Stored != 20 {
		t.Fatalf("%+v", rep)
	}
	if len(rep.DupList) != 1 || rep.DupList[0][:4] != "rp-7" {
		t.Fatalf("dup list %v", rep.DupList)
	}
	// The loader catches up while verify waits.
	go func() {
		time.Sleep(300 * time.Millisecond)
		c2, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer c2.Close(ctx)
		for _, i := range []int{5, 6} {
			_, _ = c2.Exec(ctx, `INSERT INTO events (id, node_id, event_id, raw_event_data) VALUES ($1, 'n1', $2, $3)`, i, uuid(i), fmt.Sprintf(`{"bench_run":"rp","bench_id":%q}`, BenchID("rp", uint64(i))))
		}
		_, _ = c2.Exec(ctx, `DELETE FROM events WHERE id = 100`)
	}()
	rep, err = Verify(ctx, rec, src, VerifyOptions{Wait: 10 * time.Second, Poll: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The duplicate ends the wait at once: it cannot go away by waiting.
	if rep.Duplicated != 1 || rep.Checks != 1 {
		t.Fatalf("%+v", rep)
	}
	time.Sleep(500 * time.Millisecond)
	rep, err = Verify(ctx, rec, src, VerifyOptions{Wait: 5 * time.Second, Poll: 100 * time.Millisecond})
	if err != nil || !rep.OK || rep.Matched != 20 {
		t.Fatalf("after catching up: %+v %v", rep, err)
	}
	if _, err := Verify(ctx, rec, &PGSource{URL: url, Table: "nope"}, VerifyOptions{}); err == nil {
		t.Fatal("a missing table must be an error, not an empty result")
	}
}

func TestProxyDownRefusesAndUpRestores(t *testing.T) {
	target, err := StartServer("127.0.0.1:0", NoopHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	p, err := StartProxy(target.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	get := func() error {
		_, err := Run(context.Background(), LoadOptions{Target: "http://" + p.Addr, Connections: 1, MaxRequests: 3, Timeout: time.Second,
			Traffic: TrafficOptions{RunID: "rp", Mix: Mix{KindJSON: 1}}})
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	p.Down()
	res, _ := Run(context.Background(), LoadOptions{Target: "http://" + p.Addr, Connections: 1, MaxRequests: 3, Timeout: time.Second,
		Traffic: TrafficOptions{RunID: "rp", Mix: Mix{KindJSON: 1}}})
	if res.EventsAccepted != 0 || res.TransportErrs != 3 {
		t.Fatalf("through a downed proxy: %+v", res)
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	res, _ = Run(context.Background(), LoadOptions{Target: "http://" + p.Addr, Connections: 1, MaxRequests: 3, Timeout: time.Second,
		Traffic: TrafficOptions{RunID: "rp", Mix: Mix{KindJSON: 1}}})
	if res.EventsAccepted != 3 {
		t.Fatalf("after Up: %+v", res)
	}
}
