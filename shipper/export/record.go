package export

import (
	"bytes"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fastjson"
)

// RecordDecoder decodes WAL records. Records written by
// event.AppendRecord (known keys, in its order, fixed time layout, compact
// raw object last) are decoded in one forward scan without building a JSON
// tree; anything else — an unknown key, a \u escape, a time in another
// layout — goes through event.Decoder, so the result is always what
// event.DecodeRecord would give (raw may differ in insignificant
// whitespace, which export compacts anyway).
type RecordDecoder struct {
	slow event.Decoder
	buf  []byte
}

// Decode decodes one WAL record into e, which does not alias data.
func (d *RecordDecoder) Decode(data []byte, e *event.Event) error {
	if d.fast(data, e) {
		return nil
	}
	return d.slow.DecodeRecord(data, e)
}

var recordV1 = []byte(`{"v":1,`)

func (d *RecordDecoder) fast(data []byte, e *event.Event) bool {
	if !bytes.HasPrefix(data, recordV1) || len(data) < 2 || data[len(data)-1] != '}' {
		return false
	}
	*e = event.Event{}
	// One allocation for every unescaped field: they are substrings of it.
	whole := string(data)
	i := len(recordV1)
	for {
		if i >= len(data) || data[i] != '"' {
			return false
		}
		end := bytes.IndexByte(data[i+1:], '"')
		if end < 0 {
			return false
		}
		key := data[i+1 : i+1+end]
		i += end + 2
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i++
		if string(key) == "raw" {
			raw := data[i : len(data)-1]
			if len(raw) < 2 || raw[0] != '{' || fastjson.ValidateBytes(raw) != nil {
				return false
			}
			e.Raw = append([]byte(nil), raw...)
			break
		}
		val, next, ok := d.str(data, whole, i)
		if !ok {
			return false
		}
		i = next
		switch string(key) {
		case "event_id":
			e.EventID = val
		case "received_at", "timestamp":
			t, ok := ParseRecordTime(data[i-len(val)-1:])
			if !ok {
				return false
			}
			if key[0] == 'r' {
				e.ReceivedAt = t
			} else {
				e.Timestamp = t
			}
		case "node_id":
			e.NodeID = val
		case "event_type":
			e.EventType = val
		case "session_id":
			e.SessionID = val
		case "visitor_id":
			e.VisitorID = val
		case "site_id":
			e.SiteID = val
		case "timestamp_raw":
			e.TimestampRaw = val
		case "timestamp_status":
			e.TimestampStatus = val
		case "url":
			e.URL = val
		case "path":
			e.Path = val
		case "referrer":
			e.Referrer = val
		case "ip_address":
			e.IPAddress = val
		case "user_agent":
			e.UserAgent = val
		case "origin":
			e.Origin = val
		default:
			return false
		}
		if i >= len(data) || data[i] != ',' {
			return false
		}
		i++
	}
	return e.EventID != "" && !e.ReceivedAt.IsZero() && !e.Timestamp.IsZero()
}

// str reads the JSON string starting at data[i] (a '"') and returns it and
// the index after its closing quote. Only the escapes AppendJSONString
// writes besides \u are handled here; \u falls back.
func (d *RecordDecoder) str(data []byte, whole string, i int) (string, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return "", 0, false
	}
	i++
	// Like fastjson (and so event.Decoder), neither control characters nor
	// UTF-8 validity are checked here: AppendJSONString never writes
	// either, and both decoders must agree on every input.
	end := bytes.IndexByte(data[i:], '"')
	if end < 0 {
		return "", 0, false
	}
	if bs := bytes.IndexByte(data[i:i+end], '\\'); bs >= 0 {
		return d.escaped(data, i, i+bs)
	}
	return whole[i : i+end], i + end + 1, true
}

func (d *RecordDecoder) escaped(data []byte, start, j int) (string, int, bool) {
	d.buf = append(d.buf[:0], data[start:j]...)
	for ; j < len(data); j++ {
		c := data[j]
		switch {
		case c == '"':
			return string(d.buf), j + 1, true
		case c != '\\':
			d.buf = append(d.buf, c)
			continue
		}
		j++
		if j >= len(data) {
			return "", 0, false
		}
		u, ok := simpleEscape(data[j])
		if !ok {
			return "", 0, false // \u: leave it to the full decoder
		}
		d.buf = append(d.buf, u)
	}
	return "", 0, false
}

// ParseRecordTime reads "YYYY-MM-DDTHH:MM:SS.ffffffZ\"" (the closing quote
// included), the layout event.AppendTime writes into WAL records.
func ParseRecordTime(b []byte) (time.Time, bool) {
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

// isCanonicalRecordTime reports whether b starts with a time in
// ParseRecordTime's layout (the closing quote included) that event.AppendTime
// writes back byte for byte: a real calendar date and clock time, no leap
// second. The transcoder copies such times instead of parsing and
// formatting them; ParseRecordTime also takes ones time.Date normalizes
// (February 30th), and those the transcoder leaves to the decoder.
func isCanonicalRecordTime(b []byte) bool {
	if len(b) < 28 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' || b[27] != '"' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25} {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	two := func(i int) int { return int(b[i]-'0')*10 + int(b[i+1]-'0') }
	year := int(b[0]-'0')*1000 + int(b[1]-'0')*100 + two(2)
	month, day := two(5), two(8)
	if month < 1 || month > 12 || day < 1 || two(11) > 23 || two(14) > 59 || two(17) > 59 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// simpleEscape is the byte a one-character JSON escape (the character after
// the backslash) stands for; false for \u, which the fast paths leave to
// event.Decoder. RecordDecoder and the transcoder share it so that they
// agree byte for byte.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	}
	return 0, false
}
