package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleEvent() Event {
	ts := time.Date(2025, 6, 22, 12, 0, 0, 123456000, time.UTC)
	return Event{
		EventID: "0190c1c2-7a9b-7cde-8f00-0123456789ab", ReceivedAt: ts.Add(time.Second), NodeID: "node-1",
		EventType: "pageview", SessionID: "sess_abc123", VisitorID: "vis_xyz789", SiteID: "example-com",
		Timestamp: ts, URL: "https://example.com/page?a=\"b\"", Path: "/page", Referrer: "https://google.com/",
		IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0", Origin: "https://example.com",
		Raw: []byte(`{"eventType":"pageview","attribution":{"utmParams":{"utm_source":"google"}}}`),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	cases := map[string]func(e *Event){
		"full": func(e *Event) {},
		"minimal": func(e *Event) {
			*e = Event{EventID: e.EventID, ReceivedAt: e.ReceivedAt, Timestamp: e.ReceivedAt, Raw: []byte("{}")}
		},
		"control chars": func(e *Event) { e.URL = "a\x01b\nc\td\"\\" },
		"unicode":       func(e *Event) { e.Path = "/café/日本\u2028x" },
		"bad timestamp": func(e *Event) { e.TimestampRaw = "yesterday"; e.TimestampStatus = TimestampUnparseable },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			want := sampleEvent()
			mutate(&want)
			rec := AppendRecord(nil, &want)
			if !json.Valid(rec) {
				t.Fatalf("record is not valid JSON: %s", rec)
			}
			var d Decoder
			var got Event
			if err := d.DecodeRecord(rec, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			var rawWant, rawGot any
			_ = json.Unmarshal(want.Raw, &rawWant)
			_ = json.Unmarshal(got.Raw, &rawGot)
			if !reflect.DeepEqual(rawWant, rawGot) {
				t.Fatalf("raw: got %s want %s", got.Raw, want.Raw)
			}
			got.Raw, want.Raw = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestAppendTimeMatchesLayout(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 6, 22, 12, 0, 0, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2024, 2, 29, 1, 2, 3, 4000, time.FixedZone("x", -5*3600)),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 2, 28, 23, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(400, 2, 29, 12, 30, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 16, 30, 0, 999, time.FixedZone("y", 14*3600)),
		{}, // the zero time, year 1
	} {
		if got, want := string(AppendTime(nil, tm)), tm.UTC().Format(timeLayout); got != want {
			t.Errorf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	// Every 13th day of years 0000-9999 (each at a different time of day), and
	// random instants across and beyond that range.
	for d, tm := 0, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC); tm.Year() < 10000; d += 13 {
		tm = time.Date(0, 1, 1+d, 0, 0, d%86400, d*7919%1000000*1000, time.UTC)
		if got, want := string(AppendTime(nil, tm)), tm.Format(timeLayout); got != want {
			t.Fatalf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		tm := time.Unix(rng.Int64N(2*maxFastUnix)-maxFastUnix, rng.Int64N(1e9))
		if got, want := string(AppendTime(nil, tm)), tm.UTC().Format(timeLayout); got != want {
			t.Fatalf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestInvalidUTF8BecomesReplacementChar(t *testing.T) {
	out := AppendJSONString(nil, "a\xffb")
	if string(out) != `"a\ufffdb"` {
		t.Fatalf("got %s", out)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	var d Decoder
	var e Event
	for _, in := range []string{"", "[]", `{"v":2,"event_id":"x","received_at":"2025-01-01T00:00:00Z"}`, `{"v":1}`, `{"v":1,"event_id":1}`, "{\"v\":1,\"event_id\":\"x\",\"received_at\":\"nope\"}",
		// fastjson parses raw control characters in strings; JSON does not.
		"{\"v\":1,\"event_id\":\"0\",\"received_at\":\"2025-01-01T00:00:00.000000Z\",\"raw\":{\"\x1b\":{}}}",
		"{\"v\":1,\"event_id\":\"0\",\"received_at\":\"2025-01-01T00:00:00.000000Z\",\"raw\":{\"a\":\"\n\"}}",
	} {
		if err := d.DecodeRecord([]byte(in), &e); err == nil {
			t.Errorf("%q: decoded without error", in)
		}
	}
}

func TestSanitizeText(t *testing.T) {
	if got := SanitizeText("a\x00b\xffc"); got != "ab\ufffdc" {
		t.Fatalf("got %q", got)
	}
	s := "plain"
	if got := SanitizeText(s); got != s {
		t.Fatal("changed clean text")
	}
	if strings.Contains(SanitizeText("日本\x00"), "\x00") {
		t.Fatal("NUL kept")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	e := sampleEvent()
	f.Add(AppendRecord(nil, &e))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		var got Event
		if err := d.DecodeRecord(data, &got); err != nil {
			return
		}
		// Anything that decodes must re-encode to valid JSON that decodes the same.
		rec := AppendRecord(nil, &got)
		if !json.Valid(rec) {
			t.Fatalf("re-encoded record is invalid JSON: %q", rec)
		}
	})
}

func BenchmarkAppendRecord(b *testing.B) {
	e := sampleEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeRecord(b *testing.B) {
	e := sampleEvent()
	rec := AppendRecord(nil, &e)
	var d Decoder
	var got Event
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if err := d.DecodeRecord(rec, &got); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAppendJSONStringRoundTrips: whatever the text, the literal is valid
// JSON that reads back as the text (invalid UTF-8 as U+FFFD, as
// encoding/json reads it), on one line, with U+2028/U+2029 escaped.
func FuzzAppendJSONStringRoundTrips(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x01\x1f\x7f", "a\xffb", "\u2028\u2029é😀", "\xed\xa0\x80", strings.Repeat("abcd", 9) + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := AppendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(lit, &got); err != nil {
			t.Fatalf("AppendJSONString(%q) = %s: not JSON: %v", s, lit, err)
		}
		if want := string([]rune(s)); got != want { // each invalid byte as U+FFFD
			t.Fatalf("AppendJSONString(%q) reads back as %q", s, got)
		}
		if bytes.ContainsAny(lit, "\n\r\u2028\u2029") {
			t.Fatalf("AppendJSONString(%q) = %s spans lines", s, lit)
		}
	})
}
