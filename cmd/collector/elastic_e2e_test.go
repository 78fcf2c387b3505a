package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeSum adds up every series of metric name in the node's /metrics.
func scrapeSum(t *testing.T, addr, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		metric, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if metric != name && !strings.HasPrefix(metric, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// TestElasticLimiterPacesExportsAndTurnsOff checks the wiring in serve: by
// default the shipper's reads go through the limiter (its admitted counter
// moves as events are exported); with ELASTIC_LATENCY_TARGET=off there is
// no limiter and exports still run.
func TestElasticLimiterPacesExportsAndTurnsOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		on   bool
	}{
		{"default", map[string]string{}, true},
		{"off", map[string]string{"ELASTIC_LATENCY_TARGET": "off"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"WAL_DIR": t.TempDir(), "EXPORT_DIR": t.TempDir(), "EXPORT_STATE_DIR": t.TempDir(),
				"EXPORT_SCHEDULE": "realtime:1", "EXPORT_FORMAT": "ndjson"}
			for k, v := range tc.env {
				env[k] = v
			}
			n := startNode(t, env)
			stop := make(chan struct{})
			go func() { time.Sleep(500 * time.Millisecond); close(stop) }()
			acked, _ := postEvents(t, n.addr, 4, stop)
			if len(acked) == 0 {
				t.Fatal("no event acknowledged")
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				exported, _ := scrapeSum(t, n.addr, "collector_export_events_total")
				if exported >= float64(len(acked)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("exported %v of %d events within 30 s:\n%s", exported, len(acked), n.log())
				}
				time.Sleep(100 * time.Millisecond)
			}
			admitted, found := scrapeSum(t, n.addr, "collector_elastic_admitted_total")
			_, rateFound := scrapeSum(t, n.addr, "collector_elastic_allowed_rate")
			switch {
			case tc.on && (!found || !rateFound || admitted < float64(len(acked))):
				t.Fatalf("limiter on: admitted %v (registered %v, rate registered %v), want at least the %d exported records", admitted, found, rateFound, len(acked))
			case !tc.on && (found || rateFound):
				t.Fatal("ELASTIC_LATENCY_TARGET=off still registered the limiter's metrics")
			}
			if err := n.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
