package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/evothesis/collector/wal"
)

// walDamagedError makes `wal verify` exit 3 when it finds damage, so scripts
// can tell "damaged" from "could not run".
type walDamagedError struct{ problems int }

func (e walDamagedError) Error() string { return fmt.Sprintf("%d problem(s) found", e.problems) }
func (e walDamagedError) ExitCode() int { return 3 }

func runWAL(ctx context.Context, c cli, args []string) error {
	if len(args) == 0 {
		return usageError{"want a subcommand: inspect, dump or verify"}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("wal "+sub, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	dir := fs.String("wal-dir", envOrDefault(c.getenv, "WAL_DIR"), "WAL directory (WAL_DIR)")
	asJSON := fs.Bool("json", false, "print JSON")
	from := fs.Uint64("from", 1, "dump: first index")
	limit := fs.Int("limit", 100, "dump: records to print (0 = all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch sub {
	case "inspect":
		return walInspect(c, *dir, *asJSON)
	case "dump":
		return walDump(ctx, c, *dir, *from, *limit)
	case "verify":
		return walVerify(c, *dir, *asJSON)
	default:
		return usageError{fmt.Sprintf("unknown subcommand %q: want inspect, dump or verify", sub)}
	}
}

func walInspect(c cli, dir string, asJSON bool) error {
	info, err := wal.Inspect(dir)
	if err != nil {
		return err
	}
	if asJSON {
		type seg struct {
			FirstIndex uint64    `json:"first_index"`
			LastIndex  uint64    `json:"last_index"`
			Bytes      int64     `json:"bytes"`
			Sealed     bool      `json:"sealed"`
			SealedAt   time.Time `json:"sealed_at,omitzero"`
			Path       string    `json:"path"`
		}
		type consumer struct {
			Name string `json:"name"`
			wal.ConsumerState
		}
		out := struct {
			Dir        string     `json:"dir"`
			FirstIndex uint64     `json:"first_index"`
			LastIndex  uint64     `json:"last_index"`
			Bytes      int64      `json:"bytes"`
			Segments   []seg      `json:"segments"`
			Consumers  []consumer `json:"consumers"`
		}{Dir: info.Dir, FirstIndex: info.FirstIndex, LastIndex: info.LastIndex, Bytes: info.Bytes, Segments: []seg{}, Consumers: []consumer{}}
		for _, s := range info.Segments {
			out.Segments = append(out.Segments, seg{s.FirstIndex, s.LastIndex, s.Bytes, s.Sealed, s.SealedAt, s.Path})
		}
		for _, cs := range info.Consumers {
			out.Consumers = append(out.Consumers, consumer{cs.Name, cs})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(c.stdout, "WAL %s: %d segments, indexes %d-%d, %d bytes\n\n", info.Dir, len(info.Segments), info.FirstIndex, info.LastIndex, info.Bytes)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEGMENT\tFIRST\tLAST\tRECORDS\tBYTES\tSTATE")
	for _, s := range info.Segments {
		state := "tail"
		if s.Sealed {
			state = "sealed " + s.SealedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", filepath.Base(s.Path), s.FirstIndex, s.LastIndex, s.LastIndex+1-s.FirstIndex, s.Bytes, state)
	}
	tw.Flush()
	if len(info.Consumers) > 0 {
		fmt.Fprintln(c.stdout)
		tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CONSUMER\tPOSITION\tBEHIND\tLAST SUCCESS\tLAST ERROR")
		for _, cs := range info.Consumers {
			behind := uint64(0)
			if info.LastIndex > cs.Position {
				behind = info.LastIndex - cs.Position
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", cs.Name, cs.Position, behind, fmtTime(cs.LastSuccess), cs.LastError)
		}
		tw.Flush()
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// walDump prints records as NDJSON: {"index":N,"record":<the event record>}.
// Records are JSON already, so they are embedded as they are; a record that
// is not valid JSON is printed as a string so the output stays NDJSON.
func walDump(ctx context.Context, c cli, dir string, from uint64, limit int) error {
	n := 0
	errStop := fmt.Errorf("limit reached")
	err := wal.Scan(ctx, dir, from, func(r wal.Record) error {
		if limit > 0 && n >= limit {
			return errStop
		}
		n++
		var err error
		if json.Valid(r.Data) {
			_, err = fmt.Fprintf(c.stdout, "{\"index\":%d,\"record\":%s}\n", r.Index, r.Data)
		} else {
			q, _ := json.Marshal(string(r.Data))
			_, err = fmt.Fprintf(c.stdout, "{\"index\":%d,\"raw\":%s}\n", r.Index, q)
		}
		return err
	})
	if err == errStop {
		return nil
	}
	return err
}

func walVerify(c cli, dir string, asJSON bool) error {
	rep, err := wal.Verify(dir)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "checked %d segments, %d records, %d bytes\n", rep.Segments, rep.Records, rep.Bytes)
		for _, p := range rep.Problems {
			fmt.Fprintf(c.stdout, "DAMAGED %s offset %d (index %d): %s\n", p.Segment, p.Offset, p.Index, p.Reason)
		}
		switch {
		case rep.OK():
			fmt.Fprintln(c.stdout, "OK: every record's checksum verified")
		case rep.TornTail:
			fmt.Fprintln(c.stdout, "only the tail of the last segment is torn (a crash mid-write); the next start cuts it and keeps the bytes in quarantine/")
		default:
			fmt.Fprintln(c.stdout, "acknowledged records are damaged: the collector will refuse to open this WAL; see docs/operations.md")
		}
	}
	if !rep.OK() {
		return walDamagedError{len(rep.Problems)}
	}
	return nil
}
