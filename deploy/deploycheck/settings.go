package deploycheck

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/evothesis/collector/config"
)

// runtimeEnv are variables the collector binary reads that are not its own
// settings: the Go runtime's, the AWS SDK's default credential chain (used
// when no S3 keys are configured: instance roles, IRSA), and the TLS roots
// of crypto/x509. Setting one of them for a collector is legitimate; any
// other name that is not a config setting is a mistake (a typo, a seed-era
// name, a variable of another service).
var runtimeEnv = func() map[string]string {
	m := map[string]string{}
	for reader, names := range map[string][]string{
		"Go runtime": {"GOMEMLIMIT", "GOGC", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", "TZ"},
		"AWS SDK": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
			"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
			"AWS_ROLE_SESSION_NAME", "AWS_CA_BUNDLE", "AWS_EC2_METADATA_DISABLED",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"},
		"crypto/x509": {"SSL_CERT_FILE", "SSL_CERT_DIR"},
	} {
		for _, n := range names {
			m[n] = reader
		}
	}
	return m
}()

// unknownCollectorVars returns the names in env that the collector does not
// read, sorted.
func unknownCollectorVars(env map[string]string) []string {
	var out []string
	for k := range env {
		if !config.Known(k) && runtimeEnv[k] == "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// loadCollectorConfig builds the collector's configuration from env exactly
// as `collector serve` would (config.Load), so values must parse and
// validate, not just be named right.
func loadCollectorConfig(env map[string]string) (config.Config, error) {
	if unknown := unknownCollectorVars(env); len(unknown) > 0 {
		return config.Config{}, fmt.Errorf("not collector settings: %s", strings.Join(unknown, ", "))
	}
	return config.Load(nil, func(k string) string { return env[k] })
}

// listenPort returns the port of a listen address such as ":8000".
func listenPort(addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("COLLECTOR_ADDR=%q: %w", addr, err)
	}
	return port, nil
}

// underPath reports whether p is dir or inside it (both absolute, cleaned).
func underPath(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// repoRoot finds the module root (the directory holding the collector's
// go.mod) from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/evothesis/collector\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/evothesis/collector above the working directory")
		}
		dir = parent
	}
}
