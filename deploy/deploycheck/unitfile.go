package deploycheck

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// systemdUnit holds a unit file's settings: section -> key -> values in
// order (a key may repeat: Environment=, SystemCallFilter=, ...).
type systemdUnit map[string]map[string][]string

// parseUnit reads systemd's unit file syntax: [Section] headers, Key=Value
// lines, # and ; comments, backslash line continuations.
func parseUnit(r io.Reader) (systemdUnit, error) {
	u := systemdUnit{}
	section := ""
	sc := bufio.NewScanner(r)
	var pending strings.Builder
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending.WriteString(strings.TrimSuffix(line, "\\"))
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(line)
		line = pending.String()
		pending.Reset()
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: setting outside a section", n)
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want Key=Value, got %q", n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	return u, sc.Err()
}

// Get returns the effective (last) value of a setting.
func (u systemdUnit) Get(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// Environment returns the variables set by Environment= lines (each line may
// set several, optionally quoted).
func (u systemdUnit) Environment() (map[string]string, error) {
	out := map[string]string{}
	for _, line := range u["Service"]["Environment"] {
		words, err := shellWords(line, func(string) (string, bool) { return "", false })
		if err != nil {
			return nil, fmt.Errorf("Environment=%s: %w", line, err)
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("Environment=%s: %q is not KEY=VALUE", line, w)
			}
			out[k] = v
		}
	}
	return out, nil
}

// systemdDuration reads a systemd time span: "35s", "1min 30s", "2m", "90"
// (seconds), "infinity".
func systemdDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return time.Duration(1<<63 - 1), nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	units := []struct{ name, goUnit string }{
		{"usec", "us"}, {"msec", "ms"}, {"seconds", "s"}, {"second", "s"}, {"sec", "s"},
		{"minutes", "m"}, {"minute", "m"}, {"min", "m"}, {"hours", "h"}, {"hour", "h"}, {"hr", "h"},
	}
	norm := strings.ReplaceAll(s, " ", "")
	for _, u := range units {
		norm = strings.ReplaceAll(norm, u.name, u.goUnit)
	}
	d, err := time.ParseDuration(norm)
	if err != nil {
		return 0, fmt.Errorf("not a systemd time span: %q", s)
	}
	return d, nil
}
