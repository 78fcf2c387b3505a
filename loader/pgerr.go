package loader

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// errorKind says what the loader does about a failed statement.
type errorKind int

const (
	// kindTransient: connection lost, database restarting, timeouts, lock
	// conflicts, missing schema or permissions - anything that is not about
	// one row. Retry the whole batch later; never reject rows for it.
	kindTransient errorKind = iota
	// kindData: PostgreSQL refused a value (classes 22 data exception,
	// 23 integrity constraint, 54 program limit such as an index row too
	// large). Some row of the batch is at fault: bisect.
	kindData
	// kindDuplicate: unique violation; some rows are already loaded (a replay
	// ran ahead of the loader). Load the batch with ON CONFLICT DO NOTHING.
	kindDuplicate
	// kindNoPartition: a row's day has no partition (dropped since the loader
	// last looked). Create partitions and retry.
	kindNoPartition
)

func classify(err error) errorKind {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return kindTransient
	}
	switch {
	case pgErr.Code == "23505":
		return kindDuplicate
	case pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition"):
		return kindNoPartition
	case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"), strings.HasPrefix(pgErr.Code, "54"):
		return kindData
	}
	return kindTransient
}

// isConnectionError reports whether err means the database is unreachable
// (as opposed to reachable and refusing), for DatabaseState.
func isConnectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08 connection exception, 57P01-03 shutdown / cannot connect now,
		// 53 insufficient resources (too many connections, disk full).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") ||
			strings.HasPrefix(pgErr.Code, "53")
	}
	// No answer from the server at all: dial errors, resets, timeouts.
	return true
}

// sqlState returns err's SQLSTATE, or "" when the server did not answer.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
