package ingest

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

// maxJSONDepth bounds nesting in request bodies. Real events nest a few
// levels; the bound keeps hostile bodies ("[[[[...") from costing more than a
// linear scan, and stays far below fastjson's own limit (300).
const maxJSONDepth = 64

// jsonSyntaxError is a malformed body, with the byte offset where it breaks.
type jsonSyntaxError struct {
	offset int
	msg    string
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.offset, e.msg)
}

func syntaxErr(offset int, msg string) error { return &jsonSyntaxError{offset: offset, msg: msg} }

// valueSpan is where a value near the top of canonicalJSONSpans' output sits:
// level 1 is a member or element of the top-level value, level 2 one inside
// those, and so on up to maxSpanLevel. key is the member's key literal,
// quotes included, when the enclosing value is an object (else zero).
type valueSpan struct {
	level uint8
	key   span
	val   span
}

// maxSpanLevel is as deep as an event's members sit: {"events": [{...}]}.
const maxSpanLevel = 3

// canonicalJSONSpans validates src as one JSON value (RFC 8259, strictly) and
// appends a canonical copy to dst:
//   - insignificant whitespace removed, so a record stays on one line;
//   - strings re-encoded minimally (only '"', '\\' and control characters
//     escaped, plus U+2028/U+2029 for JavaScript readers), which also makes
//     key comparison on the bytes exact;
//   - things PostgreSQL jsonb refuses repaired instead of refused, because a
//     browser cannot fix them: invalid UTF-8 and lone UTF-16 surrogate escapes
//     become U+FFFD, and NUL (\u0000) is dropped.
//
// Numbers are kept exactly as sent. It runs in one pass without recursion
// and allocates nothing unless dst must grow or src is malformed.
//
// With record set it also appends to spans, in order, the place of every
// value of level 1 to maxSpanLevel, so that finding a batch's events and
// each event's members needs no second walk.
func canonicalJSONSpans(dst []byte, spans []valueSpan, src []byte, record bool) ([]byte, []valueSpan, error) {
	var open [maxSpanLevel + 1]int // spans index of the open container at each level
	var key span                   // the key of the member whose value comes next
	const (
		wantValue = iota
		wantValueOrClose
		wantKeyOrClose
		wantKey
		wantColon
		wantCommaOrClose
	)
	var stack [maxJSONDepth]byte
	depth := 0
	state := wantValue
	i := 0
	var err error
	for {
		// Every JSON space is <= ' ', so one comparison settles the common
		// case (compact JSON: a token follows at once).
		for i < len(src) && src[i] <= ' ' && isJSONSpace(src[i]) {
			i++
		}
		if i >= len(src) {
			break
		}
		c := src[i]
		switch state {
		case wantValueOrClose:
			if c == ']' {
				depth--
				dst = append(dst, ']')
				if record && depth >= 1 && depth <= maxSpanLevel {
					spans[open[depth]].val.end = len(dst)
				}
				i++
				state = wantCommaOrClose
				continue
			}
			fallthrough
		case wantValue:
			recorded := record && depth >= 1 && depth <= maxSpanLevel
			if recorded {
				spans = append(spans, valueSpan{level: uint8(depth), key: key, val: span{start: len(dst)}})
				key = span{}
			}
			switch {
			case c == '{' || c == '[':
				if depth == maxJSONDepth {
					return dst, spans, syntaxErr(i, fmt.Sprintf("nested deeper than %d levels", maxJSONDepth))
				}
				if recorded {
					open[depth] = len(spans) - 1
				}
				stack[depth] = c
				depth++
				dst = append(dst, c)
				i++
				if c == '{' {
					state = wantKeyOrClose
				} else {
					state = wantValueOrClose
				}
				continue
			case c == '"':
				if dst, i, err = appendCanonicalString(dst, src, i); err != nil {
					return dst, spans, err
				}
			case c == 't':
				if dst, i, err = appendLiteral(dst, src, i, "true"); err != nil {
					return dst, spans, err
				}
			case c == 'f':
				if dst, i, err = appendLiteral(dst, src, i, "false"); err != nil {
					return dst, spans, err
				}
			case c == 'n':
				if dst, i, err = appendLiteral(dst, src, i, "null"); err != nil {
					return dst, spans, err
				}
			case c == '-' || ('0' <= c && c <= '9'):
				end, err := scanNumber(src, i)
				if err != nil {
					return dst, spans, err
				}
				dst = append(dst, src[i:end]...)
				i = end
			default:
				return dst, spans, syntaxErr(i, fmt.Sprintf("unexpected %q where a value was expected", rune(c)))
			}
			if recorded {
				spans[len(spans)-1].val.end = len(dst)
			}
			state = wantCommaOrClose
			// Compact JSON puts the comma right after the value: take it
			// here rather than in a trip round the loop, whose head reloads
			// every variable the loop keeps (on compact events those reloads
			// were ~45% of the pass's own instructions).
			if i < len(src) && src[i] == ',' && depth > 0 {
				dst = append(dst, ',')
				i++
				state = wantValue
				if stack[depth-1] == '{' {
					state = wantKey
					// And the next member's key and colon, as in wantKey: one
					// trip round the loop per scalar member instead of four.
					if i < len(src) && src[i] == '"' {
						keyStart := len(dst)
						if dst, i, err = appendCanonicalString(dst, src, i); err != nil {
							return dst, spans, err
						}
						if record && depth <= maxSpanLevel {
							key = span{keyStart, len(dst)}
						}
						state = wantColon
						if i < len(src) && src[i] == ':' {
							dst = append(dst, ':')
							i++
							state = wantValue
						}
					}
				}
			}
		case wantKeyOrClose:
			if c == '}' {
				depth--
				dst = append(dst, '}')
				if record && depth >= 1 && depth <= maxSpanLevel {
					spans[open[depth]].val.end = len(dst)
				}
				i++
				state = wantCommaOrClose
				continue
			}
			fallthrough
		case wantKey:
			if c != '"' {
				return dst, spans, syntaxErr(i, "expected a string object key")
			}
			keyStart := len(dst)
			if dst, i, err = appendCanonicalString(dst, src, i); err != nil {
				return dst, spans, err
			}
			if record && depth <= maxSpanLevel {
				key = span{keyStart, len(dst)}
			}
			state = wantColon
			if i < len(src) && src[i] == ':' { // compact JSON, as above
				dst = append(dst, ':')
				i++
				state = wantValue
			}
		case wantColon:
			if c != ':' {
				return dst, spans, syntaxErr(i, "expected ':' after an object key")
			}
			dst = append(dst, ':')
			i++
			state = wantValue
		case wantCommaOrClose:
			if depth == 0 {
				return dst, spans, syntaxErr(i, "unexpected data after the JSON value")
			}
			top := stack[depth-1]
			switch {
			case c == ',':
				dst = append(dst, ',')
				i++
				if top == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case (c == '}' && top == '{') || (c == ']' && top == '['):
				depth--
				dst = append(dst, c)
				if record && depth >= 1 && depth <= maxSpanLevel {
					spans[open[depth]].val.end = len(dst)
				}
				i++
			default:
				return dst, spans, syntaxErr(i, "expected ',' or a closing bracket")
			}
		}
	}
	if state != wantCommaOrClose || depth != 0 {
		if len(src) == 0 || (state == wantValue && depth == 0) {
			return dst, spans, syntaxErr(len(src), "empty body")
		}
		return dst, spans, syntaxErr(len(src), "unexpected end of JSON")
	}
	return dst, spans, nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func appendLiteral(dst, src []byte, i int, lit string) ([]byte, int, error) {
	if len(src)-i < len(lit) || string(src[i:i+len(lit)]) != lit {
		return dst, i, syntaxErr(i, "invalid literal (want true, false or null)")
	}
	return append(dst, lit...), i + len(lit), nil
}

// scanNumber returns the end of the JSON number starting at src[i].
func scanNumber(src []byte, i int) (int, error) {
	start := i
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && '1' <= src[i] && src[i] <= '9':
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
	default:
		return i, syntaxErr(start, "invalid number")
	}
	if i < len(src) && src[i] == '.' {
		i++
		digits := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		if i == digits {
			return i, syntaxErr(start, "invalid number: no digits after '.'")
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		digits := i
		for i < len(src) && '0' <= src[i] && src[i] <= '9' {
			i++
		}
		if i == digits {
			return i, syntaxErr(start, "invalid number: no digits in exponent")
		}
	}
	return i, nil
}

// appendCanonicalString appends the canonical form of the JSON string that
// starts at src[i] (a '"') and returns the index after its closing quote.
func appendCanonicalString(dst, src []byte, i int) ([]byte, int, error) {
	open := i
	dst = append(dst, '"')
	i++
	start := i
	for i < len(src) {
		// The common case first: a run of bytes copied unchanged.
		if i = event.PlainRun(src, i); i >= len(src) {
			break
		}
		c := src[i]
		switch {
		case c == '"':
			dst = append(dst, src[start:i]...)
			return append(dst, '"'), i + 1, nil
		case c == '\\':
			dst = append(dst, src[start:i]...)
			if i+1 >= len(src) {
				return dst, i, syntaxErr(open, "unterminated string")
			}
			switch e := src[i+1]; e {
			case '"', '\\':
				dst = append(dst, '\\', e)
				i += 2
			case '/':
				dst = append(dst, '/')
				i += 2
			case 'b':
				dst = appendCanonicalRune(dst, '\b')
				i += 2
			case 'f':
				dst = appendCanonicalRune(dst, '\f')
				i += 2
			case 'n':
				dst = append(dst, '\\', 'n')
				i += 2
			case 'r':
				dst = append(dst, '\\', 'r')
				i += 2
			case 't':
				dst = append(dst, '\\', 't')
				i += 2
			case 'u':
				r, ok := hex4(src, i+2)
				if !ok {
					return dst, i, syntaxErr(i, `invalid \u escape`)
				}
				i += 6
				if utf16.IsSurrogate(r) {
					low, ok := rune(0), false
					if r < 0xDC00 && i+1 < len(src) && src[i] == '\\' && src[i+1] == 'u' {
						low, ok = hex4(src, i+2)
						ok = ok && 0xDC00 <= low && low < 0xE000
					}
					if ok {
						r = utf16.DecodeRune(r, low)
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = appendCanonicalRune(dst, r)
			default:
				return dst, i, syntaxErr(i, fmt.Sprintf("invalid escape \\%c", rune(e)))
			}
			start = i
		case c < 0x20:
			return dst, i, syntaxErr(i, "control character in string (must be escaped)")
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, src[start:i]...)
				dst = utf8.AppendRune(dst, utf8.RuneError)
				i++
				start = i
				continue
			}
			if r == '\u2028' || r == '\u2029' {
				dst = append(dst, src[start:i]...)
				dst = appendCanonicalRune(dst, r)
				i += size
				start = i
				continue
			}
			i += size
		}
	}
	return dst, i, syntaxErr(open, "unterminated string")
}

func hex4(src []byte, i int) (rune, bool) {
	if len(src)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range src[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendCanonicalRune appends r as it appears inside a canonical JSON string.
func appendCanonicalRune(dst []byte, r rune) []byte {
	switch {
	case r == 0:
		return dst // jsonb cannot hold NUL; see canonicalJSONSpans
	case r == '"' || r == '\\':
		return append(dst, '\\', byte(r))
	case r == '\n':
		return append(dst, '\\', 'n')
	case r == '\r':
		return append(dst, '\\', 'r')
	case r == '\t':
		return append(dst, '\\', 't')
	case r < 0x20:
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	case r == '\u2028' || r == '\u2029':
		return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
	}
	return utf8.AppendRune(dst, r)
}

// appendCanonicalText appends s, text that is not JSON (a decoded query
// parameter, say), as a canonical JSON string.
func appendCanonicalText(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			dst = appendCanonicalRune(dst, rune(c))
			i++
		} else {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = appendCanonicalRune(dst, r)
			}
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The helpers below walk canonical JSON (canonicalJSONSpans output): compact and
// known to be valid, so they only need to find boundaries.

// skipString returns the index after the string starting at b[i].
func skipString(b []byte, i int) int {
	// Jump from quote to quote (IndexByte is vectorized): a quote ends the
	// string unless an odd run of backslashes precedes it.
	for i++; i < len(b); {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		escapes := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			escapes++
		}
		if escapes%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default:
		for i < len(b) && b[i] != ',' && b[i] != ']' && b[i] != '}' {
			i++
		}
		return i
	}
}

// span is a byte range [start, end).
type span struct{ start, end int }
