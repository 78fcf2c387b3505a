package deploycheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// goBuild is the `go build` command of the Dockerfile, as the shell would
// run it.
type goBuild struct {
	Stage   string            // the stage it runs in
	Env     map[string]string // assignments before `go` (CGO_ENABLED=0 ...)
	Flags   []string          // build flags, without -o
	Output  string            // -o
	Package string            // the package built
	Line    int
}

// dockerGoBuild finds the one RUN line that runs `go build` and reads it the
// way /bin/sh would, with the stage's ARG defaults and BuildKit's platform
// arguments set to this machine's (the image is built per platform the same
// way).
func dockerGoBuild(t *testing.T, df *dockerfile) goBuild {
	t.Helper()
	var found []goBuild
	for _, st := range df.Stages {
		args := st.Args(df.GlobalArgs)
		platform := map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "BUILDPLATFORM": runtime.GOOS + "/" + runtime.GOARCH}
		lookup := func(name string) (string, bool) {
			if v, ok := platform[name]; ok {
				if a, declared := args[name]; declared && a != "" {
					return a, true
				}
				return v, true
			}
			v, ok := args[name]
			return v, ok
		}
		for _, in := range st.All("RUN") {
			if !strings.Contains(in.Args, "go build") {
				continue
			}
			words, err := shellWords(in.Args, lookup)
			if err != nil {
				t.Fatalf("Dockerfile line %d: %v", in.Line, err)
			}
			for _, cmd := range splitCommands(words) {
				gb := goBuild{Stage: st.Name, Env: map[string]string{}, Line: in.Line}
				i := 0
				for ; i < len(cmd) && strings.Contains(cmd[i], "=") && !strings.HasPrefix(cmd[i], "-"); i++ {
					k, v, _ := strings.Cut(cmd[i], "=")
					gb.Env[k] = v
				}
				if i+1 >= len(cmd) || cmd[i] != "go" || cmd[i+1] != "build" {
					continue
				}
				rest := cmd[i+2:]
				for j := 0; j < len(rest); j++ {
					switch a := rest[j]; {
					case a == "-o" && j+1 < len(rest):
						gb.Output = rest[j+1]
						j++
					case strings.HasPrefix(a, "-o="):
						gb.Output = strings.TrimPrefix(a, "-o=")
					case strings.HasPrefix(a, "-"):
						gb.Flags = append(gb.Flags, a)
						// Flags that take a separate value.
						if !strings.Contains(a, "=") && j+1 < len(rest) && (a == "-ldflags" || a == "-tags" || a == "-gcflags" || a == "-mod") {
							gb.Flags = append(gb.Flags, rest[j+1])
							j++
						}
					default:
						if gb.Package != "" {
							t.Fatalf("Dockerfile line %d: go build of more than one package (%s, %s)", in.Line, gb.Package, a)
						}
						gb.Package = a
					}
				}
				found = append(found, gb)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("Dockerfile: want exactly one `go build`, found %d", len(found))
	}
	return found[0]
}

func TestDockerfileBuildsTheCollectorStatically(t *testing.T) {
	df := parseRepoDockerfile(t)
	gb := dockerGoBuild(t, df)
	if gb.Package != "./cmd/collector" {
		t.Errorf("Dockerfile line %d builds %q, want ./cmd/collector", gb.Line, gb.Package)
	}
	if _, err := os.Stat(repoPath(t, "cmd/collector/main.go")); err != nil {
		t.Errorf("the package the Dockerfile builds does not exist: %v", err)
	}
	if gb.Env["CGO_ENABLED"] != "0" {
		t.Errorf("Dockerfile line %d: CGO_ENABLED=%q; the runtime image has no libc, the binary must be static (CGO_ENABLED=0)", gb.Line, gb.Env["CGO_ENABLED"])
	}
	if !contains(gb.Flags, "-trimpath") {
		t.Errorf("Dockerfile line %d: no -trimpath (build paths end up in the binary)", gb.Line)
	}
	if gb.Env["GOOS"] != "" && gb.Env["GOOS"] != runtime.GOOS {
		t.Errorf("GOOS=%s with BuildKit's TARGETOS=%s", gb.Env["GOOS"], runtime.GOOS)
	}
	if gb.Output == "" {
		t.Fatalf("Dockerfile line %d: go build without -o", gb.Line)
	}
	if _, ok := df.Stage(gb.Stage); !ok || gb.Stage == "" {
		t.Fatalf("the go build runs in an unnamed stage; name it (FROM ... AS build) so the final stage can copy from it")
	}

	// The Go toolchain of the build image is at least go.mod's.
	build, _ := df.Stage(gb.Stage)
	base := build.Base
	for k, v := range build.Args(df.GlobalArgs) {
		base = strings.ReplaceAll(base, "${"+k+"}", v)
	}
	for k, v := range df.GlobalArgs {
		base = strings.ReplaceAll(base, "${"+k+"}", v)
	}
	m := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(base)
	if m == nil {
		t.Fatalf("build stage FROM %q: want a golang:<version> image", base)
	}
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if goMod == nil {
		t.Fatal("go.mod has no go directive")
	}
	if compareVersions(m[1], goMod[1]) < 0 {
		t.Errorf("the build image has Go %s, older than go.mod's go %s", m[1], goMod[1])
	}

	// The final stage ships that binary, and only that.
	final := df.Final()
	if final.Name == gb.Stage {
		t.Fatal("the build stage is the final stage: the image would carry the Go toolchain")
	}
	binary := dockerBinaryPath(t)
	copied := false
	for _, c := range final.All("COPY") {
		from, _ := c.Flag("from")
		fields := strings.Fields(c.Args)
		if from == gb.Stage && len(fields) == 2 && fields[0] == gb.Output && fields[1] == binary {
			copied = true
		}
	}
	if !copied {
		t.Errorf("the final stage does not COPY --from=%s %s %s (the ENTRYPOINT)", gb.Stage, gb.Output, binary)
	}
	if strings.Contains(final.Base, "golang") || strings.Contains(final.Base, "debian") && !strings.Contains(final.Base, "distroless") {
		t.Errorf("final image %s: want a minimal base (distroless/static or scratch)", final.Base)
	}
	if cmd, ok := final.Last("CMD"); !ok {
		t.Error("no CMD: `docker run image` should serve")
	} else if args, ok := cmd.JSONArgs(); !ok || len(args) == 0 || args[0] != "serve" {
		t.Errorf("CMD %s; want [\"serve\"]", cmd.Args)
	}
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func TestDockerImageRunsAsNonRootWithHealthcheckStopSignalAndVolume(t *testing.T) {
	df := parseRepoDockerfile(t)
	final := df.Final()

	user, ok := final.Last("USER")
	if !ok {
		t.Fatal("the final stage has no USER: the collector would run as root")
	}
	uid, _, _ := strings.Cut(user.Args, ":")
	if n, err := strconv.Atoi(uid); err != nil {
		t.Errorf("USER %s: use a numeric uid, so Kubernetes' runAsNonRoot can verify it", user.Args)
	} else if n == 0 {
		t.Errorf("USER %s is root", user.Args)
	}

	env, err := final.Env()
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	cfg, err := loadCollectorConfig(env)
	if err != nil {
		t.Fatalf("the image's ENV: %v", err)
	}

	vol, ok := final.Last("VOLUME")
	if !ok {
		t.Fatal("no VOLUME: the WAL would live in the container's writable layer")
	}
	volumes, ok := vol.JSONArgs()
	if !ok {
		volumes = strings.Fields(vol.Args)
	}
	for setting, dir := range map[string]string{"WAL_DIR": cfg.WALDir, "EXPORT_DIR": cfg.ExportDir} {
		on := false
		for _, v := range volumes {
			on = on || underPath(dir, v)
		}
		if !on {
			t.Errorf("%s=%s is not on a VOLUME (%v)", setting, dir, volumes)
		}
	}

	port, err := listenPort(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	exposed := false
	for _, e := range final.All("EXPOSE") {
		for _, p := range strings.Fields(e.Args) {
			exposed = exposed || strings.TrimSuffix(p, "/tcp") == port
		}
	}
	if !exposed {
		t.Errorf("COLLECTOR_ADDR=%s, but the image does not EXPOSE %s", cfg.Addr, port)
	}

	stop, ok := final.Last("STOPSIGNAL")
	if !ok || stop.Args != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q; want SIGTERM, which starts the collector's graceful shutdown", stop.Args)
	}

	hc, ok := final.Last("HEALTHCHECK")
	if !ok {
		t.Fatal("no HEALTHCHECK")
	}
	cmdText, found := strings.CutPrefix(hc.Args, "CMD ")
	if !found {
		t.Fatalf("HEALTHCHECK %q: want HEALTHCHECK [options] CMD [...]", hc.Args)
	}
	probe, ok := dockerInstruction{Args: cmdText}.JSONArgs()
	if !ok {
		t.Fatalf("HEALTHCHECK CMD %s: use the exec form; the image has no shell", cmdText)
	}
	if len(probe) < 2 || probe[0] != dockerBinaryPath(t) || probe[1] != "health" {
		t.Errorf("HEALTHCHECK CMD %q; want [%q, \"health\", ...] (the image has no curl)", probe, dockerBinaryPath(t))
	}
	timeout, ok := hc.Flag("timeout")
	if !ok {
		timeout = "30s" // Docker's default
	}
	checkHealthTimeout(t, "HEALTHCHECK", probe[2:], timeout)
}

func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	data, err := os.ReadFile(repoPath(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	di, err := parseDockerignore(bytes.NewReader(data))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	for _, secret := range []string{".git/config", ".env", "data/wal/LOCK", "bin/collector", "deploy/k8s/secret.yaml"} {
		if !di.Excluded(secret) {
			t.Errorf(".dockerignore lets %s into the build context", secret)
		}
	}

	needed := []string{"go.mod", "go.sum"}
	// Every file of every package of the module that ./cmd/collector
	// imports, embedded files included.
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Dir,Module,GoFiles,CgoFiles,EmbedFiles,Error", "./cmd/collector")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	packages := 0
	for {
		var p struct {
			ImportPath, Dir               string
			Module                        *struct{ Path string }
			GoFiles, CgoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/evothesis/collector" {
			continue
		}
		packages++
		rel, err := filepath.Rel(root(t), p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(append(p.GoFiles, p.CgoFiles...), p.EmbedFiles...) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if packages < 2 {
		t.Fatalf("go list found %d packages of the module behind ./cmd/collector", packages)
	}
	for _, f := range needed {
		if di.Excluded(f) {
			t.Errorf(".dockerignore excludes %s, which `go build ./cmd/collector` needs", f)
		}
	}
}
