package shipper

import (
	"bytes"
	"time"

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
			if t, ok := parseRecordTime(rest); ok {
				if ts := bytes.Index(rest, timestampKey); ts >= 0 {
					head := rest[:ts]
					if s := bytes.Index(head, siteKey); s < 0 {
						return "", t, true
					} else if v := head[s+len(siteKey):]; len(v) > 0 && v[len(v)-1] == '"' {
						v = v[:len(v)-1]
						if bytes.IndexByte(v, '\\') < 0 && bytes.IndexByte(v, '"') < 0 {
							return string(v), t, true
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

// parseRecordTime reads "YYYY-MM-DDTHH:MM:SS.ffffffZ\"", the layout
// event.AppendTime writes.
func parseRecordTime(b []byte) (time.Time, bool) {
	if len(b) < 28 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' || b[27] != '"' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var f [7]int
	spans := [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 26}}
	for i, sp := range spans {
		n, ok := num(b[sp[0]:sp[1]])
		if !ok {
			return time.Time{}, false
		}
		f[i] = n
	}
	if f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 60 {
		return time.Time{}, false
	}
	return time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], f[6]*1000, time.UTC), true
}
