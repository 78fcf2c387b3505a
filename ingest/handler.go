package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evothesis/collector/httpapi"
	"github.com/valyala/fasthttp"
)

// Handler serves /collect and /pixel.gif.
type Handler struct {
	app        Appender
	opts       Options
	log        *slog.Logger
	metrics    *metrics
	ips        ipResolver
	states     sync.Pool
	retryAfter string
	appendLog  logLimiter
	requests   atomic.Uint64 // requests begun, for Requests
	eventIDs   eventIDs
}

// New returns the ingest handlers writing to app.
func New(app Appender, opts Options) (*Handler, error) {
	if app == nil {
		return nil, fmt.Errorf("ingest: nil Appender")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("ingest options: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}
	return &Handler{
		app:        app,
		opts:       opts,
		log:        opts.Logger,
		metrics:    m,
		ips:        ipResolver{trusted: opts.TrustedProxies, anonymize: opts.IPAnonymize},
		retryAfter: strconv.Itoa(int((opts.RetryAfter + time.Second - 1) / time.Second)),
	}, nil
}

// Requests is how many ingest requests have begun since New. Background
// work reads it as its foreground signal (internal/elastic: a window in
// which it did not move is one in which ingest needed no CPU).
func (h *Handler) Requests() uint64 { return h.requests.Load() }

// Routes are the ingest endpoints, for httpapi.New.
func (h *Handler) Routes() []httpapi.Route {
	return []httpapi.Route{
		{Method: fasthttp.MethodPost, Path: "/collect", Handler: h.ServeCollect},
		{Method: fasthttp.MethodGet, Path: "/collect", Handler: h.ServePixel},
		{Method: fasthttp.MethodGet, Path: "/pixel.gif", Handler: h.ServePixel},
	}
}

func (h *Handler) getState() *reqState {
	if st, ok := h.states.Get().(*reqState); ok {
		return st
	}
	return newReqState(&h.eventIDs)
}

func (h *Handler) putState(st *reqState) {
	if st.tooBigToPool() {
		return
	}
	st.reset()
	h.states.Put(st)
}

// begin records what every event of the request shares.
func (h *Handler) begin(ctx *fasthttp.RequestCtx, st *reqState) {
	h.requests.Add(1)
	st.start = time.Now()
	st.info.received = st.start.UTC().Truncate(time.Microsecond)
	st.info.nodeID = h.opts.NodeID
	peer := peerAddr(ctx.RemoteIP())
	var forwardedFor [][]byte
	var realIP []byte
	if h.ips.isTrusted(peer) {
		forwardedFor = ctx.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
		realIP = ctx.Request.Header.Peek("X-Real-IP")
	}
	if ip := h.ips.resolve(peer, forwardedFor, realIP); ip.IsValid() {
		st.ipBuf = ip.AppendTo(st.ipBuf[:0])
		st.info.ip = bytesAsString(st.ipBuf)
	}
	st.info.userAgent = cleanHeader(ctx.UserAgent(), maxUserAgentBytes)
	st.info.origin = cleanHeader(ctx.Request.Header.Peek(fasthttp.HeaderOrigin), maxOriginBytes)
	st.info.referer = cleanHeader(ctx.Referer(), maxReferrerBytes)
}

// requestError refuses a whole request.
type requestError struct {
	status  int
	reason  rejectReason
	events  int // how many events it counts as in the metrics
	message string
	field   string
}

type shape int

const (
	shapeSingle shape = iota // one event: the seed's answer
	shapeBatch               // array or {"events": [...]}: the batch answer
)

// ServeCollect handles POST /collect: one event or a batch, as JSON
// (application/json, text/plain, no Content-Type, or any type other than the
// form types), as a form body, or as query parameters with an empty body.
func (h *Handler) ServeCollect(ctx *fasthttp.RequestCtx) {
	st := h.getState()
	h.begin(ctx, st)
	sh, rerr := h.readCollect(ctx, st)
	if rerr != nil {
		h.metrics.rejected[rerr.reason].Add(float64(rerr.events))
		h.logRejected(rerr.reason, rerr.message)
		httpapi.WriteError(ctx, rerr.status, rerr.message, rerr.field)
		h.putState(st)
		return
	}
	h.metrics.batchEvents.Observe(float64(len(st.items)))
	if invalid := len(st.items) - st.accepted; invalid > 0 {
		h.metrics.rejected[reasonInvalidEvent].Add(float64(invalid))
		h.logRejected(reasonInvalidEvent, firstError(st.items))
	}
	if st.accepted == 0 {
		if sh == shapeSingle {
			it := &st.items[0]
			httpapi.WriteError(ctx, fasthttp.StatusBadRequest, it.message, it.field)
		} else {
			h.writeBatch(ctx, st)
		}
		h.putState(st)
		return
	}
	if err := h.append(st); err != nil {
		reason := classifyAppendError(err)
		h.metrics.rejected[reason].Add(float64(st.accepted))
		h.logAppendError(reason, st.accepted, err)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, h.retryAfter)
		httpapi.WriteError(ctx, fasthttp.StatusServiceUnavailable, unavailableMessage(reason), "")
		// st is abandoned, not pooled: the WAL may still hold its records.
		return
	}
	h.metrics.accepted.Add(float64(st.accepted))
	if sh == shapeSingle {
		h.writeSingle(ctx, st)
	} else {
		h.writeBatch(ctx, st)
	}
	h.metrics.acceptDuration.Observe(time.Since(st.start).Seconds())
	h.putState(st)
}

// ServePixel handles GET /collect and GET /pixel.gif: one event from query
// parameters, always answered with the GIF (browsers ignore an image's
// status), so failures show only in metrics and logs.
func (h *Handler) ServePixel(ctx *fasthttp.RequestCtx) {
	st := h.getState()
	h.begin(ctx, st)
	st.addArgsEvent(ctx.QueryArgs())
	h.metrics.batchEvents.Observe(1)
	switch {
	case st.accepted == 0:
		h.metrics.rejected[reasonInvalidEvent].Inc()
		h.metrics.pixelFailures[reasonInvalidEvent].Inc()
		h.logRejected(reasonInvalidEvent, st.items[0].message)
	default:
		if err := h.append(st); err != nil {
			reason := classifyAppendError(err)
			h.metrics.rejected[reason].Inc()
			h.metrics.pixelFailures[reason].Inc()
			h.logAppendError(reason, 1, err)
			st = nil // abandoned: the WAL may still hold its records
			break
		}
		h.metrics.accepted.Inc()
		h.metrics.acceptDuration.Observe(time.Since(st.start).Seconds())
	}
	writePixel(ctx)
	if st != nil {
		h.putState(st)
	}
}

func (h *Handler) readCollect(ctx *fasthttp.RequestCtx, st *reqState) (shape, *requestError) {
	body := ctx.PostBody()
	if len(body) > h.opts.MaxBodyBytes {
		return 0, &requestError{fasthttp.StatusRequestEntityTooLarge, reasonBodyTooLarge, 1,
			fmt.Sprintf("request body is larger than MAX_BODY_BYTES (%d bytes)", h.opts.MaxBodyBytes), "body"}
	}
	mt := mediaType(ctx.Request.Header.ContentType())
	if ce := ctx.Request.Header.ContentEncoding(); len(ce) > 0 && !bytes.EqualFold(ce, []byte("identity")) {
		if mt == mediaMultipart {
			return 0, &requestError{fasthttp.StatusUnsupportedMediaType, reasonUnsupported, 1,
				"compressed multipart/form-data is not supported", "Content-Encoding"}
		}
		var rerr *requestError
		if body, rerr = h.decompress(ctx, ce); rerr != nil {
			return 0, rerr
		}
	}
	if mt == mediaForm && looksLikeJSON(body) {
		// `curl -d '{...}'` and some tag managers label JSON as a form;
		// a form body cannot start with { or [, so read it as JSON.
		mt = mediaOther
	}
	switch mt {
	case mediaForm:
		st.form.ParseBytes(body)
		st.addArgsEvent(&st.form)
		return shapeSingle, nil
	case mediaMultipart:
		form, err := ctx.MultipartForm()
		if err != nil {
			return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1, "malformed multipart/form-data body: " + err.Error(), "body"}
		}
		st.addFormValuesEvent(form.Value)
		return shapeSingle, nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if ctx.QueryArgs().Len() > 0 {
			st.addArgsEvent(ctx.QueryArgs())
			return shapeSingle, nil
		}
		return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1,
			"empty body: send an event as JSON or as query parameters", "body"}
	}
	return h.readJSON(st, body)
}

func looksLikeJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// decompress undoes Content-Encoding, refusing bodies that inflate beyond
// MAX_BODY_BYTES (a small gzip bomb must not become a large allocation).
func (h *Handler) decompress(ctx *fasthttp.RequestCtx, ce []byte) ([]byte, *requestError) {
	limit := h.opts.MaxBodyBytes
	var body []byte
	var err error
	switch string(bytes.ToLower(bytes.TrimSpace(ce))) {
	case "gzip", "x-gzip":
		body, err = ctx.Request.BodyGunzipWithLimit(limit)
	case "deflate":
		body, err = ctx.Request.BodyInflateWithLimit(limit)
	case "br":
		body, err = ctx.Request.BodyUnbrotliWithLimit(limit)
	case "zstd":
		body, err = ctx.Request.BodyUnzstdWithLimit(limit)
	default:
		return nil, &requestError{fasthttp.StatusUnsupportedMediaType, reasonUnsupported, 1,
			"Content-Encoding " + truncateUTF8(string(ce), 32) + " is not supported; use gzip, deflate, br, zstd or none", "Content-Encoding"}
	}
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return nil, &requestError{fasthttp.StatusRequestEntityTooLarge, reasonBodyTooLarge, 1,
			fmt.Sprintf("decompressed body is larger than MAX_BODY_BYTES (%d bytes)", limit), "body"}
	case err != nil:
		return nil, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1,
			"cannot decompress the body (Content-Encoding " + truncateUTF8(string(ce), 32) + "): " + err.Error(), "Content-Encoding"}
	}
	return body, nil
}

