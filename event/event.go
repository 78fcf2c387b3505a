package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// RecordVersion is the version of the record encoding written by AppendRecord.
const RecordVersion = 1

// TimestampStatus says how the client's timestamp was interpreted.
const (
	TimestampOK          = ""             // parsed and plausible
	TimestampMissing     = "missing"      // no timestamp sent; Timestamp is the receive time
	TimestampUnparseable = "unparseable"  // could not be parsed; raw value kept, Timestamp is the receive time
	TimestampOutOfRange  = "out_of_range" // parsed but absurd (far future/past); raw value kept, Timestamp is the receive time
)

// Event is one normalized analytics event.
type Event struct {
	EventID    string    // UUIDv7, assigned at ingest
	ReceivedAt time.Time // UTC, microsecond precision
	NodeID     string    // collector node that accepted it

	EventType string
	SessionID string
	VisitorID string
	SiteID    string

	Timestamp       time.Time // client's event time (UTC), or ReceivedAt when unusable
	TimestampRaw    string    // client's value when it was not usable
	TimestampStatus string    // one of the Timestamp* constants

	URL       string
	Path      string
	Referrer  string
	IPAddress string
	UserAgent string
	Origin    string

	// Raw is the client's event object, whole, as JSON.
	Raw []byte
}

// timeLayout is RFC 3339 with exactly six fractional digits, always UTC.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// AppendTime appends t as RFC 3339 UTC with microseconds
// (2006-01-02T15:04:05.000000Z). It is written out by hand because it runs
// twice per accepted event: time.AppendFormat's layout interpretation was a
// sixth of the accept path's CPU, and t.Date plus t.Clock (each converting
// the time again) with a division per digit were still ~400 instructions.
// The civil date comes from the day number in one pass (H. Hinnant's
// days-to-civil algorithm) and digits go out in pairs from a table.
func AppendTime(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < minFastUnix || sec >= maxFastUnix {
		// Outside years 0000-9999 the fixed-width form does not apply.
		return t.UTC().AppendFormat(dst, timeLayout)
	}
	days := sec / 86400
	sod := sec - days*86400
	if sod < 0 {
		days--
		sod += 86400
	}
	year, month, day := civilFromDays(days)
	micro := t.Nanosecond() / 1000
	var b [27]byte
	put2(b[0:2], year/100)
	put2(b[2:4], year%100)
	b[4] = '-'
	put2(b[5:7], month)
	b[7] = '-'
	put2(b[8:10], day)
	b[10] = 'T'
	put2(b[11:13], int(sod/3600))
	b[13] = ':'
	put2(b[14:16], int(sod/60%60))
	b[16] = ':'
	put2(b[17:19], int(sod%60))
	b[19] = '.'
	put2(b[20:22], micro/10000)
	put2(b[22:24], micro/100%100)
	put2(b[24:26], micro%100)
	b[26] = 'Z'
	return append(dst, b[:]...)
}

// Unix seconds of 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the range
// AppendTime formats itself.
const (
	minFastUnix = -62167219200
	maxFastUnix = 253402300800
)

// civilFromDays converts days since 1970-01-01 to the proleptic Gregorian
// year, month and day (https://howardhinnant.github.io/date_algorithms.html).
func civilFromDays(days int64) (year, month, day int) {
	z := days + 719468 // days since 0000-03-01
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365], from March 1
	mp := (5*doy + 2) / 153                                // [0, 11], March = 0
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if mp >= 10 {
		month = int(mp - 9)
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// put2 writes v (0-99) as two digits.
func put2(b []byte, v int) {
	b[0], b[1] = digitPairs[2*v], digitPairs[2*v+1]
}

// AppendRecord appends the WAL record encoding of e to dst.
func AppendRecord(dst []byte, e *Event) []byte {
	dst = append(dst, `{"v":1,"event_id":`...)
	dst = AppendJSONString(dst, e.EventID)
	dst = append(dst, `,"received_at":"`...)
	dst = AppendTime(dst, e.ReceivedAt)
	dst = append(dst, '"')
	dst = appendField(dst, "node_id", e.NodeID)
	dst = appendField(dst, "event_type", e.EventType)
	dst = appendField(dst, "session_id", e.SessionID)
	dst = appendField(dst, "visitor_id", e.VisitorID)
	dst = appendField(dst, "site_id", e.SiteID)
	dst = append(dst, `,"timestamp":"`...)
	dst = AppendTime(dst, e.Timestamp)
	dst = append(dst, '"')
	dst = appendField(dst, "timestamp_raw", e.TimestampRaw)
	dst = appendField(dst, "timestamp_status", e.TimestampStatus)
	dst = appendField(dst, "url", e.URL)
	dst = appendField(dst, "path", e.Path)
	dst = appendField(dst, "referrer", e.Referrer)
	dst = appendField(dst, "ip_address", e.IPAddress)
	dst = appendField(dst, "user_agent", e.UserAgent)
	dst = appendField(dst, "origin", e.Origin)
	dst = append(dst, `,"raw":`...)
	if len(e.Raw) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, e.Raw...)
	}
	return append(dst, '}')
}

