package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// StoredEvent is one event found in a destination.
type StoredEvent struct {
	EventID string
	BenchID string // from raw_event_data.bench_id; empty when the raw event lacks it
	Where   string // where it was found (row id and node, or object key), for the report
}

// Source lists the stored events that belong to the given bench runs.
type Source interface {
	Name() string
	Events(ctx context.Context, runs []string, fn func(StoredEvent) error) error
}

// VerifyOptions tune verification.
type VerifyOptions struct {
	ListLimit int           // how many of each problem to list (default 20)
	Wait      time.Duration // keep re-checking while events are missing, up to this long (loading is asynchronous)
	Poll      time.Duration // between re-checks (default 1s)
	// Stall ends the wait early when nothing new has arrived for this long
	// (0: wait the whole Wait): a destination that is not being written to
	// at all need not hold a run for minutes.
	Stall time.Duration
	// StrictPixels counts pixel hits that never arrived as missing. Off by
	// default: the collector answers a GIF whatever happens (browsers ignore
	// an image's status), so a pixel's answer is not an acknowledgement.
	StrictPixels bool
}

// VerifyReport is the outcome for one source.
type VerifyReport struct {
	Source        string   `json:"source"`
	Acknowledged  int      `json:"acknowledged"`   // recorded events with an event_id
	Pixels        int      `json:"pixels"`         // recorded pixel hits (no event_id)
	Stored        int      `json:"stored"`         // events of these runs found in the source
	Matched       int      `json:"matched"`        // recorded events found exactly once with the acknowledged id
	Missing       int      `json:"missing"`        // acknowledged, not found
	MissingPixels int      `json:"missing_pixels"` // pixel hits not found (a failure only with StrictPixels)
	Duplicated    int      `json:"duplicated"`     // extra copies: stored more than once (by bench_id or by event_id)
	Mismatched    int      `json:"mismatched"`     // found once, but under another event_id than the one acknowledged
	Extra         int      `json:"extra"`          // stored, never acknowledged (e.g. the answer was lost); not a failure
	MissingList   []string `json:"missing_list,omitempty"`
	DupList       []string `json:"duplicated_list,omitempty"`
	MismatchList  []string `json:"mismatched_list,omitempty"`
	ExtraList     []string `json:"extra_list,omitempty"`
	Checks        int      `json:"checks"` // how many passes it took (Wait)
	Seconds       float64  `json:"seconds"`
	OK            bool     `json:"ok"`
}

// Failed reports whether anything acknowledged is lost or anything is stored twice.
func (r *VerifyReport) Failed() bool { return !r.OK }

