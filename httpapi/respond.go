package httpapi

import (
	"encoding/json"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/valyala/fasthttp"
)

// ContentTypeJSON is the Content-Type of every JSON answer.
const ContentTypeJSON = "application/json"

// TimestampLayout is the layout of "timestamp" in answers: RFC 3339 with
// milliseconds, always UTC (the seed's "2025-06-22T12:00:00.123Z").
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendTimestamp appends t in TimestampLayout, converted to UTC. It writes
// the digits itself because it runs once per acknowledged request and
// time.AppendFormat costs several times more.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, TimestampLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	dst = append(dst, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	dst = append(dst, byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), 'T')
	dst = append(dst, byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':')
	dst = append(dst, byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return dst
}

// WriteJSON answers status with v encoded by encoding/json. It is meant for
// answers off the hot path (health, admin); ingest writes its answers by hand.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(ctx, fasthttp.StatusInternalServerError, "internal error: cannot encode the answer", "")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(ContentTypeJSON)
	ctx.SetBody(body)
}

// WriteError answers status with {"status":"error","message":...,"field":...}.
// field names the request part at fault (a JSON field such as "siteId", or
// "body", "method", "Authorization"); it is "" when no single part is.
func WriteError(ctx *fasthttp.RequestCtx, status int, message, field string) {
	var stack [256]byte
	b := AppendError(stack[:0], message, field)
	ctx.SetStatusCode(status)
	ctx.SetContentType(ContentTypeJSON)
	ctx.SetBody(b)
}

// AppendError appends the error body WriteError sends.
func AppendError(dst []byte, message, field string) []byte {
	dst = append(dst, `{"status":"error","message":`...)
	dst = event.AppendJSONString(dst, message)
	dst = append(dst, `,"field":`...)
	dst = event.AppendJSONString(dst, field)
	return append(dst, '}')
}
