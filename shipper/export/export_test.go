package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

func TestRoundTripEveryFormatAndCompression(t *testing.T) {
	inputs := map[string][]Row{
		"nasty":     nastyEvents(),
		"realistic": realisticEvents(300, 1), // several buffers and parquet batches
		"empty":     nil,
	}
	for _, fc := range formatCases() {
		for name, rows := range inputs {
			t.Run(fmt.Sprintf("%s/%s/%s", fc.f, fc.c, name), func(t *testing.T) {
				data := encode(t, rows, fc.f, fc.c)
				got, err := Decode(bytes.NewReader(data), fc.f, fc.c)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				want := make([]ExportedEvent, len(rows))
				for i, r := range rows {
					want[i] = expectedEvent(t, r, fc.f)
				}
				compareEvents(t, got, want)
			})
		}
	}
}

func TestDecodeDetectsFormatFromObjectKey(t *testing.T) {
	rows := realisticEvents(20, 2)
	for _, fc := range formatCases() {
		key := ObjectKey("analytics", "example-com", baseTime, "node-1", 1, 20, fc.f, fc.c)
		f, c, err := DetectFromKey(key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if f != fc.f || streamCompression(f, c) != streamCompression(fc.f, fc.c) {
			t.Fatalf("%s: detected %s/%s, wrote %s/%s", key, f, c, fc.f, fc.c)
		}
		got, err := Decode(bytes.NewReader(encode(t, rows, fc.f, fc.c)), f, c)
		if err != nil || len(got) != len(rows) {
			t.Fatalf("%s: decoded %d events, err %v", key, len(got), err)
		}
	}
}

func TestCSVHeaderIsExactlyTheSeedHeader(t *testing.T) {
	for _, rows := range [][]Row{nil, realisticEvents(1, 3)} {
		data := encode(t, rows, FormatCSV, CompressionNone)
		first, _, _ := strings.Cut(string(data), "\n")
		if first != "id,event_id,event_type,session_id,visitor_id,site_id,timestamp,url,path,raw_event_data" {
			t.Fatalf("header line %q", first)
		}
	}
}

func TestCSVRowQuotesPerRFC4180(t *testing.T) {
	ts := time.Date(2025, 6, 22, 11, 30, 15, 0, time.UTC)
	row := Row{ID: 12345, Event: &event.Event{
		EventID: "550e8400-e29b-41d4", EventType: "pageview", SessionID: "sess_abc123", VisitorID: "vis_xyz789",
		SiteID: "example-com", Timestamp: ts, ReceivedAt: ts, URL: `https://example.com/page?a="b",c`, Path: "/page\nnext",
		Raw: []byte(`{ "k": "v, w" }`),
	}}
	data := encode(t, []Row{row}, FormatCSV, CompressionNone)
	_, body, _ := strings.Cut(string(data), "\n")
	want := `12345,550e8400-e29b-41d4,pageview,sess_abc123,vis_xyz789,example-com,2025-06-22T11:30:15.000000Z,` +
		`"https://example.com/page?a=""b"",c","/page` + "\n" + `next","{""k"":""v, w""}"` + "\n"
	if body != want {
		t.Fatalf("row\n got %q\nwant %q", body, want)
	}
}

// keysInOrder returns the keys of the JSON object at the decoder's position.
func keysInOrder(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestJSONEnvelopeHasTheSeedKeysInOrder(t *testing.T) {
	rows := realisticEvents(2, 4)
	data := encode(t, rows, FormatJSON, CompressionNone)
	if !json.Valid(data) {
		t.Fatalf("not valid JSON: %s", data)
	}
	if got := keysInOrder(t, data); strings.Join(got, ",") != "export_metadata,events" {
		t.Fatalf("envelope keys %v", got)
	}
	var env struct {
		ExportMetadata json.RawMessage   `json:"export_metadata"`
		Events         []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	if got := keysInOrder(t, env.ExportMetadata); strings.Join(got, ",") != "export_id,export_time,event_count,time_range" {
		t.Fatalf("export_metadata keys %v", got)
	}
	var md struct {
		ExportID   string          `json:"export_id"`
		ExportTime string          `json:"export_time"`
		EventCount int             `json:"event_count"`
		TimeRange  json.RawMessage `json:"time_range"`
	}
	if err := json.Unmarshal(env.ExportMetadata, &md); err != nil {
		t.Fatal(err)
	}
	if md.ExportID != "exp_test123" || md.EventCount != 2 || md.ExportTime != "2025-06-22T12:30:00.000000Z" {
		t.Fatalf("export_metadata %s", env.ExportMetadata)
	}
	if got := keysInOrder(t, md.TimeRange); strings.Join(got, ",") != "start,end" {
		t.Fatalf("time_range keys %v", got)
	}
	if string(md.TimeRange) != `{"start":"2025-06-22T11:00:00.000000Z","end":"2025-06-22T12:00:00.000000Z"}` {
		t.Fatalf("time_range %s", md.TimeRange)
	}
	wantEventKeys := "id,event_id,event_type,session_id,visitor_id,site_id,timestamp,url,path,raw_event_data,received_at,referrer,ip_address,user_agent,node_id"
	for i, ev := range env.Events {
		if got := keysInOrder(t, ev); strings.Join(got, ",") != wantEventKeys {
			t.Fatalf("event %d keys %v", i, got)
		}
	}
	var first struct {
		ID  uint64          `json:"id"`
		Raw json.RawMessage `json:"raw_event_data"`
	}
	if err := json.Unmarshal(env.Events[0], &first); err != nil || first.ID != rows[0].ID || first.Raw[0] != '{' {
		t.Fatalf("first event %s (err %v): id must be a number and raw_event_data an object", env.Events[0], err)
	}
}

func TestJSONMetadataRoundTrips(t *testing.T) {
	rows := realisticEvents(3, 5)
	for _, f := range []Format{FormatJSON, FormatParquet} {
		_, md, err := DecodeWithMetadata(bytes.NewReader(encode(t, rows, f, CompressionZstd)), f, CompressionZstd)
		if err != nil {
			t.Fatal(err)
		}
		want := metaFor(rows)
		if f == FormatJSON {
			// The seed's envelope carries only these.
			want = Metadata{ExportID: want.ExportID, ExportTime: want.ExportTime, EventCount: want.EventCount, Start: want.Start, End: want.End}
		}
		if *md != want {
			t.Fatalf("%s metadata\n got %+v\nwant %+v", f, *md, want)
		}
	}
}

func TestNDJSONIsOneEventPerLine(t *testing.T) {
	rows := nastyEvents()
	data := encode(t, rows, FormatNDJSON, CompressionNone)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("%d lines for %d events", len(lines), len(rows))
	}
	for i, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("line %d is not JSON: %q", i, l)
		}
	}
}

