package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/internal/pgtest"
	"github.com/evothesis/collector/lag"
	"github.com/evothesis/collector/wal"
)

// loaderTestDB creates a throwaway database and returns its URL.
func loaderTestDB(t *testing.T) string {
	t.Helper()
	return pgtest.New(t, "collector_test")
}

func loaderCLI(env map[string]string) (cli, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return cli{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}, &out, &errOut
}

// walWithEvents writes n events of node into a new WAL directory, registers
// a "loader" consumer at loaderPos, and closes it.
func walWithEvents(t *testing.T, node string, n int, loaderPos uint64) string {
	t.Helper()
	dir := t.TempDir()
	log, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var recs [][]byte
	for i := range n {
		e := event.Event{EventID: uuid.NewString(), ReceivedAt: now.Add(time.Duration(i-n) * time.Second), NodeID: node,
			Timestamp: now, EventType: "pageview", SiteID: "example-com", Raw: []byte(`{}`)}
		recs = append(recs, event.AppendRecord(nil, &e))
	}
	if _, err := log.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if _, err := log.RegisterConsumer("loader"); err != nil {
		t.Fatal(err)
	}
	if err := log.CommitConsumer("loader", loaderPos); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMigrateCommandIsIdempotent(t *testing.T) {
	env := map[string]string{"DATABASE_URL": loaderTestDB(t)}
	ctx := context.Background()
	c, out, _ := loaderCLI(env)
	if err := runMigrate(ctx, c, nil); err != nil || !strings.Contains(out.String(), "applied 00001") {
		t.Fatalf("first: %v %q", err, out)
	}
	c, out, _ = loaderCLI(env)
	if err := runMigrate(ctx, c, nil); err != nil || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("second: %v %q", err, out)
	}
	c, out, _ = loaderCLI(env)
	if err := runMigrate(ctx, c, []string{"status"}); err != nil || !strings.Contains(out.String(), "applied") || strings.Contains(out.String(), "pending") {
		t.Fatalf("status: %v %q", err, out)
	}
	c, _, _ = loaderCLI(map[string]string{})
	if err := runMigrate(ctx, c, nil); !errors.As(err, new(usageError)) {
		t.Fatalf("without DATABASE_URL: %v", err)
	}
}

func TestReplayCommandTwiceLoadsOnce(t *testing.T) {
	dir := walWithEvents(t, "node-b", 50, 0)
	env := map[string]string{"DATABASE_URL": loaderTestDB(t), "WAL_DIR": dir, "NODE_ID": "node-a"}
	ctx := context.Background()
	c, out, _ := loaderCLI(env)
	if err := runReplay(ctx, c, []string{"--from", "1"}); err != nil || !strings.Contains(out.String(), "indexes 1-50: 50 records: 50 loaded, 0 skipped") {
		t.Fatalf("first: %v %q", err, out)
	}
	c, out, _ = loaderCLI(env)
	if err := runReplay(ctx, c, []string{"--from", "1"}); err != nil || !strings.Contains(out.String(), "0 loaded, 50 skipped") {
		t.Fatalf("second: %v %q", err, out)
	}
	c, out, _ = loaderCLI(env)
	if err := runReplay(ctx, c, []string{"--from", "10", "--to", "12", "--wal-dir", dir}); err != nil || !strings.Contains(out.String(), "indexes 10-12: 3 records") {
		t.Fatalf("range: %v %q", err, out)
	}
	c, out, _ = loaderCLI(env)
	if err := runReplay(ctx, c, []string{"--from", "500"}); err != nil || !strings.Contains(out.String(), "nothing to replay") {
		t.Fatalf("past the end: %v %q", err, out)
	}
	for _, bad := range [][]string{nil, {"--from", "5", "--to", "2"}, {"--from", "x"}} {
		c, _, _ = loaderCLI(env)
		if err := runReplay(ctx, c, bad); !errors.As(err, new(usageError)) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	conn, err := pgx.Connect(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM events WHERE node_id = 'node-b'").Scan(&n); err != nil || n != 50 {
		t.Fatalf("%d rows of node-b, %v", n, err)
	}
}

func TestLagCommandOffline(t *testing.T) {
	dir := walWithEvents(t, "node-a", 30, 5)
	dbURL := loaderTestDB(t)
	ctx := context.Background()
	c, _, _ := loaderCLI(map[string]string{"DATABASE_URL": dbURL})
	if err := runMigrate(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO loader_offsets (node_id, last_index) VALUES ('node-a', 20)"); err != nil {
		t.Fatal(err)
	}

	// With the database: PostgreSQL's offset (20) beats the registry's (5).
	env := map[string]string{"DATABASE_URL": dbURL, "WAL_DIR": dir, "NODE_ID": "node-a"}
	c, out, _ := loaderCLI(env)
	if err := runLag(ctx, c, []string{"--offline", "--json"}); err != nil {
		t.Fatal(err)
	}
	var r lag.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Consumers) != 1 {
		t.Fatalf("%v %s", err, out)
	}
	if ld := r.Consumers[0]; ld.Position != 20 || ld.PositionSource != "database" || ld.EventsBehind != 10 || ld.OldestPendingAt == nil {
		t.Fatalf("loader %+v", ld)
	}
	// Without it: the registry's lower bound, as a table.
	c, out, _ = loaderCLI(map[string]string{"WAL_DIR": dir, "NODE_ID": "node-a"})
	if err := runLag(ctx, c, []string{"--offline"}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "CONSUMER") || !strings.Contains(s, "loader") || !strings.Contains(s, " 25 ") {
		t.Fatalf("table:\n%s", s)
	}
}