func (h *Handler) readJSON(st *reqState, body []byte) (shape, *requestError) {
	canon, spans, err := canonicalJSONSpans(st.canon[:0], st.valueSpans[:0], body, true)
	st.canon, st.valueSpans = canon, spans
	if err != nil {
		return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1, err.Error(), "body"}
	}
	sh := shapeSingle
	switch canon[0] {
	case '[':
		sh = shapeBatch
		st.spans = appendEvents(st.spans, spans, 1)
	case '{':
		if _, hasType := topMember(canon, spans, "eventType"); !hasType {
			if i, ok := topMember(canon, spans, "events"); ok {
				if canon[spans[i].val.start] != '[' {
					return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1,
						"events must be an array of event objects", "events"}
				}
				sh = shapeBatch
				st.spans = appendEvents(st.spans, spans[i+1:nextAtLevel(spans, i+1, 1)], 2)
				break
			}
		}
		st.spans = append(st.spans, eventSpan{val: span{0, len(canon)}, members: spans, level: 0})
	default:
		return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1,
			"body must be a JSON object (one event) or an array of event objects (a batch)", "body"}
	}
	if sh == shapeBatch && len(st.spans) == 0 {
		return 0, &requestError{fasthttp.StatusBadRequest, reasonMalformed, 1, "batch is empty", "events"}
	}
	if len(st.spans) > h.opts.MaxBatchEvents {
		return 0, &requestError{fasthttp.StatusRequestEntityTooLarge, reasonBatchTooLarge, len(st.spans),
			fmt.Sprintf("batch has %d events; MAX_BATCH_EVENTS is %d", len(st.spans), h.opts.MaxBatchEvents), "events"}
	}
	if cap(st.items) < len(st.spans) {
		st.items = make([]item, 0, len(st.spans))
	}
	for _, ev := range st.spans {
		st.addEvent(canon, ev)
	}
	return sh, nil
}

type media int

const (
	mediaOther media = iota
	mediaForm
	mediaMultipart
)

func mediaType(ct []byte) media {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	switch {
	case bytes.EqualFold(ct, []byte("application/x-www-form-urlencoded")):
		return mediaForm
	case bytes.EqualFold(ct, []byte("multipart/form-data")):
		return mediaMultipart
	}
	return mediaOther
}

func (h *Handler) append(st *reqState) error {
	ctx := context.Background()
	if h.opts.AppendTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.AppendTimeout)
		defer cancel()
	}
	_, err := h.app.Append(ctx, st.buildRecords())
	return err
}

