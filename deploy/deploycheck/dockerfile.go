package deploycheck

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	Cmd   string   // upper case: FROM, RUN, COPY, ...
	Flags []string // leading --name=value flags (RUN --mount=..., COPY --from=...)
	Args  string   // the rest, as written
	Line  int      // first line
}

// JSONArgs reads Args in exec form (["a", "b"]); ok is false for shell form.
func (in dockerInstruction) JSONArgs() ([]string, bool) {
	var out []string
	if !strings.HasPrefix(strings.TrimSpace(in.Args), "[") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(in.Args), &out); err != nil {
		return nil, false
	}
	return out, true
}

// Flag returns the value of a leading --name=value flag.
func (in dockerInstruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
		if f == "--"+name {
			return "", true
		}
	}
	return "", false
}

type dockerStage struct {
	Base, Name   string
	Instructions []dockerInstruction
}

type dockerfile struct {
	GlobalArgs map[string]string // ARGs before the first FROM, with defaults
	Stages     []dockerStage
}

// parseDockerfile reads a Dockerfile: comments and blank lines dropped,
// backslash continuations joined (comment lines inside a continuation are
// skipped, as BuildKit does), instructions grouped by stage. Heredocs are not
// supported.
func parseDockerfile(r io.Reader) (*dockerfile, error) {
	df := &dockerfile{GlobalArgs: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var pending strings.Builder
	start := 0
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		trimmed := strings.TrimSpace(raw)
		if pending.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if pending.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, "\\") {
			pending.WriteString(strings.TrimSuffix(trimmed, "\\"))
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(trimmed)
		if err := df.add(pending.String(), start); err != nil {
			return nil, err
		}
		pending.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pending.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return df, nil
}

func (df *dockerfile) add(text string, line int) error {
	cmd, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
	in := dockerInstruction{Cmd: strings.ToUpper(cmd), Line: line}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		in.Flags = append(in.Flags, flag)
		rest = strings.TrimSpace(after)
	}
	if strings.HasPrefix(rest, "<<") {
		return fmt.Errorf("line %d: heredocs are not supported", line)
	}
	in.Args = rest
	switch in.Cmd {
	case "FROM":
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return fmt.Errorf("line %d: FROM without an image", line)
		}
		st := dockerStage{Base: fields[0]}
		if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
			st.Name = fields[2]
		}
		df.Stages = append(df.Stages, st)
		return nil
	case "ARG":
		if len(df.Stages) == 0 {
			for _, a := range strings.Fields(rest) {
				k, v, _ := strings.Cut(a, "=")
				df.GlobalArgs[k] = strings.Trim(v, `"`)
			}
			return nil
		}
	}
	if len(df.Stages) == 0 {
		return fmt.Errorf("line %d: %s before FROM", line, in.Cmd)
	}
	st := &df.Stages[len(df.Stages)-1]
	st.Instructions = append(st.Instructions, in)
	return nil
}

// Stage returns the stage with that name.
func (df *dockerfile) Stage(name string) (*dockerStage, bool) {
	for i := range df.Stages {
		if df.Stages[i].Name == name {
			return &df.Stages[i], true
		}
	}
	return nil, false
}

// Final is the last stage: the image that is shipped.
func (df *dockerfile) Final() *dockerStage { return &df.Stages[len(df.Stages)-1] }

// All returns the stage's instructions with that command.
func (st *dockerStage) All(cmd string) []dockerInstruction {
	var out []dockerInstruction
	for _, in := range st.Instructions {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// Last returns the stage's last instruction with that command (the one that
// takes effect for USER, ENTRYPOINT, HEALTHCHECK, ...).
func (st *dockerStage) Last(cmd string) (dockerInstruction, bool) {
	all := st.All(cmd)
	if len(all) == 0 {
		return dockerInstruction{}, false
	}
	return all[len(all)-1], true
}

// Args returns the stage's ARG defaults, with the global ARGs it redeclares.
func (st *dockerStage) Args(global map[string]string) map[string]string {
	out := map[string]string{}
	for _, in := range st.All("ARG") {
		for _, a := range strings.Fields(in.Args) {
			k, v, hasDefault := strings.Cut(a, "=")
			switch {
			case hasDefault:
				out[k] = strings.Trim(v, `"`)
			default:
				if g, ok := global[k]; ok {
					out[k] = g
				} else {
					out[k] = ""
				}
			}
		}
	}
	return out
}

// Env returns the stage's ENV settings (KEY=VALUE form, several per line).
func (st *dockerStage) Env() (map[string]string, error) {
	out := map[string]string{}
	for _, in := range st.All("ENV") {
		words, err := shellWords(in.Args, func(string) (string, bool) { return "", false })
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", in.Line, err)
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: use ENV KEY=VALUE, not the legacy ENV KEY VALUE form", in.Line)
			}
			out[k] = v
		}
	}
	return out, nil
}
