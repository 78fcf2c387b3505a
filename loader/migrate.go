package loader

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationTable is where goose records applied migrations.
const MigrationTable = "collector_schema_migrations"

// Advisory lock keys (pg_advisory_lock's bigint space is shared by every
// application on the database, so these are derived from our names rather
// than goose's default).
const (
	migrationLockID = 0x636f6c6c_0001 // "coll" + 1: schema migrations
	partitionLockID = 0x636f6c6c_0002 // "coll" + 2: partition create/drop
)

// Migration is one migration's outcome or status.
type Migration struct {
	Version int64
	Name    string
	Applied bool // applied now (Migrate) or before (MigrationStatus)
}

func newMigrator(pool *pgxpool.Pool, logger *slog.Logger) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	// A session lock (pg_try_advisory_lock on one connection, retried every
	// second for up to ten minutes) serialises migrators: a second node that
	// starts while the first migrates waits, then finds nothing to do.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(MigrationTable),
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	return goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(pool), sub, opts...)
}

// Migrate applies every pending migration and returns those it applied
// (none when the schema is current). Safe to run from several nodes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) ([]Migration, error) {
	p, err := newMigrator(pool, logger)
	if err != nil {
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	defer p.Close()
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	out := make([]Migration, 0, len(results))
	for _, r := range results {
		out = append(out, Migration{Version: r.Source.Version, Name: r.Source.Path, Applied: true})
	}
	return out, nil
}

// MigrationStatus lists every embedded migration and whether it is applied.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]Migration, error) {
	p, err := newMigrator(pool, nil)
	if err != nil {
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	defer p.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	out := make([]Migration, 0, len(st))
	for _, s := range st {
		out = append(out, Migration{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}
