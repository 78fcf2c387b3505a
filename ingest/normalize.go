package ingest

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/evothesis/collector/event"
)

// Field caps, in bytes. Identifying fields over their cap are refused, since
// cutting an id would silently merge different sessions or visitors;
// descriptive fields are cut (at a character boundary). The raw event keeps
// everything the client sent either way.
const (
	maxEventTypeBytes = 128
	maxSiteIDBytes    = 128
	maxIDBytes        = 256 // sessionId, visitorId
	maxURLBytes       = 8192
	maxPathBytes      = 4096
	maxReferrerBytes  = 8192
	maxUserAgentBytes = 1024
	maxOriginBytes    = 512
)

// fieldError is why one event was refused; the zero value means none.
type fieldError struct {
	field   string // the client's field name, e.g. "siteId"
	message string
}

// requestInfo is what every event of one request shares.
type requestInfo struct {
	received  time.Time // UTC, µs
	ip        string
	userAgent string
	origin    string
	referer   string // the Referer header: the referrer when the event has none
	nodeID    string
}

// eventMembers are the places, in one canonical event object, of the
// top-level members normalize reads: the span of each value, or the zero
// span when the member is absent (a value never starts at 0, where the
// object's '{' is). The first occurrence of a repeated key wins.
type eventMembers struct {
	eventType, siteID, sessionID, visitorID span
	url, path, referrer, timestamp          span
}

// eventSpan is one event of a request: its object in canon and, unless scan
// is set, the spans canonicalJSONSpans recorded inside it (its members are
// those of level+1).
type eventSpan struct {
	val     span
	members []valueSpan
	level   uint8
	scan    bool // no spans recorded (an object built from query parameters): walk it
}

// appendEvents appends the events of level among spans, each with the spans
// that follow it up to the next event.
func appendEvents(dst []eventSpan, spans []valueSpan, level uint8) []eventSpan {
	for i := 0; i < len(spans); {
		if spans[i].level != level {
			i++
			continue
		}
		next := nextAtLevel(spans, i+1, level)
		dst = append(dst, eventSpan{val: spans[i].val, members: spans[i+1 : next], level: level})
		i = next
	}
	return dst
}

// nextAtLevel returns the index of the first span from i on at level or
// above it (a smaller level), or len(spans).
func nextAtLevel(spans []valueSpan, i int, level uint8) int {
	for ; i < len(spans); i++ {
		if spans[i].level <= level {
			return i
		}
	}
	return len(spans)
}

// topMember returns the index in spans of the first top-level member named
// key.
func topMember(canon []byte, spans []valueSpan, key string) (int, bool) {
	for i := range spans {
		if v := &spans[i]; v.level == 1 && string(canon[v.key.start+1:v.key.end-1]) == key {
			return i, true
		}
	}
	return 0, false
}

// membersOf finds the members normalize reads in the event object ev.
func membersOf(canon []byte, ev eventSpan) (m eventMembers) {
	if ev.scan {
		return findEventMembers(canon[:ev.val.end], ev.val.start)
	}
	for i := range ev.members {
		v := &ev.members[i]
		if v.level != ev.level+1 || v.key.end-v.key.start < 2 {
			continue
		}
		if dst := m.named(canon[v.key.start+1 : v.key.end-1]); dst != nil && dst.start == 0 {
			*dst = v.val
		}
	}
	return m
}

// named returns the span for the member key, or nil when normalize does not
// read it.
func (m *eventMembers) named(key []byte) *span {
	switch string(key) {
	case "eventType":
		return &m.eventType
	case "siteId":
		return &m.siteID
	case "sessionId":
		return &m.sessionID
	case "visitorId":
		return &m.visitorID
	case "url":
		return &m.url
	case "path":
		return &m.path
	case "referrer":
		return &m.referrer
	case "timestamp":
		return &m.timestamp
	}
	return nil
}

// findEventMembers walks the members of the canonical object at b[start:]
// once, for objects canonicalJSONSpans did not record. Canonical keys are minimally escaped, so comparing their bytes is
// exact ("\u0065ventType" arrives here as "eventType").
func findEventMembers(b []byte, start int) (m eventMembers) {
	if len(b)-start < 2 || b[start] != '{' || b[start+1] == '}' {
		return m
	}
	for i := start + 1; i < len(b) && b[i] == '"'; {
		keyEnd := skipString(b, i)
		valueStart := keyEnd + 1 // past ':'
		if valueStart >= len(b) {
			return m
		}
		valueEnd := skipValue(b, valueStart)
		if dst := m.named(b[i+1 : keyEnd-1]); dst != nil && dst.start == 0 {
			*dst = span{valueStart, valueEnd}
		}
		if valueEnd >= len(b) || b[valueEnd] != ',' {
			break
		}
		i = valueEnd + 1
	}
	return m
}

