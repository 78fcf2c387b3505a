package loader

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Daily partitions of events are named events_YYYYMMDD and cover
// [that day 00:00 UTC, next day 00:00 UTC).
const partitionPrefix = "events_"

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func partitionName(day time.Time) string { return partitionPrefix + day.Format("20060102") }

// parsePartitionDay returns the day of a partition name, or false for other
// tables (events_rejected, events_default, anything an operator added).
func parsePartitionDay(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok || len(s) != 8 {
		return time.Time{}, false
	}
	d, err := time.Parse("20060102", s)
	if err != nil {
		return time.Time{}, false
	}
	return d, true
}

// partitions creates and drops daily partitions and remembers which exist,
// so that the loader asks the database only about days it has not seen.
type partitions struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	have map[time.Time]bool
}

func newPartitions(pool *pgxpool.Pool) *partitions {
	return &partitions{pool: pool, have: map[time.Time]bool{}}
}

// forget drops the cache, after a row met a missing partition (another node's
// retention dropped it).
func (p *partitions) forget() {
	p.mu.Lock()
	p.have = map[time.Time]bool{}
	p.mu.Unlock()
}

// ensure creates the partitions of days that the cache does not know.
func (p *partitions) ensure(ctx context.Context, days []time.Time) error {
	p.mu.Lock()
	var missing []time.Time
	for _, d := range days {
		if !p.have[d] {
			missing = append(missing, d)
		}
	}
	p.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].Before(missing[j]) })
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// DDL on a partitioned table waits for its lock behind running COPYs
		// and makes new ones wait behind it; a bounded wait keeps a stuck
		// session from stalling every loader, and the advisory lock keeps
		// nodes from racing on the catalog (CREATE ... IF NOT EXISTS is not
		// safe against a concurrent CREATE of the same name).
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLockID)); err != nil {
			return err
		}
		for _, d := range missing {
			sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')",
				pgx.Identifier{partitionName(d)}.Sanitize(), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", partitionName(d), err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure partitions %s..%s: %w", missing[0].Format(time.DateOnly), missing[len(missing)-1].Format(time.DateOnly), err)
	}
	p.mu.Lock()
	for _, d := range missing {
		p.have[d] = true
	}
	p.mu.Unlock()
	return nil
}

// ensureAhead creates the partitions from yesterday to ahead days after
// today, so that loading at midnight never waits for DDL.
func (p *partitions) ensureAhead(ctx context.Context, now time.Time, ahead int) error {
	today := dayOf(now)
	days := make([]time.Time, 0, ahead+2)
	for i := -1; i <= ahead; i++ {
		days = append(days, today.AddDate(0, 0, i))
	}
	return p.ensure(ctx, days)
}

// list returns the days of the existing daily partitions, oldest first.
func listPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]time.Time, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var days []time.Time
	for _, n := range names {
		if d, ok := parsePartitionDay(n); ok {
			days = append(days, d)
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	return days, nil
}

// dropExpired drops the daily partitions that end more than retentionDays
// before today (UTC) and returns their names. retentionDays <= 0 keeps
// everything.
func (p *partitions) dropExpired(ctx context.Context, now time.Time, retentionDays int) ([]string, error) {
	if retentionDays <= 0 {
		return nil, nil
	}
	cutoff := dayOf(now).AddDate(0, 0, -retentionDays)
	var dropped []string
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		dropped = dropped[:0]
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(partitionLockID)); err != nil {
			return err
		}
		days, err := listPartitions(ctx, tx)
		if err != nil {
			return err
		}
		for _, d := range days {
			if !d.Before(cutoff) {
				break
			}
			name := partitionName(d)
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
				return fmt.Errorf("drop partition %s: %w", name, err)
			}
			dropped = append(dropped, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("drop partitions older than %s: %w", cutoff.Format(time.DateOnly), err)
	}
	p.mu.Lock()
	for d := range p.have {
		if d.Before(cutoff) {
			delete(p.have, d)
		}
	}
	p.mu.Unlock()
	return dropped, nil
}
