package ingest

import (
	"strconv"
	"strings"
	"time"

	"github.com/evothesis/collector/event"
)

const (
	// minPlausibleUnix is 2000-01-01T00:00:00Z: no analytics event is older,
	// so anything before it is a broken clock or a unit mistake.
	minPlausibleUnix = 946684800
	// maxFutureSkew is how far ahead of our clock a client's clock may run.
	maxFutureSkew = 24 * time.Hour
	// maxTimestampRawBytes caps the unusable timestamp text kept in the record.
	maxTimestampRawBytes = 128
)

// resolveTimestamp sets e.Timestamp, TimestampRaw and TimestampStatus from
// the client's value (raw, "" when absent). numeric is true when the value
// was a JSON number. received is the receive time.
func resolveTimestamp(e *event.Event, raw string, numeric bool, received time.Time) {
	if raw == "" {
		e.Timestamp, e.TimestampStatus = received, event.TimestampMissing
		return
	}
	t, ok := parseClientTime(raw, numeric)
	switch {
	case !ok:
		e.Timestamp, e.TimestampStatus = received, event.TimestampUnparseable
		e.TimestampRaw = truncateUTF8(raw, maxTimestampRawBytes)
	case t.Unix() < minPlausibleUnix || t.After(received.Add(maxFutureSkew)):
		e.Timestamp, e.TimestampStatus = received, event.TimestampOutOfRange
		e.TimestampRaw = truncateUTF8(raw, maxTimestampRawBytes)
	default:
		e.Timestamp, e.TimestampStatus = t.Truncate(time.Microsecond), event.TimestampOK
	}
}

// parseClientTime reads the timestamp formats browsers and SDKs send:
// RFC 3339 / ISO 8601 (date-only, with "T", "t" or " " before the time,
// seconds and fraction optional, zone Z, ±hh:mm, ±hhmm, ±hh or none, meaning
// UTC), Unix time in seconds, milliseconds, microseconds or nanoseconds (told
// apart by magnitude, integer or fractional, as a number or a string), and
// the RFC 1123 and JavaScript Date.toString() forms. The result is UTC.
func parseClientTime(s string, numeric bool) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if numeric || looksNumeric(s) {
		return parseUnixNumber(s)
	}
	if t, ok := parseISO8601(s); ok {
		return t, true
	}
	return parseTextDate(s)
}

func looksNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9') && c != '.' && !(i == 0 && c == '-') {
			return false
		}
	}
	return true
}

// parseUnixNumber reads a Unix time whose unit follows from its magnitude:
// below 1e11 seconds (until year 5138), below 1e14 milliseconds, below 1e17
// microseconds, else nanoseconds. The ranges overlap only where one reading
// is absurd anyway (a millisecond value below 1e11 is before 1973).
func parseUnixNumber(s string) (time.Time, bool) {
	neg := false
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f >= 9e18 {
			return time.Time{}, false
		}
		whole := int64(f)
		frac := int64((f - float64(whole)) * 1e9)
		return unixFromParts(neg, whole, frac, 9)
	}
	intPart, fracPart := s, ""
	if dot := strings.IndexByte(s, '.'); dot >= 0 {
		intPart, fracPart = s[:dot], s[dot+1:]
		if fracPart == "" || strings.IndexByte(fracPart, '.') >= 0 {
			return time.Time{}, false
		}
	}
	if intPart == "" || len(intPart) > 19 {
		return time.Time{}, false
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if len(fracPart) > 9 {
		fracPart = fracPart[:9]
	}
	var frac int64
	for i := 0; i < len(fracPart); i++ {
		c := fracPart[i]
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
		frac = frac*10 + int64(c-'0')
	}
	return unixFromParts(neg, whole, frac, len(fracPart))
}