// normalize fills e from the members m of one canonical event object (spans
// in obj) and the request. It leaves EventID and Raw to the caller. Strings
// in e point into obj and st.scratch.
func (st *reqState) normalize(obj []byte, m eventMembers, e *event.Event, info *requestInfo) fieldError {
	*e = event.Event{ReceivedAt: info.received, NodeID: info.nodeID, IPAddress: info.ip, UserAgent: info.userAgent, Origin: info.origin}

	eventType, fe := st.textField(obj, m.eventType, "eventType")
	if fe.message != "" {
		return fe
	}
	eventType = strings.TrimSpace(eventType)
	switch {
	case eventType == "":
		return fieldError{"eventType", "eventType is required"}
	case len(eventType) > maxEventTypeBytes:
		return fieldError{"eventType", "eventType is longer than 128 bytes"}
	case hasControlChars(eventType):
		return fieldError{"eventType", "eventType contains control characters"}
	}
	e.EventType = eventType

	siteID, fe := st.textField(obj, m.siteID, "siteId")
	if fe.message != "" {
		return fe
	}
	if siteID == "" {
		return fieldError{"siteId", "siteId is required"}
	}
	if !validSiteID(siteID) {
		return fieldError{"siteId", "siteId must be 1-128 characters from A-Z a-z 0-9 . _ - (and not . or ..)"}
	}
	e.SiteID = siteID

	if e.SessionID, fe = st.textField(obj, m.sessionID, "sessionId"); fe.message != "" {
		return fe
	}
	if len(e.SessionID) > maxIDBytes {
		return fieldError{"sessionId", "sessionId is longer than 256 bytes"}
	}
	if e.VisitorID, fe = st.textField(obj, m.visitorID, "visitorId"); fe.message != "" {
		return fe
	}
	if len(e.VisitorID) > maxIDBytes {
		return fieldError{"visitorId", "visitorId is longer than 256 bytes"}
	}

	if e.URL, fe = st.textField(obj, m.url, "url"); fe.message != "" {
		return fe
	}
	if e.Path, fe = st.textField(obj, m.path, "path"); fe.message != "" {
		return fe
	}
	if e.Path == "" {
		e.Path = pathOfURL(e.URL)
	}
	e.URL = truncateUTF8(e.URL, maxURLBytes)
	e.Path = truncateUTF8(e.Path, maxPathBytes)
	if e.Referrer, fe = st.textField(obj, m.referrer, "referrer"); fe.message != "" {
		return fe
	}
	if e.Referrer == "" {
		e.Referrer = info.referer
	}
	e.Referrer = truncateUTF8(e.Referrer, maxReferrerBytes)

	ts, numeric := st.timestampField(obj, m.timestamp)
	resolveTimestamp(e, ts, numeric, info.received)
	return fieldError{}
}

// timestampField returns the client's timestamp as text. A value of the
// wrong type is not worth losing the event over: its JSON text is kept and
// fails to parse, so the event is flagged instead.
func (st *reqState) timestampField(obj []byte, v span) (s string, numeric bool) {
	if v.start == 0 {
		return "", false
	}
	switch c := obj[v.start]; {
	case c == '"':
		return st.stringValue(obj[v.start:v.end]), false
	case c == 'n':
		return "", false
	case c == '-' || ('0' <= c && c <= '9'):
		return bytesAsString(obj[v.start:v.end]), true
	}
	return bytesAsString(obj[v.start:v.end]), false
}

// textField reads a string member. Numbers are taken as their JSON text
// (numeric ids are common); null and absence give "". Other types are refused.
func (st *reqState) textField(obj []byte, v span, name string) (string, fieldError) {
	if v.start == 0 {
		return "", fieldError{}
	}
	switch c := obj[v.start]; {
	case c == '"':
		return st.stringValue(obj[v.start:v.end]), fieldError{}
	case c == '-' || ('0' <= c && c <= '9'):
		return bytesAsString(obj[v.start:v.end]), fieldError{}
	case c == 'n':
		return "", fieldError{}
	}
	return "", fieldError{name, name + " must be a string"}
}

// stringValue decodes the canonical JSON string literal lit. Most strings
// hold no escape and are returned in place; the others are decoded into
// st.scratch. Canonical strings escape only '"', '\\', control characters
// and U+2028/U+2029, and never hold a surrogate escape (canonicalJSONSpans
// decodes pairs and replaces lone halves).
func (st *reqState) stringValue(lit []byte) string {
	inner := lit[1 : len(lit)-1]
	i := bytes.IndexByte(inner, '\\')
	if i < 0 {
		return bytesAsString(inner)
	}
	start := len(st.scratch)
	b := append(st.scratch, inner[:i]...)
	for i < len(inner) {
		c := inner[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(inner) {
			break // cannot happen in a canonical string
		}
		switch e := inner[i+1]; e {
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'u':
			r, ok := hex4(inner, i+2)
			if !ok {
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			b = append(b, e)
		}
		i += 2
	}
	st.scratch = b
	return bytesAsString(b[start:])
}

// validSiteID: site ids become part of S3 object keys and export paths.
func validSiteID(s string) bool {
	if len(s) == 0 || len(s) > maxSiteIDBytes || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func hasControlChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// pathOfURL returns the path of an absolute URL ("/" when it has none), or ""
// when u is not absolute.
func pathOfURL(u string) string {
	scheme := strings.Index(u, "://")
	if scheme <= 0 {
		return ""
	}
	rest := u[scheme+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 || rest[end] != '/' {
		return "/"
	}
	p := rest[end:]
	if q := strings.IndexAny(p, "?#"); q >= 0 {
		p = p[:q]
	}
	return p
}
