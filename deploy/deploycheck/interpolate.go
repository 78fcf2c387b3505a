package deploycheck

import (
	"fmt"
	"strings"
)

// varRef is one variable a compose file interpolates.
type varRef struct {
	Name     string
	Default  string // the text after :- or - (already interpolated)
	Op       string // "", ":-", "-", ":?", "?", ":+", "+"
	Required bool   // :? or ?
}

// interpolate expands a compose file value the way docker compose does:
// $$ is a literal $, $NAME and ${NAME} are replaced, ${NAME:-default} and
// ${NAME-default} fall back (":" also when set but empty), ${NAME:?message}
// and ${NAME?message} fail when unset, ${NAME:+alt} and ${NAME+alt} substitute
// when set. Defaults may themselves contain interpolations. lookup says
// whether a variable is set and to what. It returns the expanded text and
// every variable it referred to.
func interpolate(s string, lookup func(string) (string, bool)) (string, []varRef, error) {
	var b strings.Builder
	var refs []varRef
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			b.WriteByte('$')
			i++
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i += 2
		case next == '{':
			end := matchingBrace(s, i+1)
			if end < 0 {
				return "", refs, fmt.Errorf("unterminated ${ in %q", s)
			}
			val, inner, err := expandBraced(s[i+2:end], lookup)
			refs = append(refs, inner...)
			if err != nil {
				return "", refs, err
			}
			b.WriteString(val)
			i = end + 1
		case isNameStart(next):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, _ := lookup(name)
			refs = append(refs, varRef{Name: name})
			b.WriteString(v)
			i = j
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), refs, nil
}

// matchingBrace returns the index of the } closing the { at open, counting
// nested ${...}.
func matchingBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func expandBraced(body string, lookup func(string) (string, bool)) (string, []varRef, error) {
	j := 0
	for j < len(body) && isNameChar(body[j]) {
		j++
	}
	name := body[:j]
	if name == "" || !isNameStart(name[0]) {
		return "", nil, fmt.Errorf("bad variable name in ${%s}", body)
	}
	rest := body[j:]
	ref := varRef{Name: name}
	val, set := lookup(name)
	if rest == "" {
		return val, []varRef{ref}, nil
	}
	var op string
	for _, candidate := range []string{":-", ":?", ":+", "-", "?", "+"} {
		if strings.HasPrefix(rest, candidate) {
			op = candidate
			break
		}
	}
	if op == "" {
		return "", nil, fmt.Errorf("unsupported modifier in ${%s}", body)
	}
	arg, inner, err := interpolate(rest[len(op):], lookup)
	refs := append([]varRef{}, inner...)
	if err != nil {
		return "", refs, err
	}
	ref.Op = op
	nonEmpty := set && val != ""
	present := set
	if strings.HasPrefix(op, ":") {
		present = nonEmpty
	}
	switch op {
	case ":-", "-":
		ref.Default = arg
		refs = append([]varRef{ref}, refs...)
		if present {
			return val, refs, nil
		}
		return arg, refs, nil
	case ":?", "?":
		ref.Required = true
		refs = append([]varRef{ref}, refs...)
		if present {
			return val, refs, nil
		}
		return "", refs, fmt.Errorf("required variable %s is missing a value: %s", name, arg)
	default: // ":+", "+"
		refs = append([]varRef{ref}, refs...)
		if present {
			return arg, refs, nil
		}
		return "", refs, nil
	}
}

func isNameStart(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
