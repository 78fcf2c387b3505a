package loader

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/evothesis/collector/event"
)

var (
	copyEventsSQL  = "COPY events (" + strings.Join(copyColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	copyStagingSQL = "COPY loader_staging (" + strings.Join(copyColumns, ", ") + ") FROM STDIN (FORMAT binary)"
	// The staging table is per session and emptied at commit; LIKE copies the
	// columns, NOT NULLs and defaults but no constraints, so CHECKs and the
	// key are enforced where they belong, by the INSERT into events.
	createStagingSQL = "CREATE TEMP TABLE IF NOT EXISTS loader_staging (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
	insertStagingSQL = "INSERT INTO events (" + strings.Join(copyColumns, ", ") + ") SELECT " + strings.Join(copyColumns, ", ") +
		" FROM loader_staging ON CONFLICT (node_id, id, received_at) DO NOTHING"
)

// offsetMovedError means loader_offsets for this node is not where this
// loader left it: another process loads under the same NODE_ID, or an
// operator changed the row. The loader restarts from the database's offset.
type offsetMovedError struct {
	nodeID         string
	want, actual   uint64
	missingOffsets bool
}

func (e *offsetMovedError) Error() string {
	if e.missingOffsets {
		return fmt.Sprintf("loader_offsets has no row for node %q any more; restarting from the database's offset", e.nodeID)
	}
	return fmt.Sprintf("loader_offsets for node %q is at %d, expected %d: another process loads under this NODE_ID, or the row was changed; restarting from the database's offset",
		e.nodeID, e.actual, e.want)
}

// initOffset returns PostgreSQL's offset for nodeID, creating its row at 0.
func initOffset(ctx context.Context, pool *pgxpool.Pool, nodeID string) (uint64, error) {
	var pos int64
	err := pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO loader_offsets (node_id) VALUES ($1) ON CONFLICT (node_id) DO NOTHING RETURNING last_index)
		SELECT last_index FROM ins UNION ALL SELECT last_index FROM loader_offsets WHERE node_id = $1`, nodeID).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("read loader offset of node %q: %w", nodeID, err)
	}
	return uint64(pos), nil
}

// batchResult is what one committed batch did.
type batchResult struct {
	loaded, duplicate int64
	rejected          []rejected // decode, encode and database rejections
	alreadyCommitted  bool       // an earlier attempt whose COMMIT we did not hear had committed it
}

// SQLSTATEs raised by loader_claim (migration 00002).
const (
	stateOffsetMoved     = "CL001"
	stateAlreadyCommited = "CL002"
)

// claimOutcome interprets a loader_claim error: nil error means claimed.
func claimOutcome(err error, nodeID string, b *batch) (alreadyCommitted bool, _ error) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false, err
	}
	switch pgErr.Code {
	case stateAlreadyCommited:
		return true, nil
	case stateOffsetMoved:
		moved := &offsetMovedError{nodeID: nodeID, want: b.first - 1, missingOffsets: pgErr.Detail == ""}
		if v, perr := strconv.ParseUint(pgErr.Detail, 10, 64); perr == nil {
			moved.actual = v
		}
		return false, moved
	}
	return false, err
}

func lastReceivedArg(b *batch) *time.Time {
	if b.lastReceivedAt.IsZero() {
		return nil
	}
	return &b.lastReceivedAt
}

// claim advances this node's offset from b.first-1 to b.last inside tx (see
// loader_claim). It reports alreadyCommitted when an earlier attempt whose
// answer was lost committed the batch, and an *offsetMovedError when the
// offset is anywhere else.
func claim(ctx context.Context, tx pgx.Tx, nodeID string, b *batch, loaded, rejected int64) (alreadyCommitted bool, err error) {
	_, err = tx.Exec(ctx, "SELECT loader_claim($1, $2, $3, $4, $5, $6)",
		nodeID, int64(b.first-1), int64(b.last), loaded, rejected, lastReceivedArg(b))
	if err == nil {
		return false, nil
	}
	done, err := claimOutcome(err, nodeID, b)
	if err != nil && !errors.As(err, new(*offsetMovedError)) {
		err = fmt.Errorf("advance loader offset: %w", err)
	}
	return done, err
}

// quoteLiteral quotes s as an SQL string literal, as pgx's simple protocol
// does (standard_conforming_strings on, which pgx requires anyway).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// commitFast is the normal path: the claim and one COPY of the whole batch
// in a single simple-protocol message, which PostgreSQL runs as one implicit
// transaction (committed when the message ends, rolled back on any error).
// Batches with rejected records take the slow path, which also writes
// events_rejected. Any error leaves nothing behind; the caller decides
// whether to take the slow path.
func (l *Loader) commitFast(ctx context.Context, b *batch) (batchResult, error) {
	if len(b.rejects) > 0 || len(b.rows) == 0 {
		return l.commitSlow(ctx, b, false)
	}
	res := batchResult{loaded: int64(len(b.rows))}
	recv := "NULL"
	if t := lastReceivedArg(b); t != nil {
		recv = quoteLiteral(t.UTC().Format(time.RFC3339Nano)) + "::timestamptz"
	}
	sql := fmt.Sprintf("SELECT loader_claim(%s, %d, %d, %d, 0, %s); %s",
		quoteLiteral(l.opts.NodeID), b.first-1, b.last, res.loaded, recv, copyEventsSQL)
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	tag, err := conn.Conn().PgConn().CopyFrom(ctx, b.tuples(0, len(b.rows)), sql)
	if err != nil {
		done, err := claimOutcome(err, l.opts.NodeID, b)
		res.alreadyCommitted = done
		if err != nil && !errors.As(err, new(*offsetMovedError)) {
			err = fmt.Errorf("copy: %w", err)
		}
		return res, err
	}
	if tag.RowsAffected() != res.loaded {
		// Committed (the message's implicit transaction), so not an error
		// to retry; but a PostgreSQL or encoding bug, so say it loudly.
		l.log.Error("COPY wrote a different number of rows than were sent", "first", b.first, "last", b.last,
			"sent", res.loaded, "written", tag.RowsAffected())
		res.loaded = tag.RowsAffected()
	}
	return res, nil
}

// commitSlow loads the batch row range by row range under savepoints: rows
// PostgreSQL refuses are isolated by bisection and rejected, and when some
// rows are already present (idempotent, or a unique violation was seen) rows
// go through the staging table with ON CONFLICT DO NOTHING.
func (l *Loader) commitSlow(ctx context.Context, b *batch, idempotent bool) (batchResult, error) {
	var res batchResult
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		res = batchResult{}
		done, err := claim(ctx, tx, l.opts.NodeID, b, 0, 0)
		if done {
			return errAlreadyCommitted // roll back the aborted transaction
		}
		if err != nil {
			return err
		}
		if err := loadRows(ctx, tx, b, idempotent, &res); err != nil {
			return err
		}
		res.rejected = append(append(res.rejected[:0:0], b.rejects...), res.rejected...)
		if err := insertRejected(ctx, tx, res.rejected); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE loader_offsets SET rows_loaded = rows_loaded + $2, rows_rejected = rows_rejected + $3,
			rows_duplicate = rows_duplicate + $4 WHERE node_id = $1`, l.opts.NodeID, res.loaded, int64(len(res.rejected)), res.duplicate)
		if err != nil {
			return fmt.Errorf("count loaded rows: %w", err)
		}
		return nil
	})
	if errors.Is(err, errAlreadyCommitted) {
		return batchResult{alreadyCommitted: true}, nil
	}
	return res, err
}