func TestJSONRefusesACountThatDiffersFromTheMetadata(t *testing.T) {
	rows := realisticEvents(3, 6)
	t.Run("more rows than announced", func(t *testing.T) {
		meta := metaFor(rows)
		meta.EventCount = 2
		w, _ := NewWriter(io.Discard, FormatJSON, CompressionNone, meta)
		_ = w.Write(rows[0])
		_ = w.Write(rows[1])
		if err := w.Write(rows[2]); !errors.Is(err, ErrCountMismatch) {
			t.Fatalf("third write: %v", err)
		}
		if err := w.Close(); !errors.Is(err, ErrCountMismatch) {
			t.Fatalf("close after failure: %v", err)
		}
	})
	t.Run("fewer rows than announced", func(t *testing.T) {
		w, _ := NewWriter(io.Discard, FormatJSON, CompressionGzip, metaFor(rows))
		_ = w.Write(rows[0])
		if err := w.Close(); !errors.Is(err, ErrCountMismatch) {
			t.Fatalf("close: %v", err)
		}
	})
	t.Run("other formats ignore the count", func(t *testing.T) {
		meta := metaFor(rows)
		meta.EventCount = 0
		w, _ := NewWriter(io.Discard, FormatNDJSON, CompressionNone, meta)
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSameRowsGiveIdenticalBytes(t *testing.T) {
	rows := realisticEvents(200, 7)
	for _, fc := range formatCases() {
		a, b := encode(t, rows, fc.f, fc.c), encode(t, rows, fc.f, fc.c)
		if !bytes.Equal(a, b) {
			t.Errorf("%s/%s: two encodings of the same rows differ", fc.f, fc.c)
		}
	}
}

func TestParquetColumnsAreTypedForQueryEngines(t *testing.T) {
	for _, c := range []Compression{CompressionGzip, CompressionSnappy} {
		data := encode(t, realisticEvents(10, 8), FormatParquet, c)
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			name     string
			physical format.Type
			logical  string
		}{
			{"id", format.Int64, "INT(64,true)"}, {"event_id", format.ByteArray, "STRING"}, {"event_type", format.ByteArray, "STRING"},
			{"session_id", format.ByteArray, "STRING"}, {"visitor_id", format.ByteArray, "STRING"}, {"site_id", format.ByteArray, "STRING"},
			{"timestamp", format.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"}, {"url", format.ByteArray, "STRING"},
			{"path", format.ByteArray, "STRING"}, {"raw_event_data", format.ByteArray, "JSON"},
			{"received_at", format.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"}, {"referrer", format.ByteArray, "STRING"},
			{"ip_address", format.ByteArray, "STRING"}, {"user_agent", format.ByteArray, "STRING"}, {"node_id", format.ByteArray, "STRING"},
		}
		schema := f.Metadata().Schema[1:] // [0] is the root
		if len(schema) != len(want) {
			t.Fatalf("%d columns, want %d", len(schema), len(want))
		}
		for i, w := range want {
			el := schema[i]
			logical := el.LogicalType.String()
			if el.Name != w.name || !el.Type.Valid || el.Type.V != w.physical || logical != w.logical {
				t.Errorf("column %d: %s %v %q, want %s %v %q", i, el.Name, el.Type.V, logical, w.name, w.physical, w.logical)
			}
			if !el.RepetitionType.Valid || el.RepetitionType.V != format.Required {
				t.Errorf("column %s is not required", el.Name)
			}
		}
		wantCodec := format.Zstd
		if c == CompressionSnappy {
			wantCodec = format.Snappy
		}
		for _, rg := range f.Metadata().RowGroups {
			for _, col := range rg.Columns {
				if col.MetaData.Codec != wantCodec {
					t.Errorf("%s: column %v codec %v, want %v", c, col.MetaData.PathInSchema, col.MetaData.Codec, wantCodec)
				}
			}
		}
		// Data page v1 (what every engine reads) for every column chunk.
		for _, col := range f.Metadata().RowGroups[0].Columns {
			var header format.PageHeader
			r := new(thrift.CompactProtocol).NewReader(bytes.NewReader(data[col.MetaData.DataPageOffset:]))
			if err := thrift.NewDecoder(r).Decode(&header); err != nil {
				t.Fatalf("column %v: page header: %v", col.MetaData.PathInSchema, err)
			}
			if header.Type != format.DataPage {
				t.Errorf("column %v: page type %v, want DATA_PAGE (v1)", col.MetaData.PathInSchema, header.Type)
			}
		}
		if v, _ := f.Lookup(ParquetKeyEventCount); v != "10" {
			t.Errorf("event count metadata %q", v)
		}
	}
}

func TestParquetRowGroupsBoundTheWriter(t *testing.T) {
	rows := realisticEvents(1500, 9)
	data := encode(t, rows, FormatParquet, CompressionZstd, WithParquetRowGroupBytes(64<<10))
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// ~1 KiB per event: 1500 events over 64 KiB groups.
	if n := len(f.RowGroups()); n < 10 {
		t.Fatalf("%d row groups; the writer did not cut groups at the size bound", n)
	}
	got, err := Decode(bytes.NewReader(data), FormatParquet, CompressionZstd)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]ExportedEvent, len(rows))
	for i, r := range rows {
		want[i] = expectedEvent(t, r, FormatParquet)
	}
	compareEvents(t, got, want)
}

func TestParquetRefusesIDsBeyondInt64(t *testing.T) {
	w, _ := NewWriter(io.Discard, FormatParquet, CompressionZstd, Metadata{})
	r := realisticEvents(1, 10)[0]
	r.ID = 1 << 63
	if err := w.Write(r); err == nil {
		t.Fatal("wrote an id that parquet would store negative")
	}
}

func TestNewWriterRefusesUnknownFormatsAndMisplacedSnappy(t *testing.T) {
	cases := []struct {
		f Format
		c Compression
	}{{"xml", CompressionNone}, {FormatJSON, "lz4"}, {FormatCSV, CompressionSnappy}, {FormatNDJSON, ""}}
	for _, tc := range cases {
		if _, err := NewWriter(io.Discard, tc.f, tc.c, Metadata{}); err == nil {
			t.Errorf("NewWriter(%q, %q) accepted", tc.f, tc.c)
		}
	}
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct{ limit int }

var errDestination = errors.New("destination broke")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errDestination
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestDestinationErrorsStopTheWriter(t *testing.T) {
	rows := realisticEvents(600, 11)
	for _, fc := range formatCases() {
		t.Run(string(fc.f)+"/"+string(fc.c), func(t *testing.T) {
			meta := metaFor(rows)
			w, err := NewWriter(&failingWriter{limit: 1000}, fc.f, fc.c, meta)
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for _, r := range rows {
				if werr = w.Write(r); werr != nil {
					break
				}
			}
			cerr := w.Close()
			if !errors.Is(werr, errDestination) && !errors.Is(cerr, errDestination) {
				t.Fatalf("write error %v, close error %v: the destination's failure was lost", werr, cerr)
			}
			if cerr == nil {
				t.Fatal("Close succeeded on a broken destination")
			}
			if err := w.Write(rows[0]); err == nil {
				t.Fatal("Write after a failure succeeded")
			}
		})
	}
}

func TestCloseTwiceReturnsTheFirstResult(t *testing.T) {
	w, _ := NewWriter(io.Discard, FormatNDJSON, CompressionZstd, Metadata{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(realisticEvents(1, 1)[0]); err == nil {
		t.Fatal("write after close accepted")
	}
}

func TestRawIsCompactedAndNeverBreaksTheObject(t *testing.T) {
	cases := []struct{ in, want string }{
		{``, `{}`},
		{`{"a":1}`, `{"a":1}`},
		{"{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : \"x y\\\" z\" }", `{"a":[1,2],"b":"x y\" z"}`},
		{"{\"ctl\":\"a\x01b\x1f\"}", `{"ctl":"a\u0001b\u001f"}`},
		{`{"k":"\\"}`, `{"k":"\\"}`},
		{`[1,2]`, `"[1,2]"`},
		{`"str"`, `"\"str\""`},
		{`{"a":`, `"{\"a\":"`},
		{`{"a":1}{"b":2}`, `"{\"a\":1}{\"b\":2}"`},
		{"{\"a\":\"\xff\"}", `{"a":"` + "\uFFFD" + `"}`},
		{`{"a":NaN}`, `"{\"a\":NaN}"`},
		{`{"d":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, `{"d":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`},
		{`{"d":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`, string(appendJSONString(nil, `{"d":`+strings.Repeat("[", 600)+strings.Repeat("]", 600)+`}`))},
	}
	for _, tc := range cases {
		got := string(appendRaw(nil, []byte(tc.in)))
		if got != tc.want {
			t.Errorf("appendRaw(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("appendRaw(%q) = %s is not valid JSON", tc.in, got)
		}
	}
}

func TestDecodeRejectsDamagedObjects(t *testing.T) {
	rows := realisticEvents(5, 12)
	cases := []struct {
		name string
		data []byte
		f    Format
		c    Compression
	}{
		{"csv with another header", []byte("id,event_id\n1,x\n"), FormatCSV, CompressionNone},
		{"json with a wrong count", bytes.Replace(encode(t, rows, FormatJSON, CompressionNone), []byte(`"event_count":5`), []byte(`"event_count":4`), 1), FormatJSON, CompressionNone},
		{"json without metadata", []byte(`{"events":[]}`), FormatJSON, CompressionNone},
		{"truncated ndjson", bytes.TrimSuffix(encode(t, rows, FormatNDJSON, CompressionNone), []byte("\n")), FormatNDJSON, CompressionNone},
		{"truncated gzip", encode(t, rows, FormatNDJSON, CompressionGzip)[:50], FormatNDJSON, CompressionGzip},
		{"truncated parquet", encode(t, rows, FormatParquet, CompressionZstd)[:200], FormatParquet, CompressionZstd},
		{"not zstd", []byte("plain text"), FormatCSV, CompressionZstd},
	}
	for _, tc := range cases {
		if _, err := Decode(bytes.NewReader(tc.data), tc.f, tc.c); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		}
	}
}

func TestSWARChecksAgreeWithTheByteTables(t *testing.T) {
	// Every byte value at every position, among fillers of every kind.
	for _, filler := range []byte{'a', ' ', 0x7f, 0x80, 0xff, '"', 0x00} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				var x uint64
				for i := 0; i < 8; i++ {
					b := filler
					if i == pos {
						b = byte(c)
					}
					x |= uint64(b) << (8 * i)
				}
				special := !strPlain[byte(c)] || !strPlain[filler]
				nonPlain := !jsonPlainASCII[byte(c)] || !jsonPlainASCII[filler]
				if hasStringSpecial(x) != special || hasNonPlainASCII(x) != nonPlain {
					t.Fatalf("%#016x: special %v want %v, non-plain %v want %v", x, hasStringSpecial(x), special, hasNonPlainASCII(x), nonPlain)
				}
			}
		}
	}
}

func TestNextStringSpecialFindsTheFirstStop(t *testing.T) {
	stops := []byte{'"', '\\', 0x00, 0x1f, '\n'}
	plain := []byte{'a', ' ', 0x7f, 0x80, 0xff, '{'}
	for n := 0; n <= 20; n++ {
		for first := 0; first <= n; first++ {
			for _, p := range plain {
				for _, s := range stops {
					buf := bytes.Repeat([]byte{p}, n)
					if first < n {
						buf[first] = s
						for j := first + 1; j < n; j++ {
							buf[j] = stops[j%len(stops)] // stops after the first must not matter
						}
					}
					if got := nextStringSpecial(buf, 0); got != first {
						t.Fatalf("nextStringSpecial(%q) = %d, want %d", buf, got, first)
					}
				}
			}
		}
	}
}
