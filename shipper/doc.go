// Package shipper exports every accepted event, raw, to each client's own
// bucket and to our backup bucket, in the client's formats, on the client's
// schedule, exactly once.
//
// # What it owns
//
// Units, destinations and their positions, uploads, retries, dead letters,
// pauses, notifications, the audit log and the /export API. It reads the WAL
// (package wal) through its reader API and consumer registry and nothing
// else; the byte layout of objects and their keys belong to package export,
// client definitions to package clients.
//
// # Units
//
// A unit is a WAL range [first, last] whose boundaries are fixed and
// persisted (<state dir>/destinations/<name>.json, fsync'd and renamed)
// before anything is uploaded. At each tick of an hourly, daily or cron
// schedule, every sealed segment past the destination's position becomes a
// unit, and so does the unsealed tail up to the last index (so an hourly
// schedule delivers the last hour even when the segment has not filled). A
// real-time schedule cuts the tail every N seconds or M events; a threshold
// cuts it as soon as the destination has N pending events of its own
// sites. A unit never crosses a segment boundary, so it is never larger than
// a segment.
//
// A unit is exported in two passes over its records: the first keeps only
// each record's site and receive time (4 bytes per record) to count the
// events of each (site, receive hour) and their time range; the second
// streams each group into one object per format through an io.Pipe into the
// store. In pass 2 one goroutine reads and prepares records (json and
// ndjson event objects are transcoded straight from the WAL record's bytes,
// export.RecordPreparer; csv and parquet get decoded events) while another
// compresses. Once a unit's records are all encoded, the destination reads
// and encodes its next unit while the last uploads, the manifest and the
// position commit of the one before finish behind it: at most one unit
// behind, finished in order, its uploads still holding their upload slots
// (so the bounds below hold), and an object smaller than a part, sent in
// one PutObject after its last byte is encoded, no longer stalls the next
// unit.
//
// Destinations exporting the same unit (a client's bucket and its share of
// the backup) share work: pass 1 is done once per unit for every site
// (scans.go), and the next unit's pass 1 starts while this one's pass 2
// runs; an object both export (same unit, site, hour, format, compression
// and, for json and parquet, metadata: so the same bytes) is encoded once,
// into a spool file (<state dir>/spool, spool.go), and each destination
// uploads that file under its own key, checks the stored SHA-256 against the
// spooled one, and advances its own position after its own upload. The
// spool is a cache: emptied at start, never needed for correctness. Its key, export.ObjectKey(prefix, site, hour, node, first, last),
// depends only on the unit; its bytes too (export_time is the unit's
// planned time), so a retry or a restart writes the same key with the same
// content. Uploads are conditional (If-None-Match: *); an object already
// there (a crash after its upload) is verified — its metadata must name the
// same range and event count — and taken as stored. A manifest
// ({prefix}/_manifests/{node}-{first}-{last}.json) then lists every object
// with its size and SHA-256.
//
// # Positions
//
// Each destination ("export:<client>:client", "export:<client>:backup",
// "export:_unclaimed:backup" for sites no client claims) is its own WAL
// consumer. Its position, committed through the durable consumer registry,
// advances over a unit only after every object and the manifest of that unit
// are durable in the store, and never past a pending or dead-lettered unit:
// the WAL frees nothing a destination still owes. Later units still export
// while an earlier one is dead-lettered.
//
// # Failures
//
// Network errors, throttling (SlowDown, 503) and other 5xx are retried with
// capped exponential backoff and jitter (the SDK retries each request a few
// times; the shipper retries the unit). After MaxAttempts a unit is
// dead-lettered: kept in the state file, listed in /export/status, retried
// by POST /export/retry. Access denied, bad credentials or a missing bucket
// pause the destination (status says why) and notify the client's webhook;
// other destinations go on; Reload (SIGHUP) or POST /export/retry resumes.
//
// # Memory and concurrency
//
// At most Concurrency objects upload at once across all destinations, or
// up to 4 small ones (their group's records under 256 KiB: slots.go's
// smallObjectBytes) in place of one: with many sites most objects are
// small, each a store round trip, and a small one holds its encoder (zstd
// with a 256 KiB window in its lower-memory mode: about 1.8 MiB) and a few
// hundred KiB at most. One object holds at most about 3 × the part size (8 MiB default: the
// first part, buffered only as far as the object needs and reused between
// uploads, plus the upload manager's part pool of two), the encoder's
// buffers (64 KiB, plus the compressor: zstd about 4 MiB with its 1 MiB
// window, gzip about 1 MiB; parquet: its row group, 32 MiB by default) and
// pass 2's three batches of 256 prepared records. A unit being exported adds
// 4 bytes per record for its destination's pass 1, and the shared scans of
// the last 4 units 4 bytes per record each. So the shipper's memory is
// bounded by Concurrency × (3 × PartSize + encoder) +
// (destinations + 4) × 4 B × records per segment, whatever the segment size. The spool is on disk: at most the compressed
// objects between the slowest and the fastest destination, never more than
// 512 MiB (beyond that objects are encoded by each destination again).
// Shipping reads the WAL, never writes it, and holds no lock ingest needs.
//
// Exports yield the CPU to ingest: with Options.Pacer (cmd/collector gives
// it the internal/elastic limiter, ELASTIC_*), pass 1 and pass 2 pay for
// each 256 records before they read them (pace.go wraps the WAL reader the
// unit exports get); transcoding, compression, the spool and the uploads
// are downstream of those reads, so the whole pipeline follows their pace.
// The limiter holds exports back only while ingest is serving requests and
// the Go scheduler's p99 latency is over its target, never below its floor
// (1000 records/s: about 500 events/s to every destination), and never
// while the furthest-behind destination owes half of WAL_MAX_BYTES. A
// paced pass waits holding only its own WAL cursor and batches: the memory
// bounds above are unchanged. Manual runs' reads from PostgreSQL (Archive)
// are not paced.
//
// # Manual runs
//
// POST /export/run exports a time range (receive time) again, from the WAL
// while it holds it and, for older records, from the loader's PostgreSQL
// (Archive). Its objects go under {prefix}/_manual/{run id}/ so they never
// collide with scheduled keys; table readers skip "_" directories, so a
// backfill does not double what a table over {prefix} sees.
package shipper
