package deploycheck

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// nginxDirective is one directive of an nginx configuration, with its block
// when it has one (http, server, location, upstream, ...).
type nginxDirective struct {
	Name  string
	Args  []string
	Block []nginxDirective
	Line  int
}

// parseNginx reads nginx's configuration syntax: directives end with ; or
// open a { block }, # starts a comment, arguments may be quoted with ' or "
// (backslash escapes inside quotes). It checks structure only; `nginx -t`
// checks meaning.
func parseNginx(src string) ([]nginxDirective, error) {
	p := &nginxParser{src: src, line: 1}
	ds, err := p.block(false)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", p.line, err)
	}
	return ds, nil
}

type nginxParser struct {
	src  string
	pos  int
	line int
}

// token returns the next word, or one of "{", "}", ";"; "" at the end.
func (p *nginxParser) token() (tok string, quoted bool, err error) {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			goto word
		}
	}
	return "", false, nil
word:
	c := p.src[p.pos]
	if c == '{' || c == '}' || c == ';' {
		p.pos++
		return string(c), false, nil
	}
	if c == '"' || c == '\'' {
		var b strings.Builder
		p.pos++
		for {
			if p.pos >= len(p.src) {
				return "", false, fmt.Errorf("unterminated %c quote", c)
			}
			d := p.src[p.pos]
			if d == '\\' && p.pos+1 < len(p.src) {
				b.WriteByte(p.src[p.pos+1])
				p.pos += 2
				continue
			}
			if d == '\n' {
				p.line++
			}
			p.pos++
			if d == c {
				return b.String(), true, nil
			}
			b.WriteByte(d)
		}
	}
	start := p.pos
	for p.pos < len(p.src) {
		d := p.src[p.pos]
		if d == ' ' || d == '\t' || d == '\n' || d == '\r' || d == ';' || d == '{' || d == '}' {
			break
		}
		// ${var} inside a word is part of it.
		if d == '$' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '{' {
			end := strings.IndexByte(p.src[p.pos:], '}')
			if end < 0 {
				return "", false, fmt.Errorf("unterminated ${")
			}
			p.pos += end + 1
			continue
		}
		p.pos++
	}
	return p.src[start:p.pos], false, nil
}

func (p *nginxParser) block(inBlock bool) ([]nginxDirective, error) {
	var out []nginxDirective
	var cur *nginxDirective
	for {
		tok, quoted, err := p.token()
		if err != nil {
			return nil, err
		}
		switch {
		case tok == "" && !quoted:
			if inBlock {
				return nil, fmt.Errorf("unexpected end of file: missing }")
			}
			if cur != nil {
				return nil, fmt.Errorf("directive %q is not terminated by ;", cur.Name)
			}
			return out, nil
		case tok == ";" && !quoted:
			if cur == nil {
				return nil, fmt.Errorf("unexpected ;")
			}
			out = append(out, *cur)
			cur = nil
		case tok == "{" && !quoted:
			if cur == nil {
				return nil, fmt.Errorf("unexpected {")
			}
			inner, err := p.block(true)
			if err != nil {
				return nil, err
			}
			cur.Block = inner
			if cur.Block == nil {
				cur.Block = []nginxDirective{}
			}
			out = append(out, *cur)
			cur = nil
		case tok == "}" && !quoted:
			if !inBlock {
				return nil, fmt.Errorf("unexpected }")
			}
			if cur != nil {
				return nil, fmt.Errorf("directive %q is not terminated by ;", cur.Name)
			}
			return out, nil
		default:
			if cur == nil {
				cur = &nginxDirective{Name: tok, Line: p.line}
			} else {
				cur.Args = append(cur.Args, tok)
			}
		}
	}
}

// nginxFind returns the directives named name directly in ds.
func nginxFind(ds []nginxDirective, name string) []nginxDirective {
	var out []nginxDirective
	for _, d := range ds {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// nginxOne returns the single directive named name in ds.
func nginxOne(ds []nginxDirective, name string) (nginxDirective, error) {
	found := nginxFind(ds, name)
	if len(found) != 1 {
		return nginxDirective{}, fmt.Errorf("want exactly one %s, found %d", name, len(found))
	}
	return found[0], nil
}

// nginxSize reads an nginx size: 1024, 8k, 1m, 1g (binary multiples).
func nginxSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty nginx size")
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an nginx size: %q", s)
	}
	return n * mult, nil
}

// nginxDuration reads an nginx time: 50s, 1m, 500ms, 1h, or seconds.
func nginxDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}
