// Package export turns events into export objects: the files that land in a
// client's bucket, in our backup bucket or in a local export directory.
//
// It owns the byte layout of every export format and everything derived from
// what an object holds: its key, extension, content type, and the manifest
// that lists a run's objects. It does no I/O of its own beyond the io.Writer
// it is given, so the shipper decides where bytes go and how they are
// uploaded, checksummed and retried.
//
// Formats:
//
//   - json: the seed's envelope, {"export_metadata":{"export_id",
//     "export_time","event_count","time_range":{"start","end"}},"events":[...]},
//     one event object per line inside "events".
//   - ndjson: one event object per line.
//   - csv: RFC 4180 with exactly the seed's header
//     id,event_id,event_type,session_id,visitor_id,site_id,timestamp,url,path,raw_event_data
//     and raw_event_data as compact JSON.
//   - parquet: typed columns (id INT64; timestamp and received_at
//     TIMESTAMP(MICROS, UTC); strings as STRING; raw_event_data as JSON),
//     data page v1 for the widest reader support (DuckDB, Spark, Athena,
//     pyarrow), zstd (default) or snappy page compression. The export
//     metadata is also in the file's key/value metadata.
//
// An event object (json, ndjson) always has every key, in this order: id,
// event_id, event_type, session_id, visitor_id, site_id, timestamp, url,
// path, raw_event_data (a JSON object), received_at, referrer, ip_address,
// user_agent, node_id. Times are RFC 3339 in UTC with microseconds.
//
// raw_event_data is always compact, strictly valid JSON on one line, in
// every format. Raw that keeps ingest's raw-JSON guarantee (event.IsCompactRaw,
// checked in one pass) is copied as is; anything else is repaired:
// whitespace removed, raw control characters inside strings escaped. A raw
// value that is not a JSON object (which the WAL never holds, but a backfill
// or an older WAL might) is exported as a JSON string of its text rather
// than dropped or allowed to break the object.
//
// Writer.WriteRecord (and RecordPreparer with Writer.WritePrepared) takes a
// WAL record as ingest wrote it: json and ndjson objects are then written
// straight from the record's bytes without decoding it (transcode.go), with
// exactly the bytes Write gives for the decoded event; records of any other
// shape are decoded (RecordDecoder) and written the ordinary way.
//
// Promises:
//   - Writers stream: memory is bounded by a small buffer for json, ndjson
//     and csv, and by the row-group size for parquet, whatever the number of
//     rows.
//   - The same rows and metadata always produce the same bytes, so a retried
//     export rewrites an identical object under an identical key.
//   - Every string is written as valid UTF-8 (invalid bytes become U+FFFD);
//     Decode reads back what Write wrote, field by field. One exception,
//     inherent to CSV readers: a "\r\n" inside a CSV field reads back as "\n"
//     with encoding/csv.
//   - A json object's export_metadata never lies: Close fails if the number
//     of rows written differs from Metadata.EventCount.
package export
