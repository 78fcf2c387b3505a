package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

var baseTime = time.Date(2025, 6, 22, 11, 0, 0, 0, time.UTC)

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
}

var (
	eventTypes = []string{"pageview", "pageview", "pageview", "click", "scroll", "form_submit", "custom"}
	sites      = []string{"example-com", "shop-example-com", "blog-example-org"}
	paths      = []string{"/", "/pricing", "/blog/how-we-collect-events", "/products/item-%d", "/checkout", "/docs/getting-started"}
	sources    = []string{"google", "newsletter", "twitter", "bing", "direct"}
)

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

func randID(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

func uuidLike(r *rand.Rand, ms int64) string {
	return fmt.Sprintf("%08x-%04x-7%03x-%04x-%012x", uint32(ms>>16), uint16(ms), r.IntN(0x1000), 0x8000|r.IntN(0x4000), r.Uint64()&0xffffffffffff)
}

// realisticEvents builds n events shaped like what the tracking pixel sends:
// a few hundred bytes of attribution, page and browser data each.
func realisticEvents(n int, seed uint64) []Row {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rows := make([]Row, n)
	for i := range rows {
		recv := baseTime.Add(time.Duration(i) * 37 * time.Millisecond).Truncate(time.Microsecond)
		ts := recv.Add(-time.Duration(r.IntN(2000)) * time.Millisecond)
		site := sites[r.IntN(len(sites))]
		p := paths[r.IntN(len(paths))]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, r.IntN(5000))
		}
		src := sources[r.IntN(len(sources))]
		url := "https://" + strings.ReplaceAll(site, "-", ".") + p + "?utm_source=" + src + "&utm_medium=cpc&utm_campaign=summer_sale"
		ua := userAgents[r.IntN(len(userAgents))]
		et := eventTypes[r.IntN(len(eventTypes))]
		sess, vis := "sess_"+randID(r, 12), "vis_"+randID(r, 12)
		ref := "https://www." + src + ".com/"
		raw := fmt.Sprintf(`{"eventType":%q,"sessionId":%q,"visitorId":%q,"siteId":%q,"timestamp":%q,"url":%q,"path":%q,`+
			`"attribution":{"utmParams":{"utm_source":%q,"utm_medium":"cpc","utm_campaign":"summer_sale"},"referrer":%q,"landingPage":%q},`+
			`"page":{"title":"Example page %d","width":%d,"height":%d},"browser":{"userAgent":%q,"language":"en-US","screen":"1920x1080","timezone":"Europe/Paris"},`+
			`"scrollDepth":%d}`,
			et, sess, vis, site, ts.Format(time.RFC3339Nano), url, p, src, ref, p, r.IntN(100), 1280+r.IntN(640), 720+r.IntN(360), ua, r.IntN(101))
		rows[i] = Row{ID: uint64(1000 + i), Event: &event.Event{
			EventID: uuidLike(r, recv.UnixMilli()), ReceivedAt: recv, NodeID: "node-1",
			EventType: et, SessionID: sess, VisitorID: vis, SiteID: site, Timestamp: ts.UTC(),
			URL: url, Path: p, Referrer: ref, IPAddress: fmt.Sprintf("203.0.%d.%d", r.IntN(256), r.IntN(256)),
			UserAgent: ua, Origin: "https://" + site, Raw: []byte(raw),
		}}
	}
	return rows
}

// nastyEvents are the strings that break naive encoders.
func nastyEvents() []Row {
	t := time.Date(2025, 6, 22, 11, 59, 59, 999999000, time.UTC)
	mk := func(id uint64, mutate func(e *event.Event)) Row {
		e := &event.Event{
			EventID: fmt.Sprintf("0190c1c2-7a9b-7cde-8f00-%012d", id), ReceivedAt: t, NodeID: "node-1",
			EventType: "pageview", SessionID: "s", VisitorID: "v", SiteID: "site", Timestamp: t.Add(-time.Second),
			URL: "https://example.com/", Path: "/", Raw: []byte(`{"a":1}`),
		}
		mutate(e)
		return Row{ID: id, Event: e}
	}
	return []Row{
		mk(1, func(e *event.Event) {
			e.URL = `https://example.com/?q="quoted",comma`
			e.Path = `/a,b"c`
			e.EventType = `say "hi"`
		}),
		mk(2, func(e *event.Event) { e.SessionID = "line1\nline2"; e.URL = "cr\ronly"; e.UserAgent = "tab\there" }),
		mk(3, func(e *event.Event) {
			e.Path = "/café/日本語/😀"
			e.SiteID = "ünïcode-site"
			e.Referrer = "\u2028\u2029"
		}),
		mk(4, func(e *event.Event) {
			e.EventType, e.SessionID, e.VisitorID, e.SiteID, e.URL, e.Path, e.Referrer, e.IPAddress, e.UserAgent, e.NodeID =
				"", "", "", "", "", "", "", "", "", ""
			e.Raw = nil
		}),
		mk(5, func(e *event.Event) { e.VisitorID = "bad\xffutf8\xc3"; e.URL = "nul\x00char" }),
		mk(6, func(e *event.Event) {
			e.Raw = []byte("{\n  \"spaced\": \"a b\",\n\t\"nested\": { \"list\": [1, 2, {\"x\": null}] }\n}")
		}),
		mk(7, func(e *event.Event) {
			e.Raw = []byte(`{"q":"\"quoted\", comma","nl":"a\nb","u":"\u00e9\ud83d\ude00","ctl":"` + "raw\x01ctl" + `"}`)
		}),
		mk(8, func(e *event.Event) { e.Raw = []byte(`["not","an","object"]`) }),
		mk(9, func(e *event.Event) { e.Raw = []byte(`{"truncated":`) }),
		mk(10, func(e *event.Event) { e.Path = " leading space"; e.EventType = `\.`; e.SessionID = `""` }),
		mk(11, func(e *event.Event) { e.Timestamp = time.Time{}; e.URL = strings.Repeat("long,", 2000) }),
		mk(12, func(e *event.Event) { e.Raw = []byte(`{"bad":"` + "\xff" + `"}`) }),
		mk(^uint64(0)>>1, func(e *event.Event) {}), // largest id parquet's INT64 holds
	}
}