func unavailableMessage(r rejectReason) string {
	switch r {
	case reasonWALFull:
		return "event not stored: the collector's write-ahead log is full; retry later"
	case reasonWALFailed:
		return "event not stored: the collector's write-ahead log failed and accepts nothing until restarted; retry later"
	case reasonWALClosed:
		return "event not stored: the collector is shutting down; retry"
	}
	return "event not stored: storage error; retry later"
}

const successMessage = "Event received and stored"

// writeSingle answers one stored event exactly as the seed does.
func (h *Handler) writeSingle(ctx *fasthttp.RequestCtx, st *reqState) {
	b := append(st.resp[:0], `{"status":"success","message":"`+successMessage+`","event_id":"`...)
	b = append(b, st.items[0].id[:]...)
	b = append(b, `","timestamp":"`...)
	b = httpapi.AppendTimestamp(b, st.info.received)
	b = append(b, `"}`...)
	st.resp = b
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(httpapi.ContentTypeJSON)
	ctx.SetBody(b)
}

// writeBatch answers a batch: 200 "success" when every event was stored, 207
// "partial" when some were refused (they are listed by index; the others
// are stored), 400 "error" when none was valid (nothing stored).
func (h *Handler) writeBatch(ctx *fasthttp.RequestCtx, st *reqState) {
	total, accepted := len(st.items), st.accepted
	rejected := total - accepted
	status, label := fasthttp.StatusOK, "success"
	switch {
	case accepted == 0:
		status, label = fasthttp.StatusBadRequest, "error"
	case rejected > 0:
		status, label = fasthttp.StatusMultiStatus, "partial"
	}
	b := append(st.resp[:0], `{"status":"`...)
	b = append(b, label...)
	b = append(b, `","message":"`...)
	switch {
	case accepted == 0:
		b = append(b, `no event in the batch was valid; nothing stored","field":"events`...)
	case rejected == 0:
		b = strconv.AppendInt(b, int64(accepted), 10)
		b = append(b, ` events received and stored`...)
	default:
		b = strconv.AppendInt(b, int64(accepted), 10)
		b = append(b, ` of `...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, ` events received and stored; the others were rejected`...)
	}
	b = append(b, `","accepted":`...)
	b = strconv.AppendInt(b, int64(accepted), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(rejected), 10)
	b = append(b, `,"timestamp":"`...)
	b = httpapi.AppendTimestamp(b, st.info.received)
	b = append(b, `","results":[`...)
	for i := range st.items {
		it := &st.items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		if it.ok {
			b = append(b, `,"status":"success","event_id":"`...)
			b = append(b, it.id[:]...)
			b = append(b, `"}`...)
			continue
		}
		b = append(b, `,"status":"error","message":`...)
		b = appendCanonicalText(b, []byte(it.message))
		b = append(b, `,"field":`...)
		b = appendCanonicalText(b, []byte(it.field))
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	st.resp = b
	ctx.SetStatusCode(status)
	ctx.SetContentType(httpapi.ContentTypeJSON)
	ctx.SetBody(b)
}

// transparentGIF is the smallest transparent 1x1 GIF (43 bytes).
const transparentGIF = "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff" +
	"\x21\xf9\x04\x01\x00\x00\x00\x00" +
	"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" +
	"\x02\x02\x44\x01\x00\x3b"

func writePixel(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("image/gif")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	ctx.SetBodyString(transparentGIF)
}

func firstError(items []item) string {
	for i := range items {
		if !items[i].ok {
			return items[i].message
		}
	}
	return ""
}

func (h *Handler) logRejected(reason rejectReason, message string) {
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("event rejected", "reason", reason.String(), "message", message)
	}
}

// logAppendError logs WAL refusals at most once a second: when the WAL is
// full every request fails, and a log line per request would make it worse.
func (h *Handler) logAppendError(reason rejectReason, events int, err error) {
	if suppressed, ok := h.appendLog.allow(time.Now()); ok {
		h.log.Warn("events not stored: WAL append failed", "reason", reason.String(), "events", events,
			"err", err, "similar_suppressed", suppressed)
	}
}

// logLimiter lets one message through per second and counts the rest.
type logLimiter struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

func (l *logLimiter) allow(now time.Time) (suppressed int64, ok bool) {
	n := now.UnixNano()
	last := l.last.Load()
	if n-last < int64(time.Second) || !l.last.CompareAndSwap(last, n) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}
