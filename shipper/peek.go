package shipper

import (
	"bytes"
	"time"

	"github.com/evothesis/collector/shipper/export"
	"github.com/valyala/fastjson"
)

// recordPeeker reads a WAL record's site and receive time without decoding
// the whole record (pass 1 and the pending counters read every record).
// event.AppendRecord writes `{"v":1,"event_id":"…","received_at":"<27
// bytes>"` first and site_id right before timestamp; every value before
// timestamp is an escaped string, so the first `,"timestamp":"` is the
// top-level one and site_id is found before it. Anything else — another
// writer, an escaped site id — falls back to a full JSON parse.
type recordPeeker struct {
	p fastjson.Parser
	// site is the last site returned: runs of one site's events need no
	// new string each.
	site string
}

var (
	recordHead   = []byte(`{"v":1,"event_id":"`)
	receivedKey  = []byte(`","received_at":"`)
	siteKey      = []byte(`,"site_id":"`)
	timestampKey = []byte(`,"timestamp":"`)
)

func (rp *recordPeeker) peek(data []byte) (site string, received time.Time, ok bool) {
	if bytes.HasPrefix(data, recordHead) {
		rest := data[len(recordHead):]
		if i := bytes.Index(rest, receivedKey); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			rest = rest[i+len(receivedKey):]
			if t, ok := export.ParseRecordTime(rest); ok {
				if ts := bytes.Index(rest, timestampKey); ts >= 0 {
					head := rest[:ts]
					if s := bytes.Index(head, siteKey); s < 0 {
						return "", t, true
					} else if v := head[s+len(siteKey):]; len(v) > 0 && v[len(v)-1] == '"' {
						v = v[:len(v)-1]
						if bytes.IndexByte(v, '\\') < 0 && bytes.IndexByte(v, '"') < 0 {
							if string(v) != rp.site {
								rp.site = string(v)
							}
							return rp.site, t, true
						}
					}
				}
			}
		}
	}
	return rp.slow(data)
}

func (rp *recordPeeker) slow(data []byte) (string, time.Time, bool) {
	v, err := rp.p.ParseBytes(data)
	if err != nil {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v.GetStringBytes("received_at")))
	if err != nil {
		return "", time.Time{}, false
	}
	return string(v.GetStringBytes("site_id")), t.UTC(), true
}
