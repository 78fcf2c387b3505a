package bench

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// PGSource reads the events table of a collector's PostgreSQL database.
type PGSource struct {
	URL   string
	Table string // default "events"
}

// Name identifies the source without its credentials.
func (s *PGSource) Name() string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return "postgresql"
	}
	return fmt.Sprintf("postgresql %s%s table %s", u.Host, u.Path, s.table())
}

func (s *PGSource) table() string {
	if s.Table == "" {
		return "events"
	}
	return s.Table
}

// Events streams the rows whose raw_event_data carries one of the runs.
func (s *PGSource) Events(ctx context.Context, runs []string, fn func(StoredEvent) error) error {
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	q := fmt.Sprintf(`SELECT event_id::text, COALESCE(raw_event_data->>'bench_id', ''), id::text, COALESCE(node_id::text, '')
		FROM %s WHERE raw_event_data->>'bench_run' = ANY($1)`, pgx.Identifier{s.table()}.Sanitize())
	rows, err := conn.Query(ctx, q, runs)
	if err != nil {
		return fmt.Errorf("query %s: %w", s.table(), err)
	}
	defer rows.Close()
	var eventID, benchID, id, node string
	for rows.Next() {
		if err := rows.Scan(&eventID, &benchID, &id, &node); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := fn(StoredEvent{EventID: eventID, BenchID: benchID, Where: "id=" + id + " node=" + node}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query %s: %w", s.table(), err)
	}
	return nil
}
