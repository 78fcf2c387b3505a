package export

import (
	"time"

	"github.com/evothesis/collector/event"
)

// The encoders spend most of their time on a few text primitives; these are
// fast paths that produce exactly what the event package's versions produce
// (tests compare them), falling back to those for anything unusual.

// jsonPlainASCII marks bytes a JSON string holds unescaped and that need no
// UTF-8 or U+2028 handling.
var jsonPlainASCII [256]bool

func init() {
	for c := 0x20; c < 0x80; c++ {
		jsonPlainASCII[c] = c != '"' && c != '\\'
	}
}

// appendJSONString is event.AppendJSONString.
func appendJSONString(dst []byte, s string) []byte {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if hasNonPlainASCII(uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56) {
			return event.AppendJSONString(dst, s)
		}
	}
	for ; i < len(s); i++ {
		if !jsonPlainASCII[s[i]] {
			return event.AppendJSONString(dst, s)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendTime is RFC 3339 in UTC with six fractional digits, the same
// representation as in WAL records.
func appendTime(dst []byte, t time.Time) []byte { return event.AppendTime(dst, t) }
