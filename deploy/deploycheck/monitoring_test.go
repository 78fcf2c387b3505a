package deploycheck

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// collectorMetrics are the series the collector exports that the dashboard
// and the alerts may use, with their types. charted marks the ones the
// dashboard must show.
var collectorMetrics = map[string]struct {
	kind    metricKind
	charted bool
}{
	"collector_http_requests_total":               {counter, true},
	"collector_http_connections_rejected_total":   {counter, false},
	"collector_events_accepted_total":             {counter, true},
	"collector_events_rejected_total":             {counter, true},
	"collector_accept_duration_seconds":           {histogram, true},
	"collector_wal_fsync_duration_seconds":        {histogram, true},
	"collector_wal_bytes":                         {gauge, true},
	"collector_wal_max_bytes":                     {gauge, false},
	"collector_wal_segments":                      {gauge, true},
	"collector_wal_first_index":                   {gauge, false},
	"collector_wal_last_index":                    {gauge, true},
	"collector_wal_full":                          {gauge, true},
	"collector_wal_failed":                        {gauge, true},
	"collector_loader_lag_events":                 {gauge, true},
	"collector_loader_lag_seconds":                {gauge, true},
	"collector_loader_rows_total":                 {counter, true},
	"collector_loader_copy_duration_seconds":      {histogram, true},
	"collector_loader_rejected_rows_total":        {counter, true},
	"collector_export_lag_events":                 {gauge, true},
	"collector_export_lag_seconds":                {gauge, true},
	"collector_export_objects_total":              {counter, true},
	"collector_export_failures_total":             {counter, true},
	"collector_elastic_allowed_rate":              {gauge, true},
	"collector_elastic_wait_seconds_total":        {counter, true},
	"collector_elastic_sched_latency_p99_seconds": {gauge, true},
	"collector_elastic_congested_windows_total":   {counter, true},
	"collector_elastic_admitted_total":            {counter, false},
}

func knownMetricKinds() map[string]metricKind {
	m := map[string]metricKind{}
	for name, meta := range collectorMetrics {
		m[name] = meta.kind
	}
	return m
}

// baseMetric strips a histogram's series suffix.
func baseMetric(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			if meta, known := collectorMetrics[b]; known && meta.kind == histogram {
				return b
			}
		}
	}
	return name
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

func TestGrafanaDashboardChartsEveryMetricCorrectly(t *testing.T) {
	var dash struct {
		UID           string         `json:"uid"`
		Title         string         `json:"title"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name, Type string
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(readRepoFile(t, "deploy/grafana/collector-dashboard.json")), &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 30 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and a current schema", dash.UID, dash.Title, dash.SchemaVersion)
	}
	dsVar := ""
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" {
			dsVar = "${" + v.Name + "}"
		}
	}
	if dsVar == "" {
		t.Fatal("no datasource variable: the dashboard would be tied to one Grafana's data source uid")
	}
	for _, v := range dash.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVar) {
			t.Errorf("variable %s does not query the datasource variable %s", v.Name, dsVar)
		}
	}

	var panels []grafanaPanel
	for _, p := range dash.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...) // collapsed rows
	}
	ids := map[int]string{}
	charted := map[string]bool{}
	type cell struct{ x, y int }
	occupied := map[cell]string{}
	for _, p := range panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
	overlap:
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := occupied[cell{x, y}]; taken {
					t.Errorf("panels %q and %q overlap at (%d,%d)", other, p.Title, x, y)
					break overlap
				}
				occupied[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != dsVar {
			t.Errorf("panel %q does not use the datasource variable %s", p.Title, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			uses, err := promqlMetricUses(target.Expr, "collector_")
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			if len(uses) == 0 {
				t.Errorf("panel %q query %s: uses no collector metric", p.Title, target.RefID)
			}
			for _, u := range uses {
				if err := lintMetricUse(u, knownMetricKinds()); err != nil {
					t.Errorf("panel %q: %v\n  %s", p.Title, err, target.Expr)
				}
				charted[baseMetric(u.Name)] = true
			}
		}
	}
	for name, meta := range collectorMetrics {
		if meta.charted && !charted[name] {
			t.Errorf("the dashboard does not chart %s", name)
		}
	}
}

func TestPrometheusAlertsUseRealMetricsAndLinkTheRunbook(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "deploy/prometheus/alerts.yml")), &rules); err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(readRepoFile(t, "docs/operations.md"))
	runbook := regexp.MustCompile(`/docs/operations\.md#([a-z0-9_-]+)$`)
	count := 0
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			count++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("rule %q: missing or duplicate alert name", r.Alert)
			}
			seen[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			m := runbook.FindStringSubmatch(r.Annotations["runbook_url"])
			if m == nil {
				t.Errorf("%s: runbook_url %q does not point into docs/operations.md", r.Alert, r.Annotations["runbook_url"])
			} else if !anchors[m[1]] {
				t.Errorf("%s: docs/operations.md has no section #%s", r.Alert, m[1])
			}
			uses, err := promqlMetricUses(r.Expr, "collector_")
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			if len(uses) == 0 && !strings.HasPrefix(r.Expr, "up{") {
				t.Errorf("%s: uses no collector metric", r.Alert)
			}
			for _, u := range uses {
				if err := lintMetricUse(u, knownMetricKinds()); err != nil {
					t.Errorf("%s: %v", r.Alert, err)
				}
			}
		}
	}
	if count < 5 {
		t.Errorf("only %d alerting rules", count)
	}
}
