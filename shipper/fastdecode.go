package shipper

import (
	"bytes"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fastjson"
)

// recordDecoder decodes WAL records for pass 2. Records written by
// event.AppendRecord (known keys, in its order, fixed time layout, compact
// raw object last) are decoded in one forward scan without building a JSON
// tree; anything else — an unknown key, a \u escape, a time in another
// layout — goes through event.Decoder, so the result is always what
// event.DecodeRecord would give (raw may differ in insignificant
// whitespace, which export compacts anyway).
type recordDecoder struct {
	slow event.Decoder
	buf  []byte
}

func (d *recordDecoder) decode(data []byte, e *event.Event) error {
	if d.fast(data, e) {
		return nil
	}
	return d.slow.DecodeRecord(data, e)
}

var recordV1 = []byte(`{"v":1,`)

func (d *recordDecoder) fast(data []byte, e *event.Event) bool {
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
			t, ok := parseRecordTime(data[i-len(val)-1:])
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
func (d *recordDecoder) str(data []byte, whole string, i int) (string, int, bool) {
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

func (d *recordDecoder) escaped(data []byte, start, j int) (string, int, bool) {
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
		switch data[j] {
		case '"', '\\', '/':
			d.buf = append(d.buf, data[j])
		case 'n':
			d.buf = append(d.buf, '\n')
		case 'r':
			d.buf = append(d.buf, '\r')
		case 't':
			d.buf = append(d.buf, '\t')
		case 'b':
			d.buf = append(d.buf, '\b')
		case 'f':
			d.buf = append(d.buf, '\f')
		default:
			return "", 0, false // \u: leave it to the full decoder
		}
	}
	return "", 0, false
}
