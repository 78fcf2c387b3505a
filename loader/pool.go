package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// sqlalchemyDriver matches the "+driver" part of SQLAlchemy URLs
// (postgresql+psycopg2://...), which the seed's DATABASE_URL may carry.
var sqlalchemyDriver = regexp.MustCompile(`^(postgres(?:ql)?)\+[a-z0-9_]+://`)

// NewPool builds the connection pool from DATABASE_URL and the seed's sizing
// knobs: size connections are kept (SQLAlchemy's pool_size), up to
// maxOverflow more are opened under load and closed again when released
// (max_overflow). It does not connect: a database that is down at start
// must not stop the collector, so the first use connects (and fails, and is
// retried) instead.
func NewPool(ctx context.Context, databaseURL string, size, maxOverflow int) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, errors.New("DATABASE_URL is empty")
	}
	if size <= 0 {
		return nil, fmt.Errorf("DB_POOL_SIZE=%d: must be positive", size)
	}
	if maxOverflow < 0 {
		return nil, fmt.Errorf("DB_MAX_OVERFLOW=%d: must not be negative", maxOverflow)
	}
	url := sqlalchemyDriver.ReplaceAllString(databaseURL, "$1://")
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may contain the password; say only what is wrong.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL URL or connection string")
	}
	cfg.MaxConns = int32(size + maxOverflow)
	cfg.MinConns = 0
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "collector"
	}
	// Keepalives find a silently dead connection (a NAT or proxy that dropped
	// it) in seconds rather than the kernel's two hours.
	dialer := &net.Dialer{Timeout: cfg.ConnConfig.ConnectTimeout, KeepAlive: 15 * time.Second}
	cfg.ConnConfig.DialFunc = dialer.DialContext
	var pool *pgxpool.Pool
	cfg.AfterRelease = func(*pgx.Conn) bool {
		// Overflow connections are closed on release, as in SQLAlchemy.
		return pool.Stat().TotalConns() <= int32(size)
	}
	pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create PostgreSQL pool: %w", err)
	}
	return pool, nil
}