func TestLagCommandOnlineAndFallback(t *testing.T) {
	dir := t.TempDir()
	log, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if _, err := log.Append(context.Background(), [][]byte{[]byte("x"), []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if _, err := log.RegisterConsumer("export:acme:client"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("Authorization")) != "Bearer s3cret" {
			ctx.SetStatusCode(401)
			ctx.SetBodyString(`{"status":"error","message":"bad token","field":"Authorization"}`)
			return
		}
		lag.Handler(func() lag.Report { return lag.Live(log, "node-a") })(ctx)
	}}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()
	ctx := context.Background()
	env := map[string]string{"COLLECTOR_ADDR": ln.Addr().String(), "ADMIN_TOKEN": "s3cret", "NODE_ID": "node-a"}
	c, out, _ := loaderCLI(env)
	if err := runLag(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "online") || !strings.Contains(s, "export:acme:client") {
		t.Fatalf("online table:\n%s", s)
	}
	c, _, _ = loaderCLI(env)
	if err := runLag(ctx, c, []string{"--token", "wrong"}); err == nil || !strings.Contains(err.Error(), "bad token") {
		t.Fatalf("wrong token: %v", err)
	}
	// --watch refreshes until the context ends.
	wctx, cancel := context.WithTimeout(ctx, 350*time.Millisecond)
	defer cancel()
	c, out, _ = loaderCLI(env)
	if err := runLag(wctx, c, []string{"--watch", "--json", "--interval", "100ms"}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n < 2 {
		t.Fatalf("watch printed %d reports", n)
	}

	// Nothing listens at COLLECTOR_ADDR: offline from WAL_DIR, said on stderr.
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	c, out, errOut := loaderCLI(map[string]string{"COLLECTOR_ADDR": addr, "WAL_DIR": dir, "NODE_ID": "node-a"})
	log.Close()
	if err := runLag(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "offline") || !strings.Contains(out.String(), "offline") {
		t.Fatalf("fallback: stderr %q stdout %q", errOut, out)
	}
	// An explicit --url does not fall back.
	c, _, _ = loaderCLI(map[string]string{"WAL_DIR": dir})
	if err := runLag(ctx, c, []string{"--url", "http://" + addr}); err == nil {
		t.Fatal("explicit unreachable --url succeeded")
	}
}

func TestAddLoaderStageWiresRoutesHealthAndStage(t *testing.T) {
	log, err := wal.Open(context.Background(), wal.Options{Dir: t.TempDir(), Sync: wal.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	logger := slog.New(slog.DiscardHandler)
	for _, withDB := range []bool{false, true} {
		t.Run(fmt.Sprint("database=", withDB), func(t *testing.T) {
			cfg, err := config.Load(nil, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			if withDB {
				cfg.DatabaseURL = "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"
			}
			var p pipeline
			if err := addLoaderStage(context.Background(), &p, &cfg, log, logger, nil); err != nil {
				t.Fatal(err)
			}
			routes := map[string]bool{}
			for _, r := range p.routes {
				routes[r.Method+" "+r.Path] = r.Admin
			}
			if admin, ok := routes["GET /lag"]; !ok || admin {
				t.Errorf("/lag route: %v", routes)
			}
			if !withDB {
				if len(p.stages) != 0 || p.database != nil || len(p.reporters) != 0 {
					t.Errorf("loader wired without a database: %+v", p)
				}
				return
			}
			if admin, ok := routes["GET /events/recent"]; !ok || !admin {
				t.Errorf("/events/recent must be an admin route: %v", routes)
			}
			if len(p.stages) != 1 || p.stages[0].name != "loader" || len(p.reporters) != 1 || p.reporters[0].HealthKey() != "loader" {
				t.Fatalf("pipeline %+v", p)
			}
			if got := p.database(); got != "disconnected" {
				t.Errorf("database state %q before any connection", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := p.stages[0].run(ctx); err != nil {
				t.Errorf("loader stage with an unreachable database: %v", err)
			}
		})
	}
}
