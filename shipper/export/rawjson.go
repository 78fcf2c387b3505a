package export

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/evothesis/collector/event"
)

// appendRaw appends an event's raw JSON as compact, strictly valid JSON on
// one line. Raw that keeps the raw-JSON guarantee (event.IsCompactRaw: what
// ingest writes) is copied as is. Rows may come from elsewhere (an older
// WAL; a PostgreSQL backfill prints JSONB with spaces), and one bad value
// must neither break a whole object nor be dropped: anything else is
// repaired, and what is not a JSON object is kept as a JSON string holding
// its text.
func appendRaw(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "{}"...)
	}
	if event.IsCompactRaw(raw) {
		return append(dst, raw...)
	}
	raw = validUTF8Bytes(raw)
	if out, ok := appendCompactObject(dst, raw); ok {
		return out
	}
	return event.AppendJSONString(dst, string(raw))
}

// maxRawDepth bounds nesting; deeper values are kept as a string.
const maxRawDepth = 512

// Byte classes for the scanner.
var (
	jsonSpace [256]bool // insignificant whitespace
	strPlain  [256]bool // copied as is inside a string
)

func init() {
	for _, c := range " \t\r\n" {
		jsonSpace[c] = true
	}
	for c := 0x20; c < 256; c++ {
		strPlain[c] = c != '"' && c != '\\'
	}
}

// compactor validates and compacts one JSON text by recursive descent: the
// position in the code is the parser state, which keeps branches
// predictable on the hot path.
type compactor struct {
	src   []byte
	dst   []byte
	i     int
	depth int
}

// appendCompactObject validates src as one JSON object (RFC 8259, except
// that raw control characters are accepted inside strings) and appends it
// without insignificant whitespace and with those control characters
// escaped, in a single pass: the WAL's JSON parser accepts them raw, and a
// raw newline would split an NDJSON line. src must be valid UTF-8. On
// failure it returns dst truncated to its original length and false.
func appendCompactObject(dst, src []byte) ([]byte, bool) {
	orig := len(dst)
	c := compactor{src: src, dst: dst}
	c.skipSpace()
	if c.i == len(src) || src[c.i] != '{' || !c.value() {
		return dst[:orig], false
	}
	c.skipSpace()
	if c.i != len(src) {
		return dst[:orig], false // trailing data
	}
	return c.dst, true
}

func (c *compactor) skipSpace() {
	for c.i < len(c.src) && c.src[c.i] <= ' ' && jsonSpace[c.src[c.i]] {
		c.i++
	}
}

// value copies one value starting at c.i (no leading space).
func (c *compactor) value() bool {
	if c.i >= len(c.src) {
		return false
	}
	var ok bool
	switch b := c.src[c.i]; {
	case b == '"':
		c.dst, c.i, ok = appendJSONStringToken(c.dst, c.src, c.i)
	case b == '{':
		ok = c.object()
	case b == '[':
		ok = c.array()
	case b == 't':
		c.dst, c.i, ok = appendLiteral(c.dst, c.src, c.i, "true")
	case b == 'f':
		c.dst, c.i, ok = appendLiteral(c.dst, c.src, c.i, "false")
	case b == 'n':
		c.dst, c.i, ok = appendLiteral(c.dst, c.src, c.i, "null")
	case b == '-' || b >= '0' && b <= '9':
		c.dst, c.i, ok = appendNumber(c.dst, c.src, c.i)
	}
	return ok
}

func (c *compactor) object() bool {
	if c.depth++; c.depth > maxRawDepth {
		return false
	}
	c.dst = append(c.dst, '{')
	c.i++
	c.skipSpace()
	if c.i < len(c.src) && c.src[c.i] == '}' {
		c.dst = append(c.dst, '}')
		c.i++
		c.depth--
		return true
	}
	for {
		if c.i >= len(c.src) || c.src[c.i] != '"' {
			return false
		}
		var ok bool
		if c.dst, c.i, ok = appendJSONStringToken(c.dst, c.src, c.i); !ok {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.src) || c.src[c.i] != ':' {
			return false
		}
		c.dst = append(c.dst, ':')
		c.i++
		c.skipSpace()
		if !c.value() {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.src) {
			return false
		}
		switch c.src[c.i] {
		case ',':
			c.dst = append(c.dst, ',')
			c.i++
			c.skipSpace()
		case '}':
			c.dst = append(c.dst, '}')
			c.i++
			c.depth--
			return true
		default:
			return false
		}
	}
}

func (c *compactor) array() bool {
	if c.depth++; c.depth > maxRawDepth {
		return false
	}
	c.dst = append(c.dst, '[')
	c.i++
	c.skipSpace()
	if c.i < len(c.src) && c.src[c.i] == ']' {
		c.dst = append(c.dst, ']')
		c.i++
		c.depth--
		return true
	}
	for {
		if !c.value() {
			return false
		}
		c.skipSpace()
		if c.i >= len(c.src) {
			return false
		}
		switch c.src[c.i] {
		case ',':
			c.dst = append(c.dst, ',')
			c.i++
			c.skipSpace()
		case ']':
			c.dst = append(c.dst, ']')
			c.i++
			c.depth--
			return true
		default:
			return false
		}
	}
}

// appendJSONStringToken copies the string starting at src[i] == '"'.
func appendJSONStringToken(dst, src []byte, i int) ([]byte, int, bool) {
	n := len(src)
	start := i
	i++
	for {
		if i = nextStringSpecial(src, i); i == n {
			return dst, i, false
		}
		switch c := src[i]; {
		case c == '"':
			i++
			return append(dst, src[start:i]...), i, true
		case c == '\\':
			if i+1 >= n {
				return dst, i, false
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > n || !isHex4(src[i+2:i+6]) {
					return dst, i, false
				}
				i += 6
			default:
				return dst, i, false
			}
		default: // a raw control character
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			i++
			start = i
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func appendLiteral(dst, src []byte, i int, lit string) ([]byte, int, bool) {
	if !bytes.HasPrefix(src[i:], []byte(lit)) {
		return dst, i, false
	}
	return append(dst, lit...), i + len(lit), true
}

// appendNumber copies the number at src[i].
func appendNumber(dst, src []byte, i int) ([]byte, int, bool) {
	end, ok := event.ScanJSONNumber(src, i)
	if !ok {
		return dst, i, false
	}
	return append(dst, src[i:end]...), end, true
}

const hexDigits = "0123456789abcdef"

// SWAR constants: each byte of a uint64 checked at once.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stringSpecialMask has the high bit of a byte set for bytes of x (little
// endian) that are '"', '\\' or a control character: the bytes a string scan
// stops at. Bytes above the first such byte may be flagged falsely (borrows),
// but the lowest flagged byte is always exact.
func stringSpecialMask(x uint64) uint64 {
	q := x ^ (lsbs * '"')
	b := x ^ (lsbs * '\\')
	return ((x-lsbs*0x20)&^x | (q-lsbs)&^q | (b-lsbs)&^b) & msbs
}

func hasStringSpecial(x uint64) bool { return stringSpecialMask(x) != 0 }

// nextStringSpecial returns the index of the first byte at or after i that
// stringSpecialMask flags, or len(src).
func nextStringSpecial(src []byte, i int) int {
	n := len(src)
	for ; i+8 <= n; i += 8 {
		if m := stringSpecialMask(binary.LittleEndian.Uint64(src[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < n && strPlain[src[i]] {
		i++
	}
	return i
}

// hasNonPlainASCII is hasStringSpecial, also true for any byte >= 0x80.
func hasNonPlainASCII(x uint64) bool {
	return x&msbs != 0 || hasStringSpecial(x)
}
