package ingest

import (
	"strings"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fastjson"
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

// normalize fills e from the event object o (canonical JSON, so strings are
// valid UTF-8 without NUL) and the request. It leaves EventID and Raw to the
// caller. Strings in e point into the parser and st.scratch.
func (st *reqState) normalize(o *fastjson.Object, e *event.Event, info *requestInfo) fieldError {
	*e = event.Event{ReceivedAt: info.received, NodeID: info.nodeID, IPAddress: info.ip, UserAgent: info.userAgent, Origin: info.origin}

	eventType, _, fe := st.textField(o, "eventType")
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

	siteID, _, fe := st.textField(o, "siteId")
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

	if e.SessionID, _, fe = st.textField(o, "sessionId"); fe.message != "" {
		return fe
	}
	if len(e.SessionID) > maxIDBytes {
		return fieldError{"sessionId", "sessionId is longer than 256 bytes"}
	}
	if e.VisitorID, _, fe = st.textField(o, "visitorId"); fe.message != "" {
		return fe
	}
	if len(e.VisitorID) > maxIDBytes {
		return fieldError{"visitorId", "visitorId is longer than 256 bytes"}
	}

	if e.URL, _, fe = st.textField(o, "url"); fe.message != "" {
		return fe
	}
	if e.Path, _, fe = st.textField(o, "path"); fe.message != "" {
		return fe
	}
	if e.Path == "" {
		e.Path = pathOfURL(e.URL)
	}
	e.URL = truncateUTF8(e.URL, maxURLBytes)
	e.Path = truncateUTF8(e.Path, maxPathBytes)
	if e.Referrer, _, fe = st.textField(o, "referrer"); fe.message != "" {
		return fe
	}
	if e.Referrer == "" {
		e.Referrer = info.referer
	}
	e.Referrer = truncateUTF8(e.Referrer, maxReferrerBytes)

	ts, numeric := st.timestampField(o)
	resolveTimestamp(e, ts, numeric, info.received)
	return fieldError{}
}

// timestampField returns the client's timestamp as text. A value of the
// wrong type is not worth losing the event over: its JSON text is kept and
// fails to parse, so the event is flagged instead.
func (st *reqState) timestampField(o *fastjson.Object) (s string, numeric bool) {
	v := o.Get("timestamp")
	if v == nil {
		return "", false
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return bytesAsString(b), false
	case fastjson.TypeNull:
		return "", false
	}
	start := len(st.scratch)
	st.scratch = v.MarshalTo(st.scratch)
	return bytesAsString(st.scratch[start:]), v.Type() == fastjson.TypeNumber
}

// textField reads a string field. Numbers are taken as their JSON text
// (numeric ids are common); null and absence give "". Other types are refused.
func (st *reqState) textField(o *fastjson.Object, name string) (s string, numeric bool, fe fieldError) {
	v := o.Get(name)
	if v == nil {
		return "", false, fieldError{}
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return bytesAsString(b), false, fieldError{}
	case fastjson.TypeNumber:
		start := len(st.scratch)
		st.scratch = v.MarshalTo(st.scratch)
		return bytesAsString(st.scratch[start:]), true, fieldError{}
	case fastjson.TypeNull:
		return "", false, fieldError{}
	}
	return "", false, fieldError{name, name + " must be a string"}
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
