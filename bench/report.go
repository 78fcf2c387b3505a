package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteLoadReport prints a run as a human table.
func WriteLoadReport(w io.Writer, r *LoadResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := fmt.Sprintf("closed loop, %d connections", r.Connections)
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f req/s, %d connections", r.TargetRate, r.Connections)
	}
	fmt.Fprintf(tw, "target\t%s\t(%s)\n", r.Target, mode)
	fmt.Fprintf(tw, "run\t%s\tmix %s, batch %d\n", r.RunID, r.Mix, r.BatchSize)
	fmt.Fprintf(tw, "elapsed\t%.2fs\t\n", r.Elapsed)
	fmt.Fprintf(tw, "requests\t%d\t%.0f/s\n", r.Requests, r.RequestsPerSec)
	fmt.Fprintf(tw, "events accepted\t%d\t%.0f/s (of %d sent; %d refused; %d pixel hits without id)\n",
		r.EventsAccepted, r.AcceptedEventsPerSec, r.EventsSent, r.EventsRefused, r.PixelsAccepted)
	var st []string
	for _, k := range sortedKeys(r.Status) {
		st = append(st, fmt.Sprintf("%s: %d", k, r.Status[k]))
	}
	fmt.Fprintf(tw, "responses\t%s\t\n", strings.Join(st, ", "))
	if len(r.Errors) > 0 {
		var es []string
		for _, k := range sortedKeys(r.Errors) {
			es = append(es, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		fmt.Fprintf(tw, "transport errors\t%s\t\n", strings.Join(es, ", "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
	row := func(name string, l Latency) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	}
	if r.Mode == "open" {
		row("from intended send", r.Latency)
		if r.Service != nil {
			row("service time", *r.Service)
		}
	} else {
		row("request", r.Latency)
	}
	tw.Flush()
	if r.LateSends > 0 {
		fmt.Fprintf(w, "\n%d sends left more than 1 ms behind schedule (server stalled, or the generator could not keep up); their wait is in the latency above.\n", r.LateSends)
	}
}
