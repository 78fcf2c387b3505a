package export

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

func fuzzSeeds(f *testing.F) {
	for _, r := range nastyEvents() {
		e := r.Event
		f.Add(r.ID, e.EventType, e.SessionID, e.URL, e.Path, e.UserAgent, e.Raw, e.Timestamp.UnixMicro())
	}
	f.Add(uint64(0), "", "", "", "", "", []byte(nil), int64(0))
	f.Add(uint64(7), "a\r\nb", "\"", ",", "\n", " x", []byte("{\"a\":\"\r\n\"}"), int64(-1))
}

func fuzzRow(id uint64, eventType, session, url, path, ua string, raw []byte, tsMicro int64) Row {
	ts := time.UnixMicro(tsMicro).UTC()
	if ts.Year() < 0 || ts.Year() > 9999 {
		ts = time.Unix(0, 0).UTC() // RFC 3339 cannot write years outside 0000-9999
	}
	return Row{ID: id, Event: &event.Event{
		EventID: "id-" + session, ReceivedAt: ts, EventType: eventType, SessionID: session, VisitorID: session + path,
		SiteID: path, Timestamp: ts, URL: url, Path: path, Referrer: url, IPAddress: eventType, UserAgent: ua,
		NodeID: ua, Raw: raw,
	}}
}

// checkFuzzRoundTrip encodes one row in f and checks that it decodes to the
// same fields, and that raw_event_data is exactly the compact form the
// encoder promises.
func checkFuzzRoundTrip(t *testing.T, row Row, f Format) {
	data := encode(t, []Row{row}, f, CompressionNone)
	got, err := Decode(bytes.NewReader(data), f, CompressionNone)
	if err != nil {
		t.Fatalf("decode %s: %v\n%q", f, err, data)
	}
	if len(got) != 1 {
		t.Fatalf("decoded %d events", len(got))
	}
	wantRaw := appendRaw(nil, row.Event.Raw)
	if !bytes.Equal(got[0].RawEventData, wantRaw) {
		t.Fatalf("raw_event_data %q, want %q", got[0].RawEventData, wantRaw)
	}
	if !json.Valid(wantRaw) || bytes.ContainsAny(wantRaw, "\r\n") {
		t.Fatalf("raw_event_data %q is not compact valid JSON", wantRaw)
	}
	// A raw that already is a compact object is kept byte for byte.
	raw := row.Event.Raw
	if len(raw) > 0 && raw[0] == '{' && json.Valid(raw) && !bytes.ContainsAny(raw, " \t\r\n") && utf8.Valid(raw) && !bytes.Equal(wantRaw, raw) {
		t.Fatalf("compact object %q rewritten as %q", raw, wantRaw)
	}
	want := expectedEvent(t, row, f)
	want.RawEventData = wantRaw
	compareEvents(t, got, []ExportedEvent{want})
}

func FuzzCSVRoundTrip(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, id uint64, eventType, session, url, path, ua string, raw []byte, ts int64) {
		checkFuzzRoundTrip(t, fuzzRow(id, eventType, session, url, path, ua, raw, ts), FormatCSV)
	})
}

func FuzzNDJSONRoundTrip(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, id uint64, eventType, session, url, path, ua string, raw []byte, ts int64) {
		row := fuzzRow(id, eventType, session, url, path, ua, raw, ts)
		checkFuzzRoundTrip(t, row, FormatNDJSON)
		line := encode(t, []Row{row}, FormatNDJSON, CompressionNone)
		if bytes.Count(line, []byte("\n")) != 1 || !strings.HasSuffix(string(line), "\n") {
			t.Fatalf("not one line: %q", line)
		}
	})
}

func FuzzDetectFromKey(f *testing.F) {
	f.Add("a/b/c.ndjson.zst")
	f.Add("x.parquet.gz")
	f.Add("")
	f.Fuzz(func(t *testing.T, key string) {
		fm, c, err := DetectFromKey(key)
		if err != nil {
			return
		}
		if checkFormat(fm, c) != nil {
			t.Fatalf("%q detected as unusable %s/%s", key, fm, c)
		}
	})
}

// FuzzRawCompaction checks the single-pass validator and compactor against
// encoding/json: it accepts exactly the JSON objects (allowing raw control
// characters inside strings) and produces their compact form.
func FuzzRawCompaction(f *testing.F) {
	for _, r := range nastyEvents() {
		f.Add(r.Event.Raw)
	}
	for _, s := range []string{`{}`, `{"a":[1,-0.5e+3,true,false,null,{"b":"\u00e9\"\\"}]}`, `{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, `{"a" 1}`, `{"a":[1,]}`, `[{}]`, `{}x`, " { } ", `{"a":-}`, `{"a":1e}`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := validUTF8Bytes(data)
		// What appendRaw copies as is (event.IsCompactRaw) is exactly what
		// the general compactor would have written.
		if event.IsCompactRaw(data) {
			if out, ok := appendCompactObject(nil, src); !ok || !bytes.Equal(out, data) || !json.Valid(data) {
				t.Fatalf("copied %q as is; the general compactor gives %q (ok %v)", data, out, ok)
			}
		}
		out, ok := appendCompactObject([]byte("prefix"), src)
		if !ok {
			if string(out) != "prefix" {
				t.Fatalf("failure left %q in dst", out)
			}
			trimmed := bytes.TrimLeft(src, " \t\r\n")
			if json.Valid(src) && len(trimmed) > 0 && trimmed[0] == '{' {
				t.Fatalf("rejected the valid object %q", src)
			}
			return
		}
		out = bytes.TrimPrefix(out, []byte("prefix"))
		if !json.Valid(out) || out[0] != '{' {
			t.Fatalf("accepted %q as %q, which is not a valid object", src, out)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, out); err != nil || !bytes.Equal(compact.Bytes(), out) {
			t.Fatalf("output %q is not compact", out)
		}
		if json.Valid(src) {
			compact.Reset()
			_ = json.Compact(&compact, src)
			if !bytes.Equal(compact.Bytes(), out) {
				t.Fatalf("compacted %q to %q, encoding/json gives %q", src, out, compact.Bytes())
			}
		}
	})
}

func FuzzTextPrimitivesMatchTheEventPackage(f *testing.F) {
	f.Add("plain", int64(0), int64(0))
	f.Add("quote\" \\ \n \x00 \xff é \u2028", int64(1750593598999999), int64(123))
	f.Add("", int64(-62135596800), int64(0))
	f.Add("x", int64(253402300800), int64(999999999))
	f.Fuzz(func(t *testing.T, s string, sec, nsec int64) {
		if got, want := appendJSONString(nil, s), event.AppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
		tm := time.Unix(sec, nsec)
		if got, want := appendTime(nil, tm), event.AppendTime(nil, tm); !bytes.Equal(got, want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	})
}

func FuzzSWARMatchesByteChecks(f *testing.F) {
	f.Add(uint64(0x2020202020202020))
	f.Add(uint64(0x2220202020202020))
	f.Add(uint64(0x1f80ff5c22000102))
	f.Fuzz(func(t *testing.T, x uint64) {
		special, nonPlain := false, false
		for i := 0; i < 8; i++ {
			c := byte(x >> (8 * i))
			if c < 0x20 || c == '"' || c == '\\' {
				special = true
			}
			if !jsonPlainASCII[c] {
				nonPlain = true
			}
		}
		if hasStringSpecial(x) != special || hasNonPlainASCII(x) != nonPlain {
			t.Fatalf("%#x: special %v/%v, non-plain %v/%v", x, hasStringSpecial(x), special, hasNonPlainASCII(x), nonPlain)
		}
	})
}
