package deploycheck

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestInterpolateFollowsComposeRules(t *testing.T) {
	env := map[string]string{"SET": "value", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"$SET and ${SET}", "value and value", ""},
		{"${UNSET:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${EMPTY-dflt}", "", ""},
		{"${UNSET-dflt}", "dflt", ""},
		{"${UNSET:-${SET}-x}", "value-x", ""},
		{"${SET:+alt}", "alt", ""},
		{"${UNSET:+alt}", "", ""},
		{"cost $$5", "cost $5", ""},
		{"${UNSET:?set it}", "", "required variable UNSET"},
		{"${EMPTY:?set it}", "", "required variable EMPTY"},
		{"${EMPTY?set it}", "", ""},
		{"${SET", "", "unterminated"},
		{"${1BAD}", "", "bad variable name"},
		{"${SET/x/y}", "", "unsupported modifier"},
	}
	for _, tc := range cases {
		got, _, err := interpolate(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("interpolate(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	_, refs, _ := interpolate("${A:-${B}} $C ${D:?x}", lookup)
	var names []string
	for _, r := range refs {
		names = append(names, r.Name+r.Op)
	}
	if want := []string{"A:-", "B", "C", "D:?"}; !reflect.DeepEqual(names, want) {
		t.Errorf("refs = %v, want %v", names, want)
	}
}

func TestShellWordsSplitsLikeSh(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"V": "1.2", "EMPTY": ""}[k]
		return v, ok
	}
	cases := []struct {
		in   string
		want []string
	}{
		{`go build -o /out/x ./cmd/x`, []string{"go", "build", "-o", "/out/x", "./cmd/x"}},
		{`A=1 B=${V} go build -ldflags="-s -w -X main.v=${V}" .`, []string{"A=1", "B=1.2", "go", "build", "-ldflags=-s -w -X main.v=1.2", "."}},
		{`echo 'a $V' "b $V" c\ d`, []string{"echo", "a $V", "b 1.2", "c d"}},
		{`a && b; c || d | e`, []string{"a", "&&", "b", ";", "c", "||", "d", "|", "e"}},
		{`x="" y=${EMPTY:-dflt}`, []string{"x=", "y=dflt"}},
		{"a \\\n b", []string{"a", "b"}},
	}
	for _, tc := range cases {
		got, err := shellWords(tc.in, lookup)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`echo $(id)`, "echo `id`", `a > b`, `sleep 1 &`, `'open`, `"open`} {
		if got, err := shellWords(bad, lookup); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", bad, got)
		}
	}
	if got := splitCommands([]string{"a", "b", "&&", "c"}); !reflect.DeepEqual(got, [][]string{{"a", "b"}, {"c"}}) {
		t.Errorf("splitCommands = %q", got)
	}
}

func TestParseDotenv(t *testing.T) {
	in := "# comment\n\nA=1\nexport B=two words # note\nC=\"quoted # not a comment\"\nD='single'\nE=\n"
	entries, err := parseDotenv(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "single", "E": ""}
	if got := envMap(entries); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"A=1\nA=2\n", "NOEQUALS\n", "1A=x\n", "A=\"open\n", "A=\"x\" trailing\n"} {
		if _, err := parseDotenv(strings.NewReader(bad)); err == nil {
			t.Errorf("parseDotenv(%q) accepted", bad)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	src := `# syntax=docker/dockerfile:1
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
ARG GO_VERSION
ARG VERSION=dev
RUN --mount=type=cache,target=/x \
    # a comment inside a continuation
    CGO_ENABLED=0 go build -o /out/app ./cmd/app
FROM scratch
COPY --from=build /out/app /app
ENV A=1 B="two words"
USER 65532:65532
ENTRYPOINT ["/app"]
`
	df, err := parseDockerfile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Stages) != 2 || df.Stages[0].Name != "build" || df.GlobalArgs["GO_VERSION"] != "1.26" {
		t.Fatalf("stages %+v, global args %v", df.Stages, df.GlobalArgs)
	}
	run, _ := df.Stages[0].Last("RUN")
	if mount, ok := run.Flag("mount"); !ok || mount != "type=cache,target=/x" || !strings.HasPrefix(run.Args, "CGO_ENABLED=0 go build") {
		t.Errorf("RUN = %+v", run)
	}
	if args := df.Stages[0].Args(df.GlobalArgs); args["GO_VERSION"] != "1.26" || args["VERSION"] != "dev" {
		t.Errorf("stage args %v", args)
	}
	env, err := df.Final().Env()
	if err != nil || env["A"] != "1" || env["B"] != "two words" {
		t.Errorf("ENV %v, %v", env, err)
	}
	ep, _ := df.Final().Last("ENTRYPOINT")
	if args, ok := ep.JSONArgs(); !ok || args[0] != "/app" {
		t.Errorf("ENTRYPOINT %v", args)
	}
	if _, err := parseDockerfile(strings.NewReader("RUN true\n")); err == nil {
		t.Error("accepted a Dockerfile without FROM")
	}
}

