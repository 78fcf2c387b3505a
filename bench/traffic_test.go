package bench

import (
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestZipfSitePopularityIsSkewed(t *testing.T) {
	tr, err := NewTraffic("http://127.0.0.1:1", TrafficOptions{RunID: "r1", Sites: 100, SiteSkew: 1.1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var seq atomic.Uint64
	g := tr.NewGenerator(0, &seq)
	const n = 200000
	counts := make([]int, 100)
	for i := 0; i < n; i++ {
		counts[g.SiteIndex()]++
	}
	// math/rand/v2's Zipf: P(k) ∝ (v+k)^-s with v=1, so P(0)/P(1) = 2^s.
	ratio := float64(counts[0]) / float64(counts[1])
	if want := math.Pow(2, 1.1); math.Abs(ratio-want)/want > 0.1 {
		t.Fatalf("P(site0)/P(site1) = %.2f, want about %.2f", ratio, want)
	}
	if counts[0] < 10*counts[50] {
		t.Fatalf("head %d vs middle %d: not skewed", counts[0], counts[50])
	}
	for i, c := range counts {
		if c == 0 {
			t.Fatalf("site %d never drawn: the tail must still get traffic", i)
		}
	}
}

func TestMixProportionsFollowWeights(t *testing.T) {
	m, err := ParseMix("json=50,beacon=20,pixel=20,batch=10")
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := NewTraffic("http://127.0.0.1:1", TrafficOptions{RunID: "r1", Mix: m, Seed: 3})
	var seq atomic.Uint64
	g := tr.NewGenerator(0, &seq)
	var req fasthttp.Request
	got := map[Kind]int{}
	const n = 20000
	for i := 0; i < n; i++ {
		got[g.Next(&req, time.Now()).Kind]++
	}
	for k, w := range m {
		share := float64(got[Kind(k)]) / n
		if math.Abs(share-float64(w)/100) > 0.02 {
			t.Errorf("%s: share %.3f, weight %d%%", Kind(k), share, w)
		}
	}
	if want := (50 + 20 + 20 + 10*20) / 100.0; math.Abs(MeanEventsPerRequest(m, 20)-want) > 1e-9 {
		t.Errorf("mean events per request %.2f, want %.2f", MeanEventsPerRequest(m, 20), want)
	}
}

func TestParseMixRejectsNonsense(t *testing.T) {
	for _, in := range []string{"", "json", "json=-1", "video=3", "json=0,batch=0", "json=x"} {
		if _, err := ParseMix(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	m, err := ParseMix(DefaultMix.String())
	if err != nil || m != DefaultMix {
		t.Fatalf("round trip: %v %v", m, err)
	}
}

// Every request kind carries the seed's fields, valid JSON, and a bench id
// that is unique across the run.
func TestGeneratedRequestsCarrySeedFieldsAndUniqueBenchIDs(t *testing.T) {
	tr, _ := NewTraffic("http://127.0.0.1:9", TrafficOptions{RunID: "rq", BatchSize: 5, Seed: 11, SessionLength: time.Second})
	var seq atomic.Uint64
	g := tr.NewGenerator(0, &seq)
	var req fasthttp.Request
	seen := map[string]bool{}
	sessionsPerVisitor := map[string]map[string]bool{}
	now := time.Date(2025, 6, 22, 12, 0, 0, 0, time.UTC)
	kinds := map[Kind]int{}
	var bodyBytes, bodies int
	for i := 0; i < 3000; i++ {
		now = now.Add(10 * time.Millisecond)
		sent := g.Next(&req, now)
		kinds[sent.Kind]++
		var events []map[string]any
		switch sent.Kind {
		case KindPixel:
			if string(req.Header.Method()) != "GET" || !strings.HasPrefix(string(req.URI().Path()), "/pixel.gif") {
				t.Fatalf("pixel request %s %s", req.Header.Method(), req.URI())
			}
			q, err := url.ParseQuery(string(req.URI().QueryString()))
			if err != nil {
				t.Fatalf("pixel query: %v", err)
			}
			ev := map[string]any{}
			for k := range q {
				ev[k] = q.Get(k)
			}
			events = append(events, ev)
		default:
			body := req.Body()
			bodyBytes += len(body)
			bodies++
			ct := string(req.Header.ContentType())
			if sent.Kind == KindBeacon && !strings.HasPrefix(ct, "text/plain") || sent.Kind != KindBeacon && ct != "application/json" {
				t.Fatalf("%s with content type %q", sent.Kind, ct)
			}
			if sent.Kind == KindBatch {
				if err := json.Unmarshal(body, &events); err != nil || len(events) != 5 {
					t.Fatalf("batch body (%v, %d events): %s", err, len(events), body)
				}
			} else {
				var ev map[string]any
				if err := json.Unmarshal(body, &ev); err != nil {
					t.Fatalf("%s body: %v: %s", sent.Kind, err, body)
				}
				events = append(events, ev)
			}
		}
		if len(req.Header.Peek("X-Forwarded-For")) == 0 || len(req.Header.Peek("User-Agent")) == 0 {
			t.Fatalf("missing proxy or browser headers")
		}
		for j, ev := range events {
			for _, f := range []string{"eventType", "sessionId", "visitorId", "siteId", "timestamp", "url", "path", "bench_id", "bench_run"} {
				if s, _ := ev[f].(string); s == "" {
					t.Fatalf("%s event lacks %s: %v", sent.Kind, f, ev)
				}
			}
			id := ev["bench_id"].(string)
			if want := BenchID("rq", sent.FirstSeq+uint64(j)); id != want {
				t.Fatalf("bench_id %s, want %s", id, want)
			}
			if seen[id] {
				t.Fatalf("bench_id %s reused", id)
			}
			seen[id] = true
			if ev["sessionId"].(string) != string(sent.SessionID) {
				t.Fatalf("session %v, Sent says %s", ev["sessionId"], sent.SessionID)
			}
			v := ev["visitorId"].(string)
			if sessionsPerVisitor[v] == nil {
				sessionsPerVisitor[v] = map[string]bool{}
			}
			sessionsPerVisitor[v][ev["sessionId"].(string)] = true
		}
	}
	if kinds[KindJSON] == 0 || kinds[KindBeacon] == 0 || kinds[KindPixel] == 0 || kinds[KindBatch] == 0 {
		t.Fatalf("kinds %v", kinds)
	}
	multi := 0
	for _, s := range sessionsPerVisitor {
		if len(s) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Fatal("no visitor had more than one session over 30 simulated seconds")
	}
	if avg := bodyBytes / bodies; avg < 400 || avg > 8000 {
		t.Fatalf("mean body %d bytes: not a realistic size", avg)
	}
}
