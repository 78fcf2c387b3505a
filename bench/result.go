package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// SuiteResult is one run of the scenario suite; result.json holds it and
// every report is generated from it.
type SuiteResult struct {
	Version   int               `json:"version"`
	Level     Level             `json:"level"`
	Command   string            `json:"command"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   Machine           `json:"machine"`
	Collector string            `json:"collector"`
	Scenarios []*ScenarioResult `json:"scenarios"`
}

// ScenarioResult is one scenario's figures and evidence.
type ScenarioResult struct {
	ID      int             `json:"id"`
	Name    string          `json:"name"`
	Title   string          `json:"title"`
	Status  string          `json:"status"` // ok | failed | error | skipped
	Reason  string          `json:"reason,omitempty"`
	Seconds float64         `json:"seconds"`
	Figures []Figure        `json:"figures"`
	Runs    []*LoadResult   `json:"runs,omitempty"`
	Series  []Series        `json:"series,omitempty"`
	Verify  []*VerifyReport `json:"verify,omitempty"`
	Notes   []string        `json:"notes,omitempty"`
}

// Figure is one measured number, with the no-op (or raw) baseline measured
// in the same run where there is one.
type Figure struct {
	Name         string  `json:"name"`
	Value        float64 `json:"value"`
	Unit         string  `json:"unit"`
	Baseline     float64 `json:"baseline,omitempty"`
	BaselineName string  `json:"baseline_name,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"` // Value / Baseline
	Target       string  `json:"target,omitempty"`
	Met          *bool   `json:"met,omitempty"`
	Command      string  `json:"command,omitempty"` // reproduces the figure by hand
}

// Series is a time series other than a load run's own (lags, RSS, ...).
type Series struct {
	Chart string    `json:"chart"` // series with the same chart are plotted together
	Name  string    `json:"name"`
	Unit  string    `json:"unit"`
	T     []float64 `json:"t"` // seconds since the scenario started
	V     []float64 `json:"v"`
}

func (s *Series) add(t, v float64) { s.T = append(s.T, t); s.V = append(s.V, v) }

// Failures lists scenarios that failed or could not run because of an error.
func (r *SuiteResult) Failures() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.Status == "failed" || s.Status == "error" {
			out = append(out, fmt.Sprintf("scenario %d (%s) %s: %s", s.ID, s.Name, s.Status, s.Reason))
		}
	}
	return out
}

// ReadSuiteResult reads a result.json.
func ReadSuiteResult(path string) (*SuiteResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r SuiteResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &r, nil
}

// WriteOutputs writes result.json and report.html into dir and, when md is
// set, regenerates the generated section of that BENCHMARKS.md.
func WriteOutputs(r *SuiteResult, dir, md string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := WriteHTML(r, filepath.Join(dir, "report.html")); err != nil {
		return err
	}
	if md != "" {
		return UpdateBenchmarksMD(md, r)
	}
	return nil
}

// WriteSuiteSummary prints every figure, one per line.
func WriteSuiteSummary(w io.Writer, r *SuiteResult) {
	for _, s := range r.Scenarios {
		fmt.Fprintf(w, "\n[%d] %s — %s (%.0fs)", s.ID, s.Title, s.Status, s.Seconds)
		if s.Reason != "" {
			fmt.Fprintf(w, ": %s", s.Reason)
		}
		fmt.Fprintln(w)
		for _, f := range s.Figures {
			fmt.Fprintf(w, "    %-58s %12s %s", f.Name, formatValue(f.Value), f.Unit)
			if f.Baseline != 0 {
				fmt.Fprintf(w, "  (%s %s; ratio %.2f)", f.BaselineName, formatValue(f.Baseline), f.Ratio)
			}
			if f.Target != "" {
				fmt.Fprintf(w, "  target %s: %s", f.Target, metString(f.Met))
			}
			fmt.Fprintln(w)
		}
		for _, v := range s.Verify {
			fmt.Fprintf(w, "    verify %s: ok=%v acknowledged=%d missing=%d duplicated=%d extra=%d\n", v.Source, v.OK, v.Acknowledged, v.Missing, v.Duplicated, v.Extra)
		}
	}
}

func metString(m *bool) string {
	switch {
	case m == nil:
		return "-"
	case *m:
		return "met"
	default:
		return "NOT met"
	}
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
