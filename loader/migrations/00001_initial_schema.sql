-- Schema of the collector's PostgreSQL. Owned by package loader; applied by
-- `collector serve` at start and by `collector migrate`, under an advisory
-- lock, so several nodes starting together apply it once.

-- +goose Up

-- events: one row per accepted event. The first thirteen columns are the
-- seed's EventLog, in its order, so queries written for the seed keep working;
-- received_at, referrer and node_id are ours.
--
-- Identity. id is the event's index in the WAL of node node_id: assigned when
-- the event is accepted, before it is loaded, and identical in PostgreSQL and
-- in the S3 exports. (node_id, id) identifies an event. PostgreSQL requires
-- every unique constraint of a partitioned table to contain the partition key,
-- so the key is (node_id, id, received_at). That is as strong as unique
-- (node_id, id): received_at is written into the WAL record with the event and
-- never changes, so every load of one record - the loader, a retried batch, a
-- replay - carries the same received_at, lands in the same partition and
-- collides on this key. Two different records with one (node_id, id) would
-- need a WAL that reuses an index; the WAL never does (readers only see
-- durable records), and the loader refuses to run when PostgreSQL's offset is
-- ahead of its WAL (a wiped WAL directory, or two nodes sharing a NODE_ID).
-- The key also serves ON CONFLICT DO NOTHING in replay, and its leading
-- (node_id, id) serves "newest per node" for GET /events/recent.
--
-- Partitioning. By day (UTC) on received_at: the loader creates partitions a
-- few days ahead and for any day it meets, and EVENTS_RETENTION_DAYS drops
-- whole partitions, which is instant and leaves no bloat, where DELETE would
-- rewrite the table. received_at rather than the client's timestamp because it
-- is ours: always present, plausible, and in arrival order.
CREATE TABLE events (
    id             bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    session_id     text,
    visitor_id     text,
    site_id        text,
    "timestamp"    timestamptz NOT NULL,
    url            text,
    path           text,
    ip_address     text,
    user_agent     text,
    raw_event_data jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    received_at    timestamptz NOT NULL,
    referrer       text,
    node_id        text        NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (node_id, id, received_at)
) PARTITION BY RANGE (received_at);

COMMENT ON COLUMN events.id IS 'WAL index of the event on node node_id; (node_id, id) identifies it';
COMMENT ON COLUMN events.created_at IS 'when the row was loaded into PostgreSQL';
COMMENT ON COLUMN events.received_at IS 'when the collector accepted the event (UTC, µs); partition key';
COMMENT ON COLUMN events."timestamp" IS 'client event time, or received_at when the client sent none or an absurd one';

-- Multi-tenant separation and the seed's time-series queries: every
-- tenant-facing query filters on one site and a time range ("pageviews of
-- example-com last week"), so site_id leads and the client's timestamp
-- follows. Also serves GET /events/recent?site_id= (newest first).
CREATE INDEX events_site_id_timestamp_idx ON events (site_id, "timestamp");

-- Time ranges by arrival (exports, "what came in during the outage"):
-- partition pruning narrows to the day, and rows are appended in received_at
-- order, so a BRIN index of a few pages per gigabyte narrows to the hour
-- almost for free, where a btree would cost as much as the data to maintain.
CREATE INDEX events_received_at_brin ON events USING brin (received_at);

-- Filtering by kind of event ("signups", funnels of one event type) across
-- sites and time, without scanning every pageview.
CREATE INDEX events_event_type_idx ON events (event_type);

-- Reassembling one session, the unit of most analytics (paths, durations,
-- attribution), which is a point lookup here instead of a scan.
CREATE INDEX events_session_id_idx ON events (session_id);

-- events_rejected: records that could not be loaded, so that nothing is lost
-- silently and one bad row never stops the pipe. stage says where it failed:
-- 'decode' (the WAL record is not a valid event record), 'encode' (a field
-- cannot be represented in its column, e.g. an event_id that is not a UUID)
-- or 'database' (PostgreSQL refused the row: sqlstate and error are its
-- answer). raw is the WAL record exactly as stored; fix and re-insert by hand
-- or from the exports. The key makes re-rejecting on replay a no-op.
CREATE TABLE events_rejected (
    node_id     text        NOT NULL,
    wal_index   bigint      NOT NULL,
    raw         bytea       NOT NULL,
    stage       text        NOT NULL CHECK (stage IN ('decode', 'encode', 'database')),
    sqlstate    text,
    error       text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_rejected_pkey PRIMARY KEY (node_id, wal_index)
);

-- loader_offsets: per node, the last WAL index whose record is in events or
-- events_rejected. Advanced in the same transaction as the rows it covers, so
-- it is the authoritative resume point. The counters are for operators
-- (`collector lag`); last_received_at is the received_at of the last loaded
-- event.
CREATE TABLE loader_offsets (
    node_id          text        NOT NULL PRIMARY KEY,
    last_index       bigint      NOT NULL DEFAULT 0 CHECK (last_index >= 0),
    rows_loaded      bigint      NOT NULL DEFAULT 0,
    rows_rejected    bigint      NOT NULL DEFAULT 0,
    rows_duplicate   bigint      NOT NULL DEFAULT 0,
    events_skipped   bigint      NOT NULL DEFAULT 0,
    last_received_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN loader_offsets.rows_duplicate IS 'records found already loaded (e.g. by a replay ahead of the loader) and skipped';
COMMENT ON COLUMN loader_offsets.events_skipped IS 'indexes the loader could not read because the WAL had already removed them (database restored from an older backup)';

-- +goose Down
DROP TABLE loader_offsets;
DROP TABLE events_rejected;
DROP TABLE events;
