// Package httpapi is the collector's HTTP surface, shared by every stage: one
// fasthttp server, a method+path router, CORS, admin authentication, JSON
// error answers, and the operational endpoints /health, /ready and /metrics.
//
// Stages do not open listeners of their own. Each hands its handlers to New
// as Routes (ingest: /collect and /pixel.gif; the loader: /events/recent and
// /lag; the shipper: /export/*) and, if it has state worth showing, a
// HealthReporter whose details appear in /health under its key.
//
// Promises:
//   - Every answer this package produces itself is JSON of the shape
//     {"status":"error","message":"...","field":"..."}: unknown path (404),
//     wrong method (405, with an Allow header), missing or wrong admin token
//     (401), admin endpoints disabled because ADMIN_TOKEN is empty (403), body
//     over MAX_BODY_BYTES (413, even though fasthttp rejects it before any
//     handler runs), headers over MAX_HEADER_BYTES (431), a request not read
//     within READ_TIMEOUT (408), a malformed request (400), a handler panic
//     (500).
//   - CORS headers are set on every response, including those errors, for
//     origins in CORS_ALLOWED_ORIGINS only. `*` allows every origin and is
//     refused in production. Allowed origins are echoed back (with Vary:
//     Origin and Access-Control-Allow-Credentials: true, which
//     navigator.sendBeacon needs because it always sends credentials); a
//     disallowed origin gets no Access-Control-Allow-Origin at all.
//   - Admin routes need "Authorization: Bearer <ADMIN_TOKEN>", compared in
//     constant time.
//   - /health answers the seed's {"status","database","timestamp"} plus
//     "node_id", "wal" (wal.Stats), each reporter's details under its key and,
//     when not healthy, "reasons". It is 200 "healthy" or 200 "degraded" (a
//     downstream such as PostgreSQL is down but events are still accepted),
//     and 503 "unhealthy" only when ingest itself cannot accept events
//     (Options.WAL's Err() is non-nil: full, failed or closed). /ready answers
//     200 while events can be accepted and 503 otherwise, including while the
//     server drains at shutdown.
//   - A connection over MAX_CONNECTIONS is answered before fasthttp sees it:
//     503 with the JSON error body and Retry-After, then closed, and counted
//     in collector_http_connections_rejected_total (fasthttp's own limit,
//     kept slightly above as a backstop, can only answer plain text).
//   - ListenAndServe stops accepting connections when its context is done and
//     lets in-flight requests finish, for at most SHUTDOWN_TIMEOUT, before it
//     returns; only then may the caller close the WAL.
//   - collector_http_requests_total{route,status} counts every response; route
//     is the registered pattern (bounded cardinality), "unmatched" otherwise.
package httpapi
