package export

import (
	"bytes"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
)

// viaDecoder is the reference path: decode the record, then Write the event.
func viaDecoder(t testing.TB, recs [][]byte, f Format) ([]byte, error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, CompressionNone, Metadata{ExportID: "x", EventCount: len(recs)})
	if err != nil {
		t.Fatal(err)
	}
	var d RecordDecoder
	var e event.Event
	for i, r := range recs {
		if err := d.Decode(r, &e); err != nil {
			return nil, err
		}
		if err := w.Write(Row{ID: uint64(i + 1), Event: &e}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), w.Close()
}

func viaWriteRecord(t testing.TB, recs [][]byte, f Format) ([]byte, error) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f, CompressionNone, Metadata{ExportID: "x", EventCount: len(recs)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if err := w.WriteRecord(uint64(i+1), r); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), w.Close()
}

// checkSameAsDecoder holds WriteRecord to the reference path, in every format.
func checkSameAsDecoder(t *testing.T, recs ...[]byte) {
	t.Helper()
	for _, f := range Formats() {
		want, wantErr := viaDecoder(t, recs, f)
		got, gotErr := viaWriteRecord(t, recs, f)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%s: records %q: reference err %v, WriteRecord err %v", f, recs, wantErr, gotErr)
		}
		if wantErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s: records %q:\n got %q\nwant %q", f, recs, got, want)
		}
	}
}

func TestTranscoderCopiesOrdinaryRecords(t *testing.T) {
	var tc transcoder
	for _, r := range append(realisticEvents(50, 3), nastyEvents()...) {
		rec := event.AppendRecord(nil, r.Event)
		out, ok := tc.appendObject(nil, r.ID, rec)
		// \u escapes outside raw (AppendJSONString writes them for
		// control characters and U+2028/U+2029) go to event.Decoder.
		fields := rec[:bytes.LastIndex(rec, []byte(`,"raw":`))]
		raw := r.Event.Raw
		if len(raw) == 0 {
			raw = []byte("{}") // what AppendRecord writes
		}
		// So do zero times and an empty event_id, as in RecordDecoder.
		ev := r.Event
		if !event.IsCompactRaw(raw) || bytes.Contains(fields, []byte(`\u`)) || ev.EventID == "" || ev.ReceivedAt.IsZero() || ev.Timestamp.IsZero() {
			if ok {
				t.Fatalf("transcoded %.300q", rec)
			}
			continue
		}
		if !ok {
			t.Fatalf("refused an ordinary record: %.300q", rec)
		}
		want := appendEventObject(nil, &r)
		if !bytes.Equal(out, want) {
			t.Fatalf("record %q:\n got %s\nwant %s", rec, out, want)
		}
	}
}

