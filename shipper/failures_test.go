package shipper

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/evothesis/collector/shipper/s3test"
)

type webhookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []notification
	requests int
}

// newWebhookReceiver answers 500 to the first request (the notifier must
// retry) and 200 afterwards.
func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.requests++
		if w.requests == 1 {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		var n notification
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		w.got = append(w.got, n)
	}))
	t.Cleanup(w.Close)
	return w
}

func (w *webhookReceiver) events() []notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]notification(nil), w.got...)
}

func TestDeniedDestinationPausesAndNotifiesWhileOthersContinue(t *testing.T) {
	srv := s3test.Start(t, "client", "backup")
	hook := newWebhookReceiver(t)
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 3000, []string{"a.com", "unclaimed.io"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	const wrongSecret = "WRONG-secret-never-shown-0123456789"
	logs := &syncBuffer{}
	claims := func(site string) bool { return site == "a.com" }
	dests := func(clientSecret string) []Destination {
		return []Destination{
			{Client: "acme", Kind: KindClient, Store: s3Dest(t, srv, "client", clientSecret), Prefix: "acme",
				Formats: []export.Format{export.FormatNDJSON}, Compression: export.CompressionGzip, Claims: claims,
				Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime", Webhook: hook.URL + "/hook?token=hooksecret",
				Config: map[string]any{"bucket": "client", "secret_key": "(redacted)"}},
			{Client: "acme", Kind: KindBackup, Store: s3Dest(t, srv, "backup", srv.SecretKey), Prefix: "backup/acme",
				Formats: []export.Format{export.FormatNDJSON}, Compression: export.CompressionZstd, Claims: claims,
				Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime"},
			{Client: UnclaimedClient, Kind: KindBackup, Store: s3Dest(t, srv, "backup", srv.SecretKey), Prefix: "backup/_unclaimed",
				Formats: []export.Format{export.FormatNDJSON}, Compression: export.CompressionZstd, Claims: func(s string) bool { return !claims(s) },
				Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime"},
		}
	}
	stateDir := t.TempDir()
	ts := startShipper(t, Options{Log: l, StateDir: stateDir, Logger: debugLogger(logs)}, dests(wrongSecret))
	last := l.LastIndex()
	byName := func() map[string]DestinationStatus {
		out := map[string]DestinationStatus{}
		for _, d := range ts.Status().Destinations {
			out[d.Name] = d
		}
		return out
	}
	waitFor(t, "client destination paused, backups done", 60*time.Second, func() bool {
		s := byName()
		return s["export:acme:client"].State == StatePaused && s["export:acme:backup"].Position == last &&
			s["export:_unclaimed:backup"].Position == last
	})
	if st := byName()["export:acme:client"]; st.Position != 0 || !strings.Contains(st.PausedReason, "SignatureDoesNotMatch") {
		t.Fatalf("paused destination: %+v", st)
	}
	waitFor(t, "webhook notification (after one failed delivery)", 30*time.Second, func() bool { return len(hook.events()) > 0 })
	n := hook.events()[0]
	if n.Event != "export.paused" || n.Client != "acme" || n.Destination != "export:acme:client" || n.Reason == "" {
		t.Fatalf("notification %+v", n)
	}
	// Backups: acme's sites in acme's backup, the unclaimed site in the unclaimed backup, each once.
	wantClaimed, wantUnclaimed := map[uint64]event.Event{}, map[uint64]event.Event{}
	for id, e := range want {
		if claims(e.SiteID) {
			wantClaimed[id] = e
		} else {
			wantUnclaimed[id] = e
		}
	}
	backup := s3Dest(t, srv, "backup", srv.SecretKey)
	exactlyOnce(t, srv, backup, "backup", "backup/acme", 1, wantClaimed)
	exactlyOnce(t, srv, backup, "backup", "backup/_unclaimed", 1, wantUnclaimed)

	// Nothing shown anywhere holds a secret.
	status, _ := json.Marshal(ts.Status())
	config, _ := json.Marshal(ts.Config())
	health, _ := ts.Health()
	healthJSON, _ := json.Marshal(health)

	// SIGHUP with the right key: the destination resumes and catches up.
	if err := ts.Reload(context.Background(), dests(srv.SecretKey)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client destination resumed and caught up", 60*time.Second, func() bool {
		s := byName()["export:acme:client"]
		return s.State == StateActive && s.Position == last
	})
	exactlyOnce(t, srv, s3Dest(t, srv, "client", srv.SecretKey), "client", "acme", 1, wantClaimed)
	ts.stop()

	audit, _ := os.ReadFile(filepath.Join(stateDir, "audit.jsonl"))
	stateFiles, _ := os.ReadFile(filepath.Join(stateDir, "destinations", stateFileName("export:acme:client")))
	for name, text := range map[string]string{"logs": logs.String(), "status": string(status), "config": string(config),
		"health": string(healthJSON), "audit log": string(audit), "state": string(stateFiles)} {
		for _, secret := range []string{wrongSecret, srv.SecretKey, "hooksecret"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret (%q)", name, secret)
			}
		}
	}
	if !strings.Contains(logs.String(), "paused") || !strings.Contains(string(audit), `"result":"paused"`) {
		t.Errorf("pause not logged/audited:\n%s", audit)
	}
	// One pause, one notification: the unit encoded while the one before
	// it was refused finds the destination paused already.
	paused := 0
	for _, n := range hook.events() {
		if n.Event == "export.paused" {
			paused++
		}
	}
	if paused != 1 {
		t.Errorf("%d export.paused notifications, want 1", paused)
	}
}

func TestDeadLetteredUnitBlocksPositionUntilRetried(t *testing.T) {
	srv := s3test.Start(t, "client")
	l := openTestWAL(t, t.TempDir(), 1<<20)
	defer l.Close()
	want := map[uint64]event.Event{}
	appendEvents(t, l, 500, []string{"a.com"}, time.Date(2025, 6, 22, 10, 0, 0, 0, time.UTC), want)
	firstLast := l.LastIndex()
	hook := newWebhookReceiver(t)
	store := s3Dest(t, srv, "client", srv.SecretKey)
	_ = srv.Stop() // the store is unreachable: every attempt fails
	stateDir := t.TempDir()
	ts := startShipper(t, Options{Log: l, StateDir: stateDir, MaxAttempts: 3}, []Destination{{
		Client: "acme", Kind: KindClient, Store: store, Prefix: "dl", Formats: []export.Format{export.FormatCSV},
		Compression: export.CompressionGzip, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
		Webhook: hook.URL,
	}})
	status := func() DestinationStatus { return ts.Status().Destinations[0] }
	waitFor(t, "unit dead-lettered", 60*time.Second, func() bool { return len(status().DeadLetters) == 1 })
	dl := status().DeadLetters[0]
	if dl.FirstIndex != 1 || dl.LastIndex != firstLast || dl.Attempts != 3 || dl.LastError == "" {
		t.Fatalf("dead letter %+v", dl)
	}
	if s := status(); s.State != StateFailing || s.ConsecutiveFailures < 3 {
		t.Fatalf("status %+v", s)
	}
	// The store comes back; later events export, but the position stays
	// before the dead-lettered unit so the WAL keeps it.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, l, 300, []string{"a.com"}, time.Date(2025, 6, 22, 12, 0, 0, 0, time.UTC), want)
	last := l.LastIndex()
	waitFor(t, "later unit exported", 60*time.Second, func() bool {
		for _, u := range status().Units {
			if u.FirstIndex == firstLast+1 && u.Status == unitDone {
				return true
			}
		}
		return false
	})
	if s := status(); s.Position != 0 || len(s.DeadLetters) != 1 {
		t.Fatalf("position passed a dead-lettered unit: %+v", s)
	}
	// Dead letters survive a restart.
	ts.stop()
	ts = startShipper(t, Options{Log: l, StateDir: stateDir, MaxAttempts: 3}, []Destination{{
		Client: "acme", Kind: KindClient, Store: store, Prefix: "dl", Formats: []export.Format{export.FormatCSV},
		Compression: export.CompressionGzip, Schedule: realtimeSchedule{interval: 10 * time.Millisecond}, ScheduleName: "realtime",
	}})
	if s := ts.Status().Destinations[0]; len(s.DeadLetters) != 1 {
		t.Fatalf("dead letter lost across restart: %+v", s)
	}
	if got := ts.Retry([]string{"no-such-unit"}); len(got) != 0 {
		t.Fatalf("retry of unknown id requeued %v", got)
	}
	if got := ts.Retry([]string{dl.ID}); len(got) != 1 {
		t.Fatalf("retry requeued %v", got)
	}
	waitFor(t, "position at last index after retry", 60*time.Second, func() bool {
		s := ts.Status().Destinations[0]
		return s.Position == last && len(s.DeadLetters) == 0
	})
	exactlyOnce(t, srv, store, "client", "dl", 1, want)
	waitFor(t, "dead-letter notification", 30*time.Second, func() bool {
		for _, n := range hook.events() {
			if n.Event == "export.dead_lettered" && n.Unit == dl.ID {
				return true
			}
		}
		return false
	})
}
