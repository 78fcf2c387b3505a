package export

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

// transcoder writes the export event object of a WAL record straight from
// the record's bytes, without building an event.Event: the values in a
// record are already JSON strings escaped the way the export escapes them
// (both use event.AppendJSONString), its times are in the export's layout,
// and its raw object keeps the raw-JSON guarantee (event.IsCompactRaw), so
// most of an export object is copied rather than decoded and re-encoded.
//
// It accepts only what RecordDecoder's fast path accepts, and for that
// writes exactly what appendEventObject writes of the decoded event;
// anything else (an unknown key, a \u escape, raw that breaks the
// guarantee, a time in another layout) is refused, and the caller decodes
// the record the ordinary way. FuzzTranscoderAgreesWithDecoder holds it to
// that.
type transcoder struct {
	scratch []byte
}

// record fields in the order appendEventObject writes them (timestamp,
// raw_event_data and received_at are handled apart).
const (
	fEventID = iota
	fEventType
	fSessionID
	fVisitorID
	fSiteID
	fURL
	fPath
	fReferrer
	fIPAddress
	fUserAgent
	fNodeID
	fIgnored // timestamp_raw, timestamp_status, origin: not exported
	nFields
)

// token is the span of a JSON string in a record, quotes included; plain
// when it holds no backslash.
type token struct {
	start, end int
	plain      bool
	ascii      bool // plain, and only bytes appendJSONString copies as they are
}

func recordField(key []byte) int {
	switch string(key) {
	case "event_id":
		return fEventID
	case "event_type":
		return fEventType
	case "session_id":
		return fSessionID
	case "visitor_id":
		return fVisitorID
	case "site_id":
		return fSiteID
	case "url":
		return fURL
	case "path":
		return fPath
	case "referrer":
		return fReferrer
	case "ip_address":
		return fIPAddress
	case "user_agent":
		return fUserAgent
	case "node_id":
		return fNodeID
	case "timestamp_raw", "timestamp_status", "origin":
		return fIgnored
	}
	return -1
}

// appendObject appends the event object of record data (WAL index id) to
// dst; false (and dst unchanged) when the record is not in the shape it
// handles.
func (t *transcoder) appendObject(dst []byte, id uint64, data []byte) ([]byte, bool) {
	n := len(data)
	if !bytes.HasPrefix(data, recordV1) || n < 2 || data[n-1] != '}' {
		return dst, false
	}
	var fields [nFields]token
	var recv, ts []byte // the 27 bytes between the quotes
	var raw []byte
	i := len(recordV1)
	for {
		if i >= n || data[i] != '"' {
			return dst, false
		}
		end := bytes.IndexByte(data[i+1:], '"')
		if end < 0 {
			return dst, false
		}
		key := data[i+1 : i+1+end]
		i += end + 2
		if i >= n || data[i] != ':' {
			return dst, false
		}
		i++
		if string(key) == "raw" {
			raw = data[i : n-1]
			break
		}
		tok, ok := stringToken(data, i)
		if !ok {
			return dst, false
		}
		i = tok.end
		switch string(key) {
		case "received_at", "timestamp":
			if !tok.plain || tok.end-tok.start != 29 || !isCanonicalRecordTime(data[tok.start+1:]) {
				return dst, false
			}
			if key[0] == 'r' {
				recv = data[tok.start+1 : tok.end-1]
			} else {
				ts = data[tok.start+1 : tok.end-1]
			}
		default:
			f := recordField(key)
			if f < 0 {
				return dst, false
			}
			fields[f] = tok
		}
		if i >= n || data[i] != ',' {
			return dst, false
		}
		i++
	}
	if ev := fields[fEventID]; ev.end-ev.start <= 2 || recv == nil || ts == nil || string(recv) == zeroRecordTime || string(ts) == zeroRecordTime || !event.IsCompactRaw(raw) {
		return dst, false
	}
	orig := len(dst)
	var ok bool
	str := func(name string, f int) {
		dst = append(dst, name...)
		if ok {
			dst, ok = t.appendToken(dst, data, fields[f])
		}
	}
	ok = true
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	str(`,"event_id":`, fEventID)
	str(`,"event_type":`, fEventType)
	str(`,"session_id":`, fSessionID)
	str(`,"visitor_id":`, fVisitorID)
	str(`,"site_id":`, fSiteID)
	dst = append(dst, `,"timestamp":"`...)
	dst = append(dst, ts...)
	dst = append(dst, '"')
	str(`,"url":`, fURL)
	str(`,"path":`, fPath)
	dst = append(dst, `,"raw_event_data":`...)
	dst = append(dst, raw...)
	dst = append(dst, `,"received_at":"`...)
	dst = append(dst, recv...)
	dst = append(dst, '"')
	str(`,"referrer":`, fReferrer)
	str(`,"ip_address":`, fIPAddress)
	str(`,"user_agent":`, fUserAgent)
	str(`,"node_id":`, fNodeID)
	if !ok {
		return dst[:orig], false
	}
	return append(dst, '}'), true
}

