package deploycheck

import (
	"fmt"
	"strings"
)

// shellWords splits a POSIX shell command line into words, the way sh would
// before running it: whitespace separates words, single quotes are literal,
// double quotes keep spaces and expand variables, a backslash escapes the
// next character, and $NAME / ${NAME} / ${NAME:-default} expand through
// lookup. The control operators &&, ||, ; and | come back as words of their
// own, so a caller can split a RUN line into commands. It is enough for the
// RUN lines of a Dockerfile; it does not do globbing, command substitution or
// redirections (it refuses the last two rather than misreading them).
func shellWords(s string, lookup func(string) (string, bool)) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	expand := func(i int) (int, error) {
		// s[i] == '$'
		if i+1 < len(s) && s[i+1] == '(' {
			return 0, fmt.Errorf("command substitution is not supported: %q", s)
		}
		j := i + 1
		var ref string
		if j < len(s) && s[j] == '{' {
			end := matchingBrace(s, j)
			if end < 0 {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			ref = s[i : end+1]
			j = end + 1
		} else {
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			if j == i+1 {
				cur.WriteByte('$')
				inWord = true
				return i + 1, nil
			}
			ref = s[i:j]
		}
		val, _, err := interpolate(ref, lookup)
		if err != nil {
			return 0, err
		}
		cur.WriteString(val)
		inWord = true
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
			i++
		case c == '\\':
			if i+1 < len(s) {
				if s[i+1] != '\n' {
					cur.WriteByte(s[i+1])
					inWord = true
				}
				i += 2
			} else {
				i++
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated double quote in %q", s)
				}
				d := s[i]
				if d == '"' {
					i++
					break
				}
				if d == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					cur.WriteByte(s[i+1])
					i += 2
					continue
				}
				if d == '$' {
					var err error
					if i, err = expand(i); err != nil {
						return nil, err
					}
					continue
				}
				if d == '`' {
					return nil, fmt.Errorf("command substitution is not supported: %q", s)
				}
				cur.WriteByte(d)
				i++
			}
		case c == '$':
			var err error
			if i, err = expand(i); err != nil {
				return nil, err
			}
		case c == '`':
			return nil, fmt.Errorf("command substitution is not supported: %q", s)
		case c == '&' || c == '|' || c == ';':
			flush()
			op := string(c)
			if (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c {
				op += string(c)
			}
			if op == "&" {
				return nil, fmt.Errorf("background jobs are not supported: %q", s)
			}
			words = append(words, op)
			i += len(op)
		case c == '<' || c == '>':
			return nil, fmt.Errorf("redirections are not supported: %q", s)
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// splitCommands splits shell words at control operators.
func splitCommands(words []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range words {
		switch w {
		case "&&", "||", ";", "|":
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		default:
			cur = append(cur, w)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
