package lag

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/evothesis/collector/httpapi"
)

// WriteJSON writes r as indented JSON (`collector lag --json`).
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as the human table of `collector lag`.
func WriteTable(w io.Writer, r Report) error {
	fmt.Fprintf(w, "node %s  %s  %s\n", orDash(r.NodeID), r.Mode, r.GeneratedAt.Format(time.RFC3339))
	walRange := "empty"
	if r.WAL.LastIndex >= r.WAL.FirstIndex && r.WAL.LastIndex > 0 {
		walRange = fmt.Sprintf("%d..%d", r.WAL.FirstIndex, r.WAL.LastIndex)
	}
	fmt.Fprintf(w, "WAL %s  head %d  %s in %d segments", walRange, r.WAL.LastIndex, FormatBytes(r.WAL.Bytes), r.WAL.Segments)
	if r.WAL.Dir != "" {
		fmt.Fprintf(w, "  (%s)", r.WAL.Dir)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
	if len(r.Consumers) == 0 {
		fmt.Fprintln(w, "no consumers registered")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tPOSITION\tHEAD\tBEHIND\tBYTES BEHIND\tOLDEST PENDING\tLAST SUCCESS\tLAST ERROR")
	for _, c := range r.Consumers {
		pos := strconv.FormatUint(c.Position, 10)
		if c.PositionSource != "wal" {
			pos += " (" + c.PositionSource + ")"
		}
		oldest := "-"
		switch {
		case c.OldestPendingAt != nil:
			oldest = FormatAge(time.Duration(c.OldestPendingAge*float64(time.Second))) + " ago"
		case c.EventsBehind > 0:
			oldest = "unknown"
		}
		lastErr := "-"
		if c.LastError != "" {
			lastErr = truncate(oneLine(c.LastError), 80)
			if c.LastErrorAt != nil {
				lastErr = ago(r.GeneratedAt, *c.LastErrorAt) + ": " + lastErr
			}
		}
		success := "never"
		if c.LastSuccess != nil {
			success = ago(r.GeneratedAt, *c.LastSuccess)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", c.Name, pos, c.Head, c.EventsBehind, FormatBytes(c.BytesBehind), oldest, success, lastErr)
	}
	return tw.Flush()
}

// Handler serves GET /lag: the JSON of report(), built per request.
func Handler(report func() Report) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		httpapi.WriteJSON(ctx, fasthttp.StatusOK, report())
	}
}

// FormatBytes is n in binary units (1.5 MiB).
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// FormatAge is d rounded for people: 850ms, 12s, 3m20s, 5h02m, 3d04h.
func FormatAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return FormatAge(d) + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