var errAlreadyCommitted = errors.New("batch already committed")

// loadRows loads b.rows in tx (slow path): see commitSlow.
func loadRows(ctx context.Context, tx pgx.Tx, b *batch, idempotent bool, res *batchResult) error {
	if len(b.rows) == 0 {
		return nil
	}
	if idempotent {
		if _, err := tx.Exec(ctx, createStagingSQL); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
	}
	return loadRange(ctx, tx, b, 0, len(b.rows), &idempotent, res)
}

func loadRange(ctx context.Context, tx pgx.Tx, b *batch, i, j int, idempotent *bool, res *batchResult) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	loaded, err := copyRange(ctx, sp, b, i, j, *idempotent)
	if err == nil {
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		res.loaded += loaded
		res.duplicate += int64(j-i) - loaded
		return nil
	}
	if rbErr := sp.Rollback(ctx); rbErr != nil {
		return fmt.Errorf("rollback to savepoint after %v: %w", err, rbErr)
	}
	switch classify(err) {
	case kindDuplicate:
		if *idempotent {
			return err // a conflict ON CONFLICT did not absorb: not ours to hide
		}
		*idempotent = true
		if _, err := tx.Exec(ctx, createStagingSQL); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		return loadRange(ctx, tx, b, i, j, idempotent, res)
	case kindData:
		if j-i == 1 {
			r := b.rows[i]
			res.rejected = append(res.rejected, rejected{nodeID: r.nodeID, index: r.index, raw: r.raw,
				stage: stageDatabase, sqlstate: sqlState(err), err: describePgError(err)})
			return nil
		}
		m := i + (j-i)/2
		if err := loadRange(ctx, tx, b, i, m, idempotent, res); err != nil {
			return err
		}
		return loadRange(ctx, tx, b, m, j, idempotent, res)
	default:
		return err
	}
}

