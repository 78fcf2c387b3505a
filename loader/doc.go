// Package loader tails the WAL into the client's PostgreSQL, exactly once.
//
// What it owns: the database schema (embedded goose migrations, run under a
// PostgreSQL advisory lock so nodes starting together do not race), the daily
// partitions of the events table (created ahead, dropped after
// EVENTS_RETENTION_DAYS), the loader_offsets row of its node, the
// events_rejected table, and reading events back (GET /events/recent) and
// re-loading WAL ranges (Replay).
//
// What it promises:
//
//   - Every WAL record is loaded once: it is either a row of events (id = its
//     WAL index, with the node id of the record) or a row of events_rejected
//     (its raw bytes and why). Rows are written by binary COPY in the same
//     transaction that advances loader_offsets for this node, so a crash at any
//     instant leaves PostgreSQL either before or after the whole batch; on
//     restart the loader resumes from PostgreSQL's offset, which is
//     authoritative. The WAL consumer registry ("loader") is told afterwards
//     and is only a lower bound that lets the WAL drop segments.
//   - Batching adapts to the load: a batch goes to PostgreSQL as soon as the
//     previous commit is done and records are waiting (MinCommitInterval,
//     20ms, after the previous commit began at the earliest), and records
//     that arrive while a COPY runs gather into the next batch, which closes
//     at LOADER_BATCH_EVENTS records or LOADER_FLUSH_INTERVAL after its
//     first record. A loader that keeps up therefore makes an event
//     queryable about one COPY after it was written, instead of waiting out
//     an interval; batches grow with the rate and with the database's
//     slowness. Decoding overlaps the COPY of the previous batch. A batch
//     costs one round trip: the offset claim and the COPY travel as one
//     simple-protocol message that PostgreSQL runs as one implicit
//     transaction. When the loader is behind (full batches waiting), up to
//     Options.MaxBatchesPerCommit of them go in one COPY and one commit, so
//     a backlog drains at COPY speed rather than at commit speed.
//   - The WAL consumer registry is told the committed position at most once
//     a second (its file is fsynced on every note, on ingest's disk); it
//     only lets the WAL remove segments, PostgreSQL's offset is the truth.
//   - A database that is down, restarting or slow never reaches ingest: the
//     loader retries with capped exponential backoff and jitter, reports
//     DatabaseState "disconnected", and catches up in full batches when the
//     database returns.
//   - A row PostgreSQL refuses for its data (SQLSTATE classes 22, 23, 54) does
//     not stop the pipe: the batch is bisected inside the transaction, the
//     refused rows go to events_rejected with the database's error, the rest
//     load. Records that do not even decode go to events_rejected too.
//     Anything else (connection, permission, missing schema) is retried, never
//     turned into rejected rows.
//   - Several nodes, each with its own WAL and NODE_ID, load into one database
//     without conflict: their rows differ by node_id and each has its own
//     loader_offsets row, guarded by a row lock and a compare-and-set, so even
//     two processes misconfigured with one NODE_ID cannot load a batch twice.
//
// A loader reads the WAL through Source (satisfied by *wal.Log) and writes
// through a *pgxpool.Pool built by NewPool from the seed's pool knobs.
package loader