// expectedEvent is what decoding an object of format f must give for r.
func expectedEvent(t testing.TB, r Row, f Format) ExportedEvent {
	t.Helper()
	e := r.Event
	s := func(v string) string {
		v = string([]rune(v)) // U+FFFD for each invalid byte
		if f == FormatCSV {
			// encoding/csv's reader drops a CR before LF, even in quotes.
			v = strings.ReplaceAll(v, "\r\n", "\n")
		}
		return v
	}
	want := ExportedEvent{
		ID: r.ID, EventID: s(e.EventID), EventType: s(e.EventType), SessionID: s(e.SessionID),
		VisitorID: s(e.VisitorID), SiteID: s(e.SiteID), Timestamp: e.Timestamp.UTC().Truncate(time.Microsecond),
		URL: s(e.URL), Path: s(e.Path), RawEventData: expectedRaw(e.Raw),
	}
	if f != FormatCSV {
		want.ReceivedAt = e.ReceivedAt.UTC().Truncate(time.Microsecond)
		want.Referrer, want.IPAddress, want.UserAgent, want.NodeID = s(e.Referrer), s(e.IPAddress), s(e.UserAgent), s(e.NodeID)
	}
	return want
}

// expectedRaw is the raw value an export holds: the object itself, or, for
// anything that is not a JSON object, a JSON string of its text.
func expectedRaw(raw []byte) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("{}")
	}
	raw = []byte(string([]rune(string(raw))))
	var v any
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(lenientJSON(raw), &v) == nil {
		return lenientJSON(raw)
	}
	b, _ := json.Marshal(string(raw))
	return b
}

// lenientJSON escapes raw control characters inside strings, as the encoder
// does, so that encoding/json accepts what fastjson accepted.
func lenientJSON(raw []byte) []byte {
	var out []byte
	for _, c := range raw {
		if c < 0x20 && c != '\n' && c != '\t' && c != '\r' && c != ' ' {
			out = fmt.Appendf(out, `\u%04x`, c)
			continue
		}
		out = append(out, c)
	}
	return out
}

// sameJSON compares two JSON texts by value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// compareEvents reports every field that differs.
func compareEvents(t testing.TB, got, want []ExportedEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d events, wrote %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.RawEventData, w.RawEventData) && !sameJSON(g.RawEventData, w.RawEventData) {
			t.Errorf("event %d (id %d): raw_event_data = %s, want %s", i, w.ID, g.RawEventData, w.RawEventData)
		}
		if bytes.ContainsAny(g.RawEventData, "\n\r") || !utf8.Valid(g.RawEventData) {
			t.Errorf("event %d: raw_event_data not compact valid UTF-8: %q", i, g.RawEventData)
		}
		if !g.Timestamp.Equal(w.Timestamp) {
			t.Errorf("event %d: timestamp = %v, want %v", i, g.Timestamp, w.Timestamp)
		}
		if !g.ReceivedAt.Equal(w.ReceivedAt) {
			t.Errorf("event %d: received_at = %v, want %v", i, g.ReceivedAt, w.ReceivedAt)
		}
		g.RawEventData, w.RawEventData = nil, nil
		g.Timestamp, w.Timestamp, g.ReceivedAt, w.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
		for j := 0; j < gv.NumField(); j++ {
			if !reflect.DeepEqual(gv.Field(j).Interface(), wv.Field(j).Interface()) {
				t.Errorf("event %d (id %d): %s = %q, want %q", i, w.ID, gv.Type().Field(j).Name, gv.Field(j).Interface(), wv.Field(j).Interface())
			}
		}
	}
}

func metaFor(rows []Row) Metadata {
	m := Metadata{
		ExportID: "exp_test123", ExportTime: baseTime.Add(90 * time.Minute), EventCount: len(rows),
		Start: baseTime, End: baseTime.Add(time.Hour), Client: "acme", NodeID: "node-1",
	}
	if len(rows) > 0 {
		m.FirstIndex, m.LastIndex = rows[0].ID, rows[len(rows)-1].ID
	}
	return m
}

// encode writes rows into one object and returns its bytes.
func encode(t testing.TB, rows []Row, f Format, c Compression, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, c, metaFor(rows), opts...)
	if err != nil {
		t.Fatalf("NewWriter(%s, %s): %v", f, c, err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// formatCases is every format with every compression it accepts.
func formatCases() []struct {
	f Format
	c Compression
} {
	var out []struct {
		f Format
		c Compression
	}
	for _, f := range Formats() {
		cs := Compressions()
		if f == FormatParquet {
			cs = append(cs, CompressionSnappy)
		}
		for _, c := range cs {
			out = append(out, struct {
				f Format
				c Compression
			}{f, c})
		}
	}
	return out
}
