package export

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
)

func FuzzRecordDecoderAgreesWithEventDecoder(f *testing.F) {
	f.Add("a.com", `/p?q="x"\n`, "Mozilla\t5", `{"k":"v","n":[1,2,{"x":null}]}`, "", int64(1750593600123456), true)
	f.Add("", "", "", `{}`, "yesterday", int64(0), false)
	f.Add("日本\u2028", "\x01\x7f", "\xff", `{ "a" : "\u00e9" }`, "x", int64(-77), true)
	f.Fuzz(func(t *testing.T, site, url, ua, raw, tsRaw string, micros int64, full bool) {
		recv := time.UnixMicro(micros % (1 << 50)).UTC()
		e := event.Event{EventID: "0190c1c2-7a9b", ReceivedAt: recv, SiteID: site, URL: url, UserAgent: ua,
			Timestamp: recv.Add(-time.Second), TimestampRaw: tsRaw, Raw: []byte(raw)}
		if full {
			e.NodeID, e.EventType, e.SessionID, e.VisitorID, e.Path, e.Referrer, e.IPAddress, e.Origin =
				"n", "pageview", "s", "v", "/p", "r", "1.2.3.4", "o"
		}
		rec := event.AppendRecord(nil, &e)
		var slow event.Decoder
		var want, got event.Event
		wantErr := slow.DecodeRecord(rec, &want)
		var d RecordDecoder
		gotErr := d.Decode(rec, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("record %s: event.Decoder err %v, recordDecoder err %v", rec, wantErr, gotErr)
		}
		if wantErr != nil {
			return
		}
		var rw, rg any
		if json.Unmarshal(want.Raw, &rw) != nil || json.Unmarshal(got.Raw, &rg) != nil || !reflect.DeepEqual(rw, rg) {
			t.Fatalf("raw: got %s want %s", got.Raw, want.Raw)
		}
		want.Raw, got.Raw = nil, nil
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("record %s:\n got %+v\nwant %+v", rec, got, want)
		}
	})
}

func TestRecordDecoderTakesTheFastPathForOrdinaryRecords(t *testing.T) {
	e := event.Event{EventID: "id", ReceivedAt: time.Now().UTC().Truncate(time.Microsecond), SiteID: "a.com",
		URL: `https://x/?q="1"`, Timestamp: time.Now().UTC().Truncate(time.Microsecond), Raw: []byte(`{"a":1}`)}
	var d RecordDecoder
	var got event.Event
	if !d.fast(event.AppendRecord(nil, &e), &got) || got.URL != e.URL || !strings.Contains(string(got.Raw), `"a"`) {
		t.Fatalf("fast path refused an ordinary record: %+v", got)
	}
}

func FuzzRecordDecoderOnArbitraryBytes(f *testing.F) {
	f.Add([]byte(`{"v":1,"event_id":"x","received_at":"2025-06-22T12:00:00.000000Z","timestamp":"2025-06-22T12:00:00.000000Z","raw":{}}`))
	f.Add([]byte(`{"v":1,"event_id":"x\u0041","received_at":"2025-06-22T12:00:00.000000Z","timestamp":"2025-06-22T12:00:00.000000Z","raw":{"a":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var slow event.Decoder
		var want, got event.Event
		wantErr := slow.DecodeRecord(data, &want)
		var d RecordDecoder
		if !d.fast(data, &got) {
			return // the full decoder decides
		}
		if wantErr != nil {
			t.Fatalf("fast path accepted %q, event.Decoder refuses it: %v", data, wantErr)
		}
		var rw, rg any
		_ = json.Unmarshal(want.Raw, &rw)
		_ = json.Unmarshal(got.Raw, &rg)
		want.Raw, got.Raw = nil, nil
		if !reflect.DeepEqual(want, got) || !reflect.DeepEqual(rw, rg) {
			t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
		}
	})
}
