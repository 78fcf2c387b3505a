package event

import (
	"math/bits"
	"unicode/utf8"
)

// The raw-JSON guarantee.
//
// Ingest is the only writer of WAL records, and it canonicalizes every raw
// event before appending it (ingest/canonical.go), so Event.Raw in a record
// it wrote is:
//
//   - exactly one JSON object, strictly valid per RFC 8259;
//   - compact: no insignificant whitespace, so it is one line;
//   - valid UTF-8, with every control character inside strings escaped;
//   - free of the escapes PostgreSQL jsonb refuses: no \u0000 and no lone
//     UTF-16 surrogate;
//   - nested at most MaxRawDepth levels.
//
// (Ingest also writes strings minimally escaped and escapes U+2028/U+2029;
// no reader depends on that, so it is not part of what IsCompactRaw checks.)
//
// Readers (the shipper's exports, the loader's COPY) may copy such bytes
// as they are into NDJSON, JSON, CSV, Parquet or a jsonb column. They must
// not assume it blindly: a WAL written by an older version, or copied from
// elsewhere, may hold raw that breaks it. IsCompactRaw checks the whole
// guarantee in one pass over the bytes, without allocating; a reader copies
// raw when it says true and repairs it (validates, compacts, re-escapes)
// otherwise.

// MaxRawDepth is the deepest nesting of objects and arrays raw may hold; it
// is ingest's limit on request bodies.
const MaxRawDepth = 64

// IsCompactRaw reports whether raw keeps the raw-JSON guarantee above.
func IsCompactRaw(raw []byte) bool {
	n := len(raw)
	if n < 2 || raw[0] != '{' {
		return false
	}
	i, depth := 0, 0
	var arrays uint64 // bit depth-1: the container at that depth is an array
	var c byte
	// The parser state is the position in the code: it keeps branches
	// predictable on the hot path.
value:
	if i >= n {
		return false
	}
	c = raw[i]
	switch {
	case c == '"':
		var ok bool
		if i, ok = rawString(raw, i); !ok {
			return false
		}
		goto afterValue
	case c == '{' || c == '[':
		if depth == MaxRawDepth {
			return false
		}
		depth++
		i++
		if c == '[' {
			arrays |= 1 << (depth - 1)
			if i < n && raw[i] == ']' {
				i++
				depth--
				goto afterValue
			}
			goto value
		}
		arrays &^= 1 << (depth - 1)
		if i < n && raw[i] == '}' {
			i++
			depth--
			goto afterValue
		}
		goto key
	case c == 't':
		if !hasLiteral(raw, i, "true") {
			return false
		}
		i += 4
		goto afterValue
	case c == 'f':
		if !hasLiteral(raw, i, "false") {
			return false
		}
		i += 5
		goto afterValue
	case c == 'n':
		if !hasLiteral(raw, i, "null") {
			return false
		}
		i += 4
		goto afterValue
	case c == '-' || c >= '0' && c <= '9':
		var ok bool
		if i, ok = ScanJSONNumber(raw, i); !ok {
			return false
		}
		goto afterValue
	}
	return false
key:
	if i >= n || raw[i] != '"' {
		return false
	}
	{
		var ok bool
		if i, ok = rawString(raw, i); !ok {
			return false
		}
	}
	if i >= n || raw[i] != ':' {
		return false
	}
	i++
	goto value
afterValue:
	if depth == 0 {
		return i == n
	}
	if i >= n {
		return false
	}
	c = raw[i]
	i++
	inArray := arrays&(1<<(depth-1)) != 0
	switch {
	case c == ',':
		if inArray {
			goto value
		}
		goto key
	case c == '}' && !inArray, c == ']' && inArray:
		depth--
		goto afterValue
	}
	return false
}

func hasLiteral(raw []byte, i int, lit string) bool {
	return len(raw)-i >= len(lit) && string(raw[i:i+len(lit)]) == lit
}

// ScanJSONNumber returns the end of the JSON number
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? starting at raw[i], and
// false when raw[i:] does not start with one.
func ScanJSONNumber(raw []byte, i int) (int, bool) {
	n := len(raw)
	if raw[i] == '-' {
		i++
	}
	switch {
	case i < n && raw[i] == '0':
		i++
	case i < n && raw[i] >= '1' && raw[i] <= '9':
		i = skipDigits(raw, i+1)
	default:
		return i, false
	}
	if i < n && raw[i] == '.' {
		j := skipDigits(raw, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < n && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < n && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		j := skipDigits(raw, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

func skipDigits(raw []byte, i int) int {
	for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
		i++
	}
	return i
}

// rawPlain marks the bytes a string holds as they are, with nothing to check.
var rawPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// PlainRun returns the index of the first byte of s at or after i that a
// JSON string cannot hold as it is (a quote, a backslash, a control
// character or a non-ASCII byte), or len(s): the run a JSON writer or
// checker can copy or skip in one go.
func PlainRun[T ~string | ~[]byte](s T, i int) int {
	n := len(s)
	// Eight bytes at a time while eight remain: URLs, user agents and ids
	// are long runs, where this takes ~3 instructions a byte against the
	// table's ~5, and the word where the run ends gives the byte's place
	// at once (the canonical pass and the record encoder each walk every
	// string, and most strings end in such a word).
	for i+8 <= n {
		b := s[i : i+8] // one bounds check; the compiler merges the loads
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if m := nonPlainBytes(w); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	// A table, unrolled by four, for the last few bytes.
	for i+4 <= n && rawPlain[s[i]] && rawPlain[s[i+1]] && rawPlain[s[i+2]] && rawPlain[s[i+3]] {
		i += 4
	}
	for i < n && rawPlain[s[i]] {
		i++
	}
	return i
}

// nonPlainBytes returns, for the eight bytes of w (the first in the low
// byte), a mask whose lowest set bit is the high bit of the first byte that
// is not plain (see rawPlain): below 0x20, from 0x80, '"' or '\\'; zero when
// all eight are plain. Bits above the lowest may be spurious.
//
// The w term flags bytes from 0x80 exactly. Below the first of those, x -
// k*ones sets the high bit of the first byte of x below k and of no byte
// before it (the "has a byte less than" bit trick: a borrow only carries
// upwards, from a byte that is below k); '"' and '\\' are bytes below 1 once
// xored away.
func nonPlainBytes(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	return (w | (w - 0x20*ones) | ((w ^ '"'*ones) - ones) | ((w ^ '\\'*ones) - ones)) & highs
}

// rawString checks the string at raw[i] == '"' and returns the index after
// its closing quote.
func rawString(raw []byte, i int) (int, bool) {
	n := len(raw)
	i++
	for {
		if i = PlainRun(raw, i); i >= n {
			return i, false
		}
		switch c := raw[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			var ok bool
			if i, ok = rawEscape(raw, i); !ok {
				return i, false
			}
		case c < 0x20:
			return i, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		default:
			i++
		}
	}
}

// rawEscape checks the escape at raw[i] == '\\' and returns the index after it.
func rawEscape(raw []byte, i int) (int, bool) {
	if i+1 >= len(raw) {
		return i, false
	}
	switch raw[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, true
	case 'u':
		r, ok := hex4(raw, i+2)
		switch {
		case !ok || r == 0 || r >= 0xdc00 && r <= 0xdfff:
			return i, false
		case r >= 0xd800 && r <= 0xdbff:
			// A high surrogate must be followed by a low one.
			if i+7 >= len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return i, false
			}
			lo, ok := hex4(raw, i+8)
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return i, false
			}
			return i + 12, true
		}
		return i + 6, true
	}
	return i, false
}

func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
