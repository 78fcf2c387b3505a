package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

// The loader writes PostgreSQL's binary COPY format itself rather than handing
// pgx a []any per row: the format is simple and stable, and encoding straight
// into one reusable buffer costs no allocation per field, which is most of
// what separates a loader from a raw CopyFrom of the same rows (see
// BenchmarkEncodeRow and BenchmarkLoaderVsRawCopyFrom).

// copyColumns is the column list of every COPY, in encoding order.
var copyColumns = []string{
	"id", "node_id", "event_id", "event_type", "session_id", "visitor_id", "site_id",
	`"timestamp"`, "url", "path", "ip_address", "user_agent", "raw_event_data", "received_at", "referrer",
}

// copyHeader is the binary COPY signature, flags (0) and header extension
// length (0).
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyTrailer ends the binary COPY stream (a field count of -1).
var copyTrailer = []byte{0xff, 0xff}

// pgEpochMicros is 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in
// Unix microseconds.
const pgEpochMicros = 946684800 * 1_000_000

// Timestamps PostgreSQL's timestamptz can hold (4713 BC .. 294276 AD), in
// microseconds from its epoch. A time.Time outside them would be refused for
// the whole batch, so they are checked here and rejected row by row.
const (
	pgMinMicros = -211813488000 * 1_000_000
	pgMaxMicros = 9223371331200 * 1_000_000
)

var errUnencodable = errors.New("cannot encode")

// appendRow appends the binary COPY tuple of e (WAL index index, loaded under
// nodeID) to dst. It returns dst unchanged and an error wrapping
// errUnencodable when a field cannot be represented in its column; text is
// sanitized (NUL removed, invalid UTF-8 replaced) as PostgreSQL requires.
func appendRow(dst []byte, index uint64, nodeID string, e *event.Event) ([]byte, error) {
	var id [16]byte
	if !parseUUID(e.EventID, &id) {
		return dst, fmt.Errorf("%w: event_id %q is not a UUID", errUnencodable, truncate(e.EventID, 64))
	}
	ts, ok := pgMicros(e.Timestamp)
	if !ok {
		return dst, fmt.Errorf("%w: timestamp %s is outside PostgreSQL's range", errUnencodable, e.Timestamp)
	}
	recv, ok := pgMicros(e.ReceivedAt)
	if !ok {
		return dst, fmt.Errorf("%w: received_at %s is outside PostgreSQL's range", errUnencodable, e.ReceivedAt)
	}
	if index > 1<<63-1 {
		return dst, fmt.Errorf("%w: WAL index %d does not fit bigint", errUnencodable, index)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(copyColumns)))
	dst = appendInt8(dst, int64(index))
	dst = appendText(dst, nodeID, false)
	dst = binary.BigEndian.AppendUint32(dst, 16)
	dst = append(dst, id[:]...)
	dst = appendText(dst, e.EventType, false)
	dst = appendText(dst, e.SessionID, true)
	dst = appendText(dst, e.VisitorID, true)
	dst = appendText(dst, e.SiteID, true)
	dst = appendInt8(dst, ts)
	dst = appendText(dst, e.URL, true)
	dst = appendText(dst, e.Path, true)
	dst = appendText(dst, e.IPAddress, true)
	dst = appendText(dst, e.UserAgent, true)
	dst = appendJSONB(dst, e.Raw)
	dst = appendInt8(dst, recv)
	dst = appendText(dst, e.Referrer, true)
	return dst, nil
}

func appendInt8(dst []byte, v int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

// appendText appends a text field; empty optional fields are NULL, so that
// "no referrer" is IS NULL in SQL as in the seed.
func appendText(dst []byte, s string, nullIfEmpty bool) []byte {
	if s == "" && nullIfEmpty {
		return binary.BigEndian.AppendUint32(dst, 0xffffffff)
	}
	// The check is IndexByte and utf8.ValidString, both word-at-a-time;
	// event.SanitizeText (byte by byte) runs only on the rare dirty string.
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		s = event.SanitizeText(s)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendJSONB appends a jsonb field: format version 1, then the JSON text.
func appendJSONB(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0, 1)
	dst = appendSanitizedJSON(dst, raw)
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	return dst
}

func pgMicros(t time.Time) (int64, bool) {
	// UnixMicro overflows after year 294246, a little before PostgreSQL's
	// limit; check the year first.
	if y := t.Year(); y < -4712 || y > 294246 {
		return 0, false
	}
	m := t.UnixMicro() - pgEpochMicros
	return m, m >= pgMinMicros && m < pgMaxMicros
}

// parseUUID parses the canonical 8-4-4-4-12 hex form.
func parseUUID(s string, out *[16]byte) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return false
		}
		out[j] = hi<<4 | lo
		j++
		i += 2
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// appendSanitizedJSON appends the JSON text raw, rewritten where PostgreSQL's
// jsonb would refuse what every JSON parser accepts: the escape \u0000 (jsonb
// cannot hold NUL; dropped, as SanitizeText drops NUL from text), unpaired
// UTF-16 surrogate escapes (which JSON.stringify emits for lone surrogates in
// JavaScript strings; replaced with \ufffd) and invalid UTF-8 (replaced with
// U+FFFD). Valid JSON stays valid JSON. The common case - none of these -
// is a single scan and one copy.
func appendSanitizedJSON(dst, raw []byte) []byte {
	if !needsJSONSanitizing(raw) {
		return append(dst, raw...)
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw) && raw[i+1] == 'u' && i+6 <= len(raw):
			r, ok := hex4(raw[i+2 : i+6])
			switch {
			case !ok:
				dst = append(dst, raw[i:i+2]...)
				i += 2
			case r == 0:
				i += 6
			case r >= 0xD800 && r <= 0xDBFF:
				if i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if lo, ok := hex4(raw[i+8 : i+12]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						dst = append(dst, raw[i:i+12]...)
						i += 12
						continue
					}
				}
				dst = append(dst, `\ufffd`...)
				i += 6
			case r >= 0xDC00 && r <= 0xDFFF:
				dst = append(dst, `\ufffd`...)
				i += 6
			default:
				dst = append(dst, raw[i:i+6]...)
				i += 6
			}
		case c == '\\' && i+1 < len(raw):
			// Any other escape, including \\ (so that \\u0000 stays text).
			dst = append(dst, raw[i:i+2]...)
			i += 2
		case c == 0:
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// needsJSONSanitizing reports whether raw has a \u escape of NUL or of an
// unpaired surrogate, a NUL byte or invalid UTF-8. It looks only at
// backslashes (found with IndexByte) and leaves the rest to utf8.Valid, so
// the common clean case runs at memory speed.
func needsJSONSanitizing(raw []byte) bool {
	if bytes.IndexByte(raw, 0) >= 0 {
		return true
	}
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 {
			break
		}
		i += j
		if i+1 >= len(raw) {
			break
		}
		if raw[i+1] != 'u' || i+6 > len(raw) {
			i += 2 // the escaped character, so \\u0000 is not taken for an escape
			continue
		}
		r, ok := hex4(raw[i+2 : i+6])
		switch {
		case !ok:
			i += 2
			continue
		case r == 0, r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return true
			}
			if lo, ok := hex4(raw[i+8 : i+12]); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6 // the pair
		}
		i += 6
	}
	return !utf8.Valid(raw)
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