// copyRange writes rows[i:j] and returns how many were inserted (fewer than
// j-i only when idempotent and some were present).
func copyRange(ctx context.Context, tx pgx.Tx, b *batch, i, j int, idempotent bool) (int64, error) {
	pg := tx.Conn().PgConn()
	if !idempotent {
		tag, err := pg.CopyFrom(ctx, b.tuples(i, j), copyEventsSQL)
		if err != nil {
			return 0, fmt.Errorf("copy rows %d-%d: %w", b.rows[i].index, b.rows[j-1].index, err)
		}
		return tag.RowsAffected(), nil
	}
	if _, err := pg.CopyFrom(ctx, b.tuples(i, j), copyStagingSQL); err != nil {
		return 0, fmt.Errorf("copy rows %d-%d to staging: %w", b.rows[i].index, b.rows[j-1].index, err)
	}
	tag, err := tx.Exec(ctx, insertStagingSQL)
	if err != nil {
		return 0, fmt.Errorf("insert rows %d-%d from staging: %w", b.rows[i].index, b.rows[j-1].index, err)
	}
	if _, err := tx.Exec(ctx, "TRUNCATE loader_staging"); err != nil {
		return 0, fmt.Errorf("empty staging table: %w", err)
	}
	return tag.RowsAffected(), nil
}

func insertRejected(ctx context.Context, tx pgx.Tx, rs []rejected) error {
	_, err := insertRejectedCounting(ctx, tx, rs)
	return err
}

func queueRejected(qb *pgx.Batch, r rejected) {
	var state *string
	if r.sqlstate != "" {
		state = &r.sqlstate
	}
	qb.Queue(`INSERT INTO events_rejected (node_id, wal_index, raw, stage, sqlstate, error)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node_id, wal_index) DO NOTHING`,
		r.nodeID, int64(r.index), r.raw, r.stage, state, event.SanitizeText(r.err))
}

// describePgError is the database's refusal as an operator wants to read it.
func describePgError(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err.Error()
	}
	var sb strings.Builder
	sb.WriteString(pgErr.Message)
	for _, part := range []struct{ name, value string }{
		{"detail", pgErr.Detail}, {"column", pgErr.ColumnName}, {"constraint", pgErr.ConstraintName}, {"where", pgErr.Where},
	} {
		if part.value != "" {
			fmt.Fprintf(&sb, "; %s: %s", part.name, truncate(part.value, 500))
		}
	}
	return sb.String()
}

// Offset is a node's row of loader_offsets.
type Offset struct {
	NodeID         string
	LastIndex      uint64
	RowsLoaded     int64
	RowsRejected   int64
	RowsDuplicate  int64
	EventsSkipped  int64
	LastReceivedAt time.Time // zero when nothing was loaded
	UpdatedAt      time.Time
}

// ReadOffset reads nodeID's loader_offsets row (for offline lag); found is
// false when the node never loaded into this database.
func ReadOffset(ctx context.Context, pool *pgxpool.Pool, nodeID string) (o Offset, found bool, err error) {
	var last int64
	var lastRecv *time.Time
	err = pool.QueryRow(ctx, `SELECT last_index, rows_loaded, rows_rejected, rows_duplicate, events_skipped, last_received_at, updated_at
		FROM loader_offsets WHERE node_id = $1`, nodeID).
		Scan(&last, &o.RowsLoaded, &o.RowsRejected, &o.RowsDuplicate, &o.EventsSkipped, &lastRecv, &o.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Offset{NodeID: nodeID}, false, nil
	}
	if err != nil {
		return Offset{}, false, fmt.Errorf("read loader_offsets of node %q: %w", nodeID, err)
	}
	o.NodeID, o.LastIndex = nodeID, uint64(last)
	if lastRecv != nil {
		o.LastReceivedAt = *lastRecv
	}
	return o, true, nil
}
