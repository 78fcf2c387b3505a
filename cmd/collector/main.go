// Command collector is the single binary of the event collector: the server
// (`serve`) and the operator's tools (`wal`, `migrate`, `lag`, `replay`,
// `secret`, `bench`, `health`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// cli is what every subcommand gets from main: where to write and how to read
// the environment. Subcommands never read os.Getenv or os.Stdout directly, so
// tests can run them in-process.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c cli, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the collector (HTTP ingest, WAL, loader, shipper)", runServe},
		{"wal", "inspect, dump or verify a WAL directory", runWAL},
		{"config", "print the effective configuration (secrets redacted)", runConfig},
		{"migrate", "apply the PostgreSQL schema migrations (migrate status: list them)", runMigrate},
		{"lag", "how far behind each WAL consumer is (running node, or WAL_DIR offline)", runLag},
		{"replay", "re-load a WAL range into PostgreSQL idempotently", runReplay},
		{"secret", "encrypt credentials for the clients file; generate and rotate keys", runSecret},
		{"bench", "load-test a collector, verify what it stored, run the scenario suite", runBench},
		{"health", "check a running collector's /health (exit 0 on 200; for Docker HEALTHCHECK)", runHealth},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, c, os.Args[1:]))
}

func run(ctx context.Context, c cli, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(c.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, cmd := range commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(c.stderr, "collector %s: %v\n", cmd.name, err)
			return 2
		default:
			fmt.Fprintf(c.stderr, "collector %s: %v\n", cmd.name, err)
			var ec exitCoder
			if errors.As(err, &ec) {
				return ec.ExitCode()
			}
			return 1
		}
	}
	fmt.Fprintf(c.stderr, "collector: unknown command %q\n\n", args[0])
	usage(c.stderr)
	return 2
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCoder lets a command choose its exit status (e.g. `wal verify` exits 3
// when it finds damage).
type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: collector <command> [flags]\n\ncommands:")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(w, "\nRun 'collector <command> -h' for a command's flags.")
}
