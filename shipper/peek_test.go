package shipper

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/evothesis/collector/event"
)

func FuzzRecordPeekerAgreesWithFullParse(f *testing.F) {
	f.Add("a.com", "sess", `{"site_id":"evil"}`, int64(1750593600123456))
	f.Add("", "", `{}`, int64(0))
	f.Add(`we"ird\site`, `,"site_id":"x"`, `{"a":[1,2]}`, int64(-5))
	f.Add("日本", `,"timestamp":"`, `{"timestamp":"2020"}`, int64(99999999999999))
	f.Fuzz(func(t *testing.T, site, session, raw string, micros int64) {
		if !json.Valid([]byte(raw)) || !strings.HasPrefix(strings.TrimSpace(raw), "{") {
			t.Skip("ingest only writes records whose raw is a JSON object")
		}
		recv := time.UnixMicro(micros % (1 << 50)).UTC()
		e := event.Event{EventID: "id-1", ReceivedAt: recv, SiteID: site, SessionID: session, Timestamp: recv, Raw: []byte(raw)}
		rec := event.AppendRecord(nil, &e)
		var p recordPeeker
		gotSite, gotRecv, ok := p.peek(rec)
		wantSite, wantRecv, wantOK := p.slow(rec)
		if ok != wantOK || (ok && (gotSite != wantSite || !gotRecv.Equal(wantRecv))) {
			t.Fatalf("peek(%s) = %q %v %v; full parse %q %v %v", rec, gotSite, gotRecv, ok, wantSite, wantRecv, wantOK)
		}
	})
}

func FuzzRecordPeekerNeverPanics(f *testing.F) {
	f.Add([]byte(`{"v":1,"event_id":"x","received_at":"2025-06-22T12:00:00.000000Z","site_id":"a","timestamp":"`))
	f.Add([]byte(`{"v":1,"event_id":"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p recordPeeker
		p.peek(data)
	})
}
