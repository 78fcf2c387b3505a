// Package wal is the collector's write-ahead log: the only place an accepted
// event lives until the loader and every export destination are done with it.
//
// # What it promises
//
//   - Append returns nil only once its records are durable according to the
//     sync mode: with SyncAlways (the default) after the fsync that covers
//     them. Concurrent Appends are group-committed: one goroutine owns the
//     log and gathers whatever callers are waiting into one write; a second
//     owns the fsync and wakes each caller of a write after the fsync that
//     covers it. The writer runs one write ahead: it writes group N+1 while
//     the fsync of group N runs, so the disk's latency is not paid twice.
//   - Indexes start at 1, are consecutive, and are never reused: a crash
//     cannot give an index that a reader has seen to another record, because
//     readers only see records that are durable.
//   - After any write or fsync error the log is fail-stopped: it accepts
//     nothing more (ErrFailed) until it is reopened, because after a failed
//     fsync the state of the page cache is unknown (the "fsyncgate" lesson).
//   - Above Options.MaxBytes, or when the disk is nearly full, Append returns
//     ErrFull instead of filling the disk.
//   - A segment is removed only when every registered consumer has processed
//     all of it and Options.Retention allows.
//
// # Layout on disk
//
//	WAL_DIR/
//	  LOCK                  flock(2)ed by the process that has the log open
//	  consumers.json        consumer registry (atomically replaced)
//	  segments/<20 digits>  segment files, named by their first index
//	  quarantine/           bytes cut from a torn tail, kept for inspection
//
// Segment files are github.com/tidwall/wal's binary format: each entry is a
// uvarint length followed by that many bytes. tidwall/wal keeps no checksum,
// refuses to open a log with a torn tail, fsyncs on every write under its
// lock, and never fsyncs the directory, so this package wraps it:
//
//   - Every entry is a frame: one format-version byte (1), the CRC-32C
//     (Castagnoli) of the payload as 4 little-endian bytes, then the payload.
//   - tidwall/wal runs with NoSync; this package fsyncs the tail segment
//     through a descriptor of its own, outside tidwall's lock, so readers are
//     not blocked behind the disk.
//   - Open scans every segment before handing the directory to tidwall/wal.
//     A torn or garbage tail of the last segment (a crash mid-write) is cut
//     back to the last whole record; the cut bytes go to quarantine/, are
//     logged and counted. Damage inside an earlier segment, or a gap between
//     segments, refuses to open with a *CorruptionError naming the file and
//     the offset: that is lost acknowledged data and needs an operator
//     (`collector wal verify` shows what is there).
//   - The directory is fsync'd after a segment is created or removed.
//   - Sealed segments are removed by this package, oldest first, rather than
//     with tidwall's TruncateFront, which copies the next segment under the
//     write lock and would stall ingest for the length of that copy.
//
// # Consumers
//
// The loader and each export destination register under a name and commit
// the last index they have fully processed. The registry is durable (an
// fsync'd file replaced by rename), so a destination may use it as its
// authoritative position; the loader keeps its own position in PostgreSQL
// and reports it here as a lower bound. Readers use Read (non-blocking, in
// batches, records the caller may keep), ScanRange (a range through a
// callback, records lent for the call only: nothing copied) and Wait (blocks
// until an index is durable, without polling);
// Segments exposes segment boundaries because exports are segment-derived.
//
// Read serves sealed segments itself, streaming each file through a 256 KiB
// buffer with a cursor per reader (at most four are kept open), and only the
// tail through tidwall/wal, which holds the tail in memory anyway. tidwall's
// own Read loads a whole sealed segment into its cache to return one entry,
// which made a reader's memory grow with WAL_SEGMENT_BYTES; this way a
// reader holds its buffer plus the records it asked for.
//
// Scan, Inspect, Verify and ReadConsumers read a WAL directory without
// opening it for writing: for `collector wal`, replay and offline lag.
package wal