// zeroRecordTime is the zero time.Time as a record holds it: the decoder
// takes it for a missing time, so the transcoder leaves such records to it.
const zeroRecordTime = "0001-01-01T00:00:00.000000Z"

// stringToken finds the JSON string starting at data[i], ending where
// RecordDecoder's str ends it: at the first quote when no backslash comes
// before it, else at the first unescaped quote.
func stringToken(data []byte, i int) (token, bool) {
	if i >= len(data) || data[i] != '"' {
		return token{}, false
	}
	// Most values are printable ASCII: one SWAR pass finds their end.
	j := i + 1
	for ; j+8 <= len(data); j += 8 {
		x := binary.LittleEndian.Uint64(data[j:])
		if m := stringSpecialMask(x) | x&msbs; m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
	}
	for j < len(data) && jsonPlainASCII[data[j]] {
		j++
	}
	if j < len(data) && data[j] == '"' {
		return token{start: i, end: j + 1, plain: true, ascii: true}, true
	}
	end := bytes.IndexByte(data[i+1:], '"')
	if end < 0 {
		return token{}, false
	}
	if bytes.IndexByte(data[i+1:i+1+end], '\\') < 0 {
		return token{start: i, end: i + end + 2, plain: true}, true
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '"':
			return token{start: i, end: j + 1}, true
		case '\\':
			// Only the escapes RecordDecoder's fast path decodes; a \u
			// sends the record to event.Decoder, whose raw may differ.
			if j++; j >= len(data) || strings.IndexByte(`"\/nrtbf`, data[j]) < 0 {
				return token{}, false
			}
		}
	}
	return token{}, false
}

// appendToken appends the export form of a record's string: what
// appendJSONString writes of its decoded value. A missing field (zero
// token) is the empty string.
func (t *transcoder) appendToken(dst, data []byte, tok token) ([]byte, bool) {
	if tok.end == 0 {
		return append(dst, '"', '"'), true
	}
	if tok.ascii {
		return append(dst, data[tok.start:tok.end]...), true
	}
	if tok.plain {
		s := data[tok.start+1 : tok.end-1]
		if copyAsIs(s) {
			return append(dst, data[tok.start:tok.end]...), true
		}
		return appendJSONString(dst, string(s)), true
	}
	// Escapes: decode them as RecordDecoder does, then escape again.
	t.scratch = t.scratch[:0]
	for j := tok.start + 1; j < tok.end-1; j++ {
		c := data[j]
		if c != '\\' {
			t.scratch = append(t.scratch, c)
			continue
		}
		j++
		u, ok := simpleEscape(data[j])
		if !ok {
			return dst, false // \u: RecordDecoder leaves it to event.Decoder
		}
		t.scratch = append(t.scratch, u)
	}
	return appendJSONString(dst, string(t.scratch)), true
}

// copyAsIs reports whether appendJSONString(s) is s in quotes: s holds no
// quote, backslash or control character, is valid UTF-8 and holds neither
// U+2028 nor U+2029.
func copyAsIs(s []byte) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if hasNonPlainASCII(x) {
			return copyAsIsSlow(s)
		}
	}
	for ; i < len(s); i++ {
		if !jsonPlainASCII[s[i]] {
			return copyAsIsSlow(s)
		}
	}
	return true
}

func copyAsIsSlow(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !jsonPlainASCII[c] {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}

// Prepared is one WAL record made ready for Writer.WritePrepared by a
// RecordPreparer: its json/ndjson event object, already written, and/or
// its decoded event. It lets the per-record work (transcoding, decoding)
// run on one goroutine while another compresses.
type Prepared struct {
	ID    uint64
	Event *event.Event // decoded: when asked for, or when the record could not be transcoded
	obj   []byte       // the event object appendEventObject would write; nil when not transcoded
}

// RecordPreparer prepares WAL records. It is not safe for concurrent use;
// the zero value is ready.
type RecordPreparer struct {
	tc  transcoder
	dec RecordDecoder
}

// Prepare prepares record data (WAL index id). With objects set it writes
// the record's json/ndjson event object onto buf, which the returned
// Prepared refers to (so buf's bytes must stay untouched until it is
// written); with events set, or when the record cannot be transcoded, it
// decodes the record into ev. It returns buf, grown.
func (p *RecordPreparer) Prepare(buf []byte, id uint64, data []byte, objects, events bool, ev *event.Event) ([]byte, Prepared, error) {
	pr := Prepared{ID: id}
	if objects {
		start := len(buf)
		if out, ok := p.tc.appendObject(buf, id, data); ok {
			buf, pr.obj = out, out[start:len(out):len(out)]
		} else {
			events = true
		}
	}
	if events {
		if err := p.dec.Decode(data, ev); err != nil {
			return buf, pr, fmt.Errorf("WAL record %d: %w", id, err)
		}
		pr.Event = ev
	}
	return buf, pr, nil
}
