package shipper

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/shipper/export"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGArchive reads archived events from the loader's PostgreSQL table for
// manual runs over ranges the WAL no longer holds. The table has the
// loader's columns (id = WAL index, node_id, received_at, ...); every
// column is read as text so the archive does not depend on the exact
// column types.
type PGArchive struct {
	Pool  *pgxpool.Pool
	Table string // default "events"
}

func (a *PGArchive) table() string {
	if a.Table == "" {
		return "events"
	}
	return a.Table
}

func archiveBounds(q ArchiveQuery) (time.Time, time.Time) {
	since, until := q.Since, q.Until
	if since.IsZero() {
		since = time.Unix(0, 0).UTC()
	}
	if until.IsZero() {
		until = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return since, until
}

// Groups implements Archive.
func (a *PGArchive) Groups(ctx context.Context, q ArchiveQuery) ([]ArchiveGroup, error) {
	since, until := archiveBounds(q)
	sql := fmt.Sprintf(`SELECT coalesce(site_id::text, ''), date_trunc('hour', received_at AT TIME ZONE 'UTC'),
		count(*), min(received_at), max(received_at), min(id), max(id)
		FROM %s WHERE node_id = $1 AND received_at >= $2 AND received_at < $3 AND id < $4
		GROUP BY 1, 2 ORDER BY 1, 2`, quoteIdent(a.table()))
	rows, err := a.Pool.Query(ctx, sql, q.NodeID, since, until, int64(q.BeforeIndex))
	if err != nil {
		return nil, fmt.Errorf("query archived groups: %w", err)
	}
	defer rows.Close()
	var out []ArchiveGroup
	for rows.Next() {
		var g ArchiveGroup
		var minID, maxID int64
		if err := rows.Scan(&g.Site, &g.Hour, &g.Count, &g.First, &g.Last, &minID, &maxID); err != nil {
			return nil, fmt.Errorf("scan archived group: %w", err)
		}
		g.Hour, g.First, g.Last = g.Hour.UTC(), g.First.UTC(), g.Last.UTC()
		g.MinID, g.MaxID = uint64(minID), uint64(maxID)
		out = append(out, g)
	}
	return out, rows.Err()
}

// Rows implements Archive.
func (a *PGArchive) Rows(ctx context.Context, q ArchiveQuery, g ArchiveGroup, fn func(export.Row) error) error {
	since, until := archiveBounds(q)
	from, to := g.Hour, g.Hour.Add(time.Hour)
	if since.After(from) {
		from = since
	}
	if until.Before(to) {
		to = until
	}
	sql := fmt.Sprintf(`SELECT id, coalesce(event_id::text, ''), coalesce(event_type, ''), coalesce(session_id, ''),
		coalesce(visitor_id, ''), coalesce(site_id::text, ''), timestamp, coalesce(url, ''), coalesce(path, ''),
		coalesce(ip_address::text, ''), coalesce(user_agent, ''), coalesce(raw_event_data::text, '{}'), received_at,
		coalesce(referrer, ''), coalesce(node_id, '')
		FROM %s WHERE node_id = $1 AND coalesce(site_id::text, '') = $2 AND received_at >= $3 AND received_at < $4 AND id < $5
		ORDER BY id`, quoteIdent(a.table()))
	rows, err := a.Pool.Query(ctx, sql, q.NodeID, g.Site, from, to, int64(q.BeforeIndex))
	if err != nil {
		return fmt.Errorf("query archived rows: %w", err)
	}
	defer rows.Close()
	var e event.Event
	for rows.Next() {
		var id int64
		var ts *time.Time
		var raw string
		e = event.Event{}
		if err := rows.Scan(&id, &e.EventID, &e.EventType, &e.SessionID, &e.VisitorID, &e.SiteID, &ts, &e.URL, &e.Path,
			&e.IPAddress, &e.UserAgent, &raw, &e.ReceivedAt, &e.Referrer, &e.NodeID); err != nil {
			return fmt.Errorf("scan archived row: %w", err)
		}
		if ts != nil {
			e.Timestamp = ts.UTC()
		}
		e.ReceivedAt = e.ReceivedAt.UTC()
		// inet's text form carries the mask of a host address.
		e.IPAddress = strings.TrimSuffix(strings.TrimSuffix(e.IPAddress, "/32"), "/128")
		e.Raw = []byte(raw)
		if err := fn(export.Row{ID: uint64(id), Event: &e}); err != nil {
			return err
		}
	}
	return rows.Err()
}

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