// unixFromParts builds a time from whole units and a fraction of fracDigits
// decimal digits, the unit chosen by magnitude (see parseUnixNumber).
func unixFromParts(neg bool, whole, frac int64, fracDigits int) (time.Time, bool) {
	var unitNanos int64
	switch {
	case whole < 1e11:
		unitNanos = 1e9
	case whole < 1e14:
		unitNanos = 1e6
	case whole < 1e17:
		unitNanos = 1e3
	default:
		unitNanos = 1
	}
	scale := int64(1)
	for range fracDigits {
		scale *= 10
	}
	// frac < 1e9 and unitNanos <= 1e9, so the product fits in an int64.
	fracNanos := frac * unitNanos / scale
	secs := whole / (1e9 / unitNanos)
	nanos := (whole%(1e9/unitNanos))*unitNanos + fracNanos
	if neg {
		secs, nanos = -secs, -nanos
	}
	return time.Unix(secs, nanos).UTC(), true
}

// parseISO8601 reads YYYY-MM-DD[(T|t| )hh:mm[:ss[(.|,)fraction]][zone]].
func parseISO8601(s string) (time.Time, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	year, ok1 := atoiN(s[0:4])
	month, ok2 := atoiN(s[5:7])
	day, ok3 := atoiN(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	rest := s[10:]
	var hour, minute, sec, nanos int
	var offset int // seconds east of UTC
	if rest != "" {
		if rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ' {
			return time.Time{}, false
		}
		rest = rest[1:]
		var ok bool
		if len(rest) < 5 || rest[2] != ':' {
			return time.Time{}, false
		}
		if hour, ok = atoiN(rest[0:2]); !ok || hour > 23 {
			return time.Time{}, false
		}
		if minute, ok = atoiN(rest[3:5]); !ok || minute > 59 {
			return time.Time{}, false
		}
		rest = rest[5:]
		if len(rest) >= 3 && rest[0] == ':' {
			if sec, ok = atoiN(rest[1:3]); !ok || sec > 59 {
				return time.Time{}, false
			}
			rest = rest[3:]
			if len(rest) >= 2 && (rest[0] == '.' || rest[0] == ',') {
				n := 1
				scale := 100_000_000
				for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
					nanos += int(rest[n]-'0') * scale
					scale /= 10
					n++
				}
				if n == 1 {
					return time.Time{}, false
				}
				rest = rest[n:]
			}
		}
		if offset, ok = parseZone(rest); !ok {
			return time.Time{}, false
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// parseZone reads "" (UTC), Z, z, ±hh, ±hhmm or ±hh:mm into seconds east.
func parseZone(z string) (int, bool) {
	switch {
	case z == "" || z == "Z" || z == "z":
		return 0, true
	case z[0] != '+' && z[0] != '-':
		return 0, false
	}
	sign := 1
	if z[0] == '-' {
		sign = -1
	}
	z = z[1:]
	var h, m int
	var ok bool
	switch len(z) {
	case 2:
		h, ok = atoiN(z)
	case 4:
		var okM bool
		h, ok = atoiN(z[:2])
		m, okM = atoiN(z[2:])
		ok = ok && okM
	case 5:
		var okM bool
		h, ok = atoiN(z[:2])
		m, okM = atoiN(z[3:])
		ok = ok && okM && z[2] == ':'
	}
	if !ok || h > 23 || m > 59 {
		return 0, false
	}
	return sign * (h*3600 + m*60), true
}

// parseTextDate reads RFC 1123 (Date.toUTCString) and Date.toString().
func parseTextDate(s string) (time.Time, bool) {
	// Date.toString(): "Sun Jun 22 2025 14:00:00 GMT+0200 (Central European Summer Time)"
	if i := strings.IndexByte(s, '('); i > 0 {
		s = strings.TrimSpace(s[:i])
	}
	for _, layout := range [...]string{time.RFC1123, time.RFC1123Z, "Mon Jan 02 2006 15:04:05 GMT-0700", time.RFC850} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func atoiN(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
