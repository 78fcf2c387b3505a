package deploycheck

import (
	"fmt"
	"strings"
)

type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

func (k metricKind) String() string {
	return [...]string{"counter", "gauge", "histogram"}[k]
}

// metricUse is one reference to a metric in a PromQL expression.
type metricUse struct {
	Name      string   // as written: collector_accept_duration_seconds_bucket
	Functions []string // enclosing function calls, innermost first
}

// promqlMetricUses lists the collector_* series an expression selects, each
// with the functions around it. It is a lexical scan, not a PromQL parser:
// enough to tell whether a counter is rated and a histogram quantiled, and to
// find unbalanced brackets, which together are most of what goes wrong in a
// dashboard.
func promqlMetricUses(expr, prefix string) ([]metricUse, error) {
	var uses []metricUse
	type frame struct {
		open byte
		fn   string
	}
	var stack []frame
	closing := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i += end + 2
		case c == '(' || c == '[' || c == '{':
			fn := ""
			if c == '(' {
				fn = identBefore(expr, i)
			}
			stack = append(stack, frame{open: c, fn: fn})
			i++
		case c == ')' || c == ']' || c == '}':
			if len(stack) == 0 || stack[len(stack)-1].open != closing[c] {
				return nil, fmt.Errorf("unbalanced %c at %d in %q", c, i, expr)
			}
			stack = stack[:len(stack)-1]
			i++
		case isNameStart(c) || c == ':':
			j := i
			for j < len(expr) && (isNameChar(expr[j]) || expr[j] == ':') {
				j++
			}
			word := expr[i:j]
			inLabels := len(stack) > 0 && stack[len(stack)-1].open == '{'
			inGrouping := len(stack) > 0 && (stack[len(stack)-1].fn == "by" || stack[len(stack)-1].fn == "without" || stack[len(stack)-1].fn == "on" || stack[len(stack)-1].fn == "ignoring")
			if strings.HasPrefix(word, prefix) && !inLabels && !inGrouping && (i == 0 || !isNameChar(expr[i-1])) {
				var fns []string
				for k := len(stack) - 1; k >= 0; k-- {
					if f := stack[k].fn; f != "" && f != "by" && f != "without" {
						fns = append(fns, f)
					}
				}
				uses = append(uses, metricUse{Name: word, Functions: fns})
			}
			i = j
		default:
			i++
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unclosed %c in %q", stack[len(stack)-1].open, expr)
	}
	return uses, nil
}

func identBefore(s string, i int) string {
	j := i
	for j > 0 && s[j-1] == ' ' {
		j--
	}
	k := j
	for k > 0 && isNameChar(s[k-1]) {
		k--
	}
	return s[k:j]
}

var rangeFunctions = map[string]bool{"rate": true, "irate": true, "increase": true}

// lintMetricUse says what is wrong with one use of a known metric: a counter
// that is not rated, a gauge that is, a histogram selected without its
// _bucket/_sum/_count suffix or bucketed outside histogram_quantile.
func lintMetricUse(u metricUse, known map[string]metricKind) error {
	base, suffix := u.Name, ""
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(u.Name, s); ok {
			if k, isKnown := known[b]; isKnown && k == histogram {
				base, suffix = b, s
			}
		}
	}
	kind, ok := known[base]
	if !ok {
		return fmt.Errorf("%s is not a metric the collector exports", u.Name)
	}
	innermost := ""
	if len(u.Functions) > 0 {
		innermost = u.Functions[0]
	}
	switch kind {
	case counter:
		if !rangeFunctions[innermost] {
			return fmt.Errorf("counter %s must be inside rate() or increase(), not %q", u.Name, innermost)
		}
	case gauge:
		if rangeFunctions[innermost] {
			return fmt.Errorf("gauge %s inside %s(): use deriv() or the value itself", u.Name, innermost)
		}
	case histogram:
		switch suffix {
		case "":
			return fmt.Errorf("histogram %s has no series of that name: select %s_bucket, _sum or _count", u.Name, u.Name)
		case "_bucket":
			hasQuantile := false
			for _, f := range u.Functions {
				hasQuantile = hasQuantile || f == "histogram_quantile"
			}
			if !rangeFunctions[innermost] || !hasQuantile {
				return fmt.Errorf("%s belongs in histogram_quantile(q, sum by (le) (rate(...)))", u.Name)
			}
		default:
			if !rangeFunctions[innermost] {
				return fmt.Errorf("%s is a counter: rate() or increase() it", u.Name)
			}
		}
	}
	return nil
}
