// Package ingest owns the collection endpoints, POST /collect, GET /collect
// and GET /pixel.gif: it turns what a browser or SDK sent into normalized
// events, appends them to the WAL, and answers.
//
// Promises:
//   - "success" is sent only after Append returned nil, i.e. after the events
//     are durable per WAL_SYNC. When the WAL refuses (full, failed, closed or
//     any other error) the answer is 503 with Retry-After and nothing is
//     claimed; the pixel still answers its GIF and counts the failure.
//   - One Append per request: a batch is stored as one group, all of its
//     valid events or none.
//   - Every accepted event is loadable and exportable later: required
//     eventType and siteId (siteId limited to [A-Za-z0-9._-]{1,128}, since it
//     becomes part of S3 keys), identifying fields refused above their caps
//     and descriptive ones cut, raw JSON re-encoded compactly with invalid
//     UTF-8 and lone surrogates replaced and NUL dropped (PostgreSQL jsonb
//     refuses both), the client's timestamp parsed or flagged (see
//     event.TimestampStatus) and the receive time always recorded.
//   - A bad event in a batch is reported by its index and does not stop the
//     others.
//
// Request forms (POST /collect):
//   - a JSON object: one event, answered exactly as the seed:
//     {"status":"success","message":"Event received and stored","event_id":"<uuid>","timestamp":"<RFC 3339 ms UTC>"}
//   - a JSON array of events, or {"events":[...]} (an object without
//     eventType whose "events" is an array): a batch of up to
//     MAX_BATCH_EVENTS, answered
//     {"status":"success"|"partial"|"error","message":...,"accepted":N,"rejected":M,"timestamp":...,
//     "results":[{"index":0,"status":"success","event_id":...},{"index":1,"status":"error","message":...,"field":...}]}
//     with 200 when all were stored, 207 when some were refused (the rest are
//     stored: do not resend them), 400 when none was valid;
//   - the body is read as JSON whatever the Content-Type (application/json,
//     text/plain from navigator.sendBeacon, none, ...), except
//     application/x-www-form-urlencoded and multipart/form-data
//     (sendBeacon with URLSearchParams or FormData), whose fields make one
//     event like query parameters do;
//   - Content-Encoding gzip, deflate, br or zstd is undone first; the
//     decompressed body is bounded by MAX_BODY_BYTES too (413);
//   - an empty body with query parameters: one event from the parameters.
//
// GET /collect and GET /pixel.gif take the event from query parameters: every
// parameter becomes a string field of the raw event (the first of repeated
// keys), utm_* parameters are gathered under attribution.utmParams. A POST
// with a non-empty body ignores its query parameters.
//
// Errors are {"status":"error","message":"...","field":"..."}: 400 malformed
// JSON (with the byte offset) or a missing/invalid field (named in "field"),
// 413 over MAX_BODY_BYTES or MAX_BATCH_EVENTS, 415 an unknown
// Content-Encoding, 503
// when the WAL cannot take the events (405 and 404 come from httpapi).
//
// The client IP is the socket peer unless the peer is in TRUSTED_PROXIES;
// then X-Forwarded-For is walked from the right past trusted hops, then
// X-Real-IP (see ipResolver.resolve). With IP_ANONYMIZE the host part is
// zeroed (/24 for IPv4, /48 for IPv6) before the event is stored.
//
// Enrichment: event_id (UUIDv7, time-ordered), received_at (µs, UTC), node
// id, User-Agent, Origin, and the Referer header as referrer when the event
// has none (for beacons this header is the page that sent the event).
//
// The accept path is allocation-light: request state (parser, buffers) is
// pooled and event fields point into request memory until the record is
// encoded (see BenchmarkCollect*).
package ingest
