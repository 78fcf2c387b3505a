// Package event defines the normalized analytics event that flows through the
// collector, and its encoding as a WAL record.
//
// Ingest builds an Event from what a browser sent, encodes it with
// AppendRecord and appends the bytes to the WAL. The loader and the shipper
// read the same bytes back with DecodeRecord. The encoding is a single JSON
// object (one line, no trailing newline) so that `collector wal dump` can print
// records as NDJSON without re-encoding them, and so that a record stays
// readable by people and by tools other than this binary.
//
// Record layout (version 1):
//
//	{"v":1,"event_id":"<uuid>","received_at":"<RFC 3339, µs, UTC>",
//	 "node_id":"...","event_type":"...","session_id":"...","visitor_id":"...",
//	 "site_id":"...","timestamp":"<RFC 3339, µs, UTC>","timestamp_raw":"...",
//	 "timestamp_status":"...","url":"...","path":"...","referrer":"...",
//	 "ip_address":"...","user_agent":"...","origin":"...","raw":{...}}
//
// Empty optional strings are omitted. "raw" is the event object exactly as
// the client sent it (or, for query-parameter events, an object built from the
// parameters); it is always a JSON object.
//
// Promises: every Event that AppendRecord encodes decodes back to an equal
// Event; DecodeRecord rejects anything that is not a version-1 record with a
// clear error and never panics on arbitrary input.
package event
