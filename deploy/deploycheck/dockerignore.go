package deploycheck

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// ignoreRule is one line of a .dockerignore.
type ignoreRule struct {
	Pattern string
	Negate  bool
	re      *regexp.Regexp
}

// dockerIgnore decides which paths of a build context are excluded, with the
// semantics of Docker's patternmatcher: patterns are relative to the context
// root (a leading / is dropped and paths are cleaned), * and ? do not cross /,
// ** crosses any number of directories, a pattern that matches a directory
// excludes everything under it, ! re-includes, and the last matching line
// wins.
type dockerIgnore struct{ rules []ignoreRule }

func parseDockerignore(r io.Reader) (*dockerIgnore, error) {
	di := &dockerIgnore{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rule := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			rule.Negate = true
			line = strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		rule.Pattern = line
		re, err := ignorePatternRegexp(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		rule.re = re
		di.rules = append(di.rules, rule)
	}
	return di, sc.Err()
}

func ignorePatternRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				// "**/" matches zero or more directories.
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					b.WriteString("(.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in %q", p)
			}
			b.WriteString(p[i : i+end+1])
			i += end
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteString(regexp.QuoteMeta(string(p[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Excluded reports whether the file at rel (slash-separated, relative to the
// context root) is left out of the build context.
func (di *dockerIgnore) Excluded(rel string) bool {
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	// The file and every directory above it: excluding a directory excludes
	// what is in it.
	candidates := []string{rel}
	for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
		candidates = append(candidates, d)
	}
	excluded := false
	for _, r := range di.rules {
		for _, c := range candidates {
			if r.re.MatchString(c) {
				excluded = !r.Negate
				break
			}
		}
	}
	return excluded
}
