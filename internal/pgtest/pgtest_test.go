package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestNewDatabaseIsUsableAndDroppedAfterTheTest(t *testing.T) {
	var u string
	t.Run("inner", func(t *testing.T) {
		u = New(t, "collector_test_pgtest")
		c, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatalf("connect to the new database: %v", err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	if u == "" {
		t.Skip("no PostgreSQL")
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(context.Background(), AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var n int
	if err := admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", cfg.Database).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", cfg.Database)
	}
}