func TestDockerignoreMatchesLikeDocker(t *testing.T) {
	di, err := parseDockerignore(strings.NewReader("# c\n.git\ndata\n**/*.test\n/bin\ndocs\n!docs/keep.md\n*.md\n"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		".git/HEAD": true, "data/wal/x": true, "cmd/x/x.test": true, "x.test": true, "bin/collector": true,
		"docs/a.md": true, "README.md": true, "sub/data/x": false, "cmd/collector/main.go": false,
		"go.mod": false, "sub/README.md": false, "docs/keep.md": false, // re-included; *.md is root-only
	} {
		if got := di.Excluded(path); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
		}
	}
	di, _ = parseDockerignore(strings.NewReader("docs\n!docs/keep.md\n"))
	if di.Excluded("docs/keep.md") || !di.Excluded("docs/other.md") {
		t.Error("a ! line does not re-include")
	}
}

func TestParseNginx(t *testing.T) {
	ds, err := parseNginx(`events { worker_connections 10; }
http {
    # comment; with { braces }
    map $a $b { default ""; }
    log_format x '{"a":"$b"}';
    server { listen 80; location = /x { return 503 '{"status":"error"}'; } }
}`)
	if err != nil {
		t.Fatal(err)
	}
	http, err := nginxOne(ds, "http")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := nginxOne(http.Block, "log_format")
	if lf.Args[1] != `{"a":"$b"}` {
		t.Errorf("log_format args %q", lf.Args)
	}
	m, _ := nginxOne(http.Block, "map")
	if d := m.Block[0]; d.Name != "default" || len(d.Args) != 1 || d.Args[0] != "" {
		t.Errorf("map block %+v", m.Block)
	}
	srv, _ := nginxOne(http.Block, "server")
	loc, _ := nginxOne(srv.Block, "location")
	if ret, _ := nginxOne(loc.Block, "return"); ret.Args[1] != `{"status":"error"}` {
		t.Errorf("return args %q", ret.Args)
	}
	for _, bad := range []string{"http {", "listen 80", "}", "a 'open;", "{ }"} {
		if _, err := parseNginx(bad); err == nil {
			t.Errorf("parseNginx(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"1m": 1 << 20, "8k": 8 << 10, "1024": 1024, "2g": 2 << 30} {
		if got, err := nginxSize(in); err != nil || got != want {
			t.Errorf("nginxSize(%q) = %d, %v", in, got, err)
		}
	}
}

func TestParseUnitAndDurations(t *testing.T) {
	u, err := parseUnit(strings.NewReader("[Unit]\nDescription=x\n[Service]\n; c\nEnvironment=A=1 \"B=two words\"\nEnvironment=C=3\nExecStart=/bin/x \\\n  serve\n"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := u.Environment()
	if err != nil || !reflect.DeepEqual(env, map[string]string{"A": "1", "B": "two words", "C": "3"}) {
		t.Errorf("Environment() = %v, %v", env, err)
	}
	if v, _ := u.Get("Service", "ExecStart"); strings.Join(strings.Fields(v), " ") != "/bin/x serve" {
		t.Errorf("ExecStart = %q", v)
	}
	for in, want := range map[string]time.Duration{"35s": 35 * time.Second, "1min 30s": 90 * time.Second, "90": 90 * time.Second, "2m": 2 * time.Minute, "500ms": 500 * time.Millisecond} {
		if got, err := systemdDuration(in); err != nil || got != want {
			t.Errorf("systemdDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseUnit(strings.NewReader("Key=outside\n")); err == nil {
		t.Error("accepted a setting outside a section")
	}
}

func TestPromQLLintCatchesMisusedMetrics(t *testing.T) {
	known := map[string]metricKind{"t_c_total": counter, "t_g": gauge, "t_h_seconds": histogram}
	lint := func(expr string) []string {
		uses, err := promqlMetricUses(expr, "t_")
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		var errs []string
		for _, u := range uses {
			if err := lintMetricUse(u, known); err != nil {
				errs = append(errs, err.Error())
			}
		}
		return errs
	}
	for _, expr := range []string{
		`sum by (route) (rate(t_c_total{instance=~"$i", x="t_g"}[$__rate_interval]))`,
		`histogram_quantile(0.99, sum by (le, t_label) (rate(t_h_seconds_bucket[5m])))`,
		`max by (instance) (t_g / t_g)`,
		`deriv(t_g[5m])`,
		`rate(t_h_seconds_sum[5m]) / rate(t_h_seconds_count[5m])`,
	} {
		if errs := lint(expr); len(errs) > 0 {
			t.Errorf("%s: %v", expr, errs)
		}
	}
	for expr, want := range map[string]string{
		`t_c_total`:                         "counter",
		`sum(t_c_total)`:                    "counter",
		`rate(t_g[5m])`:                     "gauge",
		`t_h_seconds`:                       "histogram",
		`sum(rate(t_h_seconds_bucket[5m]))`: "histogram_quantile",
		`histogram_quantile(0.9, t_h_seconds_bucket)`: "histogram_quantile",
		`t_unknown`: "not a metric",
	} {
		if errs := lint(expr); !strings.Contains(strings.Join(errs, ";"), want) {
			t.Errorf("%s: errors %q, want one about %q", expr, errs, want)
		}
	}
	for _, unbalanced := range []string{`rate(t_c_total[5m]`, `sum(t_g))`, `t_g{a="b"`, `t_g{a="b}`} {
		if _, err := promqlMetricUses(unbalanced, "t_"); err == nil {
			t.Errorf("%s: accepted", unbalanced)
		}
	}
}

func FuzzInterpolate(f *testing.F) {
	for _, s := range []string{"${A:-${B:-c}}", "$$", "${A:?x}", "a$b", "${", "$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, _, err := interpolate(s, func(k string) (string, bool) { return "", false })
		if err == nil && !strings.Contains(s, "$") && out != s {
			t.Fatalf("interpolate(%q) = %q: text without $ must pass through", s, out)
		}
	})
}

func FuzzShellWords(f *testing.F) {
	for _, s := range []string{`a "b c" 'd'`, `x=${Y:-z} go build`, `a\ b && c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := shellWords(s, func(string) (string, bool) { return "", false })
		if err == nil && strings.Trim(s, " \t\n") == "" && len(words) != 0 {
			t.Fatalf("shellWords(%q) = %q", s, words)
		}
	})
}

func FuzzParseNginx(f *testing.F) {
	f.Add(`http { server { listen 80; location / { return 200 "ok"; } } }`)
	f.Add(`a 'b\'c' "d"; # e`)
	f.Fuzz(func(t *testing.T, s string) {
		parseNginx(s) // must not panic or hang
	})
}

func FuzzParseDotenv(f *testing.F) {
	f.Add("A=1\nB='x'\nC=\"y # z\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := parseDotenv(strings.NewReader(s))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if seen[e.Key] || !envKeyPattern.MatchString(e.Key) {
				t.Fatalf("parseDotenv(%q) returned %+v", s, entries)
			}
			seen[e.Key] = true
		}
	})
}
