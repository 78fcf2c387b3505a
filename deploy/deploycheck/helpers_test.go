package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/evothesis/collector/config"
)

func inCI() bool { return os.Getenv("CI") != "" }

// requireTool returns the path of an executable the test needs. Missing, it
// skips locally and fails under CI, where .ci/run installs it.
func requireTool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if inCI() {
		t.Fatalf("%s is not installed, and CI is set: %s (.ci/run must install it)", name, why)
	}
	t.Skipf("%s is not installed (%s); CI installs it and runs this test", name, why)
	return ""
}

func root(t *testing.T) string {
	t.Helper()
	r, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(root(t), filepath.FromSlash(rel))
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// envExample is .env.example as a map, failing the test if it does not parse.
func envExample(t *testing.T) (map[string]string, []envEntry) {
	t.Helper()
	entries, err := parseDotenv(strings.NewReader(readRepoFile(t, ".env.example")))
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	return envMap(entries), entries
}

// devCompose is docker-compose.yml interpolated as `docker compose up` sees
// it without a .env file.
func devCompose(t *testing.T) *loadedCompose {
	t.Helper()
	lc, err := loadCompose(repoPath(t, "docker-compose.yml"), map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// prodSamples are values an operator puts in the production env file, for
// the variables deploy/docker-compose.prod.yml requires.
var prodSamples = map[string]string{
	"COLLECTOR_IMAGE":      "evothesis/collector:1.0.0",
	"DATABASE_URL":         "postgres://collector:secret@db.example.internal:5432/analytics?sslmode=verify-full",
	"ADMIN_TOKEN":          "0123456789abcdef0123456789abcdef",
	"CORS_ALLOWED_ORIGINS": "https://www.example.com,https://shop.example.com",
	"CLIENT_NAME":          "acme",
	"CLIENT_S3_BUCKET":     "acme-analytics",
	"S3_BACKUP_BUCKET":     "evothesis-backup",
	"S3_REGION":            "eu-west-1",
}

func prodCompose(t *testing.T) *loadedCompose {
	t.Helper()
	lc, err := loadCompose(repoPath(t, "deploy/docker-compose.prod.yml"), prodSamples)
	if err != nil {
		t.Fatal(err)
	}
	return lc
}

// collectorServices returns the services that run the collector image:
// built from this repository's Dockerfile, or from an image named
// evothesis/collector (literally or through COLLECTOR_IMAGE).
func collectorServices(t *testing.T, lc *loadedCompose) []string {
	t.Helper()
	var out []string
	for name, svc := range lc.File.Services {
		isCollector := svc.Build != nil || strings.HasPrefix(svc.Image, "evothesis/collector")
		for _, ref := range lc.Refs["services."+name+".image"] {
			isCollector = isCollector || ref.Name == "COLLECTOR_IMAGE"
		}
		if isCollector {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// serviceConfig loads a compose service's environment as the collector's
// configuration.
func serviceConfig(t *testing.T, lc *loadedCompose, name string) (config.Config, map[string]string) {
	t.Helper()
	env, err := lc.File.Services[name].environment()
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	cfg, err := loadCollectorConfig(env)
	if err != nil {
		t.Fatalf("service %s: the collector would not start with this environment: %v", name, err)
	}
	return cfg, env
}

// dockerBinaryPath is where the Dockerfile puts the collector binary (its
// ENTRYPOINT).
func dockerBinaryPath(t *testing.T) string {
	t.Helper()
	df := parseRepoDockerfile(t)
	ep, ok := df.Final().Last("ENTRYPOINT")
	if !ok {
		t.Fatal("Dockerfile: the final stage has no ENTRYPOINT")
	}
	args, ok := ep.JSONArgs()
	if !ok || len(args) == 0 {
		t.Fatalf("Dockerfile line %d: ENTRYPOINT must be in exec form ([\"/path/collector\"]) so that signals reach the binary", ep.Line)
	}
	return args[0]
}

func parseRepoDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df, err := parseDockerfile(strings.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return df
}