func TestWriteRecordMatchesTheDecoderOnEdgeRecords(t *testing.T) {
	base := `{"v":1,"event_id":"e1","received_at":"2025-06-22T12:00:00.000001Z","site_id":"a.com","timestamp":"2025-06-22T11:59:59.000000Z"`
	cases := []string{
		base + `,"raw":{}}`,
		base + `,"url":"https://x/?q=\"1\"\\\/\n\r\t\b\f","raw":{"a":1}}`,
		base + `,"url":"\u0041","raw":{"a":1}}`,                       // \u: event.Decoder
		base + `,"origin":"\u0041","raw":{"a":"\u00e9"}}`,             // \u in an unexported field
		base + `,"url":"日本\u2028","raw":{"a":1}}`,                     // escaped U+2028 goes to event.Decoder
		base + ",\"url\":\"\u2028 \xff \x01\",\"raw\":{\"a\":1}}",     // raw bytes the export escapes
		base + `,"path":"/a","path":"/b","raw":{"a":1}}`,              // duplicate key: the last wins
		base + `,"raw":{ "a" : 1 }}`,                                  // raw with spaces: repaired
		base + `,"raw":{"a":"\u0000"}}`,                               // raw outside the guarantee
		base + `,"raw":[1]}`,                                          // not an object
		base + `,"raw":{"a":1},"x":"y"}`,                              // trailing key
		base + `,"unknown":"k","raw":{"a":1}}`,                        // unknown key: event.Decoder
		base + `,"timestamp":"2025-02-31T00:00:00.000000Z","raw":{}}`, // normalized date
		base + `,"timestamp":"2025-06-22T11:59:59Z","raw":{}}`,        // another layout
		`{"v":1,"event_id":"","received_at":"2025-06-22T12:00:00.000001Z","timestamp":"2025-06-22T11:59:59.000000Z","raw":{}}`,
		`{"v":1,"event_id":"e","received_at":"0001-01-01T00:00:00.000000Z","timestamp":"2025-06-22T11:59:59.000000Z","raw":{}}`,
		`{"v":1,"event_id":"e","received_at":"2025-06-22T12:00:00.000001Z","raw":{}}`,
		`{"v":2,"event_id":"e","received_at":"2025-06-22T12:00:00.000001Z","timestamp":"2025-06-22T11:59:59.000000Z","raw":{}}`,
		`{"v":1,"event_id":"e\`,
		`not json`,
	}
	for _, c := range cases {
		checkSameAsDecoder(t, []byte(c))
	}
	checkSameAsDecoder(t, []byte(cases[0]), []byte(cases[2]), []byte(cases[7]))
}

func FuzzTranscoderAgreesWithDecoder(f *testing.F) {
	f.Add("a.com", `/p?q="x"\n`, "Mozilla\t5", `{"k":"v","n":[1,2,{"x":null}]}`, "", int64(1750593600123456), true)
	f.Add("", "", "", `{}`, "yesterday", int64(0), false)
	f.Add("日本\u2028", "\x01\x7f", "\xff", `{ "a" : "\u00e9" }`, "x", int64(-77), true)
	f.Add("s", "u", "ua", `{"a":"\ud800"}`, "", int64(5), true)
	f.Fuzz(func(t *testing.T, site, url, ua, raw, tsRaw string, micros int64, full bool) {
		recv := time.UnixMicro(micros % (1 << 50)).UTC()
		e := event.Event{EventID: "0190c1c2-7a9b", ReceivedAt: recv, SiteID: site, URL: url, UserAgent: ua,
			Timestamp: recv.Add(-time.Second), TimestampRaw: tsRaw, Raw: []byte(raw)}
		if full {
			e.NodeID, e.EventType, e.SessionID, e.VisitorID, e.Path, e.Referrer, e.IPAddress, e.Origin =
				"n", "pageview", "s", "v", "/p", "r", "1.2.3.4", "o"
		}
		checkSameAsDecoder(t, event.AppendRecord(nil, &e))
	})
}

func FuzzTranscoderOnArbitraryRecords(f *testing.F) {
	f.Add([]byte(`{"v":1,"event_id":"x","received_at":"2025-06-22T12:00:00.000000Z","timestamp":"2025-06-22T12:00:00.000000Z","raw":{}}`))
	f.Add([]byte(`{"v":1,"event_id":"x\"","received_at":"2025-06-22T12:00:00.000000Z","url":"a\\b","timestamp":"2025-06-22T12:00:00.000000Z","raw":{"a":[]}}`))
	f.Add([]byte(`{"v":1,"event_id":"x","received_at":"2025-06-22T12:00:00.000000Z","timestamp":"2025-06-22T12:00:00.000000Z","origin":"\u0041","raw":{"a":1e5}}`))
	for _, r := range nastyEvents() {
		f.Add(event.AppendRecord(nil, r.Event))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsDecoder(t, data)
	})
}

// BenchmarkWriteRecord compares the transcoder with decoding and writing
// the event, on realistic records (ndjson, no compression).
func BenchmarkWriteRecord(b *testing.B) {
	rows, _ := benchData()
	recs := make([][]byte, len(rows))
	var n int64
	for i, r := range rows {
		recs[i] = event.AppendRecord(nil, r.Event)
		n += int64(len(recs[i]))
	}
	run := func(b *testing.B, write func(w *Writer, d *RecordDecoder, e *event.Event, id uint64, rec []byte) error) {
		var out countingWriter
		var d RecordDecoder
		var e event.Event
		b.SetBytes(n)
		b.ReportAllocs()
		for b.Loop() {
			w, _ := NewWriter(&out, FormatNDJSON, CompressionNone, Metadata{})
			for i, r := range recs {
				if err := write(w, &d, &e, uint64(i), r); err != nil {
					b.Fatal(err)
				}
			}
			_ = w.Close()
		}
	}
	b.Run("decode+Write", func(b *testing.B) {
		run(b, func(w *Writer, d *RecordDecoder, e *event.Event, id uint64, rec []byte) error {
			if err := d.Decode(rec, e); err != nil {
				return err
			}
			return w.Write(Row{ID: id, Event: e})
		})
	})
	b.Run("WriteRecord", func(b *testing.B) {
		run(b, func(w *Writer, _ *RecordDecoder, _ *event.Event, id uint64, rec []byte) error {
			return w.WriteRecord(id, rec)
		})
	})
}

// canonicalByParsing is what isCanonicalRecordTime promises: the time
// parses, and formatting it again gives the same bytes.
func canonicalByParsing(b []byte) bool {
	tm, ok := ParseRecordTime(b)
	return ok && string(event.AppendTime(nil, tm)) == string(b[:27])
}

func TestCanonicalRecordTimeIsWhatFormatsBackTheSame(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{`2025-06-22T12:00:00.000001Z"`, true},
		{`0000-01-01T00:00:00.000000Z"`, true},
		{`9999-12-31T23:59:59.999999Z"`, true},
		{`2024-02-29T00:00:00.000000Z"`, true},  // leap year
		{`2000-02-29T00:00:00.000000Z"`, true},  // divisible by 400
		{`1900-02-29T00:00:00.000000Z"`, false}, // divisible by 100: March 1st
		{`2025-02-29T00:00:00.000000Z"`, false},
		{`2025-04-31T00:00:00.000000Z"`, false},
		{`2025-06-22T24:00:00.000000Z"`, false},
		{`2025-06-22T23:60:00.000000Z"`, false},
		{`2025-06-22T23:59:60.000000Z"`, false}, // a leap second normalizes
		{`2025-00-22T12:00:00.000000Z"`, false},
		{`2025-13-22T12:00:00.000000Z"`, false},
		{`2025-06-00T12:00:00.000000Z"`, false},
		{`2025-06-22T12:00:00.00000aZ"`, false},
		{`2025-06-22T12:00:00.000000Z`, false}, // no closing quote
		{`2025-06-22 12:00:00.000000Z"`, false},
		{`+025-06-22T12:00:00.000000Z"`, false},
	} {
		if got := isCanonicalRecordTime([]byte(c.in)); got != c.want {
			t.Errorf("isCanonicalRecordTime(%q) = %v, want %v", c.in, got, c.want)
		}
		if got := canonicalByParsing([]byte(c.in)); len(c.in) >= 28 && got != c.want {
			t.Errorf("the table is wrong for %q: parse and format again says %v", c.in, got)
		}
	}
}

func FuzzCanonicalRecordTime(f *testing.F) {
	f.Add([]byte(`2025-06-22T12:00:00.000001Z"`))
	f.Add([]byte(`1900-02-29T00:00:00.000000Z"`))
	f.Add([]byte(`2025-06-22T23:59:60.000000Z"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 28 {
			return
		}
		if got, want := isCanonicalRecordTime(b), canonicalByParsing(b); got != want {
			t.Fatalf("isCanonicalRecordTime(%q) = %v, parse and format again: %v", b, got, want)
		}
	})
}
