// Package pgtest makes throwaway PostgreSQL databases: one per test (New) or
// per bench run (Create), dropped afterwards, so that nothing is left in the
// shared `postgres` and `test` databases. It does not import testing, so the
// bench suite in the binary can use it too.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminURL is the test PostgreSQL of DEVELOPERS.md: 127.0.0.1:5432, trust
// authentication, user postgres.
const AdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Create makes a database named prefix_<random hex> through adminURL and
// returns its URL (adminURL with the database replaced, sslmode=disable
// unless set) and a function that drops it, closing its connections.
func Create(ctx context.Context, adminURL, prefix string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to PostgreSQL %s: %w", redact(adminURL), err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + "_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("parse admin URL: %w", err)
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// TB is the part of testing.TB that New uses.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// New creates a database for the test at AdminURL and drops it when the test
// ends. Without a reachable PostgreSQL it skips the test, or fails it when
// the CI environment variable is set: CI must never pass by skipping.
func New(t TB, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, drop, err := Create(ctx, AdminURL, prefix)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", AdminURL, err)
		}
		t.Skipf("no PostgreSQL at %s: %v", AdminURL, err)
	}
	t.Cleanup(drop)
	return u
}

// WithHost returns dbURL pointing at host:port instead (a proxy, say).
func WithHost(dbURL, hostport string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Host = hostport
	return u.String(), nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
