package bench

import (
	"fmt"
	"os"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/components"
	"github.com/go-echarts/go-echarts/v2/opts"
)

func lineChart(title, subtitle, yName string) *charts.Line {
	l := charts.NewLine()
	l.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{Width: "1100px", Height: "380px", PageTitle: "collector bench"}),
		charts.WithTitleOpts(opts.Title{Title: title, Subtitle: subtitle}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "bottom", Type: "scroll"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "s"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: yName}),
		charts.WithGridOpts(opts.Grid{Bottom: "70"}),
		charts.WithDataZoomOpts(opts.DataZoom{Type: "inside"}),
	)
	return l
}

func points(t, v []float64) []opts.LineData {
	out := make([]opts.LineData, 0, len(t))
	for i := range t {
		out = append(out, opts.LineData{Value: []any{t[i], v[i]}})
	}
	return out
}

func seriesOpts() charts.SeriesOpts {
	return charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)})
}

// WriteHTML renders the result's time series as an HTML page of charts:
// throughput and latency percentiles of every load run, and the lag, memory
// and CPU series the scenarios sampled.
func WriteHTML(r *SuiteResult, path string) error {
	page := components.NewPage()
	page.SetPageTitle(fmt.Sprintf("collector bench — %s, %s", r.Level, r.Started.Format("2006-01-02 15:04 UTC")))
	page.SetLayout(components.PageFlexLayout)
	for _, s := range r.Scenarios {
		head := fmt.Sprintf("%d. %s", s.ID, s.Title)
		sub := s.Status
		if s.Reason != "" {
			sub += ": " + s.Reason
		}
		if len(s.Runs) > 0 {
			tp := lineChart(head+" — throughput", sub, "events/s accepted")
			lat := lineChart(head+" — p99 latency", "per second, from the intended send time in the open loop", "ms")
			for _, run := range s.Runs {
				var t, eps, p99 []float64
				for _, p := range run.Series {
					t = append(t, p.T)
					eps = append(eps, p.EPS)
					p99 = append(p99, p.P99)
				}
				tp.AddSeries(run.Name, points(t, eps), seriesOpts())
				lat.AddSeries(run.Name, points(t, p99), seriesOpts())
			}
			page.AddCharts(tp, lat)
			// Every percentile for the runs that matter most: open-loop runs
			// (or the only run).
			for _, run := range s.Runs {
				if run.Mode != "open" && len(s.Runs) > 1 {
					continue
				}
				pc := lineChart(head+" — latency percentiles: "+run.Name, fmt.Sprintf("overall p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f ms", run.Latency.P50, run.Latency.P99, run.Latency.P999, run.Latency.Max), "ms")
				var t, p50, p90, p99, mx []float64
				for _, p := range run.Series {
					t = append(t, p.T)
					p50 = append(p50, p.P50)
					p90 = append(p90, p.P90)
					p99 = append(p99, p.P99)
					mx = append(mx, p.Max)
				}
				pc.AddSeries("p50", points(t, p50), seriesOpts()).AddSeries("p90", points(t, p90), seriesOpts()).
					AddSeries("p99", points(t, p99), seriesOpts()).AddSeries("max", points(t, mx), seriesOpts())
				page.AddCharts(pc)
			}
		}
		byChart := map[string]*charts.Line{}
		var order []string
		for _, sr := range s.Series {
			c := byChart[sr.Chart]
			if c == nil {
				c = lineChart(head+" — "+sr.Chart, "", sr.Unit)
				byChart[sr.Chart] = c
				order = append(order, sr.Chart)
			}
			c.AddSeries(sr.Name, points(sr.T, sr.V), seriesOpts())
		}
		for _, name := range order {
			page.AddCharts(byChart[name])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	if err := page.Render(f); err != nil {
		f.Close()
		return fmt.Errorf("render HTML report: %w", err)
	}
	return f.Close()
}
