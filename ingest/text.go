package ingest

import (
	"unicode/utf8"
	"unsafe"

	"github.com/evothesis/collector/event"
)

// bytesAsString views b as a string without copying. The hot path builds an
// event.Event from strings that point into the request, the JSON parser and
// per-request buffers, encodes it into a WAL record, and drops it before any
// of those are reused; copying every field would be an allocation each.
// Callers must not keep the string beyond the request.
func bytesAsString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanHeader turns a header value into event text: NUL removed, invalid
// UTF-8 replaced (both would make the record unloadable into PostgreSQL),
// then capped at n bytes. Clean values are viewed in place.
func cleanHeader(b []byte, n int) string {
	s := bytesAsString(b)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			s = event.SanitizeText(s)
			break
		}
	}
	return truncateUTF8(s, n)
}
