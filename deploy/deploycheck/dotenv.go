package deploycheck

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// envEntry is one KEY=VALUE line of a dotenv or systemd environment file.
type envEntry struct {
	Key, Value string
	Line       int
}

var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseDotenv reads the common subset of docker compose's .env format and
// systemd's EnvironmentFile= format: KEY=VALUE lines, blank lines, # comments,
// an optional "export " prefix, values optionally in single or double quotes.
// An unquoted value ends at " #" (an inline comment). A repeated key is an
// error: in a file meant to be read by people, the second one silently
// winning is a bug.
func parseDotenv(r io.Reader) ([]envEntry, error) {
	var out []envEntry
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, line)
		}
		key = strings.TrimSpace(key)
		if !envKeyPattern.MatchString(key) {
			return nil, fmt.Errorf("line %d: %q is not a variable name", n, key)
		}
		value, err := dotenvValue(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, key, err)
		}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("line %d: %s already set on line %d", n, key, prev)
		}
		seen[key] = n
		out = append(out, envEntry{Key: key, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func dotenvValue(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	switch q := raw[0]; q {
	case '\'', '"':
		end := strings.LastIndexByte(raw, q)
		if end == 0 {
			return "", fmt.Errorf("unterminated %c quote", q)
		}
		if rest := strings.TrimSpace(raw[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", fmt.Errorf("text after the closing quote: %q", rest)
		}
		inner := raw[1:end]
		if q == '"' {
			inner = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(inner)
		}
		return inner, nil
	}
	if i := strings.Index(raw, " #"); i >= 0 {
		raw = strings.TrimSpace(raw[:i])
	}
	return raw, nil
}

// envMap turns entries into a lookup map.
func envMap(entries []envEntry) map[string]string {
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		m[e.Key] = e.Value
	}
	return m
}
