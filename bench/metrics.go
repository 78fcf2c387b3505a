package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics is one scrape of a Prometheus text endpoint: series (name plus
// labels, as written) to value.
type Metrics map[string]float64

// ParseMetrics reads the Prometheus text exposition format (comments and
// timestamps ignored).
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// The value follows the series, after the closing brace if any.
		cut := bytes.LastIndexByte(line, '}')
		if cut < 0 {
			cut = bytes.IndexByte(line, ' ')
			if cut < 0 {
				continue
			}
		} else {
			cut++
		}
		series := string(line[:cut])
		fields := strings.Fields(string(line[cut:]))
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		m[series] = v
	}
	return m, sc.Err()
}

// Sum adds every series of the metric name (all label combinations).
func (m Metrics) Sum(name string) (float64, bool) {
	var sum float64
	found := false
	for s, v := range m {
		if s == name || (strings.HasPrefix(s, name) && len(s) > len(name) && s[len(name)] == '{') {
			sum += v
			found = true
		}
	}
	return sum, found
}

// ByLabel returns name's series keyed by the value of one label.
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	for s, v := range m {
		if !strings.HasPrefix(s, name+"{") {
			continue
		}
		key := label + `="`
		i := strings.Index(s, key)
		if i < 0 {
			continue
		}
		rest := s[i+len(key):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			out[rest[:j]] += v
		}
	}
	return out
}

// Scrape fetches and parses url.
func Scrape(ctx context.Context, client *http.Client, url string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return ParseMetrics(resp.Body)
}