// Verify checks rec against src. With opts.Wait it re-reads the source until
// nothing is missing or the wait is over (duplicates are final: waiting
// cannot remove them, so they end the wait at once).
func Verify(ctx context.Context, rec *Record, src Source, opts VerifyOptions) (*VerifyReport, error) {
	if opts.ListLimit <= 0 {
		opts.ListLimit = 20
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	start := time.Now()
	deadline := start.Add(opts.Wait)
	checks := 0
	lastFound, progressAt := -1, start
	for {
		checks++
		rep, err := verifyOnce(ctx, rec, src, opts)
		if err != nil {
			return nil, err
		}
		rep.Checks = checks
		rep.Seconds = time.Since(start).Seconds()
		pending := rep.Missing > 0 || rep.Mismatched > 0 || (opts.StrictPixels && rep.MissingPixels > 0)
		if rep.Stored != lastFound {
			lastFound, progressAt = rep.Stored, time.Now()
		}
		stalled := opts.Stall > 0 && time.Since(progressAt) >= opts.Stall
		if !pending || rep.Duplicated > 0 || stalled || time.Now().Add(opts.Poll).After(deadline) {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, nil
		case <-time.After(opts.Poll):
		}
	}
}

func verifyOnce(ctx context.Context, rec *Record, src Source, opts VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{Source: src.Name()}
	byBench := make(map[string]int32, len(rec.Events))
	byEvent := make(map[string]int32, len(rec.Events))
	storedID := make(map[string]string, len(rec.Events)) // bench_id -> event_id of its first copy
	where := map[string]string{}
	var noBench []string                                   // stored events without bench_id, matched by event_id
	eventBench := make(map[string]string, len(rec.Events)) // event_id -> bench_id of its first copy
	eventMixed := map[string]bool{}                        // copies of an event_id under different (or no) bench_ids
	err := src.Events(ctx, rec.Runs, func(e StoredEvent) error {
		rep.Stored++
		if e.EventID != "" {
			n := byEvent[e.EventID] + 1
			byEvent[e.EventID] = n
			if n == 1 {
				eventBench[e.EventID] = e.BenchID
			} else {
				if n == 2 {
					where[e.EventID] = e.Where
				}
				if eventBench[e.EventID] != e.BenchID || e.BenchID == "" {
					eventMixed[e.EventID] = true
				}
			}
		}
		if e.BenchID == "" {
			noBench = append(noBench, e.EventID)
			return nil
		}
		n := byBench[e.BenchID] + 1
		byBench[e.BenchID] = n
		if n == 1 {
			storedID[e.BenchID] = e.EventID
		} else if n == 2 {
			where[e.BenchID] = e.Where
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", src.Name(), err)
	}
	limit := func(list *[]string, s string) {
		if len(*list) < opts.ListLimit {
			*list = append(*list, s)
		}
	}
	recorded := make(map[string]struct{}, len(rec.Events))
	for _, ev := range rec.Events {
		recorded[ev.BenchID] = struct{}{}
		if ev.Kind == KindPixel {
			rep.Pixels++
		} else {
			rep.Acknowledged++
		}
		n := byBench[ev.BenchID]
		if n == 0 && ev.EventID != "" && byEvent[ev.EventID] > 0 {
			n = 1 // stored without its bench_id (raw event trimmed?) but under the acknowledged id
			storedID[ev.BenchID] = ev.EventID
		}
		switch {
		case n == 0 && ev.Kind == KindPixel:
			rep.MissingPixels++
			if opts.StrictPixels {
				limit(&rep.MissingList, ev.BenchID+" (pixel)")
			}
		case n == 0:
			rep.Missing++
			limit(&rep.MissingList, ev.BenchID+" event_id="+ev.EventID)
		case n > 1:
			rep.Duplicated += int(n - 1)
			limit(&rep.DupList, fmt.Sprintf("%s stored %d times (e.g. %s)", ev.BenchID, n, where[ev.BenchID]))
		case ev.EventID != "" && storedID[ev.BenchID] != ev.EventID:
			rep.Mismatched++
			limit(&rep.MismatchList, fmt.Sprintf("%s acknowledged as %s, stored as %s", ev.BenchID, ev.EventID, storedID[ev.BenchID]))
		default:
			rep.Matched++
		}
	}
	// Copies of an event_id that the bench_id check has not already counted:
	// one id under several bench_ids, or stored without a bench_id.
	for id, n := range byEvent {
		if n > 1 && (eventMixed[id] || eventBench[id] == "") {
			rep.Duplicated += int(n - 1)
			limit(&rep.DupList, fmt.Sprintf("event_id %s stored %d times (e.g. %s)", id, n, where[id]))
		}
	}
	var extras []string
	for b, n := range byBench {
		if _, ok := recorded[b]; !ok {
			rep.Extra++
			if n > 1 {
				rep.Duplicated += int(n - 1)
				limit(&rep.DupList, fmt.Sprintf("%s (unacknowledged) stored %d times (e.g. %s)", b, n, where[b]))
			}
			if len(extras) < opts.ListLimit {
				extras = append(extras, b)
			}
		}
	}
	recordedIDs := make(map[string]struct{}, len(rec.Events))
	for _, ev := range rec.Events {
		if ev.EventID != "" {
			recordedIDs[ev.EventID] = struct{}{}
		}
	}
	for _, id := range noBench {
		if _, ok := recordedIDs[id]; !ok {
			rep.Extra++
			if len(extras) < opts.ListLimit {
				extras = append(extras, "event_id="+id)
			}
		}
	}
	sort.Strings(extras)
	rep.ExtraList = extras
	sort.Strings(rep.DupList)
	rep.OK = rep.Missing == 0 && rep.Duplicated == 0 && rep.Mismatched == 0 && (!opts.StrictPixels || rep.MissingPixels == 0)
	return rep, nil
}

// WriteVerifyReport prints a human summary.
func WriteVerifyReport(w io.Writer, r *VerifyReport) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "verify %s: %s\n", r.Source, verdict)
	fmt.Fprintf(w, "  acknowledged %d (+%d pixel hits), stored %d, matched %d\n", r.Acknowledged, r.Pixels, r.Stored, r.Matched)
	fmt.Fprintf(w, "  missing %d, duplicated %d, mismatched %d, extra %d (unacknowledged but stored), pixels missing %d\n",
		r.Missing, r.Duplicated, r.Mismatched, r.Extra, r.MissingPixels)
	list := func(title string, items []string, total int) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "  %s (first %d of %d):\n", title, len(items), total)
		for _, s := range items {
			fmt.Fprintf(w, "    %s\n", s)
		}
	}
	list("missing", r.MissingList, r.Missing)
	list("duplicated", r.DupList, r.Duplicated)
	list("mismatched", r.MismatchList, r.Mismatched)
	list("extra", r.ExtraList, r.Extra)
	if r.Checks > 1 {
		fmt.Fprintf(w, "  (%d checks over %.1fs)\n", r.Checks, r.Seconds)
	}
}

// joinRuns is for source names and logs.
func joinRuns(runs []string) string { return strings.Join(runs, ",") }