func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendJSONString(dst, value)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8 is
// replaced with U+FFFD so that the output is always valid JSON (and valid
// PostgreSQL text, which refuses invalid UTF-8). NUL and other control
// characters are escaped; PostgreSQL JSONB refuses \u0000, so callers that
// load into PostgreSQL must strip it from text columns (see SanitizeText).
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = PlainRun(s, i); i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript consumers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrBadRecord is wrapped by every DecodeRecord error.
var ErrBadRecord = errors.New("bad event record")

// Decoder decodes records. It reuses its parser between calls, so it is not
// safe for concurrent use; the zero value is ready.
type Decoder struct {
	p fastjson.Parser
}

// DecodeRecord decodes one WAL record into e. The strings and Raw in e do not
// alias data.
func (d *Decoder) DecodeRecord(data []byte, e *Event) error {
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	o, err := v.Object()
	if err != nil {
		return fmt.Errorf("%w: not an object", ErrBadRecord)
	}
	if ver := o.Get("v"); ver == nil || ver.GetInt() != RecordVersion {
		return fmt.Errorf("%w: unsupported record version", ErrBadRecord)
	}
	*e = Event{}
	var decodeErr error
	o.Visit(func(key []byte, val *fastjson.Value) {
		if decodeErr != nil {
			return
		}
		k := string(key)
		if k == "v" {
			return
		}
		if k == "raw" {
			if val.Type() != fastjson.TypeObject {
				decodeErr = fmt.Errorf("%w: raw is not an object", ErrBadRecord)
				return
			}
			e.Raw = val.MarshalTo(nil)
			// fastjson takes bytes JSON forbids (a raw control character in
			// a key, say) as they are: a record whose raw is not JSON is
			// refused here, not handed on to be written out broken.
			if !IsCompactRaw(e.Raw) && !json.Valid(e.Raw) {
				decodeErr = fmt.Errorf("%w: raw is not valid JSON", ErrBadRecord)
			}
			return
		}
		sb, err := val.StringBytes()
		if err != nil {
			decodeErr = fmt.Errorf("%w: field %q is not a string", ErrBadRecord, k)
			return
		}
		s := string(sb)
		switch k {
		case "event_id":
			e.EventID = s
		case "received_at":
			e.ReceivedAt, decodeErr = parseRecordTime(k, s)
		case "node_id":
			e.NodeID = s
		case "event_type":
			e.EventType = s
		case "session_id":
			e.SessionID = s
		case "visitor_id":
			e.VisitorID = s
		case "site_id":
			e.SiteID = s
		case "timestamp":
			e.Timestamp, decodeErr = parseRecordTime(k, s)
		case "timestamp_raw":
			e.TimestampRaw = s
		case "timestamp_status":
			e.TimestampStatus = s
		case "url":
			e.URL = s
		case "path":
			e.Path = s
		case "referrer":
			e.Referrer = s
		case "ip_address":
			e.IPAddress = s
		case "user_agent":
			e.UserAgent = s
		case "origin":
			e.Origin = s
		}
		// Unknown keys are ignored so that newer writers stay readable.
	})
	if decodeErr != nil {
		return decodeErr
	}
	if e.EventID == "" || e.ReceivedAt.IsZero() {
		return fmt.Errorf("%w: event_id and received_at are required", ErrBadRecord)
	}
	if e.Raw == nil {
		e.Raw = []byte("{}")
	}
	return nil
}

func parseRecordTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: field %s: %v", ErrBadRecord, field, err)
	}
	return t.UTC(), nil
}

// SanitizeText removes NUL characters, which PostgreSQL text and JSONB cannot
// hold, and replaces invalid UTF-8. It returns s itself when nothing changes.
func SanitizeText(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean || (utf8.ValidString(s) && !containsNUL(s)) {
		return s
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r == 0 {
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// FormatIndex formats a WAL index the way object keys and logs show it.
func FormatIndex(i uint64) string { return strconv.FormatUint(i, 10) }
